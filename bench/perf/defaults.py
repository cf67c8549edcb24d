"""Speed at the defaults, as a new user meets it (issue 15): ``python -m bench.perf.defaults``
(also the last part of ``make bench``) writes bench/results/defaults.md and .json.

A model the suite was not tuned on, a 1000-row background (``BACKGROUND_DATA``, nothing
else set), MLServer on loopback:

* this project: ``explainer serve --background_data <csv>`` and the explainer type,
  over the default v2 REST and over gRPC;
* the reference as users write it: shap's ``KernelExplainer(predict_proba,
  shap.kmeans(background, 50))`` with ``nsamples="auto"``, then lime's
  ``LimeTabularExplainer(background)`` at 5000 samples, both posting their batches to
  the same MLServer (requests + orjson) — with a client that refuses gzip, and as
  written (requests asks for gzip, and MLServer gzips at level 9).

Two models: a compute-bound one (histogram gradient boosting, 3 classes, M = 12: each
row costs the predictor tens of microseconds) and a cheap one (logistic regression,
M = 20). Accuracy at the same defaults is bench/accuracy/unseen.py's.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier

from bench.common import publish
from bench.perf import clients
from bench.perf.__main__ import Explainer, predictor_address
from bench.perf.models import RemoteModel, logistic20
from tests.mlserver import Addresses, running_mlserver, write_csv
from tests.models import ServedModel

RESULTS = Path(__file__).resolve().parents[1] / "results"
BACKGROUND_ROWS = 1000
REPEATS = 7
REFERENCE_REPEATS = 3
LIME_SAMPLES = 5000  # lime's default num_samples


def histgbm12() -> ServedModel:
    x, y = make_classification(
        n_samples=3000, n_features=12, n_informative=7, n_classes=3, random_state=21
    )
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x[:2000], y[:2000])
    return ServedModel(
        "histgbm12",
        model,
        x[:2000],
        x[2000:],
        metadata={"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 12]}]},
    )


def reference(model: ServedModel, remote: RemoteModel, kind: str) -> float:
    """Median seconds of shap (as written) or shap then lime, scoring through ``remote``."""
    import shap
    from lime.lime_tabular import LimeTabularExplainer

    background = model.train[:BACKGROUND_ROWS]
    x = model.test[0]
    times = []
    for repeat in range(REFERENCE_REPEATS):
        np.random.seed(repeat)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explainer = shap.KernelExplainer(remote.proba, shap.kmeans(background, 50))
            explainer.shap_values(x[None, :], nsamples="auto", silent=True)
            if kind == "ALL":
                LimeTabularExplainer(background, mode="classification").explain_instance(
                    x, remote.proba, num_features=x.shape[0], num_samples=LIME_SAMPLES
                )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ours(model: ServedModel, addresses: Addresses, csv: Path, transport: str, kind: str) -> Any:
    flags = ["--background_data", str(csv), "--explainer_type", kind]
    flags += ["--predictor_protocol", transport]
    instances = [row.tolist() for row in model.test[:50]]
    with Explainer(model.name, predictor_address(addresses, transport), flags) as served:
        return asyncio.run(clients.sequential(served.url, instances, REPEATS))


def measure(model: ServedModel, addresses: Addresses, csv: Path) -> list[dict[str, Any]]:
    tuned = RemoteModel(addresses.url, model.name)
    gzipped = RemoteModel(addresses.url, model.name, identity=False)
    out = []
    for kind in ("SHAP", "ALL"):
        tuned.rows = 0
        refused = reference(model, tuned, kind)
        reference_rows = tuned.rows // REFERENCE_REPEATS
        as_written = reference(model, gzipped, kind)
        for transport in ("v2", "grpc-v2"):
            run = ours(model, addresses, csv, transport, kind)
            row = {
                "model": model.name,
                "mode": kind,
                "transport": transport,
                "median_s": run.median,
                "reference_s": refused,
                "reference_gzip_s": as_written,
                "reference_rows": reference_rows,
                "speedup": refused / run.median,
                "speedup_gzip": as_written / run.median,
            }
            print(json.dumps(row), file=sys.stderr, flush=True)
            out.append(row)
    return out


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "# Speed at the defaults (`python -m bench.perf.defaults`)",
        "",
        f"A {BACKGROUND_ROWS}-row background and nothing else set; median of {REPEATS}",
        "explanations (this project, after its first) and of",
        f"{REFERENCE_REPEATS} (the reference: shap's KernelExplainer over",
        '`shap.kmeans(background, 50)` with `nsamples="auto"`, then lime at 5000 samples for',
        "ALL, posting to the same MLServer). Speed-up: the reference's time ÷ this",
        "project's, with a client that refuses gzip and as written (gzip).",
        "",
        "| model | mode | predictor protocol | ours | reference (no gzip / gzip) | "
        "speed-up (no gzip / gzip) | reference rows |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['mode']} | {r['transport']} | {r['median_s'] * 1000:.0f} ms | "
            f"{r['reference_s'] * 1000:.0f} / {r['reference_gzip_s'] * 1000:.0f} ms | "
            f"**{r['speedup']:.1f}×** / {r['speedup_gzip']:.1f}× | {r['reference_rows']:,} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    served = {m.name: m for m in (histgbm12(), logistic20())}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        csvs = {}
        for name, model in served.items():
            csvs[name] = Path(tmp) / f"{name}.csv"
            write_csv(csvs[name], model.train[:BACKGROUND_ROWS], None)
        with running_mlserver(served, Path(tmp) / "mlserver") as addresses:
            for name, model in served.items():
                rows += measure(model, addresses, csvs[name])
    publish(RESULTS, "defaults", rows, render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
