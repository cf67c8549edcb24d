"""Several arrays of rows scored as one stream of calls (``PredictorClient.stream``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np


class Scoring:
    """Arrays of rows scored as one stream of calls, cut over their concatenation: a
    few rows (LIME's) added after many (SHAP's) ride in the last call instead of paying
    a model's per-call cost on their own, whatever the timing, and the calls full of the
    first array's rows are on their way before the next array exists. Only a call that
    spans two arrays is copied. Each array's scores are ``await scoring.of(a)``, ready as
    soon as the calls holding its rows are answered; ``cancel`` drops the calls nobody
    will wait for."""

    def __init__(
        self,
        send: Callable[[np.ndarray], Awaitable[np.ndarray]],
        rows_per_call: Callable[[np.ndarray], int],
    ) -> None:
        self._send = send
        self._rows_per_call = rows_per_call
        self._size = 0
        self._parts: list[np.ndarray] = []
        self._filled = 0
        self.calls: list[asyncio.Task[np.ndarray]] = []
        self.spans: list[list[tuple[int, int, int]]] = []  # per array: (call, start, stop)

    def add(self, rows: np.ndarray) -> int:
        """Queue ``rows`` (n, ...), sending every call they fill; returns the array's index."""
        self._size = self._size or max(1, self._rows_per_call(rows))
        spans: list[tuple[int, int, int]] = []
        start = 0
        while start < rows.shape[0]:
            take = min(self._size - self._filled, rows.shape[0] - start)
            self._parts.append(rows[start : start + take])
            spans.append((len(self.calls), self._filled, self._filled + take))
            self._filled += take
            start += take
            if self._filled == self._size:
                self._flush()
        self.spans.append(spans)
        return len(self.spans) - 1

    def finish(self) -> None:
        """Send the last, partly filled call."""
        if self._parts:
            self._flush()

    def _flush(self) -> None:
        parts = self._parts
        task = asyncio.ensure_future(
            self._send(parts[0] if len(parts) == 1 else np.concatenate(parts))
        )
        task.add_done_callback(_retrieve)  # a failure is heard by whoever awaits it
        self.calls.append(task)
        self._parts, self._filled = [], 0

    async def of(self, a: int) -> np.ndarray:
        """Scores (n, K) for array ``a``, in its rows' order (after ``finish``)."""
        pieces = [(await self.calls[c])[lo:hi] for c, lo, hi in self.spans[a]]
        if not pieces:  # no rows: no scores
            return np.zeros((0, 0))
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def cancel(self) -> None:
        for task in self.calls:
            task.cancel()


def _retrieve(task: asyncio.Task[np.ndarray]) -> None:
    if not task.cancelled():
        task.exception()
