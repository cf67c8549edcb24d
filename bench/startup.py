"""Cold start and memory: the first ``:explain`` after start against the tenth, and the
explainer's resident memory under SHAP load on the 20-feature random forest — the
figure the configs' memory limit (1Gi) must hold.

    make bench-startup    # writes bench/results/startup.md and startup.json
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import requests

from bench.common import rss_bytes, start_explainer
from tests.mlserver import running_mlserver, wait_ok, write_csv
from tests.models import forest20

RESULTS = Path(__file__).resolve().parent / "results"
LOAD_SECONDS = float(os.environ.get("BENCH_LOAD_SECONDS", "30"))
CONCURRENCY = 4
LIMIT_BYTES = 1024**3  # configs/: limits.memory 1Gi


def main() -> int:
    model = forest20()
    with tempfile.TemporaryDirectory() as tmp:
        background = Path(tmp) / "background.csv"
        write_csv(background, model.train, None)  # 1500 rows, summarised to 50
        with running_mlserver({"forest20": model}, Path(tmp) / "mlserver") as address:
            result = measure(address.url.removeprefix("http://"), background, model.test)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "startup.json").write_text(json.dumps(result, indent=2))
    text = (
        "Explainer started cold (`explainer serve`, numba cache warm on disk) against MLServer "
        "on loopback; 20-feature random forest, SHAP, 50-row background.\n\n"
        "| figure | value |\n|---|---|\n"
        f"| start to ready | {result['ready_s']:.2f} s |\n"
        f"| first `:explain` | {result['first_ms']:.0f} ms |\n"
        f"| tenth `:explain` | {result['tenth_ms']:.0f} ms |\n"
        f"| first / tenth | {result['first_ms'] / result['tenth_ms']:.2f} |\n"
        f"| RSS idle after start | {result['rss_idle_mib']:.0f} MiB |\n"
        f"| RSS peak under load ({CONCURRENCY} clients, {LOAD_SECONDS:.0f} s, "
        f"{result['explanations']} explanations) | {result['rss_peak_mib']:.0f} MiB |\n"
        f"| share of the 1Gi limit | {result['rss_peak_mib'] / 1024:.0%} |\n"
    )
    (RESULTS / "startup.md").write_text(text)
    print(text)
    return 0 if result["rss_peak_mib"] * 1024**2 < LIMIT_BYTES else 1


def measure(predictor: str, background: Path, test: object) -> dict[str, float]:
    started = time.perf_counter()
    process, base = start_explainer(predictor, background, "SHAP")
    url = f"{base}/v1/models/forest20:explain"
    try:
        wait_ok(f"{base}/v2/health/ready", process)
        ready = time.perf_counter() - started
        rss_idle = rss_bytes(process.pid)
        session = requests.Session()
        latencies = []
        for i in range(10):
            body = orjson.dumps({"instances": [test[i].tolist()]})  # type: ignore[index]
            start = time.perf_counter()
            session.post(url, data=body, timeout=120).raise_for_status()
            latencies.append(time.perf_counter() - start)
        peak, count = rss_idle, 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, rss_bytes(process.pid))
                time.sleep(0.05)

        def client(k: int) -> int:
            done, own = 0, requests.Session()
            deadline = time.perf_counter() + LOAD_SECONDS
            while time.perf_counter() < deadline:
                body = orjson.dumps({"instances": [test[(k + done) % 100].tolist()]})  # type: ignore[index]
                own.post(url, data=body, timeout=300).raise_for_status()
                done += 1
            return done

        sampler = threading.Thread(target=sample)
        sampler.start()
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            count = sum(pool.map(client, range(CONCURRENCY)))
        stop.set()
        sampler.join()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    return {
        "ready_s": ready,
        "first_ms": 1000 * latencies[0],
        "tenth_ms": 1000 * latencies[9],
        "median_ms": 1000 * statistics.median(latencies),
        "rss_idle_mib": rss_idle / 1024**2,
        "rss_peak_mib": peak / 1024**2,
        "explanations": count,
    }


if __name__ == "__main__":
    raise SystemExit(main())
