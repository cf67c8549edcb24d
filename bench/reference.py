"""This project against the pipeline a user would write today, on one predictor.

    make bench-reference    # writes bench/results/reference.md and reference.json

Same machine, same MLServer on loopback, a 20-feature random forest and a 20-feature
logistic regression, 50-row background, one row per explanation:

1. this project over HTTP, SHAP and ALL;
2. the reference pipeline: lime's LimeTabularExplainer (5000 samples) and shap's
   KernelExplainer (nsamples 2·M + 2048, l1_reg=False), each with a predict_fn posting its
   batch to the predictor (requests + orjson);
3. the TrustyAI call pattern: one predictor call per SHAP coalition;

with the accuracy of the SHAP scores against a 100×-budget permutation estimate, so that
no speed is bought with error.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import requests
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from bench.accuracy import truth
from bench.common import start_explainer
from explainers.kernel_shap import default_budget
from tests.mlserver import running_mlserver, wait_ok, write_csv
from tests.models import ServedModel, forest20

RESULTS = Path(__file__).resolve().parent / "results"
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
M = 20


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


class RemoteModel:
    """predict_fn for lime and shap: posts the whole batch to the predictor."""

    def __init__(self, url: str, name: str) -> None:
        self.url = f"{url}/v2/models/{name}/infer"
        self.session = requests.Session()
        self.calls = self.rows = 0

    def __call__(self, rows: np.ndarray) -> np.ndarray:
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
            self.url, data=body, headers={"Content-Type": "application/json"}, timeout=600
        )
        response.raise_for_status()
        self.calls += 1
        self.rows += len(rows)
        return np.asarray(orjson.loads(response.content)["outputs"][0]["data"]).reshape(
            len(rows), -1
        )


def median_time(work: Any, repeats: int = REPEATS) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def measure(model: ServedModel, url: str, background: Path) -> dict[str, Any]:
    import shap
    from lime.lime_tabular import LimeTabularExplainer

    x = model.test[0]
    bg = model.train[:50]
    budget = default_budget(M)
    out: dict[str, Any] = {"model": model.name, "rows_shap": 1 + 50 + budget * 50}
    exact, se = truth.permutation(
        lambda r: model.model.predict_proba(r)[:, 1:], x, bg, 100 * budget, seed=0
    )
    out["truth_se"] = float(se.max())

    for kind in ("SHAP", "ALL"):
        process, base = start_explainer(url.removeprefix("http://"), background, kind, model.name)
        try:
            wait_ok(f"{base}/v2/health/ready", process)
            session = requests.Session()
            body = orjson.dumps({"instances": [x.tolist()]})

            def ours(session: Any = session, base: str = base, body: bytes = body) -> Any:
                response = session.post(
                    f"{base}/v1/models/{model.name}:explain", data=body, timeout=600
                )
                response.raise_for_status()
                return response.json()

            seconds, answer = median_time(ours)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        out[f"ours_{kind}_s"] = seconds
        if kind == "SHAP":
            items = {i["name"]: i["score"] for i in answer["SHAP"]["saliencies"]["outputs-1"]}
            ours_phi = np.array([items[f"inputs-{j}"] for j in range(M)])
            out["ours_error"] = float(np.linalg.norm(ours_phi - exact) / np.linalg.norm(exact))

    remote = RemoteModel(url, model.name)
    explainer = shap.KernelExplainer(lambda r: remote(r)[:, 1], bg, silent=True)

    def reference_shap() -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(
                explainer.shap_values(x[None, :], nsamples=budget, l1_reg=False, silent=True)
            )[0]

    np.random.seed(0)
    out["shap_s"], theirs = median_time(reference_shap)
    out["shap_error"] = float(np.linalg.norm(theirs - exact) / np.linalg.norm(exact))
    lime_explainer = LimeTabularExplainer(model.train, mode="classification", random_state=0)

    def reference_lime() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return lime_explainer.explain_instance(x, remote, num_features=M, num_samples=5000)

    out["lime_s"], _ = median_time(reference_lime)
    out["reference_ALL_s"] = out["shap_s"] + out["lime_s"]

    # TrustyAI's pattern: every coalition is its own predictor call (its 50 masked rows).
    masks = np.random.default_rng(0).random((budget, M)) < 0.5
    start = time.perf_counter()
    for mask in masks:
        remote(np.where(mask, x, bg))
    out["per_coalition_calls_s"] = time.perf_counter() - start
    return out


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = {m.name: m for m in (forest20(), logistic20())}
        backgrounds = {}
        for name, served in models.items():
            backgrounds[name] = Path(tmp) / f"{name}.csv"
            write_csv(backgrounds[name], served.train[:50], None)
        with running_mlserver(models, Path(tmp) / "mlserver") as address:
            for name, served in models.items():
                rows.append(measure(served, address.url, backgrounds[name]))
                print(json.dumps(rows[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reference.json").write_text(json.dumps(rows, indent=2))
    lines = [
        f"One row, 50-row background, MLServer 1.7.1 REST on loopback, 2 cores; medians of {REPEATS}. "
        "Accuracy: relative L2 error of the SHAP scores (positive class) against a 100×-budget "
        "permutation estimate (its standard error in the last column).",
        "",
        "| model | ours SHAP s | shap KernelExplainer s | speed-up | ours ALL s | lime + shap s | speed-up | "
        "one call per coalition s | SHAP error ours | SHAP error shap | truth s.e. |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['ours_SHAP_s']:.2f} | {r['shap_s']:.2f} | {r['shap_s'] / r['ours_SHAP_s']:.1f}× | "
            f"{r['ours_ALL_s']:.2f} | {r['reference_ALL_s']:.2f} | {r['reference_ALL_s'] / r['ours_ALL_s']:.1f}× | "
            f"{r['per_coalition_calls_s']:.1f} | {r['ours_error']:.4f} | {r['shap_error']:.4f} | {r['truth_se']:.1e} |"
        )
    text = "\n".join(lines) + "\n"
    (RESULTS / "reference.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
