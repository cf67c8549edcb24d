"""KernelSHAP (interventional, over a weighted background), sans I/O.

``plan`` chooses coalitions (``coalitions.design``: whole sizes enumerated from the
edges inward, the rest sampled in complementary pairs; every coalition when
2^M − 2 ≤ budget) and builds, with numba, the rows to score: the instance itself, the
background rows, then every coalition on every background row. ``fit`` averages the
scores over the background into coalition values and solves the Shapley-kernel
weighted least squares under the efficiency constraint, so the scores add up to
f(x) − E[f] exactly.

``confidence`` is the half-width of a 95% interval from the sandwich variance over the
sampled pairs (``regression.constrained_least_squares``); it is 0 when every coalition
was evaluated, because the scores are then the exact Shapley values over the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explainers import coalitions, kernels
from explainers.background import Background
from explainers.regression import constrained_least_squares, half_width
from explainers.saliencies import Saliencies

RNG_STREAM = 2
# A sampled score is never exact: even where the sampling variance vanishes (models
# whose interactions are of order ≤ 2, for which paired sampling is exact) the solve
# carries rounding error, so its half-width is at least this, relative to the scale.
ROUNDING_FLOOR = 1e-12


def default_budget(m: int) -> int:
    """shap's ``nsamples="auto"``: 2M + 2048 coalitions."""
    return 2 * m + 2048


def rows_planned(m: int, budget: int, background_rows: int) -> int:
    """Rows ``plan`` builds for ``m`` features (at most; fewer coalitions only when the
    budget is odd): the instance, the background, each coalition on every background row."""
    coalitions = 0 if m < 2 else min(budget, 2**m - 2)
    return 1 + background_rows + coalitions * background_rows


@dataclass(frozen=True)
class ShapContext:
    background: Background
    samples: int | None = None  # coalition budget; default 2M + 2048
    seed: int = 0


@dataclass(frozen=True)
class ShapPlan:
    rows: np.ndarray  # (1 + B + C·B, M): instance, background, coalitions × background
    design: coalitions.CoalitionDesign
    background: Background
    seed: int
    rounds: int = 1

    @property
    def background_weights(self) -> np.ndarray:
        return self.background.weights


def plan(instance: np.ndarray, context: ShapContext) -> ShapPlan:
    instance = np.ascontiguousarray(instance, dtype=np.float64)
    background = context.background
    m = instance.shape[0]
    if background.rows.shape[1] != m:
        raise ValueError(f"instance has {m} features, background {background.rows.shape[1]}")
    budget = context.samples if context.samples is not None else default_budget(m)
    rng = np.random.default_rng([context.seed, RNG_STREAM])
    chosen = coalitions.design(m, budget, rng)
    b = background.rows.shape[0]
    rows = np.empty((1 + b + len(chosen.masks) * b, m))  # filled in place: no copy
    rows[0] = instance
    rows[1 : 1 + b] = background.rows
    kernels.fill_masked_rows(instance, background.rows, chosen.masks, rows[1 + b :])
    return ShapPlan(rows=rows, design=chosen, background=background, seed=context.seed)


def extend(plan: ShapPlan, pairs: int) -> tuple[ShapPlan, np.ndarray]:
    """``plan`` with ``pairs`` more sampled pairs (a new round of its seed), and the new
    rows to score; scores for the extended plan are the old ones followed by theirs."""
    rng = np.random.default_rng([plan.seed, RNG_STREAM, plan.rounds])
    grown = coalitions.extend(plan.design, pairs, rng)
    new_masks = grown.masks[len(plan.design.masks) :]
    instance = plan.rows[0]
    new_rows = kernels.masked_rows(instance, plan.background.rows, new_masks)
    extended = ShapPlan(
        rows=np.concatenate([plan.rows, new_rows]),
        design=grown,
        background=plan.background,
        seed=plan.seed,
        rounds=plan.rounds + 1,
    )
    return extended, new_rows


def fit(plan: ShapPlan, scores: np.ndarray) -> Saliencies:
    """``scores`` (rows, K): the predictor's outputs for ``plan.rows``."""
    scores = np.ascontiguousarray(scores, dtype=np.float64)
    weights = plan.background_weights
    b = weights.shape[0]
    prediction = scores[0]
    baseline = weights @ scores[1 : 1 + b]
    total = prediction - baseline
    chosen = plan.design
    m = chosen.masks.shape[1]
    if chosen.masks.shape[0] == 0:  # one feature: it carries the whole difference
        values = np.tile(total[:, None], (1, m))
        variance = np.zeros_like(values)
    else:
        coalition_values = kernels.coalition_values(scores[1 + b :], weights) - baseline
        solved = constrained_least_squares(
            chosen.masks, chosen.weights, coalition_values, total, chosen.units, chosen.n_units
        )
        values, variance = solved.scores, solved.variance
    confidence = half_width(variance, chosen.n_units)
    if not chosen.exact:
        scale = 1.0 + np.abs(total)[:, None] + np.abs(values)
        confidence = np.maximum(confidence, ROUNDING_FLOOR * scale)
    return Saliencies(
        scores=values,
        confidence=confidence,
        per_output={"baseline": baseline, "prediction": prediction},
        facts={
            "samples": int(chosen.masks.shape[0]),
            "exact": bool(chosen.exact),
            "seed": plan.seed,
        },
    )
