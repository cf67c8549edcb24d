"""KernelSHAP against ground truth: brute-force Shapley values, the closed form for
linear models, shap's KernelExplainer, and interval coverage over seeds."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from explainers import coalitions, kernel_shap
from explainers.background import Background, build
from explainers.maskers.numeric import NumericRows
from explainers.regression import constrained_least_squares
from tests.models import brute_force_shapley


def nonlinear(rows: np.ndarray) -> np.ndarray:
    """Two outputs with interactions of order up to 3."""
    a = np.tanh(rows[:, 0] * rows[:, 1] + rows[:, 2] ** 2 - rows[:, 3] * rows[:, 4] * rows[:, 5])
    b = np.sin(rows[:, 1:]).sum(axis=1) + 0.3 * rows[:, 0] * rows[:, -1]
    return np.column_stack([a, b])


def explain(f, x, background, samples=None, seed=0):  # type: ignore[no-untyped-def]
    plan = kernel_shap.plan(NumericRows(x, background), samples, seed)
    return kernel_shap.fit(plan, f(plan.rows))


def equal_weights(rows: np.ndarray) -> Background:
    """Every row used as it is, weighted equally."""
    return build(rows, len(rows))


@pytest.mark.parametrize("m", [2, 3, 6, 9])
def test_exact_regime_equals_brute_force(m: int) -> None:
    rng = np.random.default_rng(m)
    background = equal_weights(rng.normal(size=(7, max(m, 6)))[:, :m])

    def f(rows: np.ndarray) -> np.ndarray:
        padded = np.zeros((len(rows), 6))
        padded[:, : min(m, 6)] = rows[:, :6]
        return nonlinear(np.column_stack([padded, rows[:, 6:]]) if m > 6 else padded)

    x = rng.normal(size=m)
    result = explain(f, x, background)
    assert result.facts["exact"] is True
    np.testing.assert_allclose(
        result.scores, brute_force_shapley(f, x, background.rows), atol=1e-12
    )
    assert (result.confidence == 0).all()


def test_one_feature_carries_the_whole_difference() -> None:
    background = equal_weights(np.array([[1.0], [3.0]]))
    result = explain(lambda r: r**2, np.array([4.0]), background)
    np.testing.assert_allclose(result.scores, [[16.0 - 5.0]])


def test_sampled_regime_linear_model_is_exact_and_adds_up() -> None:
    rng = np.random.default_rng(0)
    background = equal_weights(rng.normal(size=(20, 30)))
    w = rng.normal(size=30)
    x = rng.normal(size=30)
    result = explain(lambda r: (r @ w)[:, None], x, background)
    assert result.facts["exact"] is False
    np.testing.assert_allclose(result.scores[0], w * (x - background.rows.mean(axis=0)), atol=1e-9)


def test_sampled_regime_scores_add_up_exactly() -> None:
    rng = np.random.default_rng(1)
    background = equal_weights(rng.normal(size=(30, 14)))
    x = rng.normal(size=14)
    result = explain(nonlinear, x, background, samples=300)
    total = result.per_output["prediction"] - result.per_output["baseline"]
    np.testing.assert_allclose(result.scores.sum(axis=1), total, atol=1e-12)
    assert (result.confidence[0] > 1e-4).all()  # interactions of order 3: sampling error
    # Paired sampling is exact for interactions of order ≤ 2 (output 1), and says so;
    # sampled scores are never reported as exact.
    assert (result.confidence[1] < 1e-8).all() and (result.confidence[1] > 0).all()


def test_matches_shap_kernel_explainer_where_both_are_exact() -> None:
    shap = pytest.importorskip("shap")
    rng = np.random.default_rng(2)
    background = rng.normal(size=(10, 8))
    x = rng.normal(size=8)
    ours = explain(nonlinear, x, equal_weights(background))
    reference = shap.KernelExplainer(nonlinear, background, silent=True)
    theirs = reference.shap_values(x[None, :], nsamples=2**8, l1_reg=False, silent=True)
    theirs = (
        np.asarray(theirs).reshape(8, 2).T if np.ndim(theirs) == 3 else np.asarray(theirs)[:, 0]
    )
    np.testing.assert_allclose(ours.scores, theirs, atol=1e-9)


@pytest.mark.parametrize("samples", [2**8, 60, 28, 14])
def test_intervals_cover_shap_over_the_whole_background_when_rows_are_drawn(
    samples: int,
) -> None:
    """A background larger than SHAP_BACKGROUND_SIZE: every explanation draws rows from
    it, and its interval covers SHAP over all of them — with every coalition evaluated
    on the rows drawn (only the background is sampled), with coalitions sampled for the
    regression too, with two pairs of orders per row, and with one (half the rows given
    a second, which calibrates the others' variance)."""
    rng = np.random.default_rng(7)
    rows = rng.normal(size=(120, 8))
    x = rng.normal(size=8)
    whole = brute_force_shapley(nonlinear, x, rows)
    background = build(rows, 24)  # 12 strata, two rows drawn from each
    assert NumericRows(x, background).width == 24
    covered, widths = [], []
    for seed in range(80):
        estimate = explain(nonlinear, x, background, samples=samples, seed=seed)
        assert not estimate.facts["exact"]
        total = estimate.per_output["prediction"] - estimate.per_output["baseline"]
        np.testing.assert_allclose(estimate.scores.sum(axis=1), total, atol=1e-12)
        covered.append(np.abs(estimate.scores - whole) <= estimate.confidence)
        widths.append(estimate.confidence)
    coverage = float(np.mean(covered))
    assert 0.9 <= coverage <= 0.99, coverage
    assert np.median(widths) > 1e-3  # the rows left out are not ignored


def test_strata_of_unequal_draws_keep_the_estimate_unbiased_and_covered() -> None:
    """More rows drawn than two per stratum: big strata give more, each row weighted by
    its stratum's share over its draw."""
    rng = np.random.default_rng(11)
    rows = rng.normal(size=(150, 8))
    x = rng.normal(size=8)
    whole = brute_force_shapley(nonlinear, x, rows)
    background = build(rows, 60)
    assert background.allocation is not None and len(set(background.allocation)) > 1
    assert NumericRows(x, background).width == 60
    estimates, covered = [], []
    for seed in range(80):
        estimate = explain(nonlinear, x, background, samples=28, seed=seed)
        estimates.append(estimate.scores)
        covered.append(np.abs(estimate.scores - whole) <= estimate.confidence)
    stack = np.array(estimates)
    standard_error = stack.std(axis=0, ddof=1) / np.sqrt(len(stack))
    assert (np.abs(stack.mean(axis=0) - whole) <= 4 * standard_error + 1e-12).all()
    assert 0.9 <= float(np.mean(covered)) <= 0.99, float(np.mean(covered))


def test_a_tolerance_the_rows_drawn_cannot_meet_adds_no_coalitions() -> None:
    rng = np.random.default_rng(8)
    background = build(rng.normal(size=(120, 8)), 24)  # rows drawn: a floor to the width
    x = rng.normal(size=8)
    shap = kernel_shap.KernelShap()
    plan = shap.plan(NumericRows(x, background), 60, 0)
    fitted = shap.fit(plan, nonlinear(plan.rows))
    assert fitted.floor is not None and fitted.floor.max() > 0
    below_floor = float(fitted.floor.max()) / 2
    assert shap.extend(plan, fitted, below_floor, 10**6) is None
    whole = build(background.rows, 120)  # the whole background: no floor
    plan = shap.plan(NumericRows(x, whole), 60, 0)
    fitted = shap.fit(plan, nonlinear(plan.rows))
    assert fitted.floor is not None and fitted.floor.max() == 0
    assert shap.extend(plan, fitted, float(fitted.confidence.max()) / 2, 10**6) is not None


def test_confidence_intervals_cover_the_exact_values() -> None:
    rng = np.random.default_rng(3)
    background = equal_weights(rng.normal(size=(6, 12)))
    x = rng.normal(size=12)
    exact = explain(nonlinear, x, background, samples=2**12)
    assert exact.facts["exact"]
    covered, errors = [], []
    for seed in range(60):
        estimate = explain(nonlinear, x, background, samples=400, seed=seed)
        covered.append(np.abs(estimate.scores - exact.scores) <= estimate.confidence)
        errors.append(np.linalg.norm(estimate.scores - exact.scores))
    covered_array = np.array(covered)
    coverage = float(covered_array[:, 0].mean())  # output 0: interactions of order 3
    assert 0.9 <= coverage <= 0.99, coverage
    assert covered_array[:, 1].all()  # output 1: only rounding error, and covered
    assert np.median(errors) > 0  # sampled, not exact


def test_same_seed_same_plan_other_seed_other_coalitions() -> None:
    background = equal_weights(np.random.default_rng(4).normal(size=(5, 16)))
    x = np.ones(16)
    one = kernel_shap.plan(NumericRows(x, background), seed=9)
    two = kernel_shap.plan(NumericRows(x, background), seed=9)
    three = kernel_shap.plan(NumericRows(x, background), seed=10)
    np.testing.assert_array_equal(one.rows, two.rows)
    assert not np.array_equal(one.design.masks, three.design.masks)


@pytest.mark.parametrize(("m", "budget"), [(5, 30), (5, 29), (10, 300), (20, 2088), (50, 2148)])
def test_coalition_design(m: int, budget: int) -> None:
    design = coalitions.design(m, budget, np.random.default_rng(0))
    masks = design.masks[0]
    assert len(masks) <= budget
    assert design.weights.sum() == pytest.approx(1.0)
    sizes = masks.sum(axis=1)
    assert ((sizes > 0) & (sizes < m)).all()
    assert design.exact == (2**m - 2 <= budget)
    sampled = design.units >= 0
    pairs = masks[sampled].reshape(-1, 2, m)
    np.testing.assert_array_equal(pairs[:, 0], ~pairs[:, 1])  # each with its complement
    for s in set(sizes[~sampled].tolist()):  # enumerated sizes are complete
        assert (sizes[~sampled] == s).sum() == comb(m, s)


def test_constrained_solve_matches_the_kkt_system() -> None:
    rng = np.random.default_rng(5)
    masks = rng.random((60, 6)) < 0.5
    weights = rng.random(60)
    values = rng.normal(size=(60, 2))
    total = np.array([1.0, -2.0])
    fit = constrained_least_squares(
        masks[None], weights, values[None], total[None], np.full(60, -1), 0
    )
    z = masks.astype(float)
    a = z.T @ (z * weights[:, None])
    kkt = np.block([[2 * a, np.ones((6, 1))], [np.ones((1, 6)), np.zeros((1, 1))]])
    for k in range(2):
        rhs = np.concatenate([2 * z.T @ (weights * values[:, k]), [total[k]]])
        np.testing.assert_allclose(fit.scores[0, k], np.linalg.solve(kkt, rhs)[:6], atol=1e-10)


@pytest.mark.parametrize(("model", "m"), [("boosting", 6), ("forest", 10)])
def test_matches_shap_exact_explainer_up_to_ten_features(model: str, m: int) -> None:
    shap = pytest.importorskip("shap")
    from bench.accuracy.suite import build

    case = build(model, m, correlated=True)
    background = equal_weights(case.background)
    masker = shap.maskers.Independent(case.background, max_samples=len(case.background))
    reference = shap.ExactExplainer(lambda rows: case.predict(rows)[:, 0], masker)
    for x in case.instances:
        ours = explain(case.predict, x, background, samples=2**m)
        assert ours.facts["exact"]
        theirs = reference(x[None, :]).values[0]
        np.testing.assert_allclose(ours.scores[0], theirs, atol=1e-9)


@pytest.mark.parametrize(
    ("m", "budget"), [(1, 10), (2, 10), (5, 2058), (12, 300), (20, 1000), (20, 1001)]
)
def test_rows_planned_is_what_plan_builds_at_most_and_exactly_for_an_even_budget(
    m: int, budget: int
) -> None:
    rng = np.random.default_rng(m)
    background = build(rng.random((7, m)), 100)
    rows = kernel_shap.plan(NumericRows(rng.random(m), background), budget).rows
    bound = kernel_shap.rows_planned(m, budget, 7)
    assert rows.shape[0] <= bound
    assert rows.shape[0] == bound or (budget % 2 and 2**m - 2 > budget)


def test_a_ranking_is_settled_down_to_its_first_tie() -> None:
    """Exact SHAP of a linear model is β_j (x_j − mean b_j): with every difference 1 the
    scores are the coefficients, so where the top 5 is set apart is known in closed form —
    and ties inside it do not unsettle it."""
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(6, 7))
    background = equal_weights(rows)
    x = rows.mean(axis=0) + 1.0
    betas = np.array(
        [
            [6.0, 5.0, 4.0, 3.0, 2.0, 2.0, 1.0],  # 5th and 6th tied: the top 4 is set apart
            [6.0, 6.0, 4.0, 3.0, 2.0, 1.5, 1.0],  # 1st and 2nd tied inside the top 5
            [-1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # one feature, then six ignored alike
        ]
    )
    result = explain(lambda r: r @ betas.T, x, background)
    assert result.facts["exact"] is True
    np.testing.assert_allclose(result.scores, betas, atol=1e-9)
    assert result.settled().tolist() == [4, 5, 1]
    assert result.select(np.array([0])).settled().tolist() == [4]
