"""Tabular rows: the masker for ``(M,)`` float64 instances, one segment per feature.

Every row is numeric here: a categorical feature holds the code of its category
(``explainer.features`` turns codes into the model's strings and booleans on the way to
the predictor), so substituting and drawing codes is substituting and drawing categories.

KernelSHAP's references are background rows (all of them, or a stratified sample:
``explainers.background``); a coalition on a background row takes the instance's value
where the coalition holds the feature and the row's elsewhere (interventional Shapley
values): every value the model sees is the instance's or a background row's. Each
feature's control variates (``Background.controls``) have known means over the whole
background.

LIME's perturbations follow the lime package's tabular scheme: every continuous feature
is discretised into the quartile bins of the training (background) data; a perturbed
value draws a bin from the bins' training frequencies and a value from a normal with
that bin's training mean and std, truncated to the bin. One uniform per value picks
both (``kernels.lime_perturbations``). A categorical feature's bins are its categories
(lime's categorical scheme: a category drawn with its training frequency, the value
itself); an integer feature's value is rounded to a whole number of its bin. The
binary representation is 1 where a value shares the instance's bin, and the kernel is
lime's exponential one of width 0.75·√M on it. ``controls`` adds control variates for
what the binary representation leaves out (which other bin, where in a bin).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from explainers import kernels
from explainers.background import Background, draw
from explainers.interface import Perturbations, References

MAX_BINS = 4


@dataclass(frozen=True)
class LimeStatistics:
    """LIME's bins of the training data, per feature, padded to a common width: the
    quartile bins of a continuous or integer feature, the categories of a categorical
    one (lime's categorical scheme: each drawn with its training frequency)."""

    borders: tuple[np.ndarray, ...]  # per feature: unique quartiles (≤ 3), or the categories
    bin_cdf: np.ndarray  # (M, B) cumulative frequency of each bin
    bin_lo: np.ndarray  # (M, B)
    bin_hi: np.ndarray
    bin_mean: np.ndarray
    bin_std: np.ndarray
    rows: int
    categorical: np.ndarray  # (M,) bool
    integer: np.ndarray  # (M,) bool: values rounded, within the bin's whole numbers
    int_lo: np.ndarray  # (M, B) each bin's smallest and largest whole number
    int_hi: np.ndarray

    @classmethod
    def from_training(
        cls,
        data: np.ndarray,
        categorical: np.ndarray | None = None,
        integer: np.ndarray | None = None,
    ) -> LimeStatistics:
        data = np.asarray(data, dtype=np.float64)
        n, m = data.shape
        if n == 0:
            raise ValueError("LIME needs at least one training row")
        categorical = np.zeros(m, bool) if categorical is None else np.asarray(categorical, bool)
        integer = np.zeros(m, bool) if integer is None else np.asarray(integer, bool) & ~categorical
        borders = [
            np.unique(data[:, j])
            if categorical[j]
            else np.unique(np.percentile(data[:, j], [25, 50, 75]))
            for j in range(m)
        ]
        # One more than the most bins: an instance's category unseen in training is a
        # bin of its own that is never drawn.
        width = max(MAX_BINS, max(len(b) + 1 for b in borders))
        shape = (m, width)
        cdf, lo, hi = np.ones(shape), np.zeros(shape), np.zeros(shape)
        mean, std = np.zeros(shape), np.ones(shape)
        for j in range(m):
            column = data[:, j]
            if categorical[j]:
                cats = borders[j]
                counts = np.bincount(np.searchsorted(cats, column), minlength=len(cats))
                k = len(cats)
                cdf[j, :k] = np.cumsum(counts) / n
                lo[j, :k] = hi[j, :k] = mean[j, :k] = cats
                std[j, :k] = 1e-11  # a bin of one value: it is drawn as it is
                continue
            qts = borders[j]
            bins = np.searchsorted(qts, column)
            n_bins = len(qts) + 1
            counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
            cdf[j, :n_bins] = np.cumsum(counts) / n
            cdf[j, n_bins - 1 :] = 1.0
            lo[j, :n_bins] = np.concatenate([[column.min()], qts])
            hi[j, :n_bins] = np.concatenate([qts, [column.max()]])
            for b in range(n_bins):
                selected = column[bins == b]
                if selected.size:
                    mean[j, b] = selected.mean()
                    std[j, b] = selected.std()
                else:
                    mean[j, b] = std[j, b] = 0.0
                std[j, b] += 1e-11  # lime's guard against a zero-width bin
        # Bin 0 is [min, q₁], bin k > 0 is (q_k, q_k+1]: its whole numbers start above q_k.
        int_lo = np.floor(lo) + 1.0
        int_lo[:, 0] = np.ceil(lo[:, 0])
        int_hi = np.floor(hi)
        return cls(tuple(borders), cdf, lo, hi, mean, std, n, categorical, integer, int_lo, int_hi)

    def bins_of(self, instance: np.ndarray) -> np.ndarray:
        bins = np.empty(len(self.borders), dtype=np.int64)
        for j, (borders, value) in enumerate(zip(self.borders, instance, strict=True)):
            b = int(np.searchsorted(borders, value))
            if self.categorical[j] and (b == len(borders) or borders[b] != value):
                b = len(borders)  # a category training never saw
            bins[j] = b
        return bins

    def integral(self, rows: np.ndarray, bins: np.ndarray) -> None:
        """Round the integer features of perturbed ``rows`` in place, each to a whole
        number of the bin it was drawn in."""
        columns = np.flatnonzero(self.integer)
        if not columns.size:
            return
        chosen = bins[:, columns]
        low = np.take_along_axis(self.int_lo[columns].T, chosen, axis=0)
        high = np.take_along_axis(self.int_hi[columns].T, chosen, axis=0)
        rows[:, columns] = np.clip(np.round(rows[:, columns]), low, high)


class NumericRows:
    """``explainers.interface.Masker`` for one numeric instance (M,).

    ``background`` serves KernelSHAP, ``statistics`` LIME; an explainer whose half is
    missing cannot plan on it."""

    def __init__(
        self,
        instance: np.ndarray,
        background: Background | None = None,
        statistics: LimeStatistics | None = None,
        kernel_width: float | None = None,  # LIME; default 0.75·√M
    ) -> None:
        self.instance = np.ascontiguousarray(instance, dtype=np.float64)
        m = self.instance.shape[0]
        for name, columns in (
            ("background", None if background is None else background.rows.shape[1]),
            ("training data", None if statistics is None else statistics.bin_cdf.shape[0]),
        ):
            if columns is not None and columns != m:
                raise ValueError(f"instance has {m} features, {name} {columns}")
        self._background = background
        self._statistics = statistics
        self.kernel_width = float(kernel_width or 0.75 * np.sqrt(m))

    # ---- KernelSHAP ----------------------------------------------------------------------

    @property
    def segments(self) -> int:
        return int(self.instance.shape[0])

    @property
    def background(self) -> Background:
        if self._background is None:
            raise ValueError("KernelSHAP needs a background for numeric rows")
        return self._background

    @property
    def width(self) -> int:
        return self.background.drawn_rows

    def references(self, rng: np.random.Generator) -> References:
        drawn = draw(self.background, rng)
        controls, means = self.background.controls(self.instance, drawn.index)
        return replace(drawn, controls=controls, control_mean=means)

    def allocate(self, rows: int) -> np.ndarray:
        return np.empty((rows, self.segments))

    def fill_reference(self, references: References, out: np.ndarray) -> None:
        out[0] = self.instance
        out[1 : 1 + len(references.index)] = self.background.rows[references.index]

    def fill_masked(self, references: References, masks: np.ndarray, out: np.ndarray) -> None:
        rows = np.ascontiguousarray(self.background.rows[references.index])
        kernels.fill_masked_rows(self.instance, rows, np.ascontiguousarray(masks), out)

    # ---- LIME ----------------------------------------------------------------------------

    @property
    def statistics(self) -> LimeStatistics:
        if self._statistics is None:
            raise ValueError("LIME needs training statistics for numeric rows")
        return self._statistics

    @cached_property
    def instance_bins(self) -> np.ndarray:
        return self.statistics.bins_of(self.instance)

    def perturb(self, uniforms: np.ndarray, with_instance: bool) -> Perturbations:
        stats = self.statistics
        m = self.segments
        # The kernel's row 0 is the instance itself.
        padded = np.concatenate([np.full((1, m), 0.5), uniforms])
        rows, binary, bins, positions = kernels.lime_perturbations(
            self.instance,
            self.instance_bins,
            stats.bin_cdf,
            stats.bin_lo,
            stats.bin_hi,
            stats.bin_mean,
            stats.bin_std,
            np.ascontiguousarray(padded),
        )
        stats.integral(rows, bins)
        offset = 0 if with_instance else 1
        return Perturbations(
            rows[offset:],
            binary[offset:],
            controls(stats, self.instance_bins, bins, positions, binary)[offset:],
        )

    def similarity(self, binary: np.ndarray) -> np.ndarray:
        return kernels.lime_kernel_weights(binary, self.kernel_width)


def controls(
    stats: LimeStatistics,
    instance_bins: np.ndarray,
    bins: np.ndarray,
    positions: np.ndarray,
    binary: np.ndarray,
) -> np.ndarray:
    """Control variates (n, C) for the surrogate regression, per feature j:

    * which other bin a value fell in when it left the instance's:
      1[bin_j = k] − q_k (1 − b_j), with q_k the bin's share of the other bins (one
      such bin left out, as they sum to 1 − b_j; of a categorical feature's categories,
      only the most frequent: each column has mean zero on its own);
    * where in its bin it fell: (2·position − 1) · 1[bin_j = k] for every bin k of
      non-zero width.

    Under lime's sampling law each has conditional mean zero given the binary
    representation (the other bin and the position are drawn independently of the
    other features, the position also of the bin), so its kernel-weighted moments with
    1 and b vanish: the surrogate's coefficients estimate the same quantity, with the
    model's response to these details regressed out of their noise.
    """
    features, spec_bins, shares = [], [], []  # share < 0 marks a "where in its bin" column
    frequency = np.diff(stats.bin_cdf, axis=1, prepend=0.0)
    for j in range(bins.shape[1]):
        occupied = np.flatnonzero(frequency[j] > 0)
        others = occupied[occupied != instance_bins[j]]
        if len(others) > MAX_BINS:  # a categorical feature: its most frequent categories
            others = others[np.argsort(-frequency[j, others], kind="stable")[:MAX_BINS]]
        for k in others[:-1]:
            features.append(j)
            spec_bins.append(k)
            shares.append(frequency[j, k] / frequency[j, others].sum())
        for k in occupied:
            if stats.bin_hi[j, k] > stats.bin_lo[j, k]:
                features.append(j)
                spec_bins.append(k)
                shares.append(-1.0)
    return kernels.lime_controls(
        bins,
        positions,
        binary,
        np.array(features, dtype=np.int64),
        np.array(spec_bins, dtype=np.int64),
        np.array(shares, dtype=np.float64),
    )
