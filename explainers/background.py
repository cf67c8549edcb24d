"""The background KernelSHAP integrates features out against, and how an explanation
draws from it.

The estimand is SHAP over the *whole* background the user gives, every row weighted
equally. A background of at most ``size`` rows is used as it is. A larger one is split
into strata of similar rows (k-means with ``size // 2`` clusters, none of fewer than two
rows) and each explanation draws about ``size`` rows from them, from each stratum in
proportion to its rows and at least two, weighted by the stratum's share: an unbiased
sample whose spread within strata measures what the rows left out would have changed
(``kernel_shap``'s interval covers it). Summarising the rows instead (shap's ``kmeans``:
weighted centroids) leaves a bias no interval sees — against SHAP over 300–2000 rows,
50 centroids were off by 0.03–0.25 relative L2 (bench/results/unseen.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans

from explainers.interface import References

PER_STRATUM = 2  # fewest rows drawn from a stratum: the fewest that give a spread
MINI_BATCH_ROWS = 20_000
ONE_HOT_CATEGORIES = 16  # indicators per categorical feature, for the strata


@dataclass(frozen=True)
class Background:
    rows: np.ndarray  # (N, M) float64: the whole background
    strata: np.ndarray  # (N,) int64 stratum of each row; all 0 when every row is used
    size: int  # the most rows one explanation uses
    categorical: np.ndarray | None = None  # (M,) bool: features holding category codes
    allocation: np.ndarray | None = None  # (H,) rows drawn from each stratum; None: whole

    @cached_property
    def mean(self) -> np.ndarray:
        """(M,) the whole background's mean row."""
        return self.rows.mean(axis=0)

    @cached_property
    def quartiles(self) -> np.ndarray:
        """(M, 3) each feature's quartiles over the whole background."""
        return np.percentile(self.rows, [25, 50, 75], axis=0).T.copy()

    def controls(self, instance: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Control variates of the rows ``index`` for ``instance``: (W, M, 4) per row and
        feature — the instance's difference from the row, and whether the row's value is
        in the feature's 1st, 2nd or 3rd quartile — and their (M, 4) whole-background
        means."""
        rows = self.rows[index]
        out = np.empty((rows.shape[0], rows.shape[1], 4))
        out[:, :, 0] = instance - rows
        out[:, :, 1:] = self._in_quartile(rows)
        means = np.column_stack([instance - self.mean, self._quartile_shares])
        if self.categorical is not None and self.categorical.any():
            # A category's code is no quantity: whether the row's category differs from
            # the instance's instead (where it does not, the feature's score is 0).
            cat = np.flatnonzero(self.categorical)
            out[:, cat, 0] = rows[:, cat] != instance[cat]
            means[cat, 0] = (self.rows[:, cat] != instance[cat]).mean(axis=0)
        return out, means

    def _in_quartile(self, rows: np.ndarray) -> np.ndarray:
        """(n, M, 3) bool: each value in its feature's 1st, 2nd, 3rd quartile."""
        below = rows[:, :, None] <= self.quartiles[None, :, :]
        below[:, :, 1:] &= ~below[:, :, :-1]
        return below

    @cached_property
    def _quartile_shares(self) -> np.ndarray:
        """(M, 3) the whole background's share of rows in each feature's 1st–3rd quartile."""
        return self._in_quartile(self.rows).mean(axis=0)

    @property
    def source_rows(self) -> int:
        return int(self.rows.shape[0])

    @property
    def whole(self) -> bool:
        """Every explanation uses every row."""
        return self.allocation is None

    @property
    def drawn_rows(self) -> int:
        """Rows one explanation uses."""
        if self.allocation is None:
            return self.source_rows
        return int(self.allocation.sum())


def build(
    data: np.ndarray, size: int, seed: int = 0, categorical: np.ndarray | None = None
) -> Background:
    """``data`` (N, M) → the background, stratified when it has more than ``size`` rows
    (``categorical``: the features holding category codes)."""
    data = np.ascontiguousarray(data, dtype=np.float64)
    n = data.shape[0]
    if n == 0:
        raise ValueError("background data has no rows")
    if n <= size:
        return Background(data, np.zeros(n, dtype=np.int64), size, categorical)
    clusters = max(size // PER_STRATUM, 1)
    space = _clustered(data, categorical)
    # Strata need only be tight, not optimal: mini-batches past MINI_BATCH_ROWS rows
    # (100 000 rows × 20 features: 1.4 s instead of 15.5 on 2 busy cores).
    if n > MINI_BATCH_ROWS:
        km = MiniBatchKMeans(clusters, batch_size=4096, n_init=1, random_state=seed).fit(space)
    else:
        km = KMeans(n_clusters=clusters, n_init=1, random_state=seed).fit(space)
    strata = _at_least_two(km.labels_, km.cluster_centers_, space)
    return Background(data, strata, size, categorical, _allocate(np.bincount(strata), size))


def _allocate(counts: np.ndarray, size: int) -> np.ndarray:
    """Rows to draw from strata of ``counts`` rows, ``size`` in all where there are that
    many: PER_STRATUM from each, the rest in proportion to what each has left (largest
    remainders first)."""
    drawn = np.minimum(counts, PER_STRATUM)
    spare = counts - drawn
    extra = min(size - int(drawn.sum()), int(spare.sum()))
    if extra <= 0:
        return drawn
    share = extra * spare / spare.sum()
    drawn = drawn + np.floor(share).astype(np.int64)
    # The remainders add up to the rows left, each under 1: within every stratum's spare.
    left = size - int(drawn.sum())
    drawn[np.argsort(-(share - np.floor(share)), kind="stable")[:left]] += 1
    return drawn


def _clustered(data: np.ndarray, categorical: np.ndarray | None) -> np.ndarray:
    """The space rows are clustered in: a category code is no coordinate, so each
    categorical feature becomes indicators of its most frequent categories, scaled like
    a typical continuous feature (any strata keep the draw unbiased; similar rows in a
    stratum make it precise)."""
    if categorical is None or not categorical.any():
        return data
    numeric = data[:, ~categorical]
    scale = float(np.median(numeric.std(axis=0))) if numeric.shape[1] else 1.0
    parts = [numeric]
    for j in np.flatnonzero(categorical):
        codes, counts = np.unique(data[:, j], return_counts=True)
        top = codes[np.argsort(-counts, kind="stable")[:ONE_HOT_CATEGORIES]]
        parts.append((data[:, j, None] == top[None, :]) * (scale or 1.0))
    return np.ascontiguousarray(np.hstack(parts))


def _at_least_two(labels: np.ndarray, centres: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..H−1 with every row of a one-row cluster moved to the nearest
    cluster of two or more (there is one: N > size ≥ 2·clusters)."""
    counts = np.bincount(labels, minlength=len(centres))
    lonely = np.flatnonzero(counts[labels] < PER_STRATUM)
    if lonely.size:
        distance = ((data[lonely, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        distance[:, counts < PER_STRATUM] = np.inf
        labels = labels.copy()
        labels[lonely] = distance.argmin(axis=1)
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


def draw(background: Background, rng: np.random.Generator) -> References:
    """The rows of one explanation: all of them, or ``Background.allocation`` rows from
    every stratum (``References.index``: rows of the background; no control variates
    yet)."""
    n = background.source_rows
    if background.allocation is None:
        ones = np.ones(n)
        return References(ones / n, np.zeros(n, dtype=np.int64), ones, np.arange(n, dtype=np.int64))
    strata, taken = background.strata, background.allocation
    counts = np.bincount(strata)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # Rows by stratum, in a random order within each: take the first ``taken`` of each.
    ranked = np.lexsort((rng.random(n), strata))
    within = np.arange(int(taken.sum())) - np.repeat(np.cumsum(taken) - taken, taken)
    index = np.sort(ranked[np.repeat(starts, taken) + within])
    stratum = strata[index]
    share = counts[stratum] / n
    return References(
        weights=share / taken[stratum],
        strata=stratum,
        drawn=taken[stratum] / counts[stratum].astype(np.float64),
        index=index.astype(np.int64),
    )
