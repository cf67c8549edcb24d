"""The models the test suite serves from MLServer, and brute-force ground truth."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression

from explainer.demo import FEATURES, credit_model


@dataclass(frozen=True)
class ServedModel:
    name: str
    model: Any
    train: np.ndarray
    test: np.ndarray
    # model-settings.json metadata: MLServer lists it at GET /v2/models/<name>.
    metadata: dict[str, Any] = field(default_factory=dict)
    feature_names: list[str] | None = None

    def scores(self, rows: np.ndarray) -> np.ndarray:
        if hasattr(self.model, "predict_proba"):
            return self.model.predict_proba(rows)
        return self.model.predict(rows).reshape(-1, 1)


def credit() -> ServedModel:
    built = credit_model()
    return ServedModel(
        "credit",
        built.model,
        built.train,
        built.test,
        metadata={
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 5]}],
            "outputs": [{"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]}],
        },
        feature_names=FEATURES,
    )


def credit_named() -> ServedModel:
    """The credit-score model fitted on a table with named columns; its metadata declares
    one input tensor per feature and a single one-column output, ``predict``."""
    import pandas as pd

    built = credit_model()
    model = type(built.model)().fit(
        pd.DataFrame(built.train, columns=FEATURES), built.model.predict(built.train)
    )
    return ServedModel(
        "credit-named",
        model,
        built.train,
        built.test,
        metadata={
            "inputs": [{"name": n, "datatype": "FP64", "shape": [-1, 1]} for n in FEATURES],
            "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}],
        },
    )


def forest20() -> ServedModel:
    """A 20-feature random forest; metadata names the input but no outputs, so the
    explainer has to find out that it offers probabilities."""
    x, y = make_classification(
        n_samples=2000, n_features=20, n_informative=6, n_redundant=2, random_state=7
    )
    model = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0).fit(
        x[:1500], y[:1500]
    )
    return ServedModel(
        "forest20",
        model,
        x[:1500],
        x[1500:],
        metadata={"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 20]}]},
    )


def linear20() -> ServedModel:
    """Linear regression on correlated features; no metadata at all."""
    rng = np.random.default_rng(3)
    cov = 0.5 * np.ones((20, 20)) + 0.5 * np.eye(20)
    x = rng.multivariate_normal(np.zeros(20), cov, size=1000)
    weights = np.linspace(-2.0, 3.0, 20)
    y = x @ weights + 0.5 + rng.normal(scale=0.1, size=1000)
    return ServedModel("linear20", LinearRegression().fit(x, y), x[:800], x[800:])


def brute_force_shapley(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, background: np.ndarray
) -> np.ndarray:
    """Exact interventional Shapley values (K, M) over an equally weighted background,
    from the definition: every coalition, every background row."""
    m = x.shape[0]
    values: dict[tuple[int, ...], np.ndarray] = {}
    for size in range(m + 1):
        for subset in itertools.combinations(range(m), size):
            rows = background.copy()
            rows[:, list(subset)] = x[list(subset)]
            values[subset] = f(rows).mean(axis=0)
    k = values[()].shape[0]
    phi = np.zeros((k, m))
    for i in range(m):
        others = [j for j in range(m) if j != i]
        for size in range(m):
            weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
            for subset in itertools.combinations(others, size):
                with_i = tuple(sorted(subset + (i,)))
                phi[:, i] += weight * (values[with_i] - values[subset])
    return phi
