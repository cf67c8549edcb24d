"""KernelSHAP, sans I/O, over any masker (``explainers.interface``).

``plan`` has the masker draw the explanation's references (for numeric rows, background
rows: all of them, or a stratified sample of a large background), chooses coalitions
for each (``coalitions.design``: whole sizes enumerated from the edges inward, the rest
sampled in complementary pairs, drawn independently for every reference; every
coalition when 2^M − 2 ≤ budget) and has the masker build the rows to score: the
instance itself, each reference, then each reference's coalitions.

``fit`` solves the Shapley-kernel weighted least squares of each reference's game
v_w(S) = f(x_S, b_{−S}) under its efficiency constraint (so each reference's scores add
up to f(x) − f(b_w) exactly) and averages them with the references' weights
(``explainers.stratified``): interventional Shapley values over the whole background.
One regression per reference, not one over averaged values: with independent
coalitions the references' errors average out (the per-reference solve is exact for an
additive game whatever the coalitions, so only the interactions are left to sample),
and the interval then covers the references' sampling as well as the coalitions'.

``confidence`` is the half-width of the 95% interval from that variance; it is 0 only
when every coalition was evaluated on every background row: the exact Shapley values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from explainers import coalitions
from explainers.interface import PILOT_SHARE, Masker, References, units_to_add
from explainers.regression import constrained_least_squares, half_width
from explainers.saliencies import Saliencies
from explainers.stratified import combine

RNG_STREAM = 2
# A sampled score is never exact: even where the sampling variance vanishes (models
# whose interactions are of order ≤ 2, for which paired sampling is exact) the solve
# carries rounding error, so its half-width is at least this, relative to the scale.
ROUNDING_FLOOR = 1e-12
# Predictor rows one explanation's coalitions take by default, spread over its
# references: about a fifth of shap's default (50 rows × (2M + 2048) coalitions), and
# chosen on bench/accuracy/unseen.py's design cases, where it is at most half shap's
# error against SHAP over the whole background.
DEFAULT_ROWS = 20_000


def default_budget(m: int, width: int = 1) -> int:
    """Coalitions per reference by default: the explanation's rows spread over its
    ``width`` references, at least ``MIN_PER_REFERENCE(m)`` each (see DEFAULT_ROWS)."""
    return max(min_per_reference(m), DEFAULT_ROWS // max(width, 1))


def min_per_reference(m: int) -> int:
    """Fewest sampled coalitions for a per-reference solve of ``m`` scores to stay
    well-conditioned: a few per score."""
    return 4 * m + 16


def rows_planned(m: int, budget: int, width: int) -> int:
    """Rows ``plan`` builds for ``m`` segments (at most; fewer coalitions only when the
    budget is odd): the instance, each reference, each reference's coalitions."""
    coalitions = 0 if m < 2 else min(budget, 2**m - 2)
    return 1 + width + coalitions * width


@dataclass(frozen=True)
class ShapPlan:
    # (1 + W + W·C₁ + W·C₂ …, ...): instance, references, then each round's coalitions
    # (C₁ in the first), reference-major within a round
    rows: np.ndarray
    design: coalitions.CoalitionDesign
    masker: Masker
    references: References
    seed: int
    rounds: tuple[int, ...]  # coalitions per reference added by each round


def plan(masker: Masker, samples: int | None = None, seed: int = 0) -> ShapPlan:
    """``samples`` coalitions per reference (shap's ``nsamples``; default
    ``default_budget``)."""
    m = masker.segments
    rng = np.random.default_rng([seed, RNG_STREAM])
    references = masker.references(rng)
    w = references.weights.shape[0]
    budget = samples if samples is not None else default_budget(m, w)
    chosen = coalitions.design(m, budget, rng, references=w)
    rows = masker.allocate(1 + w + w * chosen.coalitions)  # filled in place: no copy
    masker.fill_reference(references, rows[: 1 + w])
    masker.fill_masked(references, chosen.masks, rows[1 + w :])
    return ShapPlan(rows, chosen, masker, references, seed, (chosen.coalitions,))


def extend(plan: ShapPlan, pairs: int) -> tuple[ShapPlan, np.ndarray]:
    """``plan`` with ``pairs`` more sampled pairs per reference (a new round of its seed),
    and the new rows to score; scores for the extended plan are the old ones followed by
    theirs."""
    rng = np.random.default_rng([plan.seed, RNG_STREAM, len(plan.rounds)])
    grown = coalitions.extend(plan.design, pairs, rng)
    new_masks = grown.masks[:, plan.design.coalitions :]
    w = plan.references.weights.shape[0]
    new_rows = plan.masker.allocate(w * new_masks.shape[1])
    plan.masker.fill_masked(plan.references, new_masks, new_rows)
    rounds = (*plan.rounds, new_masks.shape[1])
    extended = replace(
        plan, rows=np.concatenate([plan.rows, new_rows]), design=grown, rounds=rounds
    )
    return extended, new_rows


def coalition_scores(plan: ShapPlan, scores: np.ndarray) -> np.ndarray:
    """(W, C, K): each reference's coalition scores, from the rounds' blocks."""
    w = plan.references.weights.shape[0]
    blocks, start = [], 1 + w
    for count in plan.rounds:
        blocks.append(scores[start : start + w * count].reshape(w, count, -1))
        start += w * count
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)


def fit(plan: ShapPlan, scores: np.ndarray) -> Saliencies:
    """``scores`` (rows, K): the predictor's outputs for ``plan.rows``."""
    scores = np.ascontiguousarray(scores, dtype=np.float64)
    references = plan.references
    w = references.weights.shape[0]
    prediction = scores[0]
    at_reference = scores[1 : 1 + w]  # (W, K)
    chosen = plan.design
    m = chosen.masks.shape[2]
    if chosen.coalitions == 0:  # one segment: it carries the whole difference
        per_reference = np.repeat((prediction - at_reference)[:, :, None], m, axis=2)
        solved_variance = np.zeros_like(per_reference)
    else:
        values = coalition_scores(plan, scores) - at_reference[:, None, :]
        solved = constrained_least_squares(
            chosen.masks,
            chosen.weights,
            values,
            prediction - at_reference,
            chosen.units,
            chosen.n_units,
        )
        per_reference, solved_variance = solved.scores, solved.variance
    combined = combine(references, per_reference, solved_variance, w * max(chosen.n_units - 1, 1))
    values = combined.estimate
    # The control variates move the estimate of E[f] over the whole background with it.
    baseline = references.weights @ at_reference - combined.adjustment.sum(axis=1)
    exact = bool(chosen.exact and (references.drawn == 1).all())
    units = combined.dof + 1  # half_width's t has units − 1 degrees of freedom
    confidence = half_width(combined.variance, units)
    if not exact:
        scale = 1.0 + np.abs(prediction - baseline)[:, None] + np.abs(values)
        confidence = np.maximum(confidence, ROUNDING_FLOOR * scale)
    return Saliencies(
        scores=values,
        confidence=confidence,
        per_output={"baseline": baseline, "prediction": prediction},
        facts={
            "samples": chosen.coalitions,
            "exact": exact,
            "seed": plan.seed,
        },
        floor=half_width(combined.between, units),
    )


@dataclass(frozen=True)
class KernelShap:
    """KernelSHAP as an ``explainers.interface.Explainer``."""

    name: ClassVar[str] = "SHAP"
    prepares: ClassVar[bool] = False  # the constrained solve needs the scores throughout

    def default_samples(self, masker: Masker) -> int:
        return default_budget(masker.segments, masker.width)

    def pilot_samples(self, samples: int, segments: int) -> int:
        return min(samples, max(min_per_reference(segments), int(samples * PILOT_SHARE)))

    def settling_samples(self, samples: int, segments: int) -> int:
        return samples  # the default budget is what it spends

    def rows_planned(self, masker: Masker, samples: int) -> int:
        return rows_planned(masker.segments, samples, masker.width)

    def plan(self, masker: Masker, samples: int, seed: int) -> ShapPlan:
        return plan(masker, samples, seed)

    def prepare(self, plan: ShapPlan) -> None:
        return None

    def fit(self, plan: ShapPlan, scores: np.ndarray, prepared: object = None) -> Saliencies:
        return fit(plan, scores)

    def extend(
        self, plan: ShapPlan, fitted: Saliencies, tolerance: float | None, max_samples: int
    ) -> tuple[ShapPlan, np.ndarray] | None:
        design = plan.design
        if tolerance is None:
            return None
        if fitted.floor is not None and float(fitted.floor.max()) > tolerance:
            return None  # the rows drawn alone are wider: more coalitions cannot meet it
        room = (max_samples - design.coalitions) // 2
        add = min(units_to_add(fitted, tolerance, design.n_units), room)
        return None if design.exact or add <= 0 else extend(plan, add)
