"""KernelSHAP, sans I/O, over any masker (``explainers.interface``).

``plan`` chooses coalitions (``coalitions.design``: whole sizes enumerated from the
edges inward, the rest sampled in complementary pairs; every coalition when
2^M − 2 ≤ budget) and has the masker build the rows to score: the instance itself, the
empty coalition's inputs, then every coalition's (for numeric rows, each coalition on
every background row, with numba: interventional Shapley values over the background).
``fit`` averages each coalition's scores with the masker's weights into coalition
values and solves the Shapley-kernel weighted least squares under the efficiency
constraint, so the scores add up to f(x) − E[f] exactly.

``confidence`` is the half-width of a 95% interval from the sandwich variance over the
sampled pairs (``regression.constrained_least_squares``); it is 0 when every coalition
was evaluated, because the scores are then the exact Shapley values over the background.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from explainers import coalitions, kernels
from explainers.interface import PILOT_SHARE, Masker, units_to_add
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


def rows_planned(m: int, budget: int, width: int) -> int:
    """Rows ``plan`` builds for ``m`` segments (at most; fewer coalitions only when the
    budget is odd): the instance, the empty coalition, each coalition ``width`` times."""
    coalitions = 0 if m < 2 else min(budget, 2**m - 2)
    return 1 + width + coalitions * width


@dataclass(frozen=True)
class ShapPlan:
    rows: np.ndarray  # (1 + W + C·W, ...): instance, empty coalition, coalitions × W
    design: coalitions.CoalitionDesign
    masker: Masker
    seed: int
    rounds: int = 1


def plan(masker: Masker, samples: int | None = None, seed: int = 0) -> ShapPlan:
    """``samples`` coalitions (shap's ``nsamples``; default 2M + 2048)."""
    m = masker.segments
    budget = samples if samples is not None else default_budget(m)
    rng = np.random.default_rng([seed, RNG_STREAM])
    chosen = coalitions.design(m, budget, rng)
    w = masker.width
    rows = masker.allocate(1 + w + len(chosen.masks) * w)  # filled in place: no copy
    masker.fill_reference(rows[: 1 + w])
    masker.fill_masked(chosen.masks, rows[1 + w :])
    return ShapPlan(rows=rows, design=chosen, masker=masker, seed=seed)


def extend(plan: ShapPlan, pairs: int) -> tuple[ShapPlan, np.ndarray]:
    """``plan`` with ``pairs`` more sampled pairs (a new round of its seed), and the new
    rows to score; scores for the extended plan are the old ones followed by theirs."""
    rng = np.random.default_rng([plan.seed, RNG_STREAM, plan.rounds])
    grown = coalitions.extend(plan.design, pairs, rng)
    new_masks = grown.masks[len(plan.design.masks) :]
    new_rows = plan.masker.allocate(len(new_masks) * plan.masker.width)
    plan.masker.fill_masked(new_masks, new_rows)
    extended = ShapPlan(
        rows=np.concatenate([plan.rows, new_rows]),
        design=grown,
        masker=plan.masker,
        seed=plan.seed,
        rounds=plan.rounds + 1,
    )
    return extended, new_rows


def fit(plan: ShapPlan, scores: np.ndarray) -> Saliencies:
    """``scores`` (rows, K): the predictor's outputs for ``plan.rows``."""
    scores = np.ascontiguousarray(scores, dtype=np.float64)
    weights = plan.masker.weights
    w = weights.shape[0]
    prediction = scores[0]
    baseline = weights @ scores[1 : 1 + w]
    total = prediction - baseline
    chosen = plan.design
    m = chosen.masks.shape[1]
    if chosen.masks.shape[0] == 0:  # one segment: it carries the whole difference
        values = np.tile(total[:, None], (1, m))
        variance = np.zeros_like(values)
    else:
        coalition_values = kernels.coalition_values(scores[1 + w :], weights) - baseline
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


@dataclass(frozen=True)
class KernelShap:
    """KernelSHAP as an ``explainers.interface.Explainer``."""

    name: ClassVar[str] = "SHAP"
    prepares: ClassVar[bool] = False  # the constrained solve needs the scores throughout

    def default_samples(self, segments: int) -> int:
        return default_budget(segments)

    def pilot_samples(self, samples: int, segments: int) -> int:
        return max(2 * segments + 8, int(samples * PILOT_SHARE))

    def rows_planned(self, masker: Masker, samples: int) -> int:
        return rows_planned(masker.segments, samples, masker.width)

    def plan(self, masker: Masker, samples: int, seed: int) -> ShapPlan:
        return plan(masker, samples, seed)

    def prepare(self, plan: ShapPlan) -> None:
        return None

    def fit(self, plan: ShapPlan, scores: np.ndarray, prepared: object = None) -> Saliencies:
        return fit(plan, scores)

    def extend(
        self, plan: ShapPlan, fitted: Saliencies, tolerance: float, max_samples: int
    ) -> tuple[ShapPlan, np.ndarray] | None:
        design = plan.design
        room = (max_samples - len(design.masks)) // 2
        add = min(units_to_add(fitted, tolerance, design.n_units), room)
        return None if design.exact or add <= 0 else extend(plan, add)
