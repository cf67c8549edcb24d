"""Text: the masker for one text, one segment per word (a maximal run of non-whitespace
characters) or per sentence.

Masking a segment removes its characters and the whitespace run that follows it — or,
when no kept segment comes after it, the whitespace run that precedes it; the rest of
the text is unchanged ("a b c" with b and c masked is "a"; with a and c masked, "b").
A text is cut once into pieces — leading whitespace, then each segment and the
whitespace after it — and a masked text is the join of the pieces its coalition keeps
(``_kept_pieces``: one vectorised step for every coalition at once).

KernelSHAP's one reference is the text with every segment masked
(``References.single()``), so the scores add up to f(text) − f(all masked).

LIME's perturbations follow the lime package's text explainer: the number of segments
removed is uniform on 1..M, the removed ones a uniform subset of that size (here from
M + 1 uniforms a sample: the first picks the size, the others rank the segments), the
binary representation is 1 where a segment is kept, and the kernel is lime's
√exp(−d²/25²) of the cosine distance d (× 100) between the binary row and all ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from explainers.interface import Perturbations, References

WORDS, SENTENCES = "words", "sentences"
SEGMENTATIONS = (WORDS, SENTENCES)
KERNEL_WIDTH = 25.0  # lime's LimeTextExplainer default
_WORD = re.compile(r"\S+")
# A sentence: up to a run of . ! ? (with closing quotes or brackets) before whitespace
# or the end, or up to the end of the text.
_SENTENCE = re.compile(r"\S(?:.*?[.!?]+[\"')\]]*(?=\s|$)|.*\S)", re.DOTALL)


def segment_spans(text: str, segments: str = WORDS) -> list[tuple[int, int]]:
    """[start, end) character offsets of the text's segments, in order."""
    if segments not in SEGMENTATIONS:
        raise ValueError(f"segments must be one of {SEGMENTATIONS}, got {segments!r}")
    pattern = _WORD if segments == WORDS else _SENTENCE
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


@dataclass(frozen=True)
class Segmented:
    """A text cut into its segments and the whitespace around them."""

    text: str
    spans: tuple[tuple[int, int], ...]

    @property
    def names(self) -> list[str]:
        return [self.text[a:b] for a, b in self.spans]

    def items(self) -> list[dict[str, object]]:
        """Each segment as the response describes it: its text and its [start, end)."""
        return [{"name": self.text[a:b], "span": [a, b]} for a, b in self.spans]

    @cached_property
    def pieces(self) -> np.ndarray:
        """(2M + 1,) object: leading whitespace, then each segment and the whitespace
        after it."""
        out: list[str] = [self.text[: self.spans[0][0]] if self.spans else self.text]
        for i, (a, b) in enumerate(self.spans):
            end = self.spans[i + 1][0] if i + 1 < len(self.spans) else len(self.text)
            out += [self.text[a:b], self.text[b:end]]
        array = np.empty(len(out), dtype=object)
        array[:] = out
        return array


def _kept_pieces(kept: np.ndarray) -> np.ndarray:
    """(n, 2M + 1) bool: which pieces each coalition's text keeps, for ``kept`` (n, M)."""
    n, m = kept.shape
    # any_after[:, i]: some segment after i is kept
    after = np.zeros((n, m), dtype=bool)
    if m > 1:
        after[:, :-1] = np.flip(np.cumsum(np.flip(kept[:, 1:], axis=1), axis=1), axis=1) > 0
    masked = ~kept
    out = np.ones((n, 2 * m + 1), dtype=bool)
    out[:, 1::2] = kept
    # The whitespace after segment i (piece 2i + 2) goes with segment i when it is masked
    # and a kept segment follows; else with segment i + 1 when that is masked and none
    # after it is kept. The leading whitespace (piece 0) goes with the first segment.
    gap = np.zeros((n, m + 1), dtype=bool)  # gap[:, g]: whitespace before segment g
    gap[:, 1:] |= masked & after  # after segment i, removed with it
    gap[:, :m] |= masked & ~after  # before segment i, removed with it
    out[:, 0::2] = ~gap
    return out


class Removal:
    """What every masker by removal shares (``Text``; ``explainers.maskers.prompt``): one
    reference, the input with every segment masked; rows are object arrays; LIME's
    perturbations follow lime's text scheme. A subclass says how many ``segments`` it
    has and builds the rows for coalitions in ``masked``."""

    @property
    def segments(self) -> int:
        raise NotImplementedError

    def masked(self, kept: np.ndarray) -> np.ndarray:
        """(n,) the inputs for coalitions ``kept`` (n, M) bool."""
        raise NotImplementedError

    @property
    def width(self) -> int:
        return 1

    @property
    def uniform_width(self) -> int:
        """Uniforms per LIME perturbation: the number removed, then a rank per segment."""
        return self.segments + 1

    def references(self, rng: np.random.Generator) -> References:
        return References.single()

    def allocate(self, rows: int) -> np.ndarray:
        return np.empty(rows, dtype=object)

    def fill_reference(self, references: References, out: np.ndarray) -> None:
        out[:2] = self.masked(np.array([[True] * self.segments, [False] * self.segments]))

    def fill_masked(self, references: References, masks: np.ndarray, out: np.ndarray) -> None:
        out[:] = self.masked(masks.reshape(-1, self.segments))

    def perturb(self, uniforms: np.ndarray, with_instance: bool) -> Perturbations:
        m = self.segments
        removed = np.minimum(np.floor(uniforms[:, 0] * m).astype(np.int64) + 1, m)
        ranks = np.argsort(np.argsort(uniforms[:, 1:], axis=1, kind="stable"), axis=1)
        binary = (ranks >= removed[:, None]).astype(np.float64)
        if with_instance:
            binary = np.concatenate([np.ones((1, m)), binary])
        return Perturbations(self.masked(binary > 0), binary, np.zeros((len(binary), 0)))

    def similarity(self, binary: np.ndarray) -> np.ndarray:
        kept = binary.sum(axis=1)
        m = binary.shape[1]
        cosine = np.sqrt(np.maximum(kept, 0.0) / m)  # ⟨z, 1⟩ / (|z| |1|) for binary z
        distance = 100.0 * (1.0 - cosine)
        return np.sqrt(np.exp(-(distance**2) / KERNEL_WIDTH**2))


class Text(Removal):
    """``explainers.interface.Masker`` for one text."""

    def __init__(self, text: str, segments: str = WORDS) -> None:
        self.segmented = Segmented(text, tuple(segment_spans(text, segments)))

    @property
    def segments(self) -> int:
        return len(self.segmented.spans)

    def masked(self, kept: np.ndarray) -> np.ndarray:
        """(n,) the texts for coalitions ``kept`` (n, M) bool."""
        pieces = self.segmented.pieces
        keep = _kept_pieces(np.asarray(kept, dtype=bool))
        out = np.empty(len(keep), dtype=object)
        out[:] = ["".join(pieces[row]) for row in keep]
        return out
