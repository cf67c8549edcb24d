"""The two served models of ``make bench`` and what the reference pipeline calls them with."""

from __future__ import annotations

import numpy as np
import orjson
import requests
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from tests.models import ServedModel, forest20

M = 20
BACKGROUND_ROWS = 50


def logistic20() -> ServedModel:
    x, y = make_classification(n_samples=2000, n_features=M, n_informative=8, random_state=11)
    model = LogisticRegression(max_iter=1000).fit(x[:1500], y[:1500])
    return ServedModel(
        "logistic20",
        model,
        x[:1500],
        x[1500:],
        metadata={"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, M]}]},
    )


def models() -> dict[str, ServedModel]:
    return {m.name: m for m in (forest20(), logistic20())}


def background(model: ServedModel) -> np.ndarray:
    return model.train[:BACKGROUND_ROWS]


class RemoteModel:
    """The predict_fn a user would give lime and shap today: posts the whole batch to the
    predictor's v2 REST endpoint (requests + orjson) and returns the positive class."""

    def __init__(self, url: str, name: str, identity: bool = True) -> None:
        self.url = f"{url}/v2/models/{name}/infer"
        self.session = requests.Session()
        # requests asks for gzip by default, and MLServer gzips every answer at level 9;
        # identity is the tuned client, the default what a user gets without knowing.
        self.headers = {"Content-Type": "application/json"}
        if identity:
            self.headers["Accept-Encoding"] = "identity"
        self.calls = self.rows = self.bytes = 0

    def proba(self, rows: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(rows, dtype=np.float64)
        body = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": list(rows.shape),
                        "datatype": "FP64",
                        "data": rows.reshape(-1),
                    }
                ],
                "outputs": [{"name": "predict_proba"}],
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
        response = self.session.post(
            self.url,
            data=body,
            headers=self.headers,
            timeout=600,
        )
        response.raise_for_status()
        self.calls += 1
        self.rows += len(rows)
        self.bytes += len(body) + len(response.content)
        return np.asarray(orjson.loads(response.content)["outputs"][0]["data"]).reshape(
            len(rows), -1
        )

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        return self.proba(rows)[:, 1]
