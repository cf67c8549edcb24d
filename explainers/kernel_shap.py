"""KernelSHAP, sans I/O, over any masker (``explainers.interface``).

``plan`` has the masker draw the explanation's references (for numeric rows, background
rows: all of them, or a stratified sample of a large background), chooses coalitions
for each and has the masker build the rows to score: the instance itself, each
reference, then each reference's coalitions. Every reference gets its own coalitions,
drawn independently, so that their errors average out over the references and the
interval covers the references' sampling as well as the coalitions'.

Two estimators of each reference's game v_w(S) = f(x_S, b_{−S}), both adding up to
f(x) − f(b_w) exactly, whose results ``fit`` averages with the references' weights
(``explainers.stratified``): interventional Shapley values over the whole background.

* Many references with few coalitions each (fewer than REGRESSION_FROM per segment):
  antithetic permutation sampling (``explainers.permutations``), unbiased at one pair
  of orders per reference, so the rows go to as many references as they can.
* Otherwise — one reference (a text's masked form), many coalitions per reference, or
  every coalition within the budget — the Shapley-kernel weighted least squares under
  the efficiency constraint (``explainers.coalitions``, ``explainers.regression``):
  exact when every coalition is evaluated, and the more accurate one per row once a
  reference has coalitions enough for its small-sample bias to fade.

``confidence`` is the half-width of the 95% interval from that variance; it is 0 only
when every coalition was evaluated on every background row: the exact Shapley values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from explainers import coalitions, permutations
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
# references (background rows): about an eighth of shap's default (50 rows × (2M + 2048)
# coalitions), chosen on bench/accuracy/unseen.py's design cases (at most half shap's
# error against SHAP over the whole background) and for ALL to run ≥ 5× faster than
# lime + shap on a compute-bound model (bench/results/defaults.md).
DEFAULT_ROWS = 12_000
# With one reference (a text's masked form) every row is a coalition of one regression:
# bench/results/texts.md measures its error at this many.
ONE_REFERENCE_ROWS = 20_000
# Coalitions per segment of each reference from which its regression is more accurate
# than its orders, at equal rows: on bench/accuracy/unseen.py's design cases (their
# backgrounds cut to 30–300 rows, 12,000 rows) orders won below 5–7 per segment, the
# regression above — its small-sample bias, which no number of references averages
# out, fades as the coalitions grow, and it is the more efficient for smooth games.
REGRESSION_FROM = 6
# The most references a background is drawn down to by default (``default_references``).
MAX_REFERENCES = 1000


def default_references(m: int) -> int:
    """Background rows one explanation uses by default (``SHAP_BACKGROUND_SIZE``): as
    many as DEFAULT_ROWS score at one antithetic pair of orders each, less those that
    pay for the CALIBRATING references' second pairs."""
    per_pair = permutations.coalitions_per_pair(max(m, 2))
    return min(MAX_REFERENCES, max(2, DEFAULT_ROWS // per_pair - permutations.CALIBRATING))


def default_budget(m: int, width: int = 1) -> int:
    """Coalitions per reference by default: the explanation's rows spread over its
    ``width`` references, at least what one reference's estimate needs."""
    if width <= 1:
        return max(min_per_reference(m), ONE_REFERENCE_ROWS)
    return max(min_per_reference(m, width), DEFAULT_ROWS // width)


def sampled_by_permutations(m: int, budget: int, width: int) -> bool:
    """Whether the plan samples orders: several references, each with fewer coalitions
    than REGRESSION_FROM per segment (and not every coalition)."""
    regression = max(REGRESSION_FROM * m, min_per_reference(m))
    return width > 1 and m >= 2 and budget < min(regression, 2**m - 2)


def min_per_reference(m: int, width: int = 1) -> int:
    """Fewest coalitions per reference: one pair of orders, or for the regression enough
    sampled coalitions for a per-reference solve of ``m`` scores to stay
    well-conditioned — a few per score."""
    if width > 1 and m >= 2:
        return permutations.coalitions_per_pair(m)
    return 4 * m + 16


def pairs_planned(m: int, budget: int, width: int) -> int:
    """Pairs of orders ``plan`` draws in all when it samples orders: the budget's
    coalitions over every reference, at least one pair each, and a second for some
    (``permutations.calibrated_pairs``)."""
    pairs = max(width, budget * width // permutations.coalitions_per_pair(m))
    return permutations.calibrated_pairs(pairs, width)


def coalitions_planned(m: int, budget: int, width: int) -> int:
    """Coalitions per reference ``plan`` builds for ``budget`` (on average over the
    references, whole; for the regression at most the budget, fewer only when it is
    odd)."""
    if m < 2:
        return 0
    if sampled_by_permutations(m, budget, width):
        pairs = pairs_planned(m, budget, width)
        return pairs * permutations.coalitions_per_pair(m) // width
    return min(budget, 2**m - 2)


def rows_planned(m: int, budget: int, width: int) -> int:
    """Rows ``plan`` builds for ``m`` segments (at most): the instance, each reference,
    each reference's coalitions."""
    if sampled_by_permutations(m, budget, width):
        per_pair = permutations.coalitions_per_pair(m)
        return 1 + width + pairs_planned(m, budget, width) * per_pair
    return 1 + width + coalitions_planned(m, budget, width) * width


@dataclass(frozen=True)
class ShapPlan:
    # (1 + W + W·C₁ + W·C₂ …, ...): instance, references, then each round's coalitions
    # (C₁ in the first), reference-major within a round; for orders, each round's units
    # with their 2·(M−1) coalitions
    rows: np.ndarray
    design: coalitions.CoalitionDesign | permutations.PermutationDesign
    masker: Masker
    references: References
    seed: int
    rounds: tuple[int, ...]  # coalitions per reference each round added (orders: units)


def plan(masker: Masker, samples: int | None = None, seed: int = 0) -> ShapPlan:
    """``samples`` coalitions per reference (shap's ``nsamples``; default
    ``default_budget``)."""
    m = masker.segments
    rng = np.random.default_rng([seed, RNG_STREAM])
    references = masker.references(rng)
    w = references.weights.shape[0]
    budget = samples if samples is not None else default_budget(m, w)
    chosen: coalitions.CoalitionDesign | permutations.PermutationDesign
    if sampled_by_permutations(m, budget, w):
        chosen = permutations.design(m, pairs_planned(m, budget, w), rng, w)
        first = chosen.units
    else:
        chosen = coalitions.design(m, budget, rng, references=w)
        first = chosen.coalitions
    masks, filled = _masked(chosen, references, 0)
    rows = masker.allocate(1 + w + len(filled.index) * masks.shape[1])  # filled in place
    masker.fill_reference(references, rows[: 1 + w])
    masker.fill_masked(filled, masks, rows[1 + w :])
    return ShapPlan(rows, chosen, masker, references, seed, (first,))


def _masked(
    design: coalitions.CoalitionDesign | permutations.PermutationDesign,
    references: References,
    after: int,
) -> tuple[np.ndarray, References]:
    """The design's masks past its first ``after`` coalitions per reference (units of
    orders), and the references they are filled on: one per reference (or per unit)."""
    if isinstance(design, permutations.PermutationDesign):
        return design.masks[after:], permutations.of_units(references, design.owner[after:])
    return design.masks[:, after:], references


def extend(plan: ShapPlan, pairs: int) -> tuple[ShapPlan, np.ndarray]:
    """``plan`` with ``pairs`` more sampled pairs per reference (of coalitions, or of
    orders; a new round of its seed), and the new rows to score; scores for the extended
    plan are the old ones followed by theirs."""
    rng = np.random.default_rng([plan.seed, RNG_STREAM, len(plan.rounds)])
    grown: coalitions.CoalitionDesign | permutations.PermutationDesign
    if isinstance(plan.design, permutations.PermutationDesign):
        grown, after = permutations.extend(plan.design, pairs, rng), plan.design.units
        added = grown.units - after
    else:
        grown, after = coalitions.extend(plan.design, pairs, rng), plan.design.coalitions
        added = grown.coalitions - after
    new_masks, filled = _masked(grown, plan.references, after)
    new_rows = plan.masker.allocate(len(filled.index) * new_masks.shape[1])
    plan.masker.fill_masked(filled, new_masks, new_rows)
    rounds = (*plan.rounds, added)
    extended = replace(
        plan, rows=np.concatenate([plan.rows, new_rows]), design=grown, rounds=rounds
    )
    return extended, new_rows


def coalition_scores(plan: ShapPlan, scores: np.ndarray) -> np.ndarray:
    """(W, C, K): each reference's coalition scores, from the rounds' blocks; for orders
    (U, 2·(M−1), K): each unit's, as the rounds appended them."""
    w = plan.references.weights.shape[0]
    if isinstance(plan.design, permutations.PermutationDesign):
        return scores[1 + w :].reshape(plan.design.units, plan.design.masks.shape[1], -1)
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
    if isinstance(chosen, permutations.PermutationDesign):
        values = coalition_scores(plan, scores) - at_reference[chosen.owner][:, None, :]
        walked = permutations.estimate(chosen, values, prediction - at_reference)
        per_reference, solved_variance, within_dof = walked.scores, walked.variance, walked.dof
    elif chosen.coalitions == 0:  # one segment: it carries the whole difference
        per_reference = np.repeat((prediction - at_reference)[:, :, None], m, axis=2)
        solved_variance = np.zeros_like(per_reference)
        within_dof = np.ones(w)
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
        within_dof = np.full(w, max(chosen.n_units - 1, 1), dtype=np.float64)
    combined = combine(references, per_reference, solved_variance, within_dof)
    values = combined.estimate
    # The control variates move the estimate of E[f] over the whole background with it.
    baseline = references.weights @ at_reference - combined.adjustment.sum(axis=1)
    exact = bool(chosen.exact and (references.drawn == 1).all())
    confidence = half_width(combined.variance, dof=combined.dof)
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
        floor=half_width(combined.between, dof=combined.dof),
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
        room = (max_samples - design.coalitions) // design.unit_coalitions
        add = min(units_to_add(fitted, tolerance, design.n_units), room)
        return None if design.exact or add <= 0 else extend(plan, add)
