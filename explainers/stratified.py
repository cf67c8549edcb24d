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

Control variates (``References.controls``: per segment, covariates of each reference
whose whole-background mean is known — for numeric rows the instance's difference from
the row and which quartile of the feature the row falls in) take out the part of the
rows' differences they explain — the regression estimator of survey sampling, fitted
per segment and output: exact for linear models, and what remains has a smaller
spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explainers.interface import References


@dataclass(frozen=True)
class Combined:
    estimate: np.ndarray  # (K, M)
    variance: np.ndarray  # (K, M)
    dof: np.ndarray  # (K, M) degrees of freedom of the variance
    adjustment: np.ndarray  # (K, M) what the control variates added to the weighted mean
    between: np.ndarray  # (K, M) the variance's first part: the references' sampling


def combine(
    references: References, estimates: np.ndarray, variances: np.ndarray, within_dof: np.ndarray
) -> Combined:
    """``estimates`` and ``variances`` (W, K, M), one per reference; ``within_dof`` (W,)
    the degrees of freedom of each reference's variance."""
    w = references.weights
    mean = np.einsum("w,wkm->km", w, estimates)
    terms = (references.drawn * w**2)[:, None, None] * variances
    within = terms.sum(axis=0)
    sampled = references.drawn < 1.0
    if not sampled.any():
        dof = _satterthwaite(terms, within_dof)
        return Combined(mean, within, dof, np.zeros_like(mean), np.zeros_like(mean))
    strata = references.strata[sampled]
    count = np.bincount(strata).astype(np.float64)
    several = count >= 2
    free = int((count[several] - 1).sum())  # the spread's degrees of freedom
    residual, adjustment, fitted = estimates, np.zeros_like(mean), 0
    controls, population = references.controls, references.control_mean
    # Control variates cost a degree of freedom each: only with several per slope.
    if controls is not None and population is not None and free > 4 * controls.shape[2]:
        sample_mean = np.einsum("w,wmp->mp", w, controls)
        centred = controls - sample_mean
        gram = np.einsum("w,wmp,wmq->mpq", w, centred, centred)  # (M, P, P)
        cross = np.einsum("w,wmp,wkm->kmp", w, centred, estimates - mean)  # (K, M, P)
        slope = np.einsum("mpq,kmq->kmp", np.linalg.pinv(gram, hermitian=True), cross)
        adjustment = np.einsum("kmp,mp->km", slope, population - sample_mean)
        residual = estimates - np.einsum("kmp,wmp->wkm", slope, controls)
        fitted = controls.shape[2]
    rows = residual[sampled]
    share = np.bincount(strata, weights=w[sampled])
    drawn = np.bincount(strata, weights=references.drawn[sampled]) / np.maximum(count, 1)
    total = np.zeros((share.shape[0], *rows.shape[1:]))
    squares = np.zeros_like(total)
    np.add.at(total, strata, rows)
    np.add.at(squares, strata, rows**2)
    n = count[several][:, None, None]
    s2 = np.maximum(squares[several] - total[several] ** 2 / n, 0.0) / (n - 1)
    factor = share[several] ** 2 * (1.0 - drawn[several])
    # Residuals of a fit of ``fitted`` slopes spread less than the errors they stand for.
    between = np.einsum("h,hkm->km", factor, s2 / n) * (free / max(free - fitted, 1))
    dof = np.full(mean.shape, max(free - fitted, 1))
    return Combined(mean + adjustment, between + within, dof, adjustment, between)


def _satterthwaite(terms: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """(K, M) degrees of freedom of Σ_w ``terms`` (W, K, M), each term an estimate with
    ``dof`` (W,) degrees of freedom (Welch–Satterthwaite): near Σ dof when the terms
    are alike, near one term's when a few references carry the variance — as the
    orders of a model whose marginal contributions take few values can make them."""
    total = terms.sum(axis=0)
    spread = (terms**2 / dof[:, None, None]).sum(axis=0)
    pooled = np.where(spread > 0, total**2 / np.where(spread > 0, spread, 1.0), dof.sum())
    return np.maximum(pooled, 1.0)
