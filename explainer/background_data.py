"""Where the background (training) data comes from: a file, or the inputs seen.

With ``BACKGROUND_DATA`` the data is read once at start-up. Without it the explainer
keeps a bounded reservoir (Algorithm R, seeded) of the rows it has been asked to
explain, as the TrustyAI explainer does, and every explanation says which background it
used and how many rows it had — a request never fails for lack of background.

A reservoir larger than the rows one SHAP explanation uses is stratified by k-means
(``explainers.background``), which costs a tenth of a second or more; the strata are
therefore rebuilt only once the rows seen have grown by ``REBUILD_GROWTH`` since the
last build, not after every request, and outside the lock that ``observe`` (on the
event loop) takes: a rebuild works on a copy of the rows and swaps its result in, so
nothing on the loop ever waits for one.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from explainer import storage
from explainers.background import Background, build
from explainers.kernel_shap import default_references
from explainers.maskers.numeric import LimeStatistics

if TYPE_CHECKING:
    from explainer.settings import Settings

REBUILD_GROWTH = 1.1


BACKGROUND_SUFFIXES = (".csv", ".parquet", ".npy")
BLOCK_ROWS = 8192
log = logging.getLogger(__name__)


class Reservoir:
    """A uniform random sample of at most ``capacity`` rows of a stream of row blocks
    (Algorithm R, vectorised per block; deterministic for a given ``rng``). Blocks are
    float64, or object arrays for a table with text in it (the first such block makes
    the kept rows an object array too)."""

    def __init__(self, capacity: int, rng: np.random.Generator) -> None:
        self.capacity = capacity
        self.seen = 0
        self._rng = rng
        self._rows: np.ndarray | None = None
        self._kept = 0

    @property
    def rows(self) -> np.ndarray:
        return np.zeros((0, 0)) if self._rows is None else self._rows[: self._kept]

    def offer(self, rows: np.ndarray) -> None:
        if self._rows is None:
            self._rows = np.empty(
                (min(self.capacity, max(len(rows), 1024)), rows.shape[1]), dtype=rows.dtype
            )
        elif rows.shape[1] != self._rows.shape[1]:
            raise ValueError(
                f"rows have {rows.shape[1]} values, earlier rows {self._rows.shape[1]}"
            )
        elif rows.dtype == object and self._rows.dtype != object:
            self._rows = self._rows.astype(object)
        take = min(self.capacity - self._kept, len(rows))
        if self._kept + take > len(self._rows):  # grow by doubling up to the capacity
            grown = np.empty(
                (min(self.capacity, max(2 * len(self._rows), self._kept + take)), rows.shape[1]),
                dtype=self._rows.dtype,
            )
            grown[: self._kept] = self._rows[: self._kept]
            self._rows = grown
        self._rows[self._kept : self._kept + take] = rows[:take]
        self._kept += take
        rest = rows[take:]
        if len(rest):
            # Row number i (0-based) replaces a uniform slot in [0, i] when that slot is
            # inside the reservoir; later rows win, as in the sequential algorithm.
            numbers = self.seen + take + np.arange(len(rest))
            slots = self._rng.integers(0, numbers + 1)
            inside = slots < self.capacity
            self._rows[slots[inside]] = rest[inside]
        self.seen += len(rows)


def load_background(
    uri: str, max_rows: int = 100_000, seed: int = 0
) -> tuple[np.ndarray, list[str] | None]:
    """Rows (N, M) and, for a CSV with a header row or a Parquet file, the feature names.
    The rows are float64, or — where a column holds text or booleans (categorical
    features) — an object array of numbers (float), strings and booleans.

    ``uri`` is a CSV, Parquet or .npy file — a local path, ``s3://…`` or ``https://…`` — or a
    directory (S3 prefix) holding exactly one, such as where KServe's storage initializer
    puts what a storage URI names. The file is read as a stream of row blocks; past
    ``max_rows`` rows a seeded uniform sample of ``max_rows`` is kept, so memory is
    bounded whatever the file's size."""
    reservoir = Reservoir(max_rows, np.random.default_rng([seed, 11]))
    names: list[str] | None = None
    with storage.open_binary(uri, BACKGROUND_SUFFIXES) as (handle, suffix):
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="") if suffix == ".csv" else None
        try:
            if suffix == ".npy":
                blocks = _npy_blocks(handle, uri)
            elif suffix == ".parquet":
                names, blocks = _parquet_blocks(handle, storage.safe(uri))
            else:
                assert text is not None
                names, blocks = _csv_blocks(text, storage.safe(uri))
            for block in blocks:
                if not _finite(block):
                    raise ValueError(f"{storage.safe(uri)} has missing or non-finite values")
                reservoir.offer(block)
        except UnicodeDecodeError:
            raise ValueError(f"{storage.safe(uri)} is not a UTF-8 CSV file") from None
        finally:
            if text is not None:
                text.detach()  # the handle is closed by its own context
    data = reservoir.rows
    if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] == 0:
        raise ValueError(
            f"{storage.safe(uri)} must hold a non-empty 2-D table, got shape {data.shape}"
        )
    if reservoir.seen > max_rows:
        log.info("background: a seeded sample of %d of %d rows", max_rows, reservoir.seen)
    return np.ascontiguousarray(data), names


def load_background_setting(settings: Settings) -> tuple[np.ndarray, list[str] | None]:
    """``load_background`` for the BACKGROUND_DATA setting: any failure is one line that
    names the setting, with no credential in it."""
    assert settings.background_data
    try:
        return load_background(
            settings.background_data, settings.background_max_rows, settings.seed
        )
    except (OSError, ValueError) as exc:
        message = storage.safe(" ".join(str(exc).split()))
        raise ValueError(
            f"invalid setting BACKGROUND_DATA / --background_data: {message}"
        ) from None


def _npy_blocks(handle: IO[bytes], uri: str) -> Iterator[np.ndarray]:
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
    except ValueError as exc:
        raise ValueError(f"{storage.safe(uri)} is not a readable .npy file ({exc})") from None
    if len(shape) != 2 or dtype.hasobject or dtype.kind not in "biuf":
        raise ValueError(
            f"{storage.safe(uri)} must hold a non-empty 2-D numeric table, got shape {shape} "
            f"of {dtype}"
        )
    rows, width = shape
    if fortran:  # column-major: the rows are not contiguous, so read it whole
        data = np.frombuffer(handle.read(rows * width * dtype.itemsize), dtype)
        yield data.reshape((width, rows)).T.astype(np.float64)
        return
    for start in range(0, rows, BLOCK_ROWS):
        count = min(BLOCK_ROWS, rows - start)
        raw = handle.read(count * width * dtype.itemsize)
        if len(raw) != count * width * dtype.itemsize:
            raise ValueError(f"{storage.safe(uri)} is truncated: expected {rows} rows")
        yield np.frombuffer(raw, dtype).reshape(count, width).astype(np.float64)


def _finite(block: np.ndarray) -> bool:
    if block.dtype != object:
        return bool(np.isfinite(block).all())
    numbers = [v for v in block.ravel().tolist() if isinstance(v, float)]
    return bool(np.isfinite(numbers).all()) and not any(v is None for v in block.ravel())


def _parquet_blocks(handle: IO[bytes], name: str) -> tuple[list[str], Iterator[np.ndarray]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(
            f"{name}: reading Parquet needs pyarrow: pip install 'explainer-sidecar[batch]'"
        ) from None
    try:
        table = pq.ParquetFile(handle)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid
        raise ValueError(f"{name} is not a readable Parquet file ({exc})") from None
    names = list(table.schema_arrow.names)

    def blocks() -> Iterator[np.ndarray]:
        for batch in table.iter_batches(batch_size=BLOCK_ROWS):
            columns = [batch.column(j).to_numpy(zero_copy_only=False) for j in range(len(names))]
            if all(c.dtype.kind in "iuf" for c in columns):
                yield np.column_stack(columns).astype(np.float64)
                continue
            block = np.empty((batch.num_rows, len(names)), dtype=object)
            for j, column in enumerate(columns):
                block[:, j] = column.astype(np.float64) if column.dtype.kind in "iuf" else column
            yield block

    return names, blocks()


def _csv_blocks(text: IO[str], name: str) -> tuple[list[str] | None, Iterator[np.ndarray]]:
    lines = (line for line in csv.reader(text) if line)
    first = next(lines, None)
    if first is None:
        raise ValueError(f"{name} is empty")
    names = None
    if not all(_is_number(cell) for cell in first):
        names = [cell.strip() for cell in first]
    return names, _csv_rows(lines, first if names is None else None, names, name)


def _csv_rows(
    lines: Iterator[list[str]], first: list[str] | None, names: list[str] | None, name: str
) -> Iterator[np.ndarray]:
    width = len(names) if names is not None else len(first or [])
    number = 1
    text: list[str | None] = [None] * width  # per column: set by the first block
    block: list[list[str]] = [first] if first is not None else []
    for line in lines:
        block.append(line)
        if len(block) == BLOCK_ROWS:
            yield _parse_block(block, number, width, name, names, text)
            number += len(block)
            block = []
    if block:
        yield _parse_block(block, number, width, name, names, text)


_BOOLEANS = {"true": True, "false": False}


def _parse_block(
    block: list[list[str]],
    number: int,
    width: int,
    name: str,
    names: list[str] | None,
    types: list[str | None],
) -> np.ndarray:
    """A block of CSV lines as float64 rows, or as an object array where a column holds
    text (``types``, per column, is what the first block found: "number", "boolean" or
    "text"; a later block must agree)."""
    line_of = number + (1 if names is not None else 0)  # file line number of block[0]
    for offset, line in enumerate(block):
        if len(line) != width:
            what = "header names" if names is not None else "first row has"
            raise ValueError(
                f"{name} line {line_of + offset} has {len(line)} values; the {what} {width}"
            )
    cells = np.array(block, dtype=object)
    if all(t in (None, "number") for t in types):
        try:
            numbers = cells.astype(np.float64)
        except ValueError:
            pass
        else:
            types[:] = ["number"] * width
            return numbers
    out = np.empty(cells.shape, dtype=object)
    for j in range(width):
        column = [cell.strip() for cell in cells[:, j].tolist()]
        empty = next((r for r, cell in enumerate(column) if not cell), None)
        if empty is not None:
            raise ValueError(f"{name} line {line_of + empty} has a missing value in column {j + 1}")
        found = _column_type(column)
        if types[j] is None:
            types[j] = found
        elif types[j] != found:
            where = next(r for r, cell in enumerate(column) if _column_type([cell]) != types[j])
            what = "a number" if types[j] == "number" else str(types[j])
            label = names[j] if names is not None else f"column {j + 1}"
            raise ValueError(
                f"{name} line {line_of + where}: '{label}' is {column[where]!r}, but earlier "
                f"lines hold {what} there; a column holds numbers, booleans or text throughout"
            )
        if types[j] == "number":
            out[:, j] = np.array(column, dtype=np.float64).tolist()
        elif types[j] == "boolean":
            out[:, j] = [_BOOLEANS[cell.lower()] for cell in column]
        else:
            out[:, j] = column
    return out


def _column_type(column: list[str]) -> str:
    if all(_is_number(cell) for cell in column):
        return "number"
    if all(cell.lower() in _BOOLEANS for cell in column):
        return "boolean"
    return "text"


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class BackgroundSnapshot:
    """What one explanation integrates over: LIME's training statistics and SHAP's
    (possibly stratified) background, with a description for the response."""

    lime: LimeStatistics
    shap: Background
    description: dict[str, Any]


@dataclass(frozen=True)
class LoadedBackground:
    """Background rows as read, with where they came from."""

    rows: np.ndarray  # (N, M) float64
    names: list[str] | None
    source: str


class BackgroundStore:
    def __init__(
        self,
        data: np.ndarray | None,
        *,
        source: str,
        shap_size: int | None,
        reservoir_size: int,
        seed: int,
        build: Callable[[np.ndarray, int, int, np.ndarray | None], Background] = build,
        categorical: np.ndarray | None = None,
        integer: np.ndarray | None = None,
    ) -> None:
        """``data``: the fixed background, as the explainer's float64 rows (None: a
        reservoir of the rows asked about); ``categorical``, ``integer``: (M,) bool, the
        features' kinds (``explainer.features``; None: all continuous)."""
        self._source = source
        self._shap_size = shap_size
        self._seed = seed
        self._build_shap = build
        self._lock = threading.Lock()  # the reservoir and the current snapshot
        self._building = threading.Lock()  # one rebuild at a time; never taken on the loop
        self._reservoir = Reservoir(reservoir_size, np.random.default_rng([seed, 7]))
        self._seen_at_build = 0
        self._rows: np.ndarray | None = None
        self._snapshot: BackgroundSnapshot | None = None
        self._categorical, self._integer = categorical, integer
        self.fixed = data is not None
        if data is not None:
            self._rows = data
            self._snapshot = self._build(data)

    @property
    def features(self) -> int | None:
        return None if self._rows is None else int(self._rows.shape[1])

    def fixed_rows(self) -> np.ndarray | None:
        """A copy of the fixed background's rows (None for a reservoir)."""
        return None if not self.fixed or self._rows is None else self._rows.copy()

    def first_row(self) -> np.ndarray | None:
        """A row the predictor can score, for probing it before any request arrives."""
        return None if self._rows is None or not len(self._rows) else self._rows[:1].copy()

    def observe(self, rows: np.ndarray) -> None:
        """Offer request rows to the reservoir (no-op with fixed background data)."""
        if self.fixed:
            return
        with self._lock:
            self._reservoir.offer(np.asarray(rows, dtype=np.float64))
            self._rows = self._reservoir.rows
            if self._stale():
                self._snapshot = None

    def snapshot(self) -> BackgroundSnapshot:
        """The current background; rebuilt (off the lock) only after the reservoir
        changed. Called on the executor: it may wait for a rebuild, the loop never does."""
        with self._lock:
            if self._snapshot is not None:
                return self._snapshot
        with self._building:
            with self._lock:
                if self._snapshot is not None:  # another thread rebuilt it meanwhile
                    return self._snapshot
                if self._rows is None or self._rows.shape[0] == 0:
                    raise RuntimeError("background is empty: observe() rows first")
                rows = self._rows.copy()  # the reservoir's rows change under observe()
                seen = self._reservoir.seen
            built = self._build(rows)
            with self._lock:
                self._seen_at_build = seen
                # Rows observed while it was built may already call for the next one.
                self._snapshot = None if self._reservoir.seen > seen and self._stale() else built
                return built

    def _stale(self) -> bool:
        """Whether the rows seen call for a rebuild (the lock held)."""
        small = self._rows is None or len(self._rows) <= self._size(self._rows)
        return small or self._reservoir.seen >= REBUILD_GROWTH * self._seen_at_build

    def set_kinds(
        self, categorical: np.ndarray, integer: np.ndarray, rows: np.ndarray | None = None
    ) -> None:
        """Which features are categorical and integer (``explainer.features``), with the
        fixed background re-encoded for them (``rows``) where that changed: the next
        snapshot is built for them."""
        with self._lock:
            self._categorical, self._integer = categorical, integer
            if rows is not None:
                self._rows = rows
            self._snapshot = None
        if self.fixed and self._rows is not None:
            self._snapshot = self._build(self._rows)

    def _size(self, rows: np.ndarray) -> int:
        """Most rows one explanation uses: the setting, or the default for the width."""
        return self._shap_size or default_references(int(rows.shape[1]))

    def _build(self, rows: np.ndarray) -> BackgroundSnapshot:
        shap = self._build_shap(rows, self._size(rows), self._seed, self._categorical)
        description = {
            "source": self._source,
            "rows": int(rows.shape[0]),
            "rows_per_explanation": shap.drawn_rows,
            "sampled": not shap.whole,
        }
        lime = LimeStatistics.from_training(rows, self._categorical, self._integer)
        return BackgroundSnapshot(lime, shap, description)
