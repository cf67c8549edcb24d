"""``explainer batch`` throughput and memory.

    make bench-batch    # writes bench/results/batch.md and batch.json

1. rows/s on the 20-feature random forest in ALL mode (model scored in-process), a
   single process against a local Dask cluster of 2 workers;
2. peak memory (RSS of the whole process tree, sampled) of a 100 000-row run of the
   credit-score model (SHAP, exact: 931 predictor rows per row), against a 10 000-row
   run: streaming means it does not grow with the dataset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np

from tests.models import forest20

RESULTS = Path(__file__).resolve().parent / "results"
FOREST_ROWS = int(os.environ.get("BENCH_FOREST_ROWS", "256"))
BIG_ROWS = int(os.environ.get("BENCH_BIG_ROWS", "100000"))


def tree_rss(pid: int) -> int:
    """RSS in bytes of a process and all its descendants."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            stack.extend(int(c) for c in children)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run(args: list[str]) -> tuple[float, int]:
    """(seconds, peak tree RSS) of ``explainer batch args``."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "explainer", "batch", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss(process.pid))
        time.sleep(0.1)
    if process.returncode != 0:
        raise RuntimeError(f"explainer batch {' '.join(args)} exited {process.returncode}")
    return time.perf_counter() - start, peak


def main() -> int:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        forest = forest20()
        joblib.dump(forest.model, root / "forest.joblib")
        np.savetxt(root / "bg.csv", forest.train[:50], delimiter=",")
        np.save(
            root / "forest.npy",
            np.tile(forest.test, (1 + FOREST_ROWS // len(forest.test), 1))[:FOREST_ROWS],
        )
        common = [
            "--model_file",
            str(root / "forest.joblib"),
            "--background_data",
            str(root / "bg.csv"),
        ]
        seconds, _ = run([str(root / "forest.npy"), "--out", str(root / "one.jsonl"), *common])
        results["forest_rows_per_s_single"] = FOREST_ROWS / seconds
        seconds, _ = run(
            [
                str(root / "forest.npy"),
                "--out",
                str(root / "two.jsonl"),
                *common,
                "--dask",
                "local:2",
                "--partition_rows",
                str(max(1, FOREST_ROWS // 4)),
            ]
        )
        results["forest_rows_per_s_local2"] = FOREST_ROWS / seconds

        from explainer.demo import credit_model

        credit = credit_model()
        joblib.dump(credit.model, root / "credit.joblib")
        np.savetxt(root / "credit-bg.csv", credit.train[:30], delimiter=",")
        rng = np.random.default_rng(0)
        for rows in (BIG_ROWS // 10, BIG_ROWS):
            data = credit.test[rng.integers(0, len(credit.test), size=rows)]
            np.save(root / f"credit-{rows}.npy", data)
            seconds, peak = run(
                [
                    str(root / f"credit-{rows}.npy"),
                    "--out",
                    str(root / f"credit-{rows}.parquet"),
                    "--model_file",
                    str(root / "credit.joblib"),
                    "--background_data",
                    str(root / "credit-bg.csv"),
                    "--explainer_type",
                    "SHAP",
                    "--chunk_rows",
                    "64",
                ]
            )
            results[f"credit_{rows}_seconds"] = seconds
            results[f"credit_{rows}_peak_mib"] = peak / 1024**2
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "batch.json").write_text(json.dumps(results, indent=2))
    small, big = BIG_ROWS // 10, BIG_ROWS
    text = (
        "| figure | value |\n|---|---|\n"
        f"| 20-feature forest, ALL, in-process model: single process | {results['forest_rows_per_s_single']:.2f} rows/s |\n"
        f"| the same on a local Dask cluster of 2 workers | {results['forest_rows_per_s_local2']:.2f} rows/s |\n"
        f"| credit-score SHAP, {small} rows: time, peak RSS | {results[f'credit_{small}_seconds']:.0f} s, {results[f'credit_{small}_peak_mib']:.0f} MiB |\n"
        f"| credit-score SHAP, {big} rows: time, peak RSS | {results[f'credit_{big}_seconds']:.0f} s, {results[f'credit_{big}_peak_mib']:.0f} MiB |\n"
    )
    (RESULTS / "batch.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
