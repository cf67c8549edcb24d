"""Which coalitions KernelSHAP evaluates, and with what regression weight.

The Shapley kernel puts mass (M−1)/(s(M−s)) on coalition size s, spread evenly over
the C(M, s) coalitions of that size. Like shap's KernelExplainer we enumerate whole
sizes from the edges inward (s with M−s) while the budget covers them at their kernel
share, and sample the remaining sizes in proportion to their mass, each sampled
coalition paired with its complement. Every coalition of an enumerated size gets its
exact kernel weight; sampled coalitions share the remaining mass equally.

A design serves ``references`` reference inputs (background rows): the enumerated
coalitions are the same for all of them, the sampled pairs are drawn independently for
each, so that the coalition errors of different references are independent and average
out (``kernel_shap``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import comb
from typing import ClassVar

import numpy as np

from explainers import kernels

# Sampling needs at least two units (pairs) for a variance; see ``design``.
_MIN_PAIRS = 2


@dataclass(frozen=True)
class CoalitionDesign:
    # (R, C, M) bool, R = 1 (one design for every reference) or one per reference:
    # enumerated coalitions first, then sampled pairs, a coalition next to its complement
    masks: np.ndarray
    weights: np.ndarray  # (C,) regression weight, summing to 1
    units: np.ndarray  # (C,) int64: sampling unit (pair) or −1 for enumerated
    n_units: int  # pairs per reference
    exact: bool
    sampled_sizes: tuple[int, ...] = ()  # the sizes pairs are drawn from

    unit_coalitions: ClassVar[int] = 2  # a sampled pair: a coalition and its complement

    @property
    def enumerated(self) -> int:
        return int((self.units < 0).sum())

    @property
    def coalitions(self) -> int:
        """Coalitions per reference."""
        return int(self.masks.shape[1])


def size_mass(m: int) -> np.ndarray:
    """Kernel mass of each coalition size 0..m (0 at the ends), normalised to sum 1."""
    s = np.arange(m + 1, dtype=np.float64)
    mass = np.zeros(m + 1)
    inner = s[1:m]
    mass[1:m] = (m - 1) / (inner * (m - inner))
    return mass / mass.sum()


def design(m: int, budget: int, rng: np.random.Generator, references: int = 1) -> CoalitionDesign:
    """Coalitions for ``m`` features within ``budget`` coalitions per reference (shap's
    ``nsamples``); when every coalition fits, one design serves all references."""
    if m < 2:
        empty = np.zeros((1, 0, m), dtype=bool)
        return CoalitionDesign(empty, np.zeros(0), np.zeros(0, np.int64), 0, exact=True)
    mass = size_mass(m)
    exhaustive = 2**m - 2 <= budget
    enumerated = list(range(1, m)) if exhaustive else _sizes_to_enumerate(m, budget, mass)
    masks = [kernels.subsets_of_size(m, s, comb(m, s)) for s in enumerated]
    weights = [np.full(comb(m, s), mass[s] / comb(m, s)) for s in enumerated]
    base = CoalitionDesign(
        masks=(np.concatenate(masks) if masks else np.zeros((0, m), dtype=bool))[None],
        weights=np.concatenate(weights) if weights else np.zeros(0),
        units=np.full(sum(len(w) for w in weights), -1, dtype=np.int64),
        n_units=0,
        exact=exhaustive,
        sampled_sizes=tuple(s for s in range(1, m) if s not in enumerated),
    )
    if exhaustive:
        return base
    if references > 1:
        base = replace(base, masks=np.repeat(base.masks, references, axis=0))
    return extend(base, (budget - base.coalitions) // 2, rng)


def extend(design: CoalitionDesign, pairs: int, rng: np.random.Generator) -> CoalitionDesign:
    """The design with ``pairs`` more sampled pairs for each reference. Sampled
    coalitions share the sampled sizes' kernel mass equally, so weights are recomputed
    over all pairs."""
    if design.exact or pairs <= 0:
        return design
    references, _, m = design.masks.shape
    mass = size_mass(m)
    rest = np.array(design.sampled_sizes, dtype=np.int64)
    sizes = rng.choice(rest, size=references * pairs, p=mass[rest] / mass[rest].sum())
    keys = rng.random((references * pairs, m))
    drawn = kernels.masks_from_keys(keys, sizes.astype(np.int64)).reshape(references, pairs, m)
    new = np.empty((references, 2 * pairs, m), dtype=bool)
    new[:, 0::2] = drawn
    new[:, 1::2] = ~drawn
    total_pairs = design.n_units + pairs
    weights = design.weights.copy()
    weights[design.units >= 0] = mass[rest].sum() / (2 * total_pairs)
    return CoalitionDesign(
        masks=np.concatenate([design.masks, new], axis=1),
        weights=np.concatenate([weights, np.full(2 * pairs, mass[rest].sum() / (2 * total_pairs))]),
        units=np.concatenate([design.units, np.repeat(np.arange(design.n_units, total_pairs), 2)]),
        n_units=total_pairs,
        exact=False,
        sampled_sizes=design.sampled_sizes,
    )


def _sizes_to_enumerate(m: int, budget: int, mass: np.ndarray) -> list[int]:
    """shap's rule: take size pair (s, m−s) whole while the budget, spent at the
    kernel's rate, covers all its coalitions — keeping enough budget to sample at least
    ``_MIN_PAIRS`` pairs from what is left."""
    chosen: list[int] = []
    remaining_budget = float(budget)
    remaining_mass = 1.0
    for s in range(1, (m + 1) // 2 + (1 if m % 2 == 0 else 0)):
        pair = [s] if s == m - s else [s, m - s]
        count = sum(comb(m, t) for t in pair)
        pair_mass = sum(mass[t] for t in pair)
        left_after = remaining_budget - count
        covers = remaining_budget * pair_mass / remaining_mass >= count
        if not covers or left_after < 2 * _MIN_PAIRS:
            break
        chosen.extend(pair)
        remaining_budget = left_after
        remaining_mass -= pair_mass
    return chosen
