"""LIME, sans I/O, over any masker (``explainers.interface``).

``plan`` draws uniforms and has the masker turn them into perturbations (for numeric
rows, lime's tabular scheme: ``explainers.maskers.numeric``); row 0 is the instance.
``fit`` regresses the predictor's scores on the perturbations' binary representation,
weighted by the masker's kernel, and scores every segment, for every output.

Three choices differ from the lime package, each measured (``make bench-accuracy``):

* The uniforms behind the draws come from ``REPLICATES`` independently scrambled Sobol
  sequences (randomised quasi-Monte Carlo) instead of i.i.d. draws, one uniform per
  value: it picks the bin and, by where it falls inside the bin's share of [0, 1), the
  value within the bin. The sampling distribution, and so the quantity estimated, is
  lime's; the scores' standard deviation across seeds falls 12–25× on the credit-score
  model at 5000 samples, which is what makes the ranking of a weak feature repeatable.
* The surrogate regression carries the masker's control variates (for numeric rows,
  ``maskers.numeric.controls``): columns with mean zero given the binary
  representation, which take the model's response to which other bin and where in a
  bin a value fell out of the residual. The estimand is
  unchanged; on the 20-feature forest the standard deviation falls by another third
  (2.3× with i.i.d. draws).
* The ridge penalty is a numerical guard (``RIDGE_ALPHA``) instead of lime's alpha = 1,
  which shrinks every coefficient by about 0.3% at 5000 samples — a bias the
  confidence intervals would not cover.

``confidence`` is the half-width of a 95% interval. The two replicates are what it
rests on: the sandwich variance of every coefficient as if the rows were independent
draws, scaled by one design effect per output — how much less the replicates'
estimates differ than independent draws would — pooled over the M coefficients
(``regression.weighted_ridge(pooled=True)``), with Student's t on M degrees of freedom.
Two large replicates estimate better than four small ones (scrambled Sobol points gain
on independent draws faster as they grow: the spread across seeds falls 1.2× at 5000
samples on the suite's tree models), and pooling keeps the interval from resting on one
degree of freedom. Its ground truth is what a plan of the same size estimates on
average (``at_share``): lime's surrogate counts the instance as one of its rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from scipy.stats import qmc

from explainers.interface import GROWTH_MARGIN, PILOT_SHARE, Masker, units_to_add
from explainers.regression import RidgeDesign, half_width, ridge_design, ridge_solve
from explainers.saliencies import TOP_K, Saliencies

RNG_STREAM = 1  # keeps LIME's draws independent of SHAP's under one seed
RIDGE_ALPHA = 1e-8
REPLICATES = 2
CONTROL_RATIO = 10  # control variates only with ≥ 10 samples per regression column
DEFAULT_SAMPLES = 5000  # lime's num_samples
# At its default LIME samples a fifth of DEFAULT_SAMPLES first and adds rows, up to
# DEFAULT_SAMPLES, only while the TOP_K highest-scoring segments of some output are not
# settled (``Saliencies.gaps``).
SETTLING_SHARE = 0.2
MIN_SETTLING_GROWTH = 2.0  # each round at least doubles the rows: few round trips


@dataclass(frozen=True)
class LimePlan:
    rows: np.ndarray  # (n, ...) perturbed model inputs; row 0 is the instance
    binary: np.ndarray  # (n, M) interpretable representation
    controls: np.ndarray  # (n, C) control variates, C = 0 when too few samples
    weights: np.ndarray  # (n,) kernel weights
    units: np.ndarray  # (n,) replicate of each row, −1 for the instance
    n_units: int
    seed: int
    masker: Masker
    ridge_alpha: float = RIDGE_ALPHA


def plan(
    masker: Masker, samples: int = DEFAULT_SAMPLES, seed: int = 0, ridge_alpha: float = RIDGE_ALPHA
) -> LimePlan:
    """``samples`` rows: the instance, then ``REPLICATES`` replicates of perturbations.
    ``ridge_alpha`` = 1.0 reproduces the lime package's surrogate."""
    m = masker.segments
    rest = samples - 1
    n_units = min(REPLICATES, rest)
    sizes = [rest // n_units + (r < rest % n_units) for r in range(n_units)]
    drawn = masker.perturb(_uniforms(uniform_width(masker), sizes, 0, seed), with_instance=True)
    controls = drawn.controls
    if samples < CONTROL_RATIO * (m + controls.shape[1]):
        controls = controls[:, :0]
    units = np.concatenate([[-1], np.repeat(np.arange(n_units), sizes)]).astype(np.int64)
    return LimePlan(
        drawn.rows,
        drawn.binary,
        controls,
        masker.similarity(drawn.binary),
        units,
        n_units,
        seed,
        masker,
        ridge_alpha,
    )


def extend(plan: LimePlan, replicates: int) -> tuple[LimePlan, np.ndarray]:
    """``plan`` with ``replicates`` more replicates of its first replicate's size, and the
    new rows to score; scores for the extended plan are the old ones followed by theirs."""
    size = int((plan.units == 0).sum())
    sizes = [size] * replicates
    width = uniform_width(plan.masker)
    drawn = plan.masker.perturb(
        _uniforms(width, sizes, plan.n_units, plan.seed), with_instance=False
    )
    numbers = np.repeat(np.arange(plan.n_units, plan.n_units + replicates), sizes)
    extended = replace(
        plan,
        rows=np.concatenate([plan.rows, drawn.rows]),
        binary=np.concatenate([plan.binary, drawn.binary]),
        controls=np.concatenate([plan.controls, drawn.controls[:, : plan.controls.shape[1]]]),
        weights=np.concatenate([plan.weights, plan.masker.similarity(drawn.binary)]),
        units=np.concatenate([plan.units, numbers.astype(np.int64)]),
        n_units=plan.n_units + replicates,
    )
    return extended, drawn.rows


def grow(current: LimePlan, samples: int) -> tuple[LimePlan, np.ndarray]:
    """``current`` grown to ``samples`` rows by continuing each replicate's Sobol sequence,
    and the new rows to score; scores for the grown plan are the old ones followed by
    theirs. The grown plan is the ``samples``-row plan of the same seed, its rows in
    another order (the old ones first), so it estimates as well as that plan would: a
    scrambled Sobol sequence gains on random draws as it grows, and more small replicates
    would lose that (and the control variates a larger plan affords)."""
    old = current.rows.shape[0]
    full = plan(current.masker, samples, current.seed, current.ridge_alpha)
    order = _old_rows_first(current.units, full.units)
    grown = replace(
        full,
        rows=full.rows[order],
        binary=full.binary[order],
        controls=full.controls[order],
        weights=full.weights[order],
        units=full.units[order],
    )
    return grown, grown.rows[old:]


def _old_rows_first(old_units: np.ndarray, new_units: np.ndarray) -> np.ndarray:
    """Positions in the full plan (``new_units``, each replicate in its sequence's order)
    of a grown plan's rows: the old plan's rows in the old plan's order — the k-th row of
    a replicate there is its sequence's k-th point, wherever an earlier growth put it —
    then the rest of each replicate."""
    first = np.empty(old_units.shape[0], dtype=np.int64)
    rest = []
    for unit in np.unique(new_units):  # −1: the instance
        positions = np.flatnonzero(new_units == unit)
        old = np.flatnonzero(old_units == unit)
        first[old] = positions[: old.size]
        rest.append(positions[old.size :])
    return np.concatenate([first, *rest])


def uniform_width(masker: Masker) -> int:
    """Uniforms per perturbation: one per segment, unless the masker says otherwise (a
    text: one more, for how many segments to remove)."""
    return int(getattr(masker, "uniform_width", masker.segments))


def _uniforms(m: int, sizes: list[int], first: int, seed: int) -> np.ndarray:
    """Uniforms (Σ sizes, m) for replicates ``first``, ``first + 1``, ... — each an
    independently scrambled Sobol sequence seeded by (seed, its number), so a plan grows
    the same way in any process."""
    blocks = []
    for r, size in enumerate(sizes, start=first):
        stream = np.random.default_rng([seed, RNG_STREAM, r])
        # Drawing a power of two and keeping the first `size` points is the same
        # sequence as drawing `size`, without scipy's balance warning.
        points = qmc.Sobol(d=m, scramble=True, seed=stream)
        blocks.append(points.random(1 << max(size - 1, 0).bit_length())[:size])
    return np.concatenate(blocks) if blocks else np.zeros((0, m))


def at_share(plan: LimePlan, samples: int) -> LimePlan:
    """``plan`` with its instance row (row 0) weighted as in a plan of ``samples`` rows.

    lime's surrogate counts the instance as one of its rows, so what a ``samples``-row
    plan estimates on average gives the instance 1/``samples`` of the rows: fitted this
    way, a much larger plan estimates that same quantity (the ground truth of the
    confidence intervals), not the one of its own size.
    """
    weights = plan.weights.copy()
    weights[0] *= (plan.rows.shape[0] - 1) / max(samples - 1, 1)
    return replace(plan, weights=weights)


def prepare(plan: LimePlan) -> RidgeDesign:
    """The surrogate regression's score-free half (``regression.ridge_design``): the
    engine builds it while the predictor scores ``plan.rows``."""
    return ridge_design(
        plan.binary, plan.weights, plan.ridge_alpha, plan.units, plan.n_units, plan.controls
    )


def fit(plan: LimePlan, scores: np.ndarray, prepared: RidgeDesign | None = None) -> Saliencies:
    """``scores`` (n, K): the predictor's outputs for ``plan.rows``; ``prepared``:
    ``prepare(plan)``, if it was built already."""
    result = ridge_solve(prepared or prepare(plan), scores, pooled=True)
    return Saliencies(
        scores=result.coef,
        confidence=half_width(result.coef_var, plan.n_units, result.dof),
        per_output={"intercept": result.intercept, "fidelity": result.r2},
        facts={"samples": int(plan.rows.shape[0]), "seed": plan.seed},
    )


@dataclass(frozen=True)
class Lime:
    """LIME as an ``explainers.interface.Explainer``."""

    name: ClassVar[str] = "LIME"
    prepares: ClassVar[bool] = True
    ridge_alpha: float = RIDGE_ALPHA

    def default_samples(self, masker: Masker) -> int:
        return DEFAULT_SAMPLES

    def pilot_samples(self, samples: int, segments: int) -> int:
        return max(1 + 64 * REPLICATES, int(samples * PILOT_SHARE))

    def settling_samples(self, samples: int, segments: int) -> int:
        if segments <= TOP_K:  # every segment is in the top k: nothing to settle
            return samples
        return min(samples, max(1 + 64 * REPLICATES, int(samples * SETTLING_SHARE)))

    def rows_planned(self, masker: Masker, samples: int) -> int:
        return samples

    def plan(self, masker: Masker, samples: int, seed: int) -> LimePlan:
        return plan(masker, samples, seed, self.ridge_alpha)

    def prepare(self, plan: LimePlan) -> RidgeDesign:
        return prepare(plan)

    def fit(
        self, plan: LimePlan, scores: np.ndarray, prepared: RidgeDesign | None = None
    ) -> Saliencies:
        return fit(plan, scores, prepared)

    def extend(
        self, plan: LimePlan, fitted: Saliencies, tolerance: float | None, max_samples: int
    ) -> tuple[LimePlan, np.ndarray] | None:
        size = int((plan.units == 0).sum())
        room = (max_samples - plan.rows.shape[0]) // max(size, 1)
        if tolerance is None:
            growth = growth_to_settle(fitted)
            current = plan.rows.shape[0]
            total = min(max_samples, int(np.ceil(current * max(growth, MIN_SETTLING_GROWTH))))
            return grow(plan, total) if growth > 1.0 and total > current else None
        add = min(units_to_add(fitted, tolerance, plan.n_units), room)
        return extend(plan, add) if add > 0 else None


def growth_to_settle(fitted: Saliencies, k: int = TOP_K) -> float:
    """By how much the rows should grow before every output's top ``k`` segments (by
    |score|) are settled — the gap between the k-th and the (k+1)-th |score| outside
    their combined 95% half-width (``Saliencies.gaps``) — as variance falls like
    1/rows; 1 when they are."""
    if fitted.scores.shape[1] <= k:
        return 1.0
    gaps, needed = fitted.gaps()
    gap, needed = gaps[:, k - 1], needed[:, k - 1]
    if (gap > needed).all():
        return 1.0
    ratio = float(np.max(needed / np.maximum(gap, 1e-12 * (1.0 + needed))))
    return GROWTH_MARGIN * ratio**2
