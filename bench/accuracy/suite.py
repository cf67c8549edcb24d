"""The accuracy suite: models and data, at M = 5, 12, 20 and 50 features, with
independent or correlated features.

The target mixes linear terms, pairwise products and a few third-order terms, so the
suite has models whose Shapley values are easy (linear), exactly recoverable by paired
sampling (pairwise interactions) and genuinely hard (boosted trees, forests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures

from bench.common import correlated_normal

SIZES = (5, 12, 20, 50)
MODELS = ("linear", "pairwise", "boosting", "forest")
BACKGROUND_ROWS = 20
INSTANCES = 3


@dataclass(frozen=True)
class Case:
    model_name: str
    m: int
    correlated: bool
    predict: Callable[[np.ndarray], np.ndarray]  # rows (n, M) → scores (n, 1)
    train: np.ndarray
    background: np.ndarray  # (BACKGROUND_ROWS, M), equally weighted
    instances: np.ndarray  # (INSTANCES, M)

    @property
    def name(self) -> str:
        return f"{self.model_name}-M{self.m}-{'corr' if self.correlated else 'indep'}"


def data(m: int, correlated: bool, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = correlated_normal(rng, m, 0.5 if correlated else 0.0, n)
    weights = 1.0 / (1.0 + np.arange(m))  # decaying importance: rankings mean something
    y = x @ weights
    pairs = [(i, (i + 1) % m) for i in range(0, m, 2)]
    y += sum(0.5 * x[:, i] * x[:, j] for i, j in pairs)
    triples = [(0, 1, 2), (1, 3, 4 % m), (2, m - 1, m // 2)]
    y += sum(np.tanh(x[:, a] * x[:, b] * x[:, c]) for a, b, c in triples)
    return x, y + rng.normal(scale=0.1, size=n)


def build(model_name: str, m: int, correlated: bool) -> Case:
    seed = 1000 * m + (1 if correlated else 0) + 10 * MODELS.index(model_name)
    x, y = data(m, correlated, 3000, seed)
    if model_name == "linear":
        model = Ridge(alpha=1.0)
    elif model_name == "pairwise":
        model = make_pipeline(PolynomialFeatures(2, interaction_only=True), Ridge(alpha=1.0))
    elif model_name == "boosting":
        model = HistGradientBoostingRegressor(max_iter=100, random_state=seed)
    else:
        model = RandomForestRegressor(n_estimators=30, max_depth=8, random_state=seed, n_jobs=1)
    model.fit(x[:2500], y[:2500])

    def predict(rows: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(rows), dtype=np.float64).reshape(-1, 1)

    return Case(
        model_name,
        m,
        correlated,
        predict,
        x[:2500],
        x[2500 : 2500 + BACKGROUND_ROWS],
        x[2600 : 2600 + INSTANCES],
    )


def cases() -> list[Case]:
    return [build(name, m, corr) for m in SIZES for name in MODELS for corr in (False, True)]
