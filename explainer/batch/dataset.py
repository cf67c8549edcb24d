"""Reading a batch input: CSV (header: feature names), Parquet, .npy or JSON Lines, in
chunks of rows, in input order. A chunk is float64 rows, or — where a column holds text
or booleans (categorical features) — an object array of numbers, strings and booleans,
for the engine's schema to check row by row (``explainer.features``). An input of one
column of text with no background set is a dataset of texts (``texts_of``). Unreadable
or missing values become NaN (None in text), so that the row is recorded as failed
rather than the run stopping."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from explainer.features import BOOLEAN, NUMBER, TEXT

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


def texts_of(rows: np.ndarray) -> np.ndarray | None:
    """(n,) the chunk's texts (None where missing), when it is one column of text."""
    if rows.dtype != object or rows.ndim != 2 or rows.shape[1] != 1:
        return None
    column = rows[:, 0]
    values = column.tolist()
    if not all(v is None or isinstance(v, str) for v in values) or all(v is None for v in values):
        return None
    return column


def is_text_input(path: Path) -> bool:
    """Whether the input's first rows are one column of text."""
    for _, rows in read_chunks(path, 64):
        return texts_of(rows) is not None
    return False


def count_rows(path: Path) -> int | None:
    if path.suffix == ".npy":
        return int(np.load(path, mmap_mode="r").shape[0])
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return lines - 1 if path.suffix == ".csv" else lines


def read_range(
    path: Path, first: int, stop: int, size: int = 4096, kinds: list[str] | None = None
) -> np.ndarray:
    """Rows ``first`` to ``stop`` − 1 of the input (what a Dask worker reads)."""
    parts = []
    for start, rows in read_chunks(path, size, kinds):
        if start >= stop:
            break
        if start + len(rows) > first:
            parts.append(rows[max(first - start, 0) : stop - start])
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def read_chunks(
    path: Path, size: int, kinds: list[str] | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """(index of the first row, rows) in input order; unreadable values become NaN, so
    the row is recorded as failed rather than the run stopping. ``kinds``: what each CSV
    column holds — "text", "boolean" or "number" (``Schema.column_kinds``); without them, a
    column is text where most of its filled cells are not numbers."""
    if path.suffix not in INPUT_SUFFIXES:
        raise ValueError(f"{path}: unsupported input; use one of {', '.join(INPUT_SUFFIXES)}")
    start = 0
    for rows in _raw_chunks(path, size, kinds):
        yield start, rows
        start += len(rows)


def _raw_chunks(path: Path, size: int, kinds: list[str] | None) -> Iterator[np.ndarray]:
    if path.suffix == ".npy":
        data = np.load(path, mmap_mode="r", allow_pickle=False)
        for i in range(0, data.shape[0], size):
            yield np.asarray(data[i : i + size], dtype=np.float64)
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=size):
            yield _table([_typed(column) for column in batch.to_pandas().items()])
    elif path.suffix == ".csv":
        import pandas as pd

        for frame in pd.read_csv(path, chunksize=size, dtype=str, keep_default_na=False):
            columns = [column for _, column in frame.items()]
            found: list[str | None] = list(kinds) if kinds else [None] * len(columns)
            yield _table([_parsed(c, k) for c, k in zip(columns, found, strict=False)])
    else:
        yield from _jsonl_chunks(path, size)


_BOOLEANS = {"true": True, "false": False}


def _parsed(column: Any, kind: str | None) -> np.ndarray:
    """A CSV column of text as ``kind`` (None: text where most filled cells are not
    numbers, booleans where every filled cell is true/false, else numbers): numbers are
    NaN where unreadable, text and booleans None where empty."""
    import pandas as pd

    numbers = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
    text = column.str.strip().to_numpy(dtype=object)
    filled = text != ""
    if kind is None:
        words = np.isnan(numbers) & filled
        if not words.any() or words.sum() <= filled.sum() / 2:
            kind = NUMBER
        elif all(str(v).lower() in _BOOLEANS for v in text[filled]):
            kind = BOOLEAN
        else:
            kind = TEXT
    if kind == NUMBER:
        return numbers
    if kind == BOOLEAN:
        return np.array([_BOOLEANS.get(str(v).lower()) for v in text], dtype=object)
    return np.asarray(np.where(filled, text, None), dtype=object)


def _typed(item: tuple[Any, Any]) -> np.ndarray:
    """A Parquet column: numbers as float64, booleans and text as they are."""
    _, column = item
    if column.dtype.kind in "iuf":
        return column.to_numpy(np.float64)
    return column.to_numpy(dtype=object)


def _table(columns: list[np.ndarray]) -> np.ndarray:
    if all(c.dtype != object for c in columns):
        return np.column_stack(columns)
    out = np.empty((len(columns[0]), len(columns)), dtype=object)
    for j, column in enumerate(columns):
        out[:, j] = column
    return out


def complete(rows: np.ndarray) -> np.ndarray:
    """(n,) bool: the rows with every value present (and every number finite)."""
    if rows.dtype != object:
        return np.isfinite(rows).all(axis=1)
    if rows.ndim == 1:  # texts
        return np.array([_present(v) for v in rows.tolist()], dtype=bool)
    return np.array([all(_present(v) for v in row) for row in rows.tolist()], dtype=bool).reshape(
        len(rows)
    )


def _present(value: Any) -> bool:
    if value is None:
        return False
    return not isinstance(value, float) or np.isfinite(value)


def _jsonl_chunks(path: Path, size: int) -> Iterator[np.ndarray]:
    """Each line: a row ([1.0, 2.0] or ["clerk", 3, true]), a {feature: value} object,
    a text ("a text" or {"text": "a text"}), or {"instances": [...]}."""
    rows: list[list[Any]] = []
    width: int | None = None
    with path.open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            for row in _jsonl_rows(line):
                width = width or len(row)
                rows.append(row if len(row) == width else [None] * width)
                if len(rows) == size:
                    yield _jsonl_table(rows)
                    rows = []
    if rows:
        yield _jsonl_table(rows)


def _jsonl_table(rows: list[list[Any]]) -> np.ndarray:
    if all(isinstance(v, int | float) and not isinstance(v, bool) for row in rows for v in row):
        return np.array(rows, dtype=np.float64)
    out = np.empty((len(rows), len(rows[0])), dtype=object)
    for r, row in enumerate(rows):
        out[r] = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in row]
    return out


def _jsonl_rows(line: bytes) -> list[list[Any]]:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return [[None]]
    if isinstance(value, dict) and "instances" in value:
        value = value["instances"]
        rows = value if isinstance(value, list) else [value]
    else:
        rows = [value]
    out: list[list[Any]] = []
    for row in rows:
        items = list(row.values()) if isinstance(row, dict) else row
        if isinstance(items, str):  # a text
            items = [items]
        if not isinstance(items, list) or not items:
            out.append([None])
            continue
        out.append([v if isinstance(v, str | bool | int | float) else None for v in items])
    return out
