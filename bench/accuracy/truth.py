"""Ground-truth Shapley values over an equally weighted background.

M ≤ 20: exact, by enumerating every coalition. Beyond: antithetic permutation sampling
(each permutation with its reverse) at 100× the default KernelSHAP budget — unbiased,
independent of the KernelSHAP code under test, with its standard error reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Model = Callable[[np.ndarray], np.ndarray]
EXACT_UP_TO = 20


def coalition_values(
    f: Model, x: np.ndarray, background: np.ndarray, masks: np.ndarray
) -> np.ndarray:
    """v(S) for each mask row: mean over the background of f with S taken from x."""
    b = background.shape[0]
    rows = np.where(masks[:, None, :], x[None, None, :], background[None, :, :])
    return f(rows.reshape(-1, x.shape[0]))[:, 0].reshape(len(masks), b).mean(axis=1)


def exact(f: Model, x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Shapley values from the definition: every coalition, coded as the bits of an integer."""
    m = x.shape[0]
    codes = np.arange(2**m, dtype=np.int64)
    bits = ((codes[:, None] >> np.arange(m)) & 1).astype(bool)
    chunk = max(1, 2**17 // background.shape[0])
    values = np.concatenate(
        [
            coalition_values(f, x, background, bits[i : i + chunk])
            for i in range(0, len(codes), chunk)
        ]
    )
    sizes = bits.sum(axis=1)
    weight = np.array(
        [math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m) for s in range(m)]
    )
    phi = np.zeros(m)
    for i in range(m):
        without = codes[~bits[:, i]]
        phi[i] = (weight[sizes[without]] * (values[without | (1 << i)] - values[without])).sum()
    return phi


def permutation(
    f: Model, x: np.ndarray, background: np.ndarray, coalitions: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(φ, standard error) from antithetic permutations costing ``coalitions`` in all."""
    m = x.shape[0]
    rng = np.random.default_rng(seed)
    pairs = max(2, coalitions // (2 * (m + 1)))
    estimates = np.empty((pairs, m))
    steps = np.arange(m + 1)[:, None]
    batch = max(1, 4096 // (m + 1))
    for start in range(0, pairs, batch):
        count = min(batch, pairs - start)
        orders = np.array([rng.permutation(m) for _ in range(count)])
        both = np.concatenate([orders, orders[:, ::-1]])  # each with its reverse
        ranks = np.argsort(both, axis=1)
        masks = (ranks[:, None, :] < steps[None, :, :]).reshape(-1, m)  # (2·count·(M+1), M)
        values = coalition_values(f, x, background, masks).reshape(2 * count, m + 1)
        gains = np.zeros((2 * count, m))
        np.put_along_axis(gains, both, np.diff(values, axis=1), axis=1)
        estimates[start : start + count] = (gains[:count] + gains[count:]) / 2
    return estimates.mean(axis=0), estimates.std(axis=0, ddof=1) / math.sqrt(pairs)
