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
   it sends them (the limit), with the bytes on the wire — each predictor-alone call
   right after an explanation, alternating, so that both meet the same machine;
4. the TrustyAI call pattern: one predictor call per SHAP coalition;
5. throughput with 16 concurrent clients against the predictor's own rows/s, and the
   explainer's memory sampled through that run; cross-request coalescing on and off at
   16 clients, for small and large requests.

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
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import rss_bytes, shap_auto
from bench.perf import calibrate, clients
from bench.perf.models import RemoteModel, background, models
from tests.mlserver import Addresses, running_mlserver, start_explainer, wait_ok, write_csv
from tests.models import ServedModel

RESULTS = Path(__file__).resolve().parents[1] / "results"
REPEATS = int(os.environ.get("BENCH_REPEATS", "25"))
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
    ("grpc-v2-fp32", "SHAP", "equal"),
    ("grpc-v2-fp32", "ALL", "equal"),
]
# "grpc-v2-fp32": gRPC with FP32 tensors (PREDICTOR_DATATYPE=FP32), half the bytes; a
# forest's probabilities are the same (its trees compare in float32), a logistic
# regression's move by ~1e-8, far below the sampling error.


def protocol(transport: str) -> str:
    return transport.removesuffix("-fp32")


def datatype(transport: str) -> str:
    return "FP32" if transport.endswith("-fp32") else "FP64"


def explainer_flags(
    csv: Path, transport: str, mode: str, lime_samples: int, shap_samples: int, *extra: str
) -> list[str]:
    flags = ["--explainer_type", mode, "--background_data", str(csv)]
    flags += ["--predictor_protocol", protocol(transport), "--max_in_flight", str(CLIENTS)]
    flags += ["--predictor_datatype", datatype(transport)]
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
    if protocol(transport) == "grpc-v2":
        return addresses.grpc
    return addresses.url.removeprefix("http://")


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
            lime_samples, shap_samples = LIME_DEFAULT, shap_auto(m)
        flags = explainer_flags(csv, transport, mode, lime_samples, shap_samples)
        sent = clients.explanation_rows(x, bg, mode, lime_samples, shap_samples)
        address = addresses.grpc if protocol(transport) == "grpc-v2" else addresses.url
        alone = clients.Alone(protocol(transport), address, model.name, sent, datatype(transport))

        async def interleaved(url: str, alone: clients.Alone = alone) -> clients.Sequential:
            async with alone:
                return await clients.sequential(url, instances, REPEATS, between=alone.once)

        with Explainer(model.name, predictor_address(addresses, transport), flags) as served:
            run = asyncio.run(interleaved(served.url))
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
                x[None, :], nsamples=shap_auto(m), l1_reg=False, silent=True
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
    masks = np.random.default_rng(0).random((shap_auto(bg.shape[1]), bg.shape[1])) < 0.5
    start = time.perf_counter()
    for mask in masks:
        tuned(np.where(mask, x, bg))
    out["per_coalition_s"] = time.perf_counter() - start
    return out


class RssSampler:
    """The explainer's resident memory once a second, in a thread, for the length of a
    ``with``: flat means the last samples sit where the load's first ones did."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        start = time.perf_counter()
        while not self._stop.wait(1.0):
            self.samples.append((time.perf_counter() - start, rss_bytes(self.pid) / 1024**2))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def at(self, share: float) -> float:
        """MiB at ``share`` of the run (mean of the samples in a 10% window around it)."""
        end = self.samples[-1][0]
        window = [mib for t, mib in self.samples if abs(t / end - share) <= 0.05]
        return statistics.mean(window or [self.samples[-1][1]])


def measure_throughput(model: ServedModel, addresses: Addresses, csv: Path) -> dict[str, Any]:
    """16 clients for THROUGHPUT_SECONDS against SHAP at the default budget (v2 REST),
    beside the predictor's own rows/s for the same rows through the same transport."""
    bg = background(model)
    m = bg.shape[1]
    instances = [row.tolist() for row in model.test[:100]]
    flags = explainer_flags(csv, "v2", "SHAP", LIME_DEFAULT, shap_auto(m))
    sent = clients.explanation_rows(np.asarray(instances[0]), bg, "SHAP", 0, shap_auto(m))
    with Explainer(model.name, predictor_address(addresses, "v2"), flags) as served:
        asyncio.run(clients.sequential(served.url, instances, 2))  # warm
        rss_idle = rss_bytes(served.process.pid) / 1024**2
        with RssSampler(served.process.pid) as rss:
            load = asyncio.run(clients.load(served.url, instances, CLIENTS, THROUGHPUT_SECONDS))
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
        "rss_idle_mib": rss_idle,
        "rss_load_early_mib": rss.at(0.2),
        "rss_load_end_mib": rss.at(0.95),
        "rss_peak_mib": max(mib for _, mib in rss.samples),
    }


# (model, transport, LIME samples): cross-request coalescing on and off at 16 clients.
# Small requests to a model with a per-call cost (a forest's predict dispatches over its
# trees) are where sharing calls pays; large requests already fill their calls.
COALESCE_CASES = [
    ("forest20", "grpc-v2", 1000),
    ("forest20", "v2", 1000),
    ("forest20", "v2", LIME_DEFAULT),
    ("logistic20", "v2", LIME_DEFAULT),
]


def measure_coalescing(
    served: dict[str, ServedModel], addresses: Addresses, csvs: dict[str, Path]
) -> list[dict[str, Any]]:
    """LIME at 16 clients, coalescing on and off, for each of ``COALESCE_CASES``."""
    out = []
    for name, transport, samples in COALESCE_CASES:
        instances = [row.tolist() for row in served[name].test[:100]]
        case: dict[str, Any] = {
            "model": name,
            "transport": transport,
            "mode": "LIME",
            "lime_samples": samples,
            "clients": CLIENTS,
        }
        for coalesce in ("true", "false"):
            flags = explainer_flags(
                csvs[name], transport, "LIME", samples, 0, "--predictor_coalesce", coalesce
            )
            address = predictor_address(addresses, transport)
            with Explainer(name, address, flags) as explainer:
                asyncio.run(clients.sequential(explainer.url, instances, 2))
                load = asyncio.run(
                    clients.load(explainer.url, instances, CLIENTS, COALESCE_SECONDS)
                )
            key = "on" if coalesce == "true" else "off"
            case[f"{key}_per_second"] = load.per_second
            case[f"{key}_p50_s"] = statistics.median(load.latencies)
            case[f"{key}_errors"] = load.errors
        case["gain"] = case["on_per_second"] / case["off_per_second"]
        print(json.dumps(case), flush=True)
        out.append(case)
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
            result["coalescing"] = measure_coalescing(served, addresses, csvs)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "perf.json").write_text(json.dumps(result, indent=2))
    from bench.perf.report import render

    text = render(result, REPEATS, REFERENCE_REPEATS)
    (RESULTS / "perf.md").write_text(text)
    print(text)
    from bench.perf import defaults  # speed at the defaults, on models nobody tuned for

    return defaults.main()


if __name__ == "__main__":
    raise SystemExit(main())
