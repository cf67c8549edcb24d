"""Numeric rows: the masker for ``(M,)`` float64 instances, one segment per feature.

KernelSHAP's references are background rows (all of them, or a stratified sample:
``explainers.background``); a coalition on a background row takes the instance's value
where the coalition holds the feature and the row's elsewhere (interventional Shapley
values). Each feature's control variates are the instance's difference from the row
(the scores of a linear model are exactly proportional to it) and which quartile of the
feature the row's value falls in, whose means over the whole background are known.

LIME's perturbations follow the lime package's tabular scheme: every feature is
discretised into the quartile bins of the training (background) data; a perturbed
value draws a bin from the bins' training frequencies and a value from a normal with
that bin's training mean and std, truncated to the bin. One uniform per value picks
both (``kernels.lime_perturbations``). The binary representation is 1 where a value
shares the instance's bin, and the kernel is lime's exponential one of width 0.75·√M
on it. ``controls`` adds control variates for what the binary representation leaves
out (which other bin, where in a bin).
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
    """Quartile bins of the training data, per feature, padded to ``MAX_BINS``."""

    quartiles: tuple[np.ndarray, ...]  # per feature: unique bin borders (≤ 3)
    bin_cdf: np.ndarray  # (M, MAX_BINS) cumulative frequency of each bin
    bin_lo: np.ndarray  # (M, MAX_BINS)
    bin_hi: np.ndarray
    bin_mean: np.ndarray
    bin_std: np.ndarray
    rows: int

    @classmethod
    def from_training(cls, data: np.ndarray) -> LimeStatistics:
        data = np.asarray(data, dtype=np.float64)
        n, m = data.shape
        if n == 0:
            raise ValueError("LIME needs at least one training row")
        shape = (m, MAX_BINS)
        cdf, lo, hi = np.ones(shape), np.zeros(shape), np.zeros(shape)
        mean, std = np.zeros(shape), np.ones(shape)
        quartiles = []
        for j in range(m):
            column = data[:, j]
            qts = np.unique(np.percentile(column, [25, 50, 75]))
            quartiles.append(qts)
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
        return cls(tuple(quartiles), cdf, lo, hi, mean, std, rows=n)

    def bins_of(self, instance: np.ndarray) -> np.ndarray:
        return np.array(
            [np.searchsorted(q, v) for q, v in zip(self.quartiles, instance, strict=True)],
            dtype=np.int64,
        )


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
      such bin left out, as they sum to 1 − b_j);
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
