"""Numba kernels that build perturbations and reduce predictor scores.

Every kernel is small, pure, compiled with ``cache=True`` and ``nogil=True`` (so the
service can run it on a thread without holding the GIL), and takes its randomness as
pre-drawn arrays: a kernel never owns a random state. Each has a plain-NumPy twin in
``tests/explainers/test_kernels.py``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# Acklam's rational approximation of the standard normal quantile; one Halley step on
# top brings it to full double precision.
_A = (
    -3.969683028665376e01,
    2.209460984245205e02,
    -2.759285104469687e02,
    1.383577518672690e02,
    -3.066479806614716e01,
    2.506628277459239e00,
)
_B = (
    -5.447609879822406e01,
    1.615858368580409e02,
    -1.556989798598866e02,
    6.680131188771972e01,
    -1.328068155288572e01,
)
_C = (
    -7.784894002430293e-03,
    -3.223964580411365e-01,
    -2.400758277161838e00,
    -2.549732539343734e00,
    4.374664141464968e00,
    2.938163982698783e00,
)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_P_LOW = 0.02425
_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)


@numba.njit(cache=True, nogil=True)
def normal_cdf(z: float) -> float:
    """Standard normal CDF, accurate in the lower tail (via ``erfc``)."""
    return 0.5 * math.erfc(-z / _SQRT2)


@numba.njit(cache=True, nogil=True)
def normal_quantile(p: float) -> float:
    """Standard normal quantile (inverse CDF) for 0 < p < 1; ±inf at 0 and 1.

    Works on the lower half (p ≤ 0.5) and uses Φ⁻¹(p) = −Φ⁻¹(1 − p) above it: 1 − p is
    exact for p near 1, where the refinement step would otherwise lose the tail.
    """
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    if p > 0.5:
        return -_lower_quantile(1.0 - p)
    return _lower_quantile(p)


@numba.njit(cache=True, nogil=True)
def _lower_quantile(p: float) -> float:
    if p < _P_LOW:
        q = math.sqrt(-2.0 * math.log(p))
        x = (((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / (
            (((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0
        )
    else:
        q = p - 0.5
        r = q * q
        x = (
            (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5])
            * q
            / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)
        )
    e = normal_cdf(x) - p
    u = e * _SQRT2PI * math.exp(0.5 * x * x)
    return x - u / (1.0 + 0.5 * x * u)


@numba.njit(cache=True, nogil=True)
def truncation(lo: float, hi: float) -> tuple[float, float, float, float, bool]:
    """What the quantiles of a standard normal truncated to ``[lo, hi]`` need, computed
    once per interval: ``(lo, hi, Φ(lo), Φ(hi), flip)`` on the lower tail (by symmetry,
    so that bounds far above the mean keep precision)."""
    flip = lo > 0.0
    if flip:
        lo, hi = -hi, -lo
    return lo, hi, normal_cdf(lo), normal_cdf(hi), flip


@numba.njit(cache=True, nogil=True)
def truncated_quantile(
    lo: float, hi: float, c_lo: float, c_hi: float, flip: bool, u: float
) -> float:
    """The ``u``-quantile of the truncated normal that ``truncation`` described."""
    if flip:
        u = 1.0 - u
    if not c_hi > c_lo:
        z = lo + u * (hi - lo)
    else:
        z = normal_quantile(c_lo + u * (c_hi - c_lo))
        z = min(max(z, lo), hi)
    return -z if flip else z


@numba.njit(cache=True, nogil=True)
def truncated_normal(lo: float, hi: float, u: float) -> float:
    """The ``u``-quantile of a standard normal truncated to ``[lo, hi]`` (z units); a
    degenerate interval returns its midpoint."""
    if not hi > lo:
        return 0.5 * (lo + hi)
    t_lo, t_hi, c_lo, c_hi, flip = truncation(lo, hi)
    return truncated_quantile(t_lo, t_hi, c_lo, c_hi, flip, u)


@numba.njit(cache=True, nogil=True)
def lime_perturbations(
    instance: np.ndarray,
    instance_bins: np.ndarray,
    bin_cdf: np.ndarray,
    bin_lo: np.ndarray,
    bin_hi: np.ndarray,
    bin_mean: np.ndarray,
    bin_std: np.ndarray,
    uniforms: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """LIME's tabular sampling on quartile bins, one uniform per value.

    Shapes: ``instance`` (M,) float64; ``instance_bins`` (M,) int64; the ``bin_*``
    tables (M, B) float64 with ``bin_cdf`` the cumulative bin frequency (last column
    1.0); ``uniforms`` (n, M) float64 in [0, 1). A uniform picks the bin its value
    falls in on the cumulative frequencies, and its place inside that bin's stretch
    of [0, 1) — again uniform, and independent of the bin — is the quantile of the
    truncated normal the value is drawn at.

    Returns ``rows`` (n, M) float64 — row 0 is the instance, every other value is drawn
    from its bin's training mean and std truncated to the bin's bounds; ``binary``
    (n, M) float64, 1.0 where a row's bin equals the instance's; ``bins`` (n, M) int64;
    and ``positions`` (n, M) float64, each value's quantile within its bin (row 0: 0.5).
    """
    n, m = uniforms.shape
    n_bins = bin_cdf.shape[1]
    # Each bin's truncation, once: a value then costs one normal quantile.
    t_lo = np.empty((m, n_bins))
    t_hi = np.empty((m, n_bins))
    c_lo = np.empty((m, n_bins))
    c_hi = np.empty((m, n_bins))
    flip = np.zeros((m, n_bins), dtype=np.bool_)
    degenerate = np.zeros((m, n_bins), dtype=np.bool_)
    for j in range(m):
        for b in range(n_bins):
            lo = (bin_lo[j, b] - bin_mean[j, b]) / bin_std[j, b]
            hi = (bin_hi[j, b] - bin_mean[j, b]) / bin_std[j, b]
            if not hi > lo:
                degenerate[j, b] = True
                t_lo[j, b] = 0.5 * (lo + hi)
            else:
                t_lo[j, b], t_hi[j, b], c_lo[j, b], c_hi[j, b], flip[j, b] = truncation(lo, hi)
    rows = np.empty((n, m))
    binary = np.empty((n, m))
    bins = np.empty((n, m), dtype=np.int64)
    positions = np.empty((n, m))
    for j in range(m):
        rows[0, j] = instance[j]
        binary[0, j] = 1.0
        bins[0, j] = instance_bins[j]
        positions[0, j] = 0.5
    for i in range(1, n):
        for j in range(m):
            u = uniforms[i, j]
            b = 0
            while b < n_bins - 1 and u >= bin_cdf[j, b]:
                b += 1
            start = bin_cdf[j, b - 1] if b > 0 else 0.0
            width = bin_cdf[j, b] - start
            position = (u - start) / width if width > 0.0 else 0.5
            position = min(max(position, 0.0), 1.0)
            bins[i, j] = b
            positions[i, j] = position
            binary[i, j] = 1.0 if b == instance_bins[j] else 0.0
            if degenerate[j, b]:
                z = t_lo[j, b]
            else:
                z = truncated_quantile(
                    t_lo[j, b], t_hi[j, b], c_lo[j, b], c_hi[j, b], flip[j, b], position
                )
            rows[i, j] = bin_mean[j, b] + bin_std[j, b] * z
    return rows, binary, bins, positions


@numba.njit(cache=True, nogil=True)
def lime_controls(
    bins: np.ndarray,
    positions: np.ndarray,
    binary: np.ndarray,
    features: np.ndarray,
    spec_bins: np.ndarray,
    shares: np.ndarray,
) -> np.ndarray:
    """LIME's control-variate columns (``lime.controls`` says what they are).

    ``bins`` (n, M) int64, ``positions`` and ``binary`` (n, M) float64; column c is about
    feature ``features[c]`` and bin ``spec_bins[c]``: with ``shares[c]`` ≥ 0 it is
    1[bin = k] − share·(1 − b_j) (which other bin), with ``shares[c]`` < 0 it is
    (2·position − 1)·1[bin = k] (where in the bin). Returns (n, C) float64.
    """
    n = bins.shape[0]
    c_count = features.shape[0]
    out = np.empty((n, c_count))
    for i in range(n):
        for c in range(c_count):
            j = features[c]
            inside = 1.0 if bins[i, j] == spec_bins[c] else 0.0
            if shares[c] >= 0.0:
                out[i, c] = inside - shares[c] * (1.0 - binary[i, j])
            else:
                out[i, c] = (2.0 * positions[i, j] - 1.0) * inside
    return out


@numba.njit(cache=True, nogil=True)
def lime_kernel_weights(binary: np.ndarray, width: float) -> np.ndarray:
    """LIME's exponential kernel ``sqrt(exp(-d²/width²))`` on the binary representation.

    ``binary`` (n, M) float64 of 0/1, compared with the instance's all-ones row, so d²
    is the number of zeros in a row. Returns (n,) float64.
    """
    n, m = binary.shape
    out = np.empty(n)
    w2 = width * width
    for i in range(n):
        d2 = 0.0
        for j in range(m):
            diff = 1.0 - binary[i, j]
            d2 += diff * diff
        out[i] = math.sqrt(math.exp(-d2 / w2))
    return out


@numba.njit(cache=True, nogil=True)
def masks_from_keys(keys: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Random coalitions of given sizes: row i holds ``sizes[i]`` features drawn without
    replacement, the r-th by ``keys[i, r]`` among those left (a partial Fisher–Yates
    shuffle: uniform over the subsets of that size).

    ``keys`` (n, M) float64 uniforms, ``sizes`` (n,) int64. Returns (n, M) bool.
    """
    n, m = keys.shape
    masks = np.zeros((n, m), dtype=np.bool_)
    order = np.empty(m, dtype=np.int64)
    for i in range(n):
        for j in range(m):
            order[j] = j
        for r in range(sizes[i]):
            pick = r + min(int(keys[i, r] * (m - r)), m - r - 1)
            chosen = order[pick]
            order[pick] = order[r]
            order[r] = chosen
            masks[i, chosen] = True
    return masks


@numba.njit(cache=True, nogil=True)
def subsets_of_size(m: int, s: int, count: int) -> np.ndarray:
    """All ``count`` = C(m, s) subsets of size ``s`` of ``m`` features, in lexicographic
    order of their member indices. Returns (count, m) bool."""
    masks = np.zeros((count, m), dtype=np.bool_)
    if s == 0:
        return masks
    idx = np.arange(s)
    for r in range(count):
        for t in range(s):
            masks[r, idx[t]] = True
        t = s - 1
        while t >= 0 and idx[t] == m - s + t:
            t -= 1
        if t < 0:
            break
        idx[t] += 1
        for q in range(t + 1, s):
            idx[q] = idx[q - 1] + 1
    return masks


@numba.njit(cache=True, nogil=True)
def fill_masked_rows(
    instance: np.ndarray, references: np.ndarray, masks: np.ndarray, rows: np.ndarray
) -> None:
    """KernelSHAP's rows: for every reference row and each of its coalitions, the
    instance's values where the coalition holds the feature and the reference's elsewhere.

    ``instance`` (M,), ``references`` (W, M) float64, ``masks`` (R, C, M) bool with R = 1
    (one design for every reference) or W. Writes (W·C, M) into ``rows``, reference-major:
    row ``w·C + c`` is coalition c of reference w.
    """
    w_count, m = references.shape
    r_count, c_count, _ = masks.shape
    for w in range(w_count):
        r = 0 if r_count == 1 else w
        for c in range(c_count):
            row = w * c_count + c
            for j in range(m):
                rows[row, j] = instance[j] if masks[r, c, j] else references[w, j]


@numba.njit(cache=True, nogil=True)
def gram_each(masks: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Σ_c w_c z_c z_cᵀ for each reference's coalitions: ``masks`` (R, C, M) bool,
    ``weights`` (C,) → (R, M, M), summing over each coalition's members only."""
    r_count, c_count, m = masks.shape
    out = np.zeros((r_count, m, m))
    members = np.empty(m, dtype=np.int64)
    for r in range(r_count):
        for c in range(c_count):
            size = 0
            for j in range(m):
                if masks[r, c, j]:
                    members[size] = j
                    size += 1
            w = weights[c]
            for a in range(size):
                for b in range(size):
                    out[r, members[a], members[b]] += w
    return out


@numba.njit(cache=True, nogil=True)
def solve_each(
    masks: np.ndarray,
    weights: np.ndarray,
    values: np.ndarray,
    total: np.ndarray,
    a_inv: np.ndarray,
    enumerated: int,
    n_units: int,
    leverage_floor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """KernelSHAP's constrained solve and its sandwich variance, for each reference
    (``regression.constrained_least_squares`` says what is computed; this is how).

    ``masks`` (R, C, M) bool, R = 1 or W; ``values`` (W, C, K); ``total`` (W, K);
    ``a_inv`` (R, M, M) the inverse Gram matrices; the first ``enumerated`` coalitions
    are deterministic, the rest ``n_units`` units of equal size, in order. Returns
    scores and variances, each (W, K, M).
    """
    r_count, c_count, m = masks.shape
    w_count, _, k_count = values.shape
    scores = np.zeros((w_count, k_count, m))
    variance = np.zeros((w_count, k_count, m))
    per_unit = (c_count - enumerated) // n_units if n_units > 0 else 0
    b = np.empty((m, k_count))
    a_inv_b = np.empty((m, k_count))
    a_inv_1 = np.empty(m)
    q = np.empty((m, m))
    phi = np.empty((m, k_count))
    resid = np.empty((max(per_unit, 1), k_count))
    proj = np.empty((max(per_unit, 1), m))
    s_unit = np.empty((k_count, m))
    mean = np.empty((k_count, m))
    m2 = np.empty((k_count, m))
    # Each coalition's members, listed once per design (R = 1: once for all references).
    members = np.empty((r_count, c_count, m), dtype=np.int64)
    sizes = np.zeros((r_count, c_count), dtype=np.int64)
    for r in range(r_count):
        for c in range(c_count):
            for j in range(m):
                if masks[r, c, j]:
                    members[r, c, sizes[r, c]] = j
                    sizes[r, c] += 1
    for w in range(w_count):
        r = 0 if r_count == 1 else w
        denom = 0.0
        for i in range(m):
            acc = 0.0
            for j in range(m):
                acc += a_inv[r, i, j]
            a_inv_1[i] = acc
            denom += acc
        b[:, :] = 0.0
        for c in range(c_count):
            wc = weights[c]
            for a in range(sizes[r, c]):
                j = members[r, c, a]
                for k in range(k_count):
                    b[j, k] += wc * values[w, c, k]
        for i in range(m):
            for k in range(k_count):
                acc = 0.0
                for j in range(m):
                    acc += a_inv[r, i, j] * b[j, k]
                a_inv_b[i, k] = acc
        for k in range(k_count):
            acc = 0.0
            for i in range(m):
                acc += a_inv_b[i, k]
            excess = (acc - total[w, k]) / denom
            for i in range(m):
                phi[i, k] = a_inv_b[i, k] - a_inv_1[i] * excess
                scores[w, k, i] = phi[i, k]
        if n_units < 2:
            continue
        for i in range(m):
            for j in range(m):
                q[i, j] = a_inv[r, i, j] - a_inv_1[i] * a_inv_1[j] / denom
        mean[:, :] = 0.0
        m2[:, :] = 0.0
        for u in range(n_units):
            h = 0.0
            for p in range(per_unit):
                c = enumerated + u * per_unit + p
                wc = weights[c]
                size = sizes[r, c]
                for k in range(k_count):
                    fitted = 0.0
                    for a in range(size):
                        fitted += phi[members[r, c, a], k]
                    resid[p, k] = values[w, c, k] - fitted
                for i in range(m):
                    proj[p, i] = 0.0
                for a in range(size):  # q is symmetric: add its rows of the members
                    j = members[r, c, a]
                    for i in range(m):
                        proj[p, i] += q[j, i]
                for i in range(m):
                    proj[p, i] *= wc
                for a in range(size):
                    h += proj[p, members[r, c, a]]
            scale = 1.0 / max(1.0 - h, leverage_floor)
            for k in range(k_count):
                for i in range(m):
                    acc = 0.0
                    for p in range(per_unit):
                        acc += resid[p, k] * proj[p, i]
                    s_unit[k, i] = acc * scale
            # Welford's running mean and sum of squares over the units
            for k in range(k_count):
                for i in range(m):
                    delta = s_unit[k, i] - mean[k, i]
                    mean[k, i] += delta / (u + 1)
                    m2[k, i] += delta * (s_unit[k, i] - mean[k, i])
        for k in range(k_count):
            for i in range(m):
                variance[w, k, i] = m2[k, i] * n_units / (n_units - 1)
    return scores, variance
