"""Antithetic permutation sampling (``explainers.permutations``) against brute-force
Shapley values: exact where the theory says so, unbiased, intervals that cover."""

from __future__ import annotations

import numpy as np
import pytest

from explainers import kernel_shap, permutations
from explainers.background import build
from explainers.interface import References
from explainers.maskers.numeric import NumericRows
from explainers.stratified import combine
from tests.models import brute_force_shapley

M = 9
PAIR = permutations.coalitions_per_pair(M)


def pairwise(rows: np.ndarray) -> np.ndarray:
    """Interactions of order 2 at most: one pair of orders per reference is exact."""
    return np.column_stack(
        [
            rows @ np.arange(1.0, M + 1) + rows[:, 0] * rows[:, 1] - 2 * rows[:, 2] * rows[:, 8],
            np.sin(rows[:, 3]) * rows[:, 4] + rows[:, 5] ** 2,
        ]
    )


def third_order(rows: np.ndarray) -> np.ndarray:
    return np.column_stack(
        [np.tanh(rows[:, 0] * rows[:, 1] * rows[:, 2] + rows[:, 3] * rows[:, 4] * rows[:, 5])]
    )


def explain(f, x, background, samples, seed=0):  # type: ignore[no-untyped-def]
    plan = kernel_shap.plan(NumericRows(x, background), samples, seed)
    assert isinstance(plan.design, permutations.PermutationDesign)
    return plan, kernel_shap.fit(plan, f(plan.rows))


def test_the_reverse_order_walks_the_complements_and_pairs_spread_evenly() -> None:
    chosen = permutations.design(M, 14, np.random.default_rng(0), references=4)
    assert chosen.masks.shape == (14, PAIR, M)
    assert sorted(np.bincount(chosen.owner)) == [3, 3, 4, 4] and chosen.n_units == 3
    halves = chosen.masks.reshape(14, 2, M - 1, M)
    # The reverse's prefix of k segments is the complement of the order's of M − k.
    np.testing.assert_array_equal(halves[:, 1], ~halves[:, 0, ::-1])
    sizes = np.broadcast_to(np.arange(1, M), (14, 2, M - 1))
    np.testing.assert_array_equal(halves.sum(axis=3), sizes)


def test_one_pair_is_exact_for_interactions_of_order_two() -> None:
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(15, M))
    x = rng.normal(size=M)
    plan, result = explain(pairwise, x, build(rows, 15), samples=PAIR, seed=3)
    assert plan.design.units == 15 + 7  # a second pair for half of them, to calibrate
    np.testing.assert_allclose(result.scores, brute_force_shapley(pairwise, x, rows), atol=1e-10)
    assert result.facts["exact"] is False


def test_one_pair_variance_is_what_the_references_with_two_say() -> None:
    """With interactions of order ≤ 2 every pair is exact, so every reference's variance
    is 0 — yet one pair's halves differ. The references given a second pair show a
    spread of 0, and the one-pair references' halves are scaled to match."""
    rng = np.random.default_rng(4)
    rows = rng.normal(size=(40, M))
    x = rng.normal(size=M)
    plan, result = explain(pairwise, x, build(rows, 40), samples=PAIR, seed=1)
    design = plan.design
    assert isinstance(design, permutations.PermutationDesign)
    counts = np.bincount(design.owner)
    assert (counts == 2).sum() == permutations.CALIBRATING and (counts == 1).sum() == 24
    references = plan.references.weights.shape[0]
    at_reference = pairwise(plan.rows[1 : 1 + references])
    values = kernel_shap.coalition_scores(plan, pairwise(plan.rows))
    values = values - at_reference[design.owner][:, None, :]
    total = pairwise(plan.rows[:1]) - at_reference
    fitted = permutations.estimate(design, values, total)
    assert fitted.variance.max() < 1e-10  # rounding
    _, first = np.unique(design.owner, return_index=True)  # one pair each: nothing to scale by
    one_each = permutations.PermutationDesign(
        design.orders[first], design.owner[first], design.masks[first], references
    )
    alone = permutations.estimate(one_each, values[first], total)
    assert alone.variance.max() > 1e-3  # one pair's halves differ
    assert result.confidence.max() < 1e-6


@pytest.mark.parametrize("pairs", [1, 1.5, 3])
def test_unbiased_and_intervals_cover_over_seeds(pairs: float) -> None:
    """Whole background: the intervals hold the coalitions' sampling alone; one pair
    per reference (half of them given a second, which calibrates the others' variance),
    several (their spread), or some of each. The game's marginal contributions take few
    values, so a few references carry the variance: it needs Satterthwaite's t."""
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(12, M))
    x = rng.normal(size=M)
    truth = brute_force_shapley(third_order, x, rows)
    estimates, covered = [], []
    for seed in range(120):
        _, result = explain(third_order, x, build(rows, 12), samples=int(pairs * PAIR), seed=seed)
        total = result.per_output["prediction"] - result.per_output["baseline"]
        np.testing.assert_allclose(result.scores.sum(axis=1), total, atol=1e-12)
        estimates.append(result.scores)
        covered.append(np.abs(result.scores - truth) <= result.confidence)
    stack = np.array(estimates)
    error = np.abs(stack.mean(axis=0) - truth)
    standard_error = stack.std(axis=0, ddof=1) / np.sqrt(len(stack))
    assert (error <= 4 * standard_error + 1e-12).all()  # unbiased
    active = np.array(covered)[:, 0, :6]  # features 6–8 never matter: exact zeros
    assert 0.92 <= float(active.mean()) <= 1.0, float(active.mean())
    np.testing.assert_allclose(stack[:, 0, 6:], 0.0, atol=1e-12)


def test_extend_adds_pairs_of_orders_and_narrows_the_interval() -> None:
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(10, M))
    x = rng.normal(size=M)
    shap = kernel_shap.KernelShap()
    plan = shap.plan(NumericRows(x, build(rows, 10)), 2 * PAIR, 0)
    fitted = shap.fit(plan, third_order(plan.rows))
    grown = shap.extend(plan, fitted, float(fitted.confidence.max()) / 3, 100 * PAIR)
    assert grown is not None
    bigger, new_rows = grown
    assert new_rows.shape[0] % (10 * PAIR) == 0 and bigger.design.n_units > 2
    scores = np.concatenate([third_order(plan.rows), third_order(new_rows)])
    refit = shap.fit(bigger, scores)
    truth = brute_force_shapley(third_order, x, rows)
    assert refit.confidence.max() < fitted.confidence.max()
    assert np.linalg.norm(refit.scores - truth) < np.linalg.norm(fitted.scores - truth) * 1.5


def test_a_whole_backgrounds_degrees_of_freedom_follow_where_the_variance_is() -> None:
    """Welch–Satterthwaite's limits: equal variances add their degrees of freedom; one
    reference carrying the variance leaves its own."""
    w = 10
    references = References(
        weights=np.full(w, 1 / w),
        strata=np.zeros(w, dtype=np.int64),
        drawn=np.ones(w),
        index=np.arange(w),
    )
    estimates = np.zeros((w, 1, 2))
    variances = np.zeros((w, 1, 2))
    variances[:, 0, 0] = 1.0  # alike
    variances[3, 0, 1] = 1.0  # one reference alone
    dof = np.full(w, 2.0)
    combined = combine(references, estimates, variances, dof)
    np.testing.assert_allclose(combined.dof, [[2.0 * w, 2.0]])
    np.testing.assert_allclose(combined.variance, [[w / w**2, 1 / w**2]])
