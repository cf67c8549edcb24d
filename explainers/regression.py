"""The two regressions the explainers solve, each with its sampling variance.

Both variances are *sandwich* (influence-function) estimates over independent sampling
units: the score is a smooth function of sums over units, so its variance is the
covariance of the units' summed, linearised influence. For KernelSHAP a unit is a
sampled coalition with its complement; for LIME it is one of two independently scrambled
quasi-random replicates, whose design effect over independent draws is pooled across
the coefficients (``weighted_ridge(pooled=True)``). The variance says how far the score
would move if the explainer drew its perturbations again — the uncertainty more samples
remove — and assumes nothing about the model. The 95% half-width uses Student's t
(units − 1 degrees of freedom; (units − 1)·M when pooled).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

from explainers import kernels


def unit_variance(influence: np.ndarray, units: np.ndarray, n_units: int) -> np.ndarray:
    """Sandwich variance (K, m) of Σᵢ influence[i] when rows are grouped into independent
    units: the spread of the units' sums.

    ``influence`` (n, K, m): each row's residual times its influence direction, already
    multiplied by the bread (so diag(B·meat·Bᵀ) never forms the meat); ``units`` (n,) the
    unit of each row, −1 for deterministic rows.
    """
    sampled = units >= 0
    unit = units[sampled]
    influence = influence[sampled]
    counts = np.bincount(unit, minlength=n_units)
    if counts.min() > 0:  # sum each unit's rows in one pass, in a fixed order
        order = np.argsort(unit, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        sums = np.add.reduceat(influence[order], starts, axis=0)
    else:
        sums = np.zeros((n_units, *influence.shape[1:]))
        np.add.at(sums, unit, influence)
    return spread(sums)


def spread(sums: np.ndarray, axis: int = 0) -> np.ndarray:
    """n/(n − 1) Σ_u (S_u − S̄)² over ``axis``: the variance of Σ_u S_u when the n units
    are independent draws."""
    n = sums.shape[axis]
    centred = sums - sums.mean(axis=axis, keepdims=True)
    return (centred**2).sum(axis=axis) * (n / (n - 1))


def influences(projected: np.ndarray, resid: np.ndarray) -> np.ndarray:
    """(n, K, m): row i's residual for output k times its bread-projected direction."""
    return resid[:, :, None] * projected[:, None, :]


@dataclass(frozen=True)
class RidgeFit:
    """Weighted ridge with an unpenalised intercept, for K outputs at once."""

    coef: np.ndarray  # (K, M)
    intercept: np.ndarray  # (K,)
    r2: np.ndarray  # (K,) weighted R² on the fitted samples
    coef_var: np.ndarray  # (K, M) sandwich variance of coef (0 without ≥ 2 units)
    dof: int  # degrees of freedom of coef_var


@dataclass(frozen=True)
class RidgeDesign:
    """Everything ``weighted_ridge`` computes before it sees ``y``: the weighted Gram
    matrix's inverse and each row's bread-projected influence direction. It depends only
    on the plan, so it is built while the predictor scores (``ridge_design``), and the
    fit that remains once scores arrive is a few thin products (``ridge_solve``)."""

    columns: np.ndarray  # (n, P): x, then the controls
    m: int  # the leading columns whose coefficients are reported
    weights: np.ndarray  # (n,)
    mean: np.ndarray  # (P,) weighted column means
    h_inv: np.ndarray  # (P, P) inverse of the centred weighted Gram matrix + αI
    projected: np.ndarray  # (n, m): wᵢ (xᵢ − x̄) projected on β's rows of h_inv
    units: np.ndarray
    n_units: int


def ridge_design(
    x: np.ndarray,
    w: np.ndarray,
    alpha: float,
    units: np.ndarray,
    n_units: int,
    controls: np.ndarray | None = None,
) -> RidgeDesign:
    """The ``y``-free half of ``weighted_ridge`` (its arguments say what these are)."""
    m = x.shape[1]
    columns = x
    if controls is not None and controls.shape[1]:
        columns = np.concatenate([x, controls], axis=1)
    sw = w.sum()
    mean = w @ columns / sw
    scaled = columns * np.sqrt(w)[:, None]
    gram = scaled.T @ scaled  # one symmetric product (BLAS syrk), then centred
    gram -= sw * np.outer(mean, mean)
    gram[np.diag_indices_from(gram)] += alpha
    h_inv = np.linalg.inv(gram)
    bread = h_inv[:m].T
    projected = (columns @ bread - mean @ bread) * w[:, None]
    return RidgeDesign(columns, m, w, mean, h_inv, projected, units, n_units)


def ridge_solve(design: RidgeDesign, y: np.ndarray, pooled: bool = False) -> RidgeFit:
    """``weighted_ridge`` on a prepared ``design``, for scores ``y`` (n, K)."""
    m, w, mean = design.m, design.weights, design.mean
    sw = w.sum()
    y_mean = w @ y / sw
    yc = y - y_mean
    coef = (design.h_inv @ (design.columns.T @ (yc * w[:, None]))).T  # (K, P)
    intercept = y_mean - coef @ mean
    resid = y - intercept - design.columns @ coef.T  # (n, K)
    surrogate_resid = yc - (design.columns[:, :m] - mean[:m]) @ coef[:, :m].T
    ss_res = w @ (surrogate_resid**2)
    ss_tot = w @ (yc**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, 1.0)
    units, n_units = design.units, design.n_units
    coef_var = np.zeros((y.shape[1], m))
    dof = max(n_units - 1, 0)
    if n_units >= 2:
        influence = influences(design.projected, resid)
        coef_var = unit_variance(influence, units, n_units)
        if pooled:  # every sampled row its own unit
            iid = spread(influence[units >= 0])
            total = iid.sum(axis=1, keepdims=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                effect = np.where(total > 0, coef_var.sum(axis=1, keepdims=True) / total, 0.0)
            coef_var = effect * iid
            dof *= m
    return RidgeFit(coef=coef[:, :m], intercept=intercept, r2=r2, coef_var=coef_var, dof=dof)


def weighted_ridge(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    alpha: float,
    units: np.ndarray,
    n_units: int,
    controls: np.ndarray | None = None,
    pooled: bool = False,
) -> RidgeFit:
    """Minimise Σ wᵢ (yᵢ − β₀ − xᵢᵀβ − cᵢᵀγ)² + α‖(β, γ)‖² for each column of ``y``.

    ``x`` (n, M), ``y`` (n, K), ``w`` (n,). Without ``controls`` the same objective as
    scikit-learn's ``Ridge(alpha).fit(x, y, sample_weight=w)``. The intercept is
    profiled out by weighted centring, so each row's influence on β is
    H⁻¹ wᵢ (xᵢ − x̄)(eᵢ).

    ``controls`` (n, C) are control variates: columns whose weighted population
    moments with 1 and ``x`` are zero by construction. They leave the population β
    unchanged (Frisch–Waugh–Lovell) and take their share of the residual, so β's
    sampling variance falls; only β is reported, and R² is that of the surrogate
    β₀ + xᵀβ alone.

    ``pooled``: for few units (LIME's two quasi-random replicates), the variance is the
    i.i.d. sandwich (every row its own unit) scaled, per output, by one design effect
    pooled over the M coefficients — Σⱼ var_units / Σⱼ var_iid — which says how much
    better than independent draws the units' sampling is. That assumes the gain is
    alike across coefficients; in return the variance has (units − 1)·M degrees of
    freedom instead of units − 1.
    """
    design = ridge_design(x, w, alpha, units, n_units, controls)
    return ridge_solve(design, y, pooled)


# A unit's leverage is capped below 1 for the small-sample correction (CR3).
LEVERAGE_FLOOR = 0.05


@dataclass(frozen=True)
class ShapleyFit:
    scores: np.ndarray  # (W, K, M), one solve per reference
    variance: np.ndarray  # (W, K, M), 0 where exact


def constrained_least_squares(
    masks: np.ndarray,
    weights: np.ndarray,
    values: np.ndarray,
    total: np.ndarray,
    units: np.ndarray,
    n_units: int,
) -> ShapleyFit:
    """KernelSHAP's solve, for each reference w: minimise Σ_z w_z (v_wz − zᵀφ_w)² subject
    to 1ᵀφ_w = total_w.

    ``masks`` (R, C, M) bool coalitions, R = 1 (shared by every reference) or W;
    ``weights`` (C,) regression weights; ``values`` (W, C, K) coalition values minus the
    reference's; ``total`` (W, K) = f(x) − f(reference); ``units`` (C,) the sampling unit
    of each coalition (−1 for enumerated, i.e. deterministic, coalitions; a sampled
    coalition and its complement share a unit, numbered in order).

    Closed form (Covert & Lee 2021): φ = A⁻¹b − A⁻¹1 (1ᵀA⁻¹b − total)/(1ᵀA⁻¹1).
    Its derivative along the constraint is Q = A⁻¹ − A⁻¹11ᵀA⁻¹/(1ᵀA⁻¹1), so each
    coalition's influence is Q w_z z (v_z − zᵀφ); the variance is the spread of the
    units' summed influences.

    Each unit's residuals are inflated by 1/(1 − h_u), its leverage h_u: the
    jackknife-like small-sample correction CR3 (Bell and McCaffrey 2002; MacKinnon and
    White 1985 for HC3). A reference has a few dozen pairs for M scores: on
    bench/accuracy/unseen.py's design cases with the whole background used, the plain
    sandwich covered 79% instead of 95%, CR2 (1/√(1 − h_u)) 89–90%, CR3 97–98%. The
    numba kernels (``kernels.gram_each``, ``kernels.solve_each``) work over each
    coalition's members and never form the (W, C, M) products.
    """
    masks = np.ascontiguousarray(masks)
    a_inv = _inverse(kernels.gram_each(masks, weights))
    sampled = units >= 0
    enumerated = int((~sampled).sum())
    if sampled.any() and not (units[:enumerated] < 0).all():
        raise ValueError("enumerated coalitions must come before the sampled ones")
    scores, variance = kernels.solve_each(
        masks,
        np.ascontiguousarray(weights, dtype=np.float64),
        np.ascontiguousarray(values, dtype=np.float64),
        np.ascontiguousarray(total, dtype=np.float64),
        a_inv,
        enumerated,
        n_units,
        LEVERAGE_FLOOR,
    )
    return ShapleyFit(scores=scores, variance=variance)


def _each(array: np.ndarray, count: int) -> np.ndarray:
    """``array`` with a leading axis of ``count``: itself, or its one slice repeated (a
    view) when it is shared by every reference."""
    if array.shape[0] == count:
        return array
    return np.broadcast_to(array, (count, *array.shape[1:]))


def _inverse(gram: np.ndarray) -> np.ndarray:
    """Inverses of a stack of symmetric matrices; the pseudo-inverse where one is
    singular (a design that does not span every feature)."""
    try:
        inverse = np.linalg.inv(gram)
        if np.isfinite(inverse).all():
            return inverse
    except np.linalg.LinAlgError:
        pass
    return np.linalg.pinv(gram, hermitian=True)


def half_width(
    variance: np.ndarray, n_units: int = 2, dof: int | np.ndarray | None = None
) -> np.ndarray:
    """Half-width of the two-sided 95% interval, Student's t with ``dof`` (by default
    n_units − 1; an array: per score) degrees of freedom (0 where the variance is 0, as
    for exact scores, and for fewer than two units)."""
    if n_units < 2:
        return np.zeros_like(variance)
    return student_t.ppf(0.975, n_units - 1 if dof is None else dof) * np.sqrt(variance)
