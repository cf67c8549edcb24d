"""The two protocols every explanation is built from: an ``Explainer`` (the estimator)
and a ``Masker`` (the input kind).

An explainer works on *segments* — a feature of a row, a word of a text, a part of a
prompt. It never builds model inputs itself: it asks the instance's masker to turn
coalitions (KernelSHAP) or perturbations (LIME) of the segments into rows for the
predictor, and reads the predictor's scores back in that same order. A new input kind
is a new masker; the estimators, their confidence, the tolerance rounds and the
batching of their rows do not change.

One explanation, as the engine drives it::

    plan = explainer.plan(masker, samples, seed)        # plan.rows: what to score
    prepared = explainer.prepare(plan)                  # while the predictor scores
    saliencies = explainer.fit(plan, scores, prepared)  # scores: (len(plan.rows), K)
    grown = explainer.extend(plan, saliencies, tolerance, max_samples)
    if grown is not None:                               # more rows to reach the tolerance
        plan, new_rows = grown                          # score new_rows, then fit again

Model inputs are a numpy array whose first axis is the row: ``(n, M)`` float64 for
numeric rows; another masker may use an object array (texts, mixed rows). The engine
and the predictor client only slice and concatenate it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from explainers.saliencies import Saliencies

# With a tolerance, the first round is this share of the default budget: a loose
# tolerance then costs fewer predictor rows than the default, a tight one more.
PILOT_SHARE = 0.25
# Units (replicates, pairs) to add are estimated from variance ∝ 1/units, with this margin.
GROWTH_MARGIN = 1.1


class Plan(Protocol):
    """A planned explanation: its model inputs in the order their scores come back."""

    @property
    def rows(self) -> np.ndarray: ...


PlanT = TypeVar("PlanT", bound=Plan)


@dataclass(frozen=True)
class Perturbations:
    """What a masker makes of LIME's uniforms: the model inputs, their interpretable
    (binary) representation — 1 where a segment is as in the instance — and control
    variates (columns with mean zero given the binary representation; may be 0 wide)."""

    rows: np.ndarray  # (n, ...) model inputs
    binary: np.ndarray  # (n, M) float64
    controls: np.ndarray  # (n, C) float64


@dataclass(frozen=True)
class References:
    """What one explanation's coalitions are completed with: for rows, the background
    rows drawn for it (``explainers.background``); for a text, its fully masked form.

    KernelSHAP explains the instance against each reference and averages the results
    with ``weights``; ``strata`` and ``drawn`` say how the references were sampled from
    the whole population the estimand averages over (``drawn`` = 1: all of a stratum),
    so that the interval covers that sampling too (``explainers.stratified``).
    ``controls`` (W, M, P), where given, are P covariates per segment of each reference
    whose mean over the whole population is ``control_mean`` (M, P): control variates."""

    weights: np.ndarray  # (W,) float64 summing to 1
    strata: np.ndarray  # (W,) int64
    drawn: np.ndarray  # (W,) float64
    index: np.ndarray  # (W,) int64: which references, in the masker's own terms
    controls: np.ndarray | None = None
    control_mean: np.ndarray | None = None

    @classmethod
    def single(cls) -> References:
        """One reference, the whole population (a text's fully masked form)."""
        return cls(np.ones(1), np.zeros(1, np.int64), np.ones(1), np.zeros(1, np.int64))


class Masker(Protocol):
    """One instance of an input kind, ready to be masked.

    KernelSHAP's half: a coalition (a boolean mask over the segments) on a reference
    becomes one model input — for rows, the instance's values where the coalition holds
    the feature and the reference background row's elsewhere. The full coalition's value
    is the instance's own score; the empty one's is the reference's.

    LIME's half: uniforms in [0, 1), one per segment, become perturbations drawn from
    the input kind's sampling law, and ``similarity`` weighs them by their distance to
    the instance.
    """

    @property
    def segments(self) -> int: ...

    @property
    def width(self) -> int:
        """References per explanation (background rows for tabular data, 1 for a text)."""
        ...

    def references(self, rng: np.random.Generator) -> References:
        """The ``width`` references of one explanation."""
        ...

    def allocate(self, rows: int) -> np.ndarray:
        """An uninitialised array for ``rows`` model inputs."""
        ...

    def fill_reference(self, references: References, out: np.ndarray) -> None:
        """Write ``1 + width`` inputs into ``out``: the instance, then each reference
        (the empty coalition)."""
        ...

    def fill_masked(self, references: References, masks: np.ndarray, out: np.ndarray) -> None:
        """Write ``width · C`` inputs into ``out``, reference-major: ``masks`` (R, C, M)
        holds C coalitions for each reference (R = width), or for all of them (R = 1)."""
        ...

    def perturb(self, uniforms: np.ndarray, with_instance: bool) -> Perturbations:
        """LIME's perturbations for ``uniforms`` (n, M); ``with_instance``: preceded by
        the instance itself (binary all ones)."""
        ...

    def similarity(self, binary: np.ndarray) -> np.ndarray:
        """(n,) LIME kernel weights of perturbations with this binary representation."""
        ...


class Explainer(Protocol[PlanT]):
    """An estimator of per-segment scores, with a 95% half-width for each (0 = exact)."""

    @property
    def name(self) -> str:
        """The response block it fills: "LIME", "SHAP"."""
        ...

    @property
    def prepares(self) -> bool:
        """Whether ``prepare`` computes anything (else the engine skips it)."""
        ...

    def default_samples(self, masker: Masker) -> int:
        """The default budget for this masker's segments (and references)."""
        ...

    def pilot_samples(self, samples: int, segments: int) -> int:
        """The first round's size when sampling towards a tolerance."""
        ...

    def settling_samples(self, samples: int, segments: int) -> int:
        """The first round's size at the default budget ``samples``, when the explainer
        adds rows (up to ``samples``) only until its result is settled; ``samples`` for
        an explainer that spends its default budget whole."""
        ...

    def rows_planned(self, masker: Masker, samples: int) -> int:
        """Model inputs ``plan`` builds for this budget (at most)."""
        ...

    def plan(self, masker: Masker, samples: int, seed: int) -> PlanT: ...

    def prepare(self, plan: PlanT) -> Any:
        """The score-free half of the fit (None when there is none)."""
        ...

    def fit(self, plan: PlanT, scores: np.ndarray, prepared: Any = None) -> Saliencies: ...

    def extend(
        self, plan: PlanT, fitted: Saliencies, tolerance: float | None, max_samples: int
    ) -> tuple[PlanT, np.ndarray] | None:
        """``plan`` grown towards ``tolerance`` (the largest 95% half-width wanted) — or,
        with None, until settled (``settling_samples``) — and the new rows to score after
        the old; None when it is met, exact or at ``max_samples``."""
        ...


def units_to_add(fitted: Saliencies, tolerance: float, units: int) -> int:
    """Sampling units (replicates, pairs) that should bring the widest interval of
    ``fitted`` to ``tolerance``, as variance falls like 1/units; 0 when it is met."""
    widest = float(fitted.confidence.max()) if fitted.confidence.size else 0.0
    if widest <= tolerance:
        return 0
    growth = GROWTH_MARGIN * (widest / tolerance) ** 2
    return int(np.ceil(units * (growth - 1)))
