"""Load and shutdown, against an ``explainer serve`` process in front of the real
MLServer: 32 locust clients for ``SOAK_SECONDS`` (10 in ``make test``, 60 in ``make
soak``) with zero failures, p99 reported, memory flat, no file descriptor or task leak;
and SIGTERM under load — readiness false first, new explanations refused, those in
progress finished, exit 0 within the shutdown timeout."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import requests

from tests.conftest import Predictor
from tests.mlserver import REPO, start_explainer, stop, wait_ok

HANG_GUARD_SECONDS = 120  # only reached when something hangs: never a measure of speed

LOCUST_BIN = Path(os.environ.get("LOCUST_BIN", REPO / ".venv-locust" / "bin" / "locust"))
SECONDS = int(os.environ.get("SOAK_SECONDS", "10"))
USERS = 32


def serve(mlserver: Predictor, model: str, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    process, url = start_explainer(
        model,
        mlserver.host,
        "--background_data",
        str(mlserver.data / f"{model}.csv"),
        "--explainer_type",
        "ALL",
        *flags,
        stderr=subprocess.PIPE,
    )
    wait_ok(f"{url}/v2/health/ready", process)
    return process, url


def gauges(url: str) -> dict[str, float]:
    text = requests.get(f"{url}/metrics", timeout=10).text
    wanted = ("explainer_event_loop_tasks", "process_open_fds", "process_resident_memory_bytes")
    return {
        name: float(m.group(1))
        for name in wanted
        if (m := re.search(rf"^{name} (\S+)$", text, re.MULTILINE))
    }


@pytest.fixture(scope="module")
def loaded(mlserver: Predictor) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    if not LOCUST_BIN.exists():
        pytest.fail(f"locust not found at {LOCUST_BIN}: run `make test`, which installs it")
    process, url = serve(mlserver, "credit", "--lime_samples", "1000", "--max_in_flight", "64")
    yield process, url
    stop(process)
    _, stderr = process.communicate()
    assert b"Traceback" not in stderr, stderr.decode()[-3000:]


def locust(url: str, seconds: int, rows: list[list[float]], out: Path) -> dict[str, float]:
    result = subprocess.run(
        [
            str(LOCUST_BIN),
            "-f",
            str(REPO / "tests" / "load" / "locustfile.py"),
            "--headless",
            "-u",
            str(USERS),
            "-r",
            str(USERS),
            "-t",
            f"{seconds}s",
            "--host",
            url,
            "--csv",
            str(out),
            "--only-summary",
            "--stop-timeout",
            "10",
        ],
        env={**os.environ, "LOAD_ROWS": json.dumps(rows)},
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    with Path(f"{out}_stats.csv").open() as handle:
        (total,) = [r for r in csv.DictReader(handle) if r["Name"] == "Aggregated"]
    assert result.returncode in (0, 1), result.stderr[-2000:]
    return {
        "requests": float(total["Request Count"]),
        "failures": float(total["Failure Count"]),
        "p50_ms": float(total["50%"]),
        "p99_ms": float(total["99%"]),
        "rps": float(total["Requests/s"]),
    }


def test_32_clients_zero_failures_flat_memory_no_leaks(
    loaded: tuple[subprocess.Popen[bytes], str], mlserver: Predictor, tmp_path: Path
) -> None:
    _, url = loaded
    rows = mlserver.models["credit"].test[:20].tolist()
    locust(url, 3, rows, tmp_path / "warm")  # pools, caches and arenas reach their size
    time.sleep(1)
    before = gauges(url)
    stats = locust(url, SECONDS, rows, tmp_path / "load")
    time.sleep(1)
    after = gauges(url)
    drift = after["process_resident_memory_bytes"] / before["process_resident_memory_bytes"] - 1
    print(
        f"\nload: {USERS} clients, {SECONDS} s: {stats['requests']:.0f} explanations "
        f"({stats['rps']:.1f}/s), {stats['failures']:.0f} failures, p50 {stats['p50_ms']:.0f} ms, "
        f"p99 {stats['p99_ms']:.0f} ms; RSS {before['process_resident_memory_bytes'] / 2**20:.0f}"
        f" → {after['process_resident_memory_bytes'] / 2**20:.0f} MiB ({drift:+.1%}); "
        f"fds {before['process_open_fds']:.0f} → {after['process_open_fds']:.0f}; "
        f"tasks {before['explainer_event_loop_tasks']:.0f} → "
        f"{after['explainer_event_loop_tasks']:.0f}"
    )
    assert stats["requests"] > USERS and stats["failures"] == 0
    assert abs(drift) <= 0.10
    assert after["process_open_fds"] <= before["process_open_fds"] + 4
    assert after["explainer_event_loop_tasks"] <= before["explainer_event_loop_tasks"] + 2


def in_progress(url: str, count: int) -> None:
    """Wait until the explainer reports ``count`` explanations in progress."""
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while time.monotonic() < deadline:
        metrics = requests.get(f"{url}/metrics", timeout=5).text
        if f"explainer_explanations_in_progress {count}.0" in metrics:
            return
        time.sleep(0.02)
    raise AssertionError(f"{count} explanations never were in progress at once")


def test_sigterm_under_load_finishes_what_started_and_refuses_the_rest(
    mlserver: Predictor,
) -> None:
    process, url = serve(mlserver, "forest20", "--max_in_flight", "64")
    row = mlserver.models["forest20"].test[0].tolist()
    body = orjson.dumps({"instances": [row]})
    answers: list[int] = []

    def client() -> None:
        answers.append(
            requests.post(f"{url}/v1/models/forest20:explain", data=body, timeout=60).status_code
        )

    clients = [threading.Thread(target=client) for _ in range(8)]
    for thread in clients:
        thread.start()
    in_progress(url, 8)  # all eight accepted, however busy the machine
    process.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    assert requests.get(f"{url}/v2/health/ready", timeout=5).status_code == 503  # first
    late = requests.post(f"{url}/v1/models/forest20:explain", data=body, timeout=30)
    assert late.status_code == 503 and "shutting down" in late.json()["error"]
    for thread in clients:
        thread.join(timeout=60)
    assert answers == [200] * 8  # none dropped mid-way
    assert process.wait(timeout=HANG_GUARD_SECONDS) == 0
    _, stderr = process.communicate()
    assert b"Traceback" not in stderr
    assert b"unfinished" not in stderr  # drained before SHUTDOWN_TIMEOUT_SECONDS ran out
