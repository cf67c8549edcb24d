"""``make bench``: this project against the pipeline a user would write today and against
the physical limit, in one run, on one machine, against one MLServer on loopback.

    make bench    # writes bench/results/perf.md and perf.json

For a 20-feature random forest and a 20-feature logistic regression (50-row background):

1. this project over HTTP — LIME, SHAP and ALL — with the predictor over v2 REST (JSON)
   and over v2 gRPC (raw tensor contents), at the default budgets (the reference's
   rows) and at the budgets that match the reference's accuracy (``calibrate``);
2. the reference pipeline: lime's LimeTabularExplainer (5000 samples) and shap's
   KernelExplainer (nsamples 2·M + 2048, l1_reg=False), each with a predict_fn posting
   its batch to the predictor (requests + orjson);
3. the predictor alone scoring exactly the rows this project sent, split and encoded as
   it sends them (the limit), with the bytes on the wire;
4. the TrustyAI call pattern: one predictor call per SHAP coalition;
5. throughput with 16 concurrent clients against the predictor's own rows/s, and the
   explainer's memory over that run; cross-request coalescing on and off at 16 clients.

Each explainer is a fresh process: its first request (the first after start) is timed
apart from the median of the next ``BENCH_REPEATS``.
"""

from __future__ import annotations

import asyncio
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

from bench.common import rss_bytes
from bench.perf import calibrate, clients
from bench.perf.models import RemoteModel, background, models
from explainers.kernel_shap import default_budget
from tests.mlserver import Addresses, running_mlserver, start_explainer, wait_ok, write_csv
from tests.models import ServedModel

RESULTS = Path(__file__).resolve().parents[1] / "results"
REPEATS = int(os.environ.get("BENCH_REPEATS", "15"))
REFERENCE_REPEATS = int(os.environ.get("BENCH_REFERENCE_REPEATS", "5"))
THROUGHPUT_SECONDS = float(os.environ.get("BENCH_THROUGHPUT_SECONDS", "60"))
COALESCE_SECONDS = float(os.environ.get("BENCH_COALESCE_SECONDS", "20"))
CLIENTS = 16
LIME_DEFAULT = 5000

# (transport, mode, budgets): "default" is the reference's budget, "equal" its accuracy.
CONFIGS = [
    ("v2", "LIME", "default"),
    ("v2", "SHAP", "default"),
    ("v2", "ALL", "default"),
    ("grpc-v2", "SHAP", "default"),
    ("grpc-v2", "ALL", "default"),
    ("v2", "SHAP", "equal"),
    ("v2", "ALL", "equal"),
    ("grpc-v2", "SHAP", "equal"),
    ("grpc-v2", "ALL", "equal"),
]


def explainer_flags(
    csv: Path, transport: str, mode: str, lime_samples: int, shap_samples: int, *extra: str
) -> list[str]:
    flags = ["--explainer_type", mode, "--background_data", str(csv)]
    flags += ["--predictor_protocol", transport, "--max_in_flight", str(CLIENTS)]
    if mode != "SHAP":
        flags += ["--lime_samples", str(lime_samples)]
    if mode != "LIME":
        flags += ["--shap_samples", str(shap_samples)]
    return flags + list(extra)


class Explainer:
    """``explainer serve`` in its own process, for the length of a ``with``."""

    def __init__(self, model: str, predictor: str, flags: list[str]) -> None:
        self.process, self.base = start_explainer(model, predictor, *flags)
        self.url = f"{self.base}/v1/models/{model}:explain"

    def __enter__(self) -> Explainer:
        wait_ok(f"{self.base}/v2/health/ready", self.process, seconds=120)
        return self

    def __exit__(self, *_: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def predictor_address(addresses: Addresses, transport: str) -> str:
    return addresses.grpc if transport == "grpc-v2" else addresses.url.removeprefix("http://")


def measure_model(
    model: ServedModel, addresses: Addresses, csv: Path, calibrated: dict[str, Any]
) -> list[dict[str, Any]]:
    bg = background(model)
    m = bg.shape[1]
    instances = [row.tolist() for row in model.test[:100]]
    x = np.asarray(instances[0])
    rows_out = []
    for transport, mode, budgets in CONFIGS:
        if budgets == "equal":
            lime_samples = calibrated["lime"]["equal_samples"]
            shap_samples = calibrated["shap"]["equal_budget"]
        else:
            lime_samples, shap_samples = LIME_DEFAULT, default_budget(m)
        flags = explainer_flags(csv, transport, mode, lime_samples, shap_samples)
        with Explainer(model.name, predictor_address(addresses, transport), flags) as served:
            run = asyncio.run(clients.sequential(served.url, instances, REPEATS))
        sent = clients.explanation_rows(x, bg, mode, lime_samples, shap_samples)
        address = addresses.grpc if transport == "grpc-v2" else addresses.url
        alone = asyncio.run(clients.predictor_alone(transport, address, model.name, sent, REPEATS))
        row = {
            "model": model.name,
            "transport": transport,
            "mode": mode,
            "budgets": budgets,
            "lime_samples": lime_samples if mode != "SHAP" else None,
            "shap_samples": shap_samples if mode != "LIME" else None,
            "rows": int(sent.shape[0]),
            "wire_mb": alone.bytes_on_wire / 1e6,
            "first_s": run.first,
            "median_s": run.median,
            "p95_s": clients.percentile(run.times, 95),
            "alone_s": alone.median,
        }
        print(json.dumps(row), flush=True)
        rows_out.append(row)
    return rows_out


def median_time(work: Any) -> float:
    times = []
    for _ in range(REFERENCE_REPEATS):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reference_pipeline(model: ServedModel, remote: RemoteModel) -> dict[str, float]:
    """shap's KernelExplainer then lime's LimeTabularExplainer, both scoring through
    ``remote``: median seconds, and rows and MB on the wire per explanation."""
    import shap
    from lime.lime_tabular import LimeTabularExplainer

    bg = background(model)
    m = bg.shape[1]
    x = model.test[0]
    explainer = shap.KernelExplainer(remote, bg, silent=True)
    lime_explainer = LimeTabularExplainer(bg, mode="classification", random_state=0)
    out: dict[str, float] = {}
    np.random.seed(0)
    for kind, work in (
        (
            "shap",
            lambda: explainer.shap_values(
                x[None, :], nsamples=default_budget(m), l1_reg=False, silent=True
            ),
        ),
        (
            "lime",
            lambda: lime_explainer.explain_instance(
                x, remote.proba, num_features=m, num_samples=LIME_DEFAULT
            ),
        ),
    ):
        remote.rows = remote.bytes = 0
        out[f"{kind}_s"] = median_time(work)
        out[f"{kind}_rows"] = remote.rows // REFERENCE_REPEATS
        out[f"{kind}_wire_mb"] = remote.bytes / REFERENCE_REPEATS / 1e6
    return out


def measure_reference(model: ServedModel, url: str) -> dict[str, Any]:
    tuned = RemoteModel(url, model.name)
    out: dict[str, Any] = {"model": model.name, **reference_pipeline(model, tuned)}
    # The same pipeline with requests' default Accept-Encoding: gzipped answers.
    gzipped = reference_pipeline(model, RemoteModel(url, model.name, identity=False))
    out["all_s"] = out["shap_s"] + out["lime_s"]
    out["shap_gzip_s"] = gzipped["shap_s"]
    out["all_gzip_s"] = gzipped["shap_s"] + gzipped["lime_s"]
    # TrustyAI's pattern: every coalition is its own predictor call (its 50 masked rows).
    bg, x = background(model), model.test[0]
    masks = np.random.default_rng(0).random((default_budget(bg.shape[1]), bg.shape[1])) < 0.5
    start = time.perf_counter()
    for mask in masks:
        tuned(np.where(mask, x, bg))
    out["per_coalition_s"] = time.perf_counter() - start
    return out


def measure_throughput(model: ServedModel, addresses: Addresses, csv: Path) -> dict[str, Any]:
    """16 clients for THROUGHPUT_SECONDS against SHAP at the default budget (v2 REST),
    beside the predictor's own rows/s for the same rows through the same transport."""
    bg = background(model)
    m = bg.shape[1]
    instances = [row.tolist() for row in model.test[:100]]
    flags = explainer_flags(csv, "v2", "SHAP", LIME_DEFAULT, default_budget(m))
    sent = clients.explanation_rows(np.asarray(instances[0]), bg, "SHAP", 0, default_budget(m))
    with Explainer(model.name, predictor_address(addresses, "v2"), flags) as served:
        asyncio.run(clients.sequential(served.url, instances, 2))  # warm
        rss_before = rss_bytes(served.process.pid) / 1024**2
        load = asyncio.run(clients.load(served.url, instances, CLIENTS, THROUGHPUT_SECONDS))
        rss_after = rss_bytes(served.process.pid) / 1024**2
    limit = asyncio.run(
        clients.predictor_rows_per_second(
            "v2", addresses.url, model.name, sent, CLIENTS, THROUGHPUT_SECONDS / 3
        )
    )
    return {
        "model": model.name,
        "mode": "SHAP",
        "clients": CLIENTS,
        "seconds": load.seconds,
        "explanations": load.explanations,
        "errors": load.errors,
        "per_second": load.per_second,
        "p50_s": statistics.median(load.latencies),
        "p99_s": clients.percentile(load.latencies, 99),
        "predictor_rows_per_second": limit,
        "rows_per_explanation": int(sent.shape[0]),
        "limit_per_second": limit / sent.shape[0],
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
    }


def measure_coalescing(model: ServedModel, addresses: Addresses, csv: Path) -> dict[str, Any]:
    """LIME (5000 rows per explanation) at 16 clients, coalescing on and off."""
    instances = [row.tolist() for row in model.test[:100]]
    out: dict[str, Any] = {"model": model.name, "mode": "LIME", "clients": CLIENTS}
    for coalesce in ("true", "false"):
        flags = explainer_flags(
            csv, "v2", "LIME", LIME_DEFAULT, 0, "--predictor_coalesce", coalesce
        )
        with Explainer(model.name, predictor_address(addresses, "v2"), flags) as served:
            asyncio.run(clients.sequential(served.url, instances, 2))
            load = asyncio.run(clients.load(served.url, instances, CLIENTS, COALESCE_SECONDS))
        key = "on" if coalesce == "true" else "off"
        out[f"{key}_per_second"] = load.per_second
        out[f"{key}_p50_s"] = statistics.median(load.latencies)
        out[f"{key}_errors"] = load.errors
    out["gain"] = out["on_per_second"] / out["off_per_second"]
    return out


def main() -> int:
    served = models()
    result: dict[str, Any] = {"calibration": {}, "explainer": [], "reference": []}
    for name, model in served.items():
        bg = background(model)
        result["calibration"][name] = {
            "shap": calibrate.shap_budget(model.model.predict_proba, bg, model.test),
            "lime": calibrate.lime_samples(model.model.predict_proba, bg, model.test[0]),
        }
        print(name, json.dumps(result["calibration"][name]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        csvs = {}
        for name, model in served.items():
            csvs[name] = Path(tmp) / f"{name}.csv"
            write_csv(csvs[name], background(model), None)
        with running_mlserver(served, Path(tmp) / "mlserver") as addresses:
            for name, model in served.items():
                result["explainer"] += measure_model(
                    model, addresses, csvs[name], result["calibration"][name]
                )
                result["reference"].append(measure_reference(model, addresses.url))
                print(json.dumps(result["reference"][-1]), flush=True)
            result["throughput"] = measure_throughput(
                served["forest20"], addresses, csvs["forest20"]
            )
            print(json.dumps(result["throughput"]), flush=True)
            result["coalescing"] = measure_coalescing(
                served["logistic20"], addresses, csvs["logistic20"]
            )
            print(json.dumps(result["coalescing"]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "perf.json").write_text(json.dumps(result, indent=2))
    from bench.perf.report import render

    text = render(result, REPEATS, REFERENCE_REPEATS)
    (RESULTS / "perf.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
