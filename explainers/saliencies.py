"""What an explainer returns for one instance."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TOP_K = 5  # the leading segments a ranking is settled for (``Saliencies.settled``)
TIE_ROUNDING = 1e-9  # relative to an output's largest |score|: closer scores are tied


@dataclass(frozen=True)
class Saliencies:
    """Scores for K outputs × M features, with their 95% half-widths (0 = exact).

    ``settled`` says how far each output's ranking is settled; ``per_output`` holds
    facts with one value per output (SHAP's ``baseline`` and ``prediction``, LIME's
    ``intercept`` and ``fidelity``); ``facts`` holds scalars about the run (samples,
    seed, exactness). ``floor`` (K, M), where known, is the part of the half-width that
    growing the plan cannot remove (SHAP's background rows drawn).
    """

    scores: np.ndarray  # (K, M)
    confidence: np.ndarray  # (K, M)
    per_output: dict[str, np.ndarray] = field(default_factory=dict)  # name → (K,)
    facts: dict[str, int | float | bool | str] = field(default_factory=dict)
    floor: np.ndarray | None = None

    def select(self, outputs: np.ndarray) -> Saliencies:
        """The same saliencies restricted to the given output indices."""
        return Saliencies(
            scores=self.scores[outputs],
            confidence=self.confidence[outputs],
            per_output={k: v[outputs] for k, v in self.per_output.items()},
            facts=self.facts,
            floor=None if self.floor is None else self.floor[outputs],
        )

    def gaps(self) -> tuple[np.ndarray, np.ndarray]:
        """Per output, between each |score| and the next lower one (K, M − 1): the gap,
        and the combined 95% half-width (``hypot``) it must exceed for the two to be told
        apart — the S-LIME test (Zhou, Hooker and Wang, KDD 2021) — plus rounding, so
        that exact scores equal in theory stay tied."""
        magnitude = np.abs(self.scores)
        order = np.argsort(-magnitude, axis=1, kind="stable")
        ranked = np.take_along_axis(magnitude, order, axis=1)
        half = np.take_along_axis(self.confidence, order, axis=1)
        rounding = TIE_ROUNDING * ranked[:, :1]
        return ranked[:, :-1] - ranked[:, 1:], np.hypot(half[:, :-1], half[:, 1:]) + rounding

    def settled(self, k: int = TOP_K) -> np.ndarray:
        """(K,) per output, how many of its leading segments, up to ``k``, are settled:
        the largest j ≤ k whose top j are told apart from the rest (``gaps``); every
        segment when there are no more than k. A tie — two features the model ignores
        alike, or the 5th and 6th of a sampled ranking too close to call — is not
        settled."""
        m = self.scores.shape[1]
        if m <= k:
            return np.full(self.scores.shape[0], m, dtype=np.int64)
        gap, needed = self.gaps()
        apart = gap[:, :k] > needed[:, :k]  # (K, k): top j apart from the rest, j = 1..k
        depth = np.arange(1, k + 1)
        return np.where(apart, depth, 0).max(axis=1).astype(np.int64)
