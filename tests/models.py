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

    @property
    def artifact(self) -> Any:
        """What the model server loads: the fitted estimator itself."""
        return getattr(self.model, "pipeline", self.model)

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


APPLICANT_FEATURES = [
    "employment",
    "dependants",
    "owns_home",
    "years_at_address",
    "income",
    "region",
]
APPLICANT_TYPES = {
    "employment": "BYTES",
    "dependants": "INT64",
    "owns_home": "BOOL",
    "years_at_address": "INT64",
    "income": "FP64",
    "region": "BYTES",
}


def applicant_frame(rows: np.ndarray) -> Any:
    """Rows of the applicants' values (an object array) as the DataFrame the model takes."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=APPLICANT_FEATURES)
    return frame.astype(
        {
            "dependants": "int64",
            "owns_home": "bool",
            "years_at_address": "int64",
            "income": "float64",
        }
    )


@dataclass(frozen=True)
class ApplicantModel:
    """A pipeline that one-hot encodes the categories (refusing any it was not fitted on)
    in front of a booster, called on rows of values as a DataFrame."""

    pipeline: Any

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(applicant_frame(rows)))


def applicants() -> ServedModel:
    """Mixed-type credit applications: text, integer, boolean and continuous columns.
    MLServer serves the scikit-learn pipeline on a DataFrame, one input tensor per column
    in its own datatype (strings as BYTES decoded to str)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(21)
    n = 1500
    rows = np.empty((n, 6), dtype=object)
    employment = rng.choice(
        ["salaried", "self-employed", "contract", "none"], n, p=[0.5, 0.2, 0.2, 0.1]
    )
    dependants = rng.integers(0, 5, n)
    owns_home = rng.random(n) < 0.4
    years = rng.integers(0, 30, n)
    income = np.round(rng.lognormal(10.5, 0.5, n), 2)
    region = rng.choice(["north", "south", "east"], n)
    logit = (
        1.2 * (employment == "salaried")
        - 1.5 * (employment == "none")
        + 0.8 * owns_home * (region == "south")
        - 0.3 * dependants
        + 0.05 * years
        + 1.0 * (np.log(income) - 10.5)
    )
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    for j, column in enumerate([employment, dependants, owns_home, years, income, region]):
        rows[:, j] = column.tolist()
    categories = ["employment", "owns_home", "region"]
    pipeline = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [("categories", OneHotEncoder(handle_unknown="error"), categories)],
                    remainder="passthrough",
                ),
            ),
            ("boost", HistGradientBoostingClassifier(max_iter=60, random_state=0)),
        ]
    ).fit(applicant_frame(rows[:1200]), y[:1200])
    inputs = []
    for name in APPLICANT_FEATURES:
        tensor: dict[str, Any] = {"name": name, "datatype": APPLICANT_TYPES[name], "shape": [-1, 1]}
        if APPLICANT_TYPES[name] == "BYTES":
            tensor["parameters"] = {"content_type": "str"}
        inputs.append(tensor)
    return ServedModel(
        "applicants",
        ApplicantModel(pipeline),
        rows[:1200],
        rows[1200:],
        metadata={
            "inputs": inputs,
            "outputs": [{"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]}],
        },
        feature_names=APPLICANT_FEATURES,
    )


@dataclass(frozen=True)
class ArrayApplicantModel:
    """The applicants' pipeline as kserve-sklearnserver calls it over v1: on
    ``np.array(instances)``, which makes every value of a mixed row its text."""

    pipeline: Any

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(np.array(np.asarray(rows).tolist())))


def applicants_v1() -> ServedModel:
    """The applicants, for KServe's sklearn server over v1: the same data, a pipeline that
    takes the columns by position, as text."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    served = applicants()
    labels = served.model.pipeline.predict(applicant_frame(served.train))
    pipeline = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [
                        ("categories", OneHotEncoder(handle_unknown="error"), [0, 2, 5]),
                        ("numbers", StandardScaler(), [1, 3, 4]),
                    ]
                ),
            ),
            ("boost", HistGradientBoostingClassifier(max_iter=60, random_state=0)),
        ]
    ).fit(np.array(served.train.tolist()), labels)
    return ServedModel(
        "applicants",
        ArrayApplicantModel(pipeline),
        served.train,
        served.test,
        feature_names=APPLICANT_FEATURES,
    )


REVIEWS = [
    ("a truly wonderful film with a great cast", 1),
    ("not good at all and the plot was dull", 0),
    ("great acting but not a great story", 0),
    ("wonderful and moving, I loved it", 1),
    ("dull, slow and not worth the time", 0),
    ("the cast was great and the story moving", 1),
    ("not bad at all, actually quite good", 1),
    ("a bad film with bad acting", 0),
    ("I loved the story but the ending was bad", 1),
    ("slow, dull and bad", 0),
]


@dataclass(frozen=True)
class TextModel:
    """A text classifier called on an array of texts (what the explainer builds)."""

    pipeline: Any

    def predict_proba(self, texts: Any) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(list(texts)))


def reviews() -> ServedModel:
    """Sentiment of film reviews: TF-IDF over words and bigrams (so words interact) and a
    logistic regression, taking one BYTES tensor of texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    texts, labels = zip(*REVIEWS, strict=True)
    pipeline = Pipeline(
        [("tfidf", TfidfVectorizer(ngram_range=(1, 2))), ("lr", LogisticRegression(C=10))]
    ).fit(list(texts) * 3, list(labels) * 3)
    rows = np.empty(len(texts), dtype=object)
    rows[:] = list(texts)
    return served_texts("reviews", pipeline, rows)


def served_texts(name: str, pipeline: Any, rows: np.ndarray) -> ServedModel:
    """A scikit-learn text pipeline served on one BYTES tensor of strings (MLServer's
    ``str`` content type), answering both classes' probabilities."""
    return ServedModel(
        name,
        TextModel(pipeline),
        rows,
        rows,
        metadata={
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [-1],
                    "parameters": {"content_type": "str"},
                }
            ],
            "outputs": [{"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]}],
        },
    )


def enumerate_shapley(value: Callable[[list[int]], np.ndarray], m: int) -> np.ndarray:
    """Shapley values (K, M) of a set function (a sorted list of kept segments → K values)
    from the definition."""
    values = {
        subset: value(list(subset))
        for size in range(m + 1)
        for subset in itertools.combinations(range(m), size)
    }
    phi = np.zeros((values[()].shape[0], m))
    for i in range(m):
        others = [j for j in range(m) if j != i]
        for size in range(m):
            weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
            for subset in itertools.combinations(others, size):
                phi[:, i] += weight * (values[tuple(sorted(subset + (i,)))] - values[subset])
    return phi


def brute_force_shapley(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, background: np.ndarray
) -> np.ndarray:
    """Exact interventional Shapley values (K, M) over an equally weighted background,
    from the definition: every coalition, every background row."""

    def value(kept: list[int]) -> np.ndarray:
        rows = background.copy()
        rows[:, kept] = x[kept]
        return np.asarray(f(rows)).mean(axis=0)

    return enumerate_shapley(value, x.shape[0])
