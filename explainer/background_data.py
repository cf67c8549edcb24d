"""Where the background (training) data comes from: a file, or the inputs seen.

With ``BACKGROUND_DATA`` the data is read once at start-up. Without it the explainer
keeps a bounded reservoir (Algorithm R, seeded) of the rows it has been asked to
explain, as the TrustyAI explainer does, and every explanation says which background it
used and how many rows it had — a request never fails for lack of background.

A reservoir larger than the SHAP background is summarised by k-means, which costs a
tenth of a second or more; the summary is therefore rebuilt only once the rows seen
have grown by ``REBUILD_GROWTH`` since the last build, not after every request.
"""

from __future__ import annotations

import csv
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from explainers.background import Background, summarize
from explainers.lime import LimeStatistics

REBUILD_GROWTH = 1.1


DATA_SUFFIXES = (".csv", ".npy")


def load_background(path: str) -> tuple[np.ndarray, list[str] | None]:
    """Rows (N, M) float64 and, for a CSV with a header row, the feature names.

    ``path`` is a CSV or .npy file, or a directory holding exactly one (where KServe's
    storage initializer puts what a storage URI names)."""
    file = Path(path)
    if file.is_dir():
        found = sorted(p for p in file.iterdir() if p.suffix in DATA_SUFFIXES and p.is_file())
        if len(found) != 1:
            raise ValueError(
                f"directory {path} holds {len(found)} data files (.csv or .npy); it needs one"
            )
        file = found[0]
    if not file.is_file():
        raise ValueError(f"no such file: {path}")
    if file.suffix == ".npy":
        data = np.load(file, allow_pickle=False)
        names = None
    else:
        data, names = _read_csv(file)
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] == 0:
        raise ValueError(f"{path} must hold a non-empty 2-D table, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError(f"{path} has missing or non-finite values")
    return np.ascontiguousarray(data), names


def load_background_setting(path: str) -> tuple[np.ndarray, list[str] | None]:
    """``load_background`` for the BACKGROUND_DATA setting: any failure is one line that
    names the setting."""
    try:
        return load_background(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"invalid setting BACKGROUND_DATA / --background_data: {exc}") from None


def _read_csv(file: Path) -> tuple[np.ndarray, list[str] | None]:
    with file.open(newline="") as handle:
        lines = [row for row in csv.reader(handle) if row]
    if not lines:
        raise ValueError(f"{file} is empty")
    names = None
    if not all(_is_number(cell) for cell in lines[0]):
        names = [cell.strip() for cell in lines[0]]
        lines = lines[1:]
    rows = []
    for number, line in enumerate(lines, start=2 if names else 1):
        try:
            rows.append([float(cell) for cell in line])
        except ValueError:
            raise ValueError(f"{file} line {number} has a value that is not a number") from None
        if len(line) != len(lines[0]):
            raise ValueError(
                f"{file} line {number} has {len(line)} values, expected {len(lines[0])}"
            )
    if names is not None and rows and len(names) != len(rows[0]):
        raise ValueError(f"{file} header names {len(names)} columns but rows have {len(rows[0])}")
    return np.array(rows, dtype=np.float64), names


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class BackgroundSnapshot:
    """What one explanation integrates over: LIME's training statistics and SHAP's
    (possibly summarised) background, with a description for the response."""

    lime: LimeStatistics
    shap: Background
    description: dict[str, Any]


class BackgroundStore:
    def __init__(
        self,
        data: np.ndarray | None,
        *,
        source: str,
        shap_size: int,
        reservoir_size: int,
        seed: int,
    ) -> None:
        self._source = source
        self._shap_size = shap_size
        self._seed = seed
        self._lock = threading.Lock()
        self._capacity = reservoir_size
        self._reservoir_rng = np.random.default_rng([seed, 7])
        self._seen = 0
        self._seen_at_build = 0
        self._rows: np.ndarray | None = None
        self._snapshot: BackgroundSnapshot | None = None
        self.fixed = data is not None
        if data is not None:
            self._rows = data
            self._snapshot = self._build(data)

    @property
    def features(self) -> int | None:
        return None if self._rows is None else int(self._rows.shape[1])

    def first_row(self) -> np.ndarray | None:
        """A row the predictor can score, for probing it before any request arrives."""
        return None if self._rows is None or not len(self._rows) else self._rows[:1].copy()

    def observe(self, rows: np.ndarray) -> None:
        """Offer request rows to the reservoir (no-op with fixed background data)."""
        if self.fixed:
            return
        with self._lock:
            if self._rows is None:
                self._rows = np.empty((0, rows.shape[1]))
            kept = list(self._rows)
            for row in rows:
                self._seen += 1
                if len(kept) < self._capacity:
                    kept.append(row)
                else:
                    slot = int(self._reservoir_rng.integers(0, self._seen))
                    if slot < self._capacity:
                        kept[slot] = row
            self._rows = np.array(kept, dtype=np.float64)
            small = len(kept) <= self._shap_size
            if small or self._seen >= REBUILD_GROWTH * self._seen_at_build:
                self._snapshot = None

    def snapshot(self) -> BackgroundSnapshot:
        """The current background; rebuilt only after the reservoir changed."""
        with self._lock:
            if self._snapshot is None:
                if self._rows is None or self._rows.shape[0] == 0:
                    raise RuntimeError("background is empty: observe() rows first")
                self._snapshot = self._build(self._rows)
                self._seen_at_build = self._seen
            return self._snapshot

    def _build(self, rows: np.ndarray) -> BackgroundSnapshot:
        shap = summarize(rows, self._shap_size, self._seed)
        description = {
            "source": self._source,
            "rows": int(rows.shape[0]),
            "summary_rows": int(shap.rows.shape[0]),
        }
        return BackgroundSnapshot(LimeStatistics.from_training(rows), shap, description)
