"""The background KernelSHAP integrates features out against.

A background of at most ``size`` rows is used as it is, rows weighted equally; a larger
one is summarised by k-means, each centroid weighted by the share of rows in its cluster
(the summary shap's ``kmeans`` builds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans


@dataclass(frozen=True)
class Background:
    rows: np.ndarray  # (B, M) float64
    weights: np.ndarray  # (B,) float64, summing to 1
    source_rows: int  # rows it was built from


def summarize(data: np.ndarray, size: int, seed: int = 0) -> Background:
    """``data`` (N, M) → at most ``size`` weighted rows."""
    data = np.ascontiguousarray(data, dtype=np.float64)
    n = data.shape[0]
    if n == 0:
        raise ValueError("background data has no rows")
    if n <= size:
        return Background(rows=data, weights=np.full(n, 1.0 / n), source_rows=n)
    km = KMeans(n_clusters=size, n_init=4, random_state=seed).fit(data)
    counts = np.bincount(km.labels_, minlength=size).astype(np.float64)
    keep = counts > 0
    return Background(
        rows=np.ascontiguousarray(km.cluster_centers_[keep]),
        weights=counts[keep] / counts.sum(),
        source_rows=n,
    )
