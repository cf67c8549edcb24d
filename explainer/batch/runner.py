"""Offline batch explanation of a dataset, on the engine the service uses.

Reader → engine → writer, bounded: rows are read in chunks, a bounded number of chunks
is explained at once (their perturbations share predictor calls), and every finished
row is appended to a JSON Lines journal and flushed. A run that is interrupted leaves
every finished row written; the same command explains only the missing rows. A row that
cannot be explained (bad values: the row's fault) is recorded with its error and the run
goes on; a predictor failure stops the run, leaving every finished row written, so that
running again retries only what is missing.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from explainer.batch.dataset import complete, count_rows, read_chunks, texts_of
from explainer.engine import Engine
from explainer.errors import ClientError
from explainer.payloads import ExplainParameters, RowsRequest, explanation_body

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchConfig:
    input: Path
    output: Path  # .jsonl, or .parquet (long form, written from a .jsonl journal)
    chunk_rows: int = 16
    in_flight: int = 4  # chunks explained at once
    partition_rows: int = 256  # rows per Dask task
    progress: bool | None = None  # None: a bar on a terminal, log lines otherwise
    log_every_seconds: float = 10.0

    @property
    def journal(self) -> Path:
        return self.output if self.output.suffix == ".jsonl" else Path(f"{self.output}.jsonl")


@dataclass(frozen=True)
class BatchSummary:
    rows: int
    explained: int
    failed: int
    skipped: int  # already in the journal from an earlier run
    seconds: float


# ---- the journal ---------------------------------------------------------------------------


def finished_rows(journal: Path) -> set[int]:
    """Rows an earlier run finished. A torn last line (the process was killed while
    writing it) is cut off, so that the journal stays valid JSON Lines."""
    if not journal.exists():
        return set()
    done: set[int] = set()
    good = 0  # bytes of complete lines
    with journal.open("rb") as handle:
        for line in handle:
            try:
                row = int(orjson.loads(line)["row"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                break
            if not line.endswith(b"\n"):
                break
            done.add(row)
            good += len(line)
    with journal.open("r+b") as handle:
        handle.truncate(good)
    return done


# ---- running -------------------------------------------------------------------------------


async def run(config: BatchConfig, engine: Engine) -> BatchSummary:
    """Explain the input in this process, a wave of ``in_flight`` chunks at a time."""
    done = finished_rows(config.journal)
    total = count_rows(config.input)
    progress = Progress(config, total, len(done))
    counts = [0, 0]  # explained, failed
    started = time.perf_counter()
    with config.journal.open("ab") as journal:
        wave: list[tuple[int, np.ndarray, np.ndarray]] = []
        for start, rows in read_chunks(config.input, config.chunk_rows, column_kinds(engine)):
            todo = np.array([start + i not in done for i in range(len(rows))])
            if todo.any():
                wave.append((start, rows, todo))
            if len(wave) == config.in_flight:
                write(journal, await _explain_wave(engine, wave), counts, progress)
                wave = []
        if wave:
            write(journal, await _explain_wave(engine, wave), counts, progress)
    return finish(config, progress, counts, len(done), total, started)


def column_kinds(engine: Engine) -> list[str] | None:
    """What each column of the input holds, by the engine's features."""
    return None if engine.schema is None else engine.schema.column_kinds()


async def explain_range(
    engine: Engine, config: BatchConfig, start: int, rows: np.ndarray, todo: np.ndarray
) -> list[tuple[bytes, bool]]:
    """Journal lines for the unfinished rows of a range, explained ``in_flight`` chunks at a
    time (how a Dask worker explains its partition)."""
    lines: list[tuple[bytes, bool]] = []
    size = config.chunk_rows
    chunks = [
        (start + i, rows[i : i + size], todo[i : i + size]) for i in range(0, len(rows), size)
    ]
    for w in range(0, len(chunks), config.in_flight):
        lines.extend(await _explain_wave(engine, chunks[w : w + config.in_flight]))
    return lines


def write(
    journal: Any, lines: list[tuple[bytes, bool]], counts: list[int], progress: Progress
) -> None:
    """Append finished rows and flush: a finished row is on disk before more work starts."""
    for line, good in lines:
        journal.write(line)
        counts[0 if good else 1] += 1
    journal.flush()
    progress.update(len(lines))


def finish(
    config: BatchConfig,
    progress: Progress,
    counts: list[int],
    skipped: int,
    total: int | None,
    started: float,
) -> BatchSummary:
    progress.close()
    if config.output.suffix == ".parquet":
        write_long_parquet(config.journal, config.output)
    explained, failed = counts
    return BatchSummary(
        rows=total if total is not None else skipped + explained + failed,
        explained=explained,
        failed=failed,
        skipped=skipped,
        seconds=time.perf_counter() - started,
    )


async def _explain_wave(
    engine: Engine, wave: list[tuple[int, np.ndarray, np.ndarray]]
) -> list[tuple[bytes, bool]]:
    """A few chunks at once: their rows share predictor calls."""
    results = await asyncio.gather(*(_explain_chunk(engine, *item) for item in wave))
    return [line for lines in results for line in lines]


async def _explain_chunk(
    engine: Engine, start: int, rows: np.ndarray, todo: np.ndarray
) -> list[tuple[bytes, bool]]:
    """Journal lines for the chunk's unfinished rows, in order; bad rows get their error."""
    texts = texts_of(rows) if engine.schema is None else None
    if texts is not None:
        rows = texts
    valid = complete(rows) & todo
    lines: dict[int, tuple[bytes, bool]] = {}
    missing = "the text is missing" if texts is not None else "a value is missing or not a number"
    for i in np.flatnonzero(todo & ~valid).tolist():
        lines[start + i] = (_line(start + i, error=missing), False)
    if rows.dtype == object:  # values the features' kinds rule out fail their row alone
        for i in np.flatnonzero(valid).tolist():
            request = RowsRequest(rows[i : i + 1], None, ExplainParameters(), field="")
            problem = engine.problem(request)
            if problem is not None:
                valid[i] = False
                lines[start + i] = (_line(start + i, error=problem), False)
    index = [start + i for i in np.flatnonzero(valid).tolist()]
    if index:
        try:
            request = RowsRequest(np.ascontiguousarray(rows[valid]), None, ExplainParameters())
            explained = await engine.explain(request)
            values = rows[valid]
            for k, (row, explanation) in enumerate(zip(index, explained.rows, strict=True)):
                body = explanation_body(explanation, explained.features, explained.outputs)
                body["input"] = (
                    values[k]
                    if texts is not None
                    else dict(zip(explained.features, values[k].tolist(), strict=True))
                )
                lines[row] = (_line(row, body=body), True)
        except ClientError as exc:  # the rows' fault; the predictor's stops the run
            for row in index:
                lines[row] = (_line(row, error=exc.message), False)
    return [lines[row] for row in sorted(lines)]


def _line(row: int, body: dict[str, Any] | None = None, error: str | None = None) -> bytes:
    record: dict[str, Any] = {"row": row}
    if error is not None:
        record["error"] = error
    else:
        record.update(body or {})
    return orjson.dumps(record) + b"\n"


class Progress:
    """tqdm on a terminal; a log line every ``log_every_seconds`` otherwise."""

    def __init__(self, config: BatchConfig, total: int | None, initial: int) -> None:
        interactive = sys.stderr.isatty() if config.progress is None else config.progress
        self._bar: Any = None
        if interactive:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, unit="row", smoothing=0.1)
        self._total, self._done, self._new = total, initial, 0
        self._every = config.log_every_seconds
        self._start = self._last = time.monotonic()

    def update(self, rows: int) -> None:
        self._done += rows
        self._new += rows
        if self._bar is not None:
            self._bar.update(rows)
            return
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            rate = self._new / max(now - self._start, 1e-9)
            left = (
                ""
                if self._total is None
                else f", ETA {(self._total - self._done) / max(rate, 1e-9):.0f} s"
            )
            of = "" if self._total is None else f"/{self._total}"
            log.info("explained %d%s rows, %.1f rows/s%s", self._done, of, rate, left)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# ---- Parquet, long form --------------------------------------------------------------------

LONG_COLUMNS = ("row", "explainer", "output", "feature", "score", "confidence")
SPAN_COLUMNS = ("start", "end")  # texts: the segment's character offsets


def is_text_journal(journal: Path) -> bool:
    """Whether the journal's first explanation is of a text (its items carry spans)."""
    with journal.open("rb") as handle:
        for line in handle:
            record = orjson.loads(line)
            if "SHAP" in record or "LIME" in record:
                block = record.get("SHAP") or record["LIME"]
                items: list[dict[str, Any]] = next(iter(block["saliencies"].values()), [])
                return bool(items) and "span" in items[0]
    return False


def write_long_parquet(journal: Path, output: Path, rows_per_group: int = 50_000) -> None:
    """The journal as one Parquet table in long form — (row, explainer, output, feature,
    score, confidence), and for texts (start, end) — streamed in row groups, never held
    whole in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = is_text_journal(journal)
    names = LONG_COLUMNS + (SPAN_COLUMNS if texts else ())
    types = [pa.int64(), pa.string(), pa.string(), pa.string(), pa.float64(), pa.float64()]
    schema = pa.schema(list(zip(names, types + [pa.int64()] * (len(names) - 6), strict=True)))
    columns: dict[str, list[Any]] = {name: [] for name in names}
    temporary = output.with_name(output.name + ".tmp")
    with pq.ParquetWriter(temporary, schema) as writer, journal.open("rb") as handle:
        for line in handle:
            record = orjson.loads(line)
            for kind in ("LIME", "SHAP"):
                for out, items in record.get(kind, {}).get("saliencies", {}).items():
                    for item in items:
                        values = [
                            record["row"],
                            kind,
                            out,
                            item["name"],
                            item["score"],
                            item["confidence"],
                        ]
                        if texts:
                            values += item["span"]
                        for name, value in zip(names, values, strict=True):
                            columns[name].append(value)
            if len(columns["row"]) >= rows_per_group:
                writer.write_table(pa.table(columns, schema=schema))
                columns = {name: [] for name in names}
        if columns["row"]:
            writer.write_table(pa.table(columns, schema=schema))
    temporary.replace(output)
