"""``make profile``: where a served explainer spends its time, by py-spy.

The 20-feature forest behind MLServer on loopback, ``ALL`` at the equal-accuracy budgets
of ``make bench`` (LIME 2000 samples, SHAP 1000 coalitions) over gRPC: the explainer
answers ``PROFILE_REQUESTS`` sequential requests while py-spy samples every thread of its
process. The report is the explainer's CPU time per request by function and thread
(what runs on the event loop, what on the executor), beside the request's wall time.
Writes bench/results/profile.md and the raw profile (speedscope JSON).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.perf import clients
from bench.perf.__main__ import Explainer, explainer_flags
from bench.perf.models import background, models
from tests.mlserver import running_mlserver, write_csv

RESULTS = Path(__file__).resolve().parent / "results"
REQUESTS = int(os.environ.get("PROFILE_REQUESTS", "60"))
LIME_SAMPLES, SHAP_SAMPLES = 2000, 1000


def self_time(profile: dict[str, Any]) -> tuple[float, collections.Counter[tuple[str, str]]]:
    """Total sampled seconds, and seconds by (thread, innermost function)."""
    frames = profile["shared"]["frames"]
    by: collections.Counter[tuple[str, str]] = collections.Counter()
    total = 0.0
    for thread in profile["profiles"]:
        name = thread["name"].split('"')[1] if '"' in thread["name"] else thread["name"]
        kind = "event loop" if name == "MainThread" else "executor" if "explainer" in name else name
        for stack, weight in zip(thread["samples"], thread["weights"], strict=True):
            total += weight
            if stack:
                frame = frames[stack[-1]]
                where = f"{frame['name']} ({Path(frame.get('file', '')).name})"
                by[(kind, where)] += weight
    return total, by


def main() -> int:
    spy = os.environ.get("PYSPY_BIN", "py-spy")
    model = models()["forest20"]
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "forest20.csv"
        write_csv(csv, background(model), None)
        with running_mlserver({"forest20": model}, Path(tmp) / "mlserver") as addresses:
            flags = explainer_flags(csv, "grpc-v2", "ALL", LIME_SAMPLES, SHAP_SAMPLES)
            instances = [row.tolist() for row in model.test[:100]]
            raw = RESULTS / "profile.speedscope.json"
            with Explainer("forest20", addresses.grpc, flags) as served:
                asyncio.run(clients.sequential(served.url, instances, 3))  # warm
                recorder = subprocess.Popen(
                    [spy, "record", "-o", str(raw), "-f", "speedscope", "-r", "250"]
                    + ["-p", str(served.process.pid), "--threads", "--nonblocking"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1.0)
                run = asyncio.run(clients.sequential(served.url, instances, REQUESTS))
                recorder.send_signal(signal.SIGINT)
                recorder.wait(timeout=60)
    total, by = self_time(json.loads(raw.read_text()))
    per_request = 1000 / (REQUESTS + 1)
    lines = [
        "# Where the explainer's time goes",
        "",
        f"20-feature forest, `ALL` at LIME {LIME_SAMPLES} samples + SHAP {SHAP_SAMPLES} "
        f"coalitions (52,051 predictor rows), gRPC, MLServer on loopback, 2 cores; py-spy "
        f"at 250 Hz over {REQUESTS + 1} sequential requests (`make profile`). Median "
        f"request {1000 * run.median:.0f} ms; the explainer's own CPU "
        f"{total * per_request:.1f} ms per request, by thread and innermost function:",
        "",
        "| thread | function | ms per request | share of the explainer's CPU |",
        "|---|---|---|---|",
    ]
    for (kind, where), seconds in by.most_common(20):
        lines.append(
            f"| {kind} | `{where}` | {seconds * per_request:.1f} | {seconds / total:.0%} |"
        )
    text = "\n".join(lines) + "\n"
    (RESULTS / "profile.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
