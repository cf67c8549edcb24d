"""How large a BACKGROUND_DATA file the explainer reads, and at what memory: a CSV of
``BENCH_BACKGROUND_MB`` megabytes (default 256; 20 features) streamed from moto's S3
server on loopback and from local disk, each loaded in a fresh process the way start-up
loads it (streamed into a seeded 100 000-row sample, then k-means-summarised).

    make bench-background        # writes bench/results/background.md and .json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tests.s3 import running_moto

RESULTS = Path(__file__).resolve().parent / "results"
MEGABYTES = int(os.environ.get("BENCH_BACKGROUND_MB", "256"))
FEATURES = 20

LOAD = """
import sys, time
from explainer.background_data import BackgroundStore, load_background
start = time.perf_counter()
rows, names = load_background(sys.argv[1])
store = BackgroundStore(rows, source="bench", shap_size=100, reservoir_size=1, seed=0)
store.snapshot()
# VmHWM: this process's own peak (ru_maxrss would include the parent's, kept over exec).
status = open("/proc/self/status").read().split("VmHWM:")[1]
peak = int(status.split()[0]) / 1024
print(rows.shape[0], time.perf_counter() - start, peak)
"""


def write_csv(path: Path, megabytes: int) -> int:
    rng = np.random.default_rng(0)
    rows = 0
    with path.open("w") as handle:
        handle.write(",".join(f"f{j}" for j in range(FEATURES)) + "\n")
        while handle.tell() < megabytes << 20:
            block = rng.normal(size=(50_000, FEATURES))
            handle.write("\n".join(",".join(f"{v:.6f}" for v in row) for row in block) + "\n")
            rows += len(block)
    return rows


def load(uri: str, env: dict[str, str]) -> dict[str, float]:
    """Rows kept, seconds and the loading process's own peak RSS (MiB)."""
    result = subprocess.run(
        [sys.executable, "-c", LOAD, uri],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    kept, seconds, peak = result.stdout.split()
    return {"rows_kept": int(kept), "seconds": float(seconds), "peak_rss_mib": float(peak)}


def main() -> int:
    import s3fs

    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        csv = root / "background.csv"
        rows = write_csv(csv, MEGABYTES)
        size = csv.stat().st_size
        small = root / "small.csv"
        with csv.open() as source, small.open("w") as sink:
            sink.writelines(line for _, line in zip(range(1001), source, strict=False))
        with running_moto(root) as store:
            fs = s3fs.S3FileSystem(
                key=store.key, secret=store.secret, client_kwargs={"endpoint_url": store.endpoint}
            )
            fs.put(str(csv), f"{store.bucket}/background.csv")
            env = store.env()
            baseline = load(str(small), {})
            local = load(str(csv), {})
            remote = load(f"s3://{store.bucket}/background.csv", env)
    result = {
        "file_mib": size / 2**20,
        "rows": rows,
        "features": FEATURES,
        "baseline_1000_rows": baseline,
        "local": local,
        "s3": remote,
    }
    (RESULTS / "background.json").write_text(json.dumps(result, indent=2))
    table = [
        "# Background data size",
        "",
        f"A {size / 2**20:.0f} MiB CSV ({rows:,} rows × {FEATURES} features), loaded as start-up "
        "loads BACKGROUND_DATA: streamed into a seeded 100 000-row sample, then summarised "
        "(k-means, 100 rows) — in a fresh process each time. Peak RSS is the whole process "
        "(Python, numpy, scikit-learn, s3fs).",
        "",
        "| source | rows kept | seconds | peak RSS (MiB) |",
        "|---|---|---|---|",
        f"| local, first 1000 rows only (baseline) | {baseline['rows_kept']} | "
        f"{baseline['seconds']:.1f} | {baseline['peak_rss_mib']:.0f} |",
        f"| local file | {local['rows_kept']} | {local['seconds']:.1f} | "
        f"{local['peak_rss_mib']:.0f} |",
        f"| s3:// (moto on loopback) | {remote['rows_kept']} | {remote['seconds']:.1f} | "
        f"{remote['peak_rss_mib']:.0f} |",
        "",
    ]
    (RESULTS / "background.md").write_text("\n".join(table))
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
