"""What mixed-type rows cost the explainer (issue 16): ``python -m bench.perf.mixed``
(``make bench-mixed``) writes bench/results/mixed.md and .json.

Two models of the same six applicant features, served by MLServer on loopback, each
explained at the defaults over a 1000-row background:

* **mixed**: the applicants' pipeline (``tests.models.applicants``) on a DataFrame — two
  text features, a boolean, two integers, one continuous — its metadata declaring one
  tensor per feature (BYTES, BOOL, INT64, FP64);
* **numeric**: the same rows with categories as numbers (codes, booleans as 0/1), a
  booster on one FP64 tensor: the same segments, background and rows per explanation.

Measured per explanation: the explainer process's own CPU time (user + system, from
/proc, over ``REQUESTS`` sequential requests after a first one), the wall-clock latency,
and the predictor rows it sent. The predictor's CPU is not counted: the pipeline's
one-hot encoding is the model's cost, not the explainer's.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import requests
from sklearn.ensemble import HistGradientBoostingClassifier

from bench.common import publish
from bench.perf.__main__ import Explainer, predictor_address
from tests.mlserver import running_mlserver, write_csv
from tests.models import APPLICANT_FEATURES, ServedModel, applicant_frame, applicants

RESULTS = Path(__file__).resolve().parents[1] / "results"
BACKGROUND_ROWS = 1000
REQUESTS = 40
TICKS = os.sysconf("SC_CLK_TCK")


def numeric_twin(mixed: ServedModel) -> ServedModel:
    """The applicants with every value a number: categories as their index among the
    sorted categories, booleans as 0/1."""
    rows = np.vstack([mixed.train, mixed.test])
    numbers = np.empty(rows.shape)
    for j in range(rows.shape[1]):
        column = rows[:, j]
        if isinstance(column[0], str):
            numbers[:, j] = np.unique(column, return_inverse=True)[1]
        else:
            numbers[:, j] = column.astype(np.float64)
    labels = mixed.model.pipeline.predict(applicant_frame(mixed.train))
    n = len(mixed.train)
    model = HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(numbers[:n], labels)
    return ServedModel(
        "applicants-numeric",
        model,
        numbers[:n],
        numbers[n:],
        metadata={"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 6]}]},
        feature_names=APPLICANT_FEATURES,
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def measure(served: ServedModel, explainer: Explainer, mode: str) -> dict[str, Any]:
    rows = [
        dict(zip(APPLICANT_FEATURES, r.tolist(), strict=True)) for r in served.test[: REQUESTS + 1]
    ]
    session = requests.Session()

    def explain(row: dict[str, Any]) -> dict[str, Any]:
        body = orjson.dumps({"instances": [row], "parameters": {"explainer": mode}})
        answer = session.post(explainer.url, data=body, timeout=300)
        answer.raise_for_status()
        return dict(orjson.loads(answer.content))

    explain(rows[0])  # the first request of a process is not what users wait for
    before = cpu_seconds(explainer.process.pid)
    latencies, sent = [], []
    for row in rows[1:]:
        start = time.perf_counter()
        payload = explain(row)
        latencies.append(time.perf_counter() - start)
        sent.append(_rows_sent(payload))
    cpu = (cpu_seconds(explainer.process.pid) - before) / REQUESTS
    return {
        "cpu_ms": 1000 * cpu,
        "latency_ms": 1000 * statistics.median(latencies),
        "rows": statistics.median(sent),
    }


def _rows_sent(payload: dict[str, Any]) -> int:
    rows = 0
    if "SHAP" in payload:
        width = payload["SHAP"]["background"]["rows_per_explanation"]
        rows += 1 + width + payload["SHAP"]["samples"] * width
    if "LIME" in payload:
        rows += payload["LIME"]["samples"]
    return int(rows)


def encoding(mixed: ServedModel, rows: int) -> dict[str, float]:
    """Milliseconds to put ``rows`` rows on the wire, mixed (one tensor per feature in its
    type) against numeric (one FP64 tensor): v2 REST's JSON and gRPC's raw contents."""
    from explainer.features import Declared, adopt, from_background
    from explainer.predictor.rest import _column
    from explainer.predictor.transport import Layout

    integers = ["dependants", "years_at_address"]
    schema, codes = from_background(
        APPLICANT_FEATURES, mixed.train[:BACKGROUND_ROWS], None, integers
    )
    declared = [
        Declared(t["name"], t["datatype"], (t.get("parameters") or {}).get("content_type"))
        for t in mixed.metadata["inputs"]
    ]
    adopt(schema, declared, codes)
    assert codes is not None
    batch = codes[np.random.default_rng(0).integers(0, len(codes), rows)]
    layout = Layout(columns=tuple(APPLICANT_FEATURES), schema=schema)

    def timed(work: Any) -> float:
        start = time.perf_counter()
        for _ in range(20):
            work()
        return 1000 * (time.perf_counter() - start) / 20

    option = orjson.OPT_SERIALIZE_NUMPY
    return {
        "rows": rows,
        "rest_mixed_ms": timed(
            lambda: orjson.dumps([_column(t, rows) for t in layout.tensors(batch)], option=option)
        ),
        "rest_numeric_ms": timed(lambda: orjson.dumps({"data": batch.reshape(-1)}, option=option)),
        "grpc_mixed_ms": timed(lambda: layout.tensors(batch, raw=True)),
        "grpc_numeric_ms": timed(lambda: np.ascontiguousarray(batch).tobytes()),
    }


def main() -> None:
    mixed = applicants()
    twin = numeric_twin(mixed)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        served = {"applicants": mixed, "applicants-numeric": twin}
        backgrounds = {}
        for name, model in served.items():
            path = root / f"{name}.csv"
            write_csv(path, model.train[:BACKGROUND_ROWS], APPLICANT_FEATURES)
            backgrounds[name] = path
        with running_mlserver(served, root / "mlserver") as addresses:
            for transport in ("v2", "grpc-v2"):
                for mode in ("SHAP", "ALL"):
                    for kind, name in (("mixed", "applicants"), ("numeric", "applicants-numeric")):
                        flags = [
                            "--background_data",
                            str(backgrounds[name]),
                            "--predictor_protocol",
                            transport,
                        ]
                        host = predictor_address(addresses, transport)
                        with Explainer(name, host, flags) as explainer:
                            figures = measure(served[name], explainer, mode)
                        results.append(
                            {"transport": transport, "mode": mode, "kind": kind, **figures}
                        )
                        print(results[-1], file=sys.stderr)
    encoded = encoding(mixed, int(max(r["rows"] for r in results if r["mode"] == "SHAP")))
    publish(
        RESULTS, "mixed", {"explanations": results, "encoding": encoded}, render(results, encoded)
    )


def render(results: list[dict[str, Any]], encoded: dict[str, float]) -> str:
    lines = [
        "# What mixed-type rows cost the explainer (`python -m bench.perf.mixed`)",
        "",
        "The applicants' six features (two text, a boolean, two integers, one continuous)",
        "against the same rows as numbers, on MLServer over loopback, at the defaults with a",
        f"{BACKGROUND_ROWS}-row background. CPU: the explainer process's own (user + system),",
        f"per explanation over {REQUESTS} sequential requests; latency: their median.",
        "",
        "| predictor protocol | mode | rows sent | explainer CPU, numeric | mixed "
        "| mixed ÷ numeric | latency numeric / mixed |",
        "|---|---|---|---|---|---|---|",
    ]
    for transport in ("v2", "grpc-v2"):
        for mode in ("SHAP", "ALL"):
            pair = {
                r["kind"]: r for r in results if r["transport"] == transport and r["mode"] == mode
            }
            numeric, mixed = pair["numeric"], pair["mixed"]
            lines.append(
                f"| {transport} | {mode} | {mixed['rows']:,.0f} | {numeric['cpu_ms']:.0f} ms | "
                f"{mixed['cpu_ms']:.0f} ms | **{mixed['cpu_ms'] / numeric['cpu_ms']:.2f}×** | "
                f"{numeric['latency_ms']:.0f} / {mixed['latency_ms']:.0f} ms |"
            )
    lines += [
        "",
        f"Putting one SHAP explanation's {encoded['rows']:,} rows on the wire (in-process, "
        "median of 20):",
        "",
        "| | numeric (one FP64 tensor) | mixed (a tensor per feature, in its type) |",
        "|---|---|---|",
        f"| v2 REST (JSON) | {encoded['rest_numeric_ms']:.2f} ms | "
        f"{encoded['rest_mixed_ms']:.2f} ms |",
        f"| gRPC (raw contents) | {encoded['grpc_numeric_ms']:.2f} ms | "
        f"{encoded['grpc_mixed_ms']:.2f} ms |",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
