"""Rows with categorical and integer features, sans I/O: categories as codes
(``explainer.features``), LIME against the lime package's categorical scheme, SHAP
against brute-force enumeration, and no value the model never saw."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from explainers import kernel_shap, lime
from explainers.background import build
from explainers.maskers.numeric import LimeStatistics, NumericRows
from tests.models import brute_force_shapley

CATEGORICAL = np.array([True, False, True, False, False])
INTEGER = np.array([False, True, False, False, False])


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, RandomForestClassifier]:
    """Two categorical features (codes), one integer, two continuous; the label needs
    both categories and an interaction."""
    rng = np.random.default_rng(4)
    n = 1500
    x = np.column_stack(
        [
            rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1]),
            rng.integers(0, 11, n),
            rng.choice(3, n),
            rng.normal(size=n),
            rng.normal(size=n),
        ]
    ).astype(np.float64)
    logit = (
        (x[:, 0] == 2) * 1.5 - (x[:, 2] == 1) * 1.0 + 0.3 * x[:, 1] - 1.5 + x[:, 3] * (x[:, 0] == 0)
    )
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    model = RandomForestClassifier(n_estimators=60, max_depth=6, random_state=0).fit(x, y)
    return x, model


@pytest.fixture(scope="module")
def statistics(data) -> LimeStatistics:  # type: ignore[no-untyped-def]
    return LimeStatistics.from_training(data[0][:1000], CATEGORICAL, INTEGER)


def test_perturbations_take_only_values_the_model_can_take(data, statistics) -> None:  # type: ignore[no-untyped-def]
    train, _ = data
    x = train[1200]
    plan = lime.plan(NumericRows(x, statistics=statistics), 4000, seed=3)
    rows = plan.rows
    for j in np.flatnonzero(CATEGORICAL):  # a category of the background, or the instance's
        assert set(np.unique(rows[:, j])) <= set(np.unique(train[:1000, j])) | {x[j]}
        np.testing.assert_array_equal(plan.binary[:, j], rows[:, j] == x[j])
    integer = rows[:, 1]
    np.testing.assert_array_equal(integer, np.round(integer))
    assert train[:1000, 1].min() <= integer.min() and integer.max() <= train[:1000, 1].max()
    assert len(np.unique(integer)) > 5  # whole numbers across the range, not one per bin


def test_an_unseen_instance_category_is_never_drawn(data, statistics) -> None:  # type: ignore[no-untyped-def]
    x = data[0][1200].copy()
    x[0] = 7.0  # a category the background does not hold
    plan = lime.plan(NumericRows(x, statistics=statistics), 1000, seed=0)
    assert (plan.rows[1:, 0] != 7.0).all() and (plan.binary[1:, 0] == 0).all()


@pytest.mark.parametrize("index", [1200, 1333])
def test_lime_mean_is_within_the_lime_packages_interval(data, statistics, index: int) -> None:  # type: ignore[no-untyped-def]
    """lime's LimeTabularExplainer with the same categorical features, and the integer
    feature rounded within its bin before the model sees it (what this project does when
    it draws it), gives the same mean over seeds, within a family-wise 95% interval."""
    from lime.lime_tabular import LimeTabularExplainer
    from scipy.stats import norm

    train, model = data
    x = train[index]
    borders = statistics.borders[1]

    def rounded(rows: np.ndarray) -> np.ndarray:
        rows = rows.copy()
        bins = np.searchsorted(borders, rows[:, 1])
        low, high = statistics.int_lo[1, bins], statistics.int_hi[1, bins]
        rows[:, 1] = np.clip(np.round(rows[:, 1]), low, high)
        return model.predict_proba(rows)

    theirs = []
    for seed in range(40):
        reference = LimeTabularExplainer(
            train[:1000],
            mode="classification",
            categorical_features=list(np.flatnonzero(CATEGORICAL)),
            random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explanation = reference.explain_instance(
                x, rounded, num_features=5, labels=(1,), num_samples=5000
            )
        coef = np.zeros(5)
        for j, weight in explanation.as_map()[1]:
            coef[j] = weight
        theirs.append(coef)
    ours = []
    for seed in range(40):
        plan = lime.plan(NumericRows(x, statistics=statistics), 5000, seed, ridge_alpha=1.0)
        ours.append(lime.fit(plan, model.predict_proba(plan.rows)).scores[1])
    mean, se = np.mean(theirs, axis=0), np.std(theirs, axis=0, ddof=1) / np.sqrt(len(theirs))
    z = norm.ppf(1 - 0.05 / (2 * 5))  # Bonferroni over the 5 features
    assert (np.abs(np.mean(ours, axis=0) - mean) <= z * se).all(), (np.mean(ours, axis=0), mean, se)


def test_shap_over_codes_is_exact_against_brute_force(data) -> None:  # type: ignore[no-untyped-def]
    train, model = data
    background = build(train[:12], size=300, categorical=CATEGORICAL)
    x = train[1200]
    masker = NumericRows(x, background=background)
    plan = kernel_shap.plan(masker, samples=2**5 - 2, seed=0)
    fitted = kernel_shap.fit(plan, model.predict_proba(plan.rows))
    truth = brute_force_shapley(model.predict_proba, x, train[:12])
    np.testing.assert_allclose(fitted.scores, truth, atol=1e-10)
    assert (fitted.confidence == 0).all()


def test_sampled_shap_intervals_cover_over_a_stratified_mixed_background(data) -> None:  # type: ignore[no-untyped-def]
    """The categorical control variate (is the row's category the instance's?) keeps the
    estimate unbiased: over a stratified 1000-row background, intervals cover the
    brute-force values."""
    train, model = data
    background = build(train[:1000], size=40, categorical=CATEGORICAL)
    x = train[1200]
    truth = brute_force_shapley(model.predict_proba, x, train[:1000])
    covered = []
    for seed in range(8):
        plan = kernel_shap.plan(NumericRows(x, background=background), samples=16, seed=seed)
        fitted = kernel_shap.fit(plan, model.predict_proba(plan.rows))
        covered.append(np.abs(fitted.scores - truth) <= fitted.confidence)
    assert np.mean(covered) >= 0.85
