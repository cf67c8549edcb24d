"""Reading a batch input: CSV (header: feature names), Parquet, .npy or JSON Lines, in
chunks of rows, in input order. Unreadable values become NaN, so that the row is
recorded as failed rather than the run stopping."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

INPUT_SUFFIXES = (".csv", ".parquet", ".npy", ".jsonl")


def read_names(path: Path) -> list[str] | None:
    """Feature names the input declares (CSV header, Parquet columns), if any."""
    if path.suffix == ".csv":
        import pyarrow.csv as pv

        return list(pv.open_csv(path).schema.names)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(path).schema_arrow.names)
    return None


def count_rows(path: Path) -> int | None:
    if path.suffix == ".npy":
        return int(np.load(path, mmap_mode="r").shape[0])
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return lines - 1 if path.suffix == ".csv" else lines


def read_range(path: Path, first: int, stop: int, size: int = 4096) -> np.ndarray:
    """Rows ``first`` to ``stop`` − 1 of the input (what a Dask worker reads)."""
    parts = []
    for start, rows in read_chunks(path, size):
        if start >= stop:
            break
        if start + len(rows) > first:
            parts.append(rows[max(first - start, 0) : stop - start])
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def read_chunks(path: Path, size: int) -> Iterator[tuple[int, np.ndarray]]:
    """(index of the first row, rows) in input order; unreadable values become NaN, so
    the row is recorded as failed rather than the run stopping."""
    if path.suffix not in INPUT_SUFFIXES:
        raise ValueError(f"{path}: unsupported input; use one of {', '.join(INPUT_SUFFIXES)}")
    start = 0
    for rows in _raw_chunks(path, size):
        yield start, rows
        start += len(rows)


def _raw_chunks(path: Path, size: int) -> Iterator[np.ndarray]:
    if path.suffix == ".npy":
        data = np.load(path, mmap_mode="r", allow_pickle=False)
        for i in range(0, data.shape[0], size):
            yield np.asarray(data[i : i + size], dtype=np.float64)
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=size):
            yield _numeric(batch.to_pandas())
    elif path.suffix == ".csv":
        import pandas as pd

        for frame in pd.read_csv(path, chunksize=size, dtype=str, keep_default_na=False):
            yield _numeric(frame)
    else:
        yield from _jsonl_chunks(path, size)


def _numeric(frame: Any) -> np.ndarray:
    import pandas as pd

    return np.column_stack(
        [pd.to_numeric(frame[c], errors="coerce").to_numpy(np.float64) for c in frame.columns]
    )


def _jsonl_chunks(path: Path, size: int) -> Iterator[np.ndarray]:
    """Each line: a row ([1.0, 2.0]), a {feature: value} object, or {"instances": [...]}."""
    rows: list[list[float]] = []
    width: int | None = None
    with path.open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            for row in _jsonl_rows(line):
                width = width or len(row)
                rows.append(row if len(row) == width else [float("nan")] * width)
                if len(rows) == size:
                    yield np.array(rows, dtype=np.float64)
                    rows = []
    if rows:
        yield np.array(rows, dtype=np.float64)


def _jsonl_rows(line: bytes) -> list[list[float]]:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return [[float("nan")]]
    if isinstance(value, dict) and "instances" in value:
        value = value["instances"]
        rows = value if isinstance(value, list) else [value]
    else:
        rows = [value]
    out = []
    for row in rows:
        items = list(row.values()) if isinstance(row, dict) else row
        try:
            out.append([float(v) if not isinstance(v, bool) else float("nan") for v in items])
        except (TypeError, ValueError):
            out.append([float("nan")] * max(len(items), 1))
    return out
