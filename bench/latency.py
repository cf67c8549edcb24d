"""Median ``:explain`` latency on the 20-feature random forest, over HTTP, against a real
MLServer on loopback — and the predictor alone scoring the same number of rows.

    make bench-latency    # writes bench/results/latency.md and latency.json
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
import requests

from bench.common import start_explainer
from tests.mlserver import running_mlserver, wait_ok, write_csv
from tests.models import forest20

REPEATS = int(os.environ.get("BENCH_REPEATS", "15"))
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    model = forest20()
    with tempfile.TemporaryDirectory() as tmp:
        background = Path(tmp) / "background.csv"
        write_csv(background, model.train[:50], None)
        with running_mlserver({"forest20": model}, Path(tmp) / "mlserver") as address:
            url = address.url
            rows = []
            for kind in ("LIME", "SHAP", "ALL"):
                rows.append(measure(kind, url, background, model.test))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latency.json").write_text(json.dumps(rows, indent=2))
    table = [
        "| mode | predictor rows | :explain median ms | p95 ms "
        "| predictor alone median ms | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        table.append(
            f"| {r['mode']} | {r['rows']} | {r['median_ms']:.0f} | {r['p95_ms']:.0f} | "
            f"{r['predictor_median_ms']:.0f} | {r['median_ms'] / r['predictor_median_ms']:.2f} |"
        )
    text = "\n".join(table) + "\n"
    (RESULTS / "latency.md").write_text(
        f"20-feature random forest (100 trees), 50-row background, MLServer 1.7.1 REST on "
        f"loopback, {REPEATS} explanations per mode, one row each.\n\n{text}"
    )
    print(text)
    return 0


def measure(kind: str, predictor: str, background: Path, test: np.ndarray) -> dict[str, float]:
    process, base = start_explainer(predictor, background, kind)
    url = base
    try:
        wait_ok(f"{url}/v2/health/ready", process)
        session = requests.Session()
        times, sent = [], 0
        for i in range(REPEATS + 2):
            body = orjson.dumps({"instances": [test[i].tolist()]})
            start = time.perf_counter()
            response = session.post(f"{url}/v1/models/forest20:explain", data=body, timeout=120)
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            if i >= 2:  # the first two warm the predictor's caches
                times.append(elapsed)
        sent = rows_sent(kind, test.shape[1])
        alone = predictor_alone(session, predictor, sent, test.shape[1])
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    return {
        "mode": kind,
        "rows": sent,
        "median_ms": 1000 * statistics.median(times),
        "p95_ms": 1000 * float(np.percentile(times, 95)),
        "predictor_median_ms": 1000 * statistics.median(alone),
    }


def rows_sent(kind: str, m: int) -> int:
    lime = 5000 if kind in ("LIME", "ALL") else 0
    shap = 1 + 50 + (2 * m + 2048) * 50 if kind in ("SHAP", "ALL") else 0
    return lime + shap


def predictor_alone(session: requests.Session, url: str, n: int, m: int) -> list[float]:
    """The predictor scoring n rows in one v2 REST call, encoded the same way."""
    rows = np.random.default_rng(0).normal(size=(n, m))
    body = orjson.dumps(
        {
            "inputs": [
                {"name": "input-0", "shape": [n, m], "datatype": "FP64", "data": rows.reshape(-1)}
            ],
            "outputs": [{"name": "predict_proba"}],
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    times = []
    for _ in range(5):
        start = time.perf_counter()
        response = session.post(
            f"{url}/v2/models/forest20/infer",
            data=body,
            headers={"Content-Type": "application/json", "Accept-Encoding": "identity"},
            timeout=120,
        )
        response.raise_for_status()
        np.asarray(orjson.loads(response.content)["outputs"][0]["data"])
        times.append(time.perf_counter() - start)
    return times


if __name__ == "__main__":
    raise SystemExit(main())
