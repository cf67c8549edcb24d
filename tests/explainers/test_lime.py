"""LIME against the lime package (the reference oracle), scikit-learn's Ridge, and its
own large-sample limit for interval coverage."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from explainer.demo import credit_model
from explainers import lime
from explainers.maskers.numeric import LimeStatistics, NumericRows
from explainers.regression import weighted_ridge

BOUNDARY_APPLICANT = 438  # p ≈ 0.75: both informative features matter (test_service picks it too)


@pytest.fixture(scope="module")
def credit():  # type: ignore[no-untyped-def]
    return credit_model()


@pytest.fixture(scope="module")
def statistics(credit) -> LimeStatistics:  # type: ignore[no-untyped-def]
    return LimeStatistics.from_training(credit.train)


def explain(credit, statistics, x, samples=5000, seed=0):  # type: ignore[no-untyped-def]
    plan = lime.plan(NumericRows(x, statistics=statistics), samples, seed)
    return plan, lime.fit(plan, credit.model.predict_proba(plan.rows))


def test_weighted_ridge_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((300, 6)) < 0.5).astype(float)
    y = rng.normal(size=(300, 2))
    w = rng.random(300)
    ours = weighted_ridge(x, y, w, 1.0, np.zeros(300, dtype=np.int64), 1)
    for k in range(2):
        theirs = Ridge(alpha=1.0).fit(x, y[:, k], sample_weight=w)
        np.testing.assert_allclose(ours.coef[k], theirs.coef_, atol=1e-10)
        assert ours.intercept[k] == pytest.approx(theirs.intercept_, abs=1e-10)
        assert ours.r2[k] == pytest.approx(theirs.score(x, y[:, k], sample_weight=w), abs=1e-10)


@pytest.mark.parametrize("index", [BOUNDARY_APPLICANT, 5])
def test_mean_over_seeds_is_within_the_lime_packages_confidence_interval(
    credit, statistics, index: int
) -> None:  # type: ignore[no-untyped-def]
    """With lime-compatible settings (ridge alpha = 1), this project's mean score over many
    seeds lies inside the family-wise 95% confidence interval of the lime package's mean."""
    from lime.lime_tabular import LimeTabularExplainer
    from scipy.stats import norm

    x = credit.test[index]
    theirs = []
    for seed in range(40):
        reference = LimeTabularExplainer(credit.train, mode="classification", random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explanation = reference.explain_instance(
                x, credit.model.predict_proba, num_features=5, labels=(1,), num_samples=5000
            )
        coef = np.zeros(5)
        for j, weight in explanation.as_map()[1]:
            coef[j] = weight
        theirs.append(coef)
    ours = []
    for seed in range(40):
        plan = lime.plan(
            NumericRows(x, statistics=statistics), samples=5000, seed=seed, ridge_alpha=1.0
        )
        ours.append(lime.fit(plan, credit.model.predict_proba(plan.rows)).scores[1])
    mean, se = np.mean(theirs, axis=0), np.std(theirs, axis=0, ddof=1) / np.sqrt(len(theirs))
    z = norm.ppf(1 - 0.05 / (2 * 5))  # Bonferroni over the 5 features
    assert (np.abs(np.mean(ours, axis=0) - mean) <= z * se).all(), (np.mean(ours, axis=0), mean, se)


def test_first_row_is_the_instance_and_binary_marks_its_bins(credit, statistics) -> None:  # type: ignore[no-untyped-def]
    x = credit.test[3]
    plan, result = explain(credit, statistics, x, samples=200)
    np.testing.assert_array_equal(plan.rows[0], x)
    assert (plan.binary[0] == 1).all()
    same_bin = np.array([statistics.bins_of(row) for row in plan.rows]) == statistics.bins_of(x)
    np.testing.assert_array_equal(plan.binary, same_bin.astype(float))
    assert plan.weights[0] == 1.0
    assert result.facts["samples"] == 200


def test_confidence_intervals_cover_the_large_sample_scores(credit, statistics) -> None:  # type: ignore[no-untyped-def]
    """The truth is what a 5000-sample plan estimates on average: a 400 000-sample plan
    with its instance row weighted as one of 5000 (``lime.at_share``)."""
    x = credit.test[BOUNDARY_APPLICANT]
    large = lime.plan(NumericRows(x, statistics=statistics), samples=400_000, seed=999)
    truth = lime.fit(lime.at_share(large, 5000), credit.model.predict_proba(large.rows))
    covered = []
    for seed in range(40):
        _, estimate = explain(credit, statistics, x, seed=seed)
        covered.append(np.abs(estimate.scores - truth.scores) <= estimate.confidence)
    coverage = float(np.mean(covered))
    assert 0.9 <= coverage <= 0.99, coverage


def test_spread_over_seeds_is_far_below_the_lime_package(credit, statistics) -> None:  # type: ignore[no-untyped-def]
    """Randomised quasi-Monte Carlo: same estimand, a fraction of lime's seed-to-seed spread
    (lime's standard deviation here is ~0.013 per score at 5000 samples)."""
    x = credit.test[BOUNDARY_APPLICANT]
    scores = np.array(
        [explain(credit, statistics, x, seed=seed)[1].scores[1] for seed in range(10)]
    )
    assert scores.std(axis=0, ddof=1).max() < 0.004


def test_same_seed_same_rows(credit, statistics) -> None:  # type: ignore[no-untyped-def]
    x = credit.test[0]
    one, _ = explain(credit, statistics, x, samples=100, seed=3)
    two, _ = explain(credit, statistics, x, samples=100, seed=3)
    three, _ = explain(credit, statistics, x, samples=100, seed=4)
    np.testing.assert_array_equal(one.rows, two.rows)
    assert not np.array_equal(one.rows, three.rows)


@pytest.mark.parametrize("steps", [(1000, 5000), (1000, 2000, 5000), (300, 700, 1500, 5000)])
def test_a_plan_grown_in_rounds_is_the_plan_of_its_size(credit, statistics, steps) -> None:  # type: ignore[no-untyped-def]
    """Growing 1000 → 2000 → 5000 rows, scoring each round's new rows after the old,
    fits exactly what the 5000-row plan of the same seed fits (its rows, reordered)."""
    x = credit.test[BOUNDARY_APPLICANT]
    predict = credit.model.predict_proba
    current = lime.plan(NumericRows(x, statistics=statistics), steps[0], seed=5)
    scores = predict(current.rows)
    for samples in steps[1:]:
        current, new_rows = lime.grow(current, samples)
        scores = np.concatenate([scores, predict(new_rows)])
    np.testing.assert_array_equal(scores, predict(current.rows))  # rows in scoring order
    direct, fitted = explain(credit, statistics, x, samples=steps[-1], seed=5)
    assert sorted(map(tuple, current.rows)) == sorted(map(tuple, direct.rows))
    grown = lime.fit(current, scores)
    np.testing.assert_allclose(grown.scores, fitted.scores, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grown.confidence, fitted.confidence, rtol=1e-9, atol=1e-12)


def test_pooled_variance_matches_the_spread_of_independent_draws() -> None:
    """Two units of independent rows: the design effect is 1 on average, so the pooled
    variance must match the coefficients' actual variance over repeated draws, and its
    intervals cover at their nominal rate."""
    from explainers.regression import half_width

    rng = np.random.default_rng(11)
    m, n, beta = 5, 400, np.array([1.0, -0.5, 0.25, 0.0, 2.0])
    units = np.repeat([0, 1], n // 2)
    coefs, variances, covered = [], [], []
    for _ in range(400):
        x = (rng.random((n, m)) < 0.4).astype(float)
        y = (x @ beta + rng.normal(scale=0.5 + x[:, 0], size=n))[:, None]
        fit = weighted_ridge(x, y, rng.random(n) + 0.5, 1e-8, units, 2, pooled=True)
        assert fit.dof == m
        coefs.append(fit.coef[0])
        variances.append(fit.coef_var[0])
        covered.append(np.abs(fit.coef[0] - beta) <= half_width(fit.coef_var, 2, fit.dof)[0])
    ratio = np.mean(variances, axis=0) / np.var(coefs, axis=0, ddof=1)
    assert ((ratio > 0.8) & (ratio < 1.25)).all(), ratio
    assert 0.92 <= np.mean(covered) <= 0.98, np.mean(covered)
