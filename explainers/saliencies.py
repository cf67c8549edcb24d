"""What an explainer returns for one instance."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Saliencies:
    """Scores for K outputs × M features, with their 95% half-widths (0 = exact).

    ``per_output`` holds facts with one value per output (SHAP's ``baseline`` and
    ``prediction``, LIME's ``intercept`` and ``fidelity``); ``facts`` holds scalars
    about the run (samples, seed, exactness). ``floor`` (K, M), where known, is the part
    of the half-width that growing the plan cannot remove (SHAP's background rows drawn).
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
