"""One estimate from many references: the weighted mean of per-reference estimates, with
a variance covering both stages of its sampling (two-stage stratified sampling, Cochran,
*Sampling Techniques*, 1977, §10.8 and §11).

KernelSHAP explains the instance against each reference (a background row) with its
own independently sampled coalitions, so the per-reference errors are independent. The
references themselves are a stratified sample of the whole background, ``n_h`` of the
``N_h`` rows of stratum h. The variance of the mean is then estimated by

    Σ_h W_h² (1 − f_h) s_h² / n_h  +  Σ_w f_w w_w² v_w

with W_h the stratum's share, f_h = n_h / N_h, s_h² the spread of the per-reference
estimates within the stratum (which holds both the rows' differences and the coalition
noise) and v_w each estimate's own variance. When every row is used (f = 1) only the
second term remains: the rows left out contribute nothing because there are none.

Control variates (``References.controls``, for numeric rows the instance's difference
from each reference, whose whole-background mean is known) take out the part of the
rows' differences they explain — the regression estimator of survey sampling: exact for
linear models, and what remains has a smaller spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explainers.interface import References


@dataclass(frozen=True)
class Combined:
    estimate: np.ndarray  # (K, M)
    variance: np.ndarray  # (K, M)
    dof: int  # degrees of freedom of the variance
    adjustment: np.ndarray  # (K, M) what the control variates added to the weighted mean


def combine(
    references: References, estimates: np.ndarray, variances: np.ndarray, within_dof: int
) -> Combined:
    """``estimates`` and ``variances`` (W, K, M), one per reference."""
    w = references.weights
    mean = np.einsum("w,wkm->km", w, estimates)
    within = np.einsum("w,wkm->km", references.drawn * w**2, variances)
    sampled = references.drawn < 1.0
    if not sampled.any():
        return Combined(mean, within, within_dof, np.zeros_like(mean))
    residual, adjustment = estimates, np.zeros_like(mean)
    if references.controls is not None and references.control_mean is not None:
        controls = references.controls
        sample_mean = w @ controls
        centred = controls - sample_mean
        spread = np.maximum(w @ centred**2, np.finfo(np.float64).tiny)
        slope = np.einsum("w,wkm,wm->km", w, estimates - mean, centred) / spread
        adjustment = slope * (references.control_mean - sample_mean)
        residual = estimates - slope[None] * controls[:, None, :]
    strata = references.strata[sampled]
    rows = residual[sampled]
    share = np.bincount(strata, weights=w[sampled])
    count = np.bincount(strata).astype(np.float64)
    drawn = np.bincount(strata, weights=references.drawn[sampled]) / np.maximum(count, 1)
    total = np.zeros((share.shape[0], *rows.shape[1:]))
    squares = np.zeros_like(total)
    np.add.at(total, strata, rows)
    np.add.at(squares, strata, rows**2)
    several = count >= 2
    n = count[several][:, None, None]
    s2 = np.maximum(squares[several] - total[several] ** 2 / n, 0.0) / (n - 1)
    factor = share[several] ** 2 * (1.0 - drawn[several])
    between = np.einsum("h,hkm->km", factor, s2 / n)
    dof = max(int((count[several] - 1).sum()) - (references.controls is not None), 1)
    return Combined(mean + adjustment, between + within, dof, adjustment)
