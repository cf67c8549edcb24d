"""Every numba kernel against a plain-NumPy (or SciPy) version of itself."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtr, ndtri
from scipy.stats import truncnorm

from explainers import kernels
from explainers.maskers.numeric import LimeStatistics


@pytest.mark.parametrize("p", [1e-300, 1e-20, 1e-6, 0.01, 0.02425, 0.1, 0.5, 0.77, 0.98, 1 - 1e-12])
def test_normal_quantile_matches_scipy(p: float) -> None:
    assert kernels.normal_quantile(p) == pytest.approx(float(ndtri(p)), rel=1e-12, abs=1e-12)


@given(st.floats(-38.0, 8.0))
def test_normal_cdf_matches_scipy(z: float) -> None:
    assert kernels.normal_cdf(z) == pytest.approx(float(ndtr(z)), rel=1e-12, abs=1e-300)


@settings(max_examples=200)
@given(
    st.floats(-6.0, 6.0),
    st.floats(0.01, 6.0),
    st.floats(0.001, 0.999),
)
def test_truncated_normal_matches_scipy(lo: float, width: float, u: float) -> None:
    hi = lo + width
    expected = float(truncnorm.ppf(u, lo, hi))
    got = kernels.truncated_normal(lo, hi, u)
    assert lo <= got <= hi
    assert got == pytest.approx(expected, abs=1e-9)


def test_truncated_normal_far_in_the_tail_and_degenerate() -> None:
    assert 30.0 <= kernels.truncated_normal(30.0, 31.0, 0.5) <= 31.0
    assert kernels.truncated_normal(2.0, 2.0, 0.3) == 2.0


def lime_perturbations_numpy(
    instance: np.ndarray, stats: LimeStatistics, uniforms: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n, m = uniforms.shape
    instance_bins = stats.bins_of(instance)
    rows, binary, positions = np.empty((n, m)), np.empty((n, m)), np.full((n, m), 0.5)
    bins = np.empty((n, m), dtype=np.int64)
    rows[0], binary[0], bins[0] = instance, 1.0, instance_bins
    for j in range(m):
        u = uniforms[1:, j]
        b = np.minimum(
            (u[:, None] >= stats.bin_cdf[j][None, :]).sum(axis=1), stats.bin_cdf.shape[1] - 1
        )
        start = np.where(b > 0, stats.bin_cdf[j, np.maximum(b - 1, 0)], 0.0)
        position = (u - start) / (stats.bin_cdf[j, b] - start)
        mean, std = stats.bin_mean[j, b], stats.bin_std[j, b]
        lo = (stats.bin_lo[j, b] - mean) / std
        hi = (stats.bin_hi[j, b] - mean) / std
        z = np.where(hi > lo, truncnorm.ppf(position, lo, np.maximum(hi, lo + 1e-300)), lo)
        rows[1:, j] = mean + std * z
        binary[1:, j] = b == instance_bins[j]
        bins[1:, j], positions[1:, j] = b, position
    return rows, binary, bins, positions


def test_lime_perturbations_match_numpy() -> None:
    rng = np.random.default_rng(5)
    data = np.column_stack(
        [
            rng.normal(size=400),
            rng.exponential(size=400),
            rng.integers(0, 3, size=400).astype(float),  # few distinct values: fewer bins
            np.full(400, 2.5),  # constant: one bin
        ]
    )
    stats = LimeStatistics.from_training(data)
    instance = np.array([0.3, 2.0, 1.0, 2.5])
    uniforms = rng.random((300, 4))
    got = kernels.lime_perturbations(
        instance,
        stats.bins_of(instance),
        stats.bin_cdf,
        stats.bin_lo,
        stats.bin_hi,
        stats.bin_mean,
        stats.bin_std,
        uniforms,
    )
    expected = lime_perturbations_numpy(instance, stats, uniforms)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[2], expected[2])
    np.testing.assert_allclose(got[3], expected[3], atol=1e-12)
    np.testing.assert_allclose(got[0], expected[0], atol=1e-9)
    assert (got[0][:, 3] == 2.5).all()
    # Within a bin the position is uniform and independent of the bin: what makes the
    # control variates of ``maskers.numeric.controls`` mean zero.
    assert ((got[3] >= 0) & (got[3] <= 1)).all()


def lime_controls_numpy(
    stats: LimeStatistics,
    instance_bins: np.ndarray,
    bins: np.ndarray,
    positions: np.ndarray,
    binary: np.ndarray,
) -> np.ndarray:
    """``maskers.numeric.controls`` column by column with NumPy."""
    columns = []
    frequency = np.diff(stats.bin_cdf, axis=1, prepend=0.0)
    for j in range(bins.shape[1]):
        occupied = np.flatnonzero(frequency[j] > 0)
        others = occupied[occupied != instance_bins[j]]
        left = 1.0 - binary[:, j]
        for k in others[:-1]:
            share = frequency[j, k] / frequency[j, others].sum()
            columns.append((bins[:, j] == k) - share * left)
        for k in occupied:
            if stats.bin_hi[j, k] > stats.bin_lo[j, k]:
                columns.append((2.0 * positions[:, j] - 1.0) * (bins[:, j] == k))
    return np.column_stack(columns)


def test_lime_controls_match_numpy() -> None:
    from explainers.maskers.numeric import controls

    rng = np.random.default_rng(6)
    data = np.column_stack(
        [rng.normal(size=400), rng.integers(0, 3, size=400).astype(float), np.full(400, 1.0)]
    )
    stats = LimeStatistics.from_training(data)
    instance = np.array([0.1, 2.0, 1.0])
    instance_bins = stats.bins_of(instance)
    _, binary, bins, positions = kernels.lime_perturbations(
        instance,
        instance_bins,
        stats.bin_cdf,
        stats.bin_lo,
        stats.bin_hi,
        stats.bin_mean,
        stats.bin_std,
        rng.random((300, 3)),
    )
    got = controls(stats, instance_bins, bins, positions, binary)
    expected = lime_controls_numpy(stats, instance_bins, bins, positions, binary)
    assert got.shape == expected.shape and got.shape[1] > 0
    np.testing.assert_array_equal(got, expected)


def test_lime_statistics_match_the_lime_package() -> None:
    from lime.discretize import QuartileDiscretizer

    data = np.random.default_rng(2).normal(size=(500, 3))
    ours = LimeStatistics.from_training(data)
    theirs = QuartileDiscretizer(data, [], ["a", "b", "c"])
    for j in range(3):
        n_bins = len(theirs.means[j])
        np.testing.assert_allclose(ours.bin_mean[j, :n_bins], theirs.means[j])
        np.testing.assert_allclose(ours.bin_std[j, :n_bins], theirs.stds[j])
        np.testing.assert_allclose(ours.bin_lo[j, :n_bins], theirs.mins[j])
        np.testing.assert_allclose(ours.bin_hi[j, :n_bins], theirs.maxs[j])
    np.testing.assert_array_equal(ours.bins_of(data[7]), theirs.discretize(data[7]))


def test_lime_kernel_weights_match_numpy() -> None:
    binary = (np.random.default_rng(1).random((50, 7)) < 0.6).astype(np.float64)
    width = 0.75 * np.sqrt(7)
    d = np.sqrt(((binary - 1.0) ** 2).sum(axis=1))
    expected = np.sqrt(np.exp(-(d**2) / width**2))
    np.testing.assert_allclose(kernels.lime_kernel_weights(binary, width), expected, rtol=1e-14)


def test_masks_from_keys_match_numpy() -> None:
    rng = np.random.default_rng(4)
    keys = rng.random((40, 9))
    sizes = rng.integers(1, 9, size=40)
    masks = kernels.masks_from_keys(keys, sizes)
    expected = np.zeros((40, 9), dtype=bool)
    for i in range(40):  # a partial Fisher–Yates shuffle driven by the keys
        order = list(range(9))
        for r in range(sizes[i]):
            pick = r + min(int(keys[i, r] * (9 - r)), 8 - r)
            order[r], order[pick] = order[pick], order[r]
        expected[i, order[: sizes[i]]] = True
    np.testing.assert_array_equal(masks, expected)
    np.testing.assert_array_equal(masks.sum(axis=1), sizes)


def test_masks_from_keys_are_uniform_over_subsets() -> None:
    """Every 2-subset of 4 features equally often (chi-square, 6 cells, p > 0.001)."""
    rng = np.random.default_rng(5)
    masks = kernels.masks_from_keys(rng.random((60_000, 4)), np.full(60_000, 2))
    codes = (masks * (1 << np.arange(4))).sum(axis=1)
    counts = np.unique(codes, return_counts=True)[1]
    assert len(counts) == 6
    chi2 = (((counts - 10_000) ** 2) / 10_000).sum()
    assert chi2 < 22.5  # the 0.999 quantile of chi-square with 5 degrees of freedom


def _solve_with_numpy(masks, weights, values, total, enumerated, n_units):  # type: ignore[no-untyped-def]
    """``kernels.solve_each`` written with dense NumPy products (the oracle)."""
    z = masks.astype(np.float64)
    zw = z * weights[None, :, None]
    a_inv = np.linalg.inv(np.swapaxes(zw, 1, 2) @ z)
    ones = a_inv.sum(axis=2)
    denom = ones.sum(axis=1)
    a_inv_b = a_inv @ (np.swapaxes(zw, 1, 2) @ values)
    excess = (a_inv_b.sum(axis=1) - total) / denom[:, None]
    phi = a_inv_b - ones[:, :, None] * excess[:, None, :]
    q = a_inv - ones[:, :, None] * ones[:, None, :] / denom[:, None, None]
    resid = (values - z @ phi)[:, enumerated:]
    projected = (zw @ q)[:, enumerated:]
    per = resid.shape[1] // n_units
    h = (projected * z[:, enumerated:]).sum(axis=2).reshape(-1, n_units, per).sum(axis=2)
    projected = projected.reshape(-1, n_units, per, z.shape[2])
    projected = projected / np.maximum(1 - h, 0.05)[:, :, None, None]  # CR3
    sums = np.einsum("wuik,wuim->wukm", resid.reshape(len(values), n_units, per, -1), projected)
    centred = sums - sums.mean(axis=1, keepdims=True)
    return np.swapaxes(phi, 1, 2), (centred**2).sum(axis=1) * n_units / (n_units - 1)


def test_constrained_solve_kernels_match_numpy() -> None:
    rng = np.random.default_rng(9)
    masks = rng.random((6, 4 + 2 * 30, 7)) < 0.5
    masks[:, 4::2] = ~masks[:, 5::2]  # sampled pairs after 4 deterministic coalitions
    weights = rng.random(64)
    values, total = rng.normal(size=(6, 64, 3)), rng.normal(size=(6, 3))
    a_inv = np.linalg.inv(kernels.gram_each(masks, weights))
    z = masks.astype(np.float64)
    np.testing.assert_allclose(
        kernels.gram_each(masks, weights), np.einsum("rcm,c,rcn->rmn", z, weights, z), rtol=1e-13
    )
    scores, variance = kernels.solve_each(masks, weights, values, total, a_inv, 4, 30, 0.05)
    expected_scores, expected_variance = _solve_with_numpy(masks, weights, values, total, 4, 30)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(variance, expected_variance, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize(("m", "s"), [(1, 0), (1, 1), (5, 2), (7, 3), (8, 8), (12, 1)])
def test_subsets_of_size_enumerate_itertools_combinations(m: int, s: int) -> None:
    combos = list(itertools.combinations(range(m), s))
    expected = np.zeros((len(combos), m), dtype=bool)
    for r, combo in enumerate(combos):
        expected[r, list(combo)] = True
    np.testing.assert_array_equal(kernels.subsets_of_size(m, s, len(combos)), expected)


@pytest.mark.parametrize("shared", [True, False])
def test_masked_rows_match_numpy(shared: bool) -> None:
    rng = np.random.default_rng(6)
    instance, references = rng.normal(size=6), rng.normal(size=(4, 6))
    masks = rng.random((1 if shared else 4, 10, 6)) < 0.5
    rows = np.empty((40, 6))
    kernels.fill_masked_rows(instance, references, masks, rows)
    expected = np.where(masks, instance[None, None, :], references[:, None, :])
    np.testing.assert_array_equal(rows, expected.reshape(-1, 6))
