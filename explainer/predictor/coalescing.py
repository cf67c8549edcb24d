"""Cross-request batching: concurrent explanations' rows share predictor calls.

Every request's rows are cut into pieces of at most ``max_rows`` (at the same
boundaries whatever else is queued, so a request's rows always travel in the same
groups) and queued. One dispatcher sends the queue as calls of at most ``max_rows``
rows, at most ``max_in_flight`` at a time:

* an idle predictor (no call in flight) gets the queue at once, so a lone request
  waits for nothing;
* while calls are in flight, a partly filled call waits at most ``wait`` seconds for
  more rows, and while every slot is busy rows simply accumulate — so under load many
  requests' rows fill few, large calls (bounded wait, bounded size).

A coalesced call the predictor refuses (4xx/5xx) is re-sent piece by piece, so one
request's bad rows never fail another request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from explainer.errors import PredictorFailed

Send = Callable[[np.ndarray], Awaitable[np.ndarray]]


@dataclass
class _Piece:
    rows: np.ndarray
    future: asyncio.Future[np.ndarray]
    queued_at: float


class Coalescer:
    def __init__(self, send: Send, max_rows: int, max_in_flight: int, wait: float) -> None:
        self._send = send
        self.max_rows = max(1, max_rows)
        self.max_in_flight = max(1, max_in_flight)
        self.wait = max(0.0, wait)
        self._queue: deque[_Piece] = deque()
        self._queued_rows = 0
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()

    async def score(self, rows: np.ndarray) -> np.ndarray:
        """Scores for ``rows``, from whichever calls their pieces travel in."""
        loop = asyncio.get_running_loop()
        pieces = [
            _Piece(rows[i : i + self.max_rows], loop.create_future(), loop.time())
            for i in range(0, rows.shape[0], self.max_rows)
        ]
        self._queue.extend(pieces)
        self._queued_rows += rows.shape[0]
        self._wake.set()
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch())
        try:
            results = await asyncio.gather(*(p.future for p in pieces))
        except BaseException:
            for piece in pieces:  # a cancelled request leaves the queue
                piece.future.cancel()
            raise
        return results[0] if len(results) == 1 else np.concatenate(results)

    async def close(self) -> None:
        tasks = [*self._calls, *([self._dispatcher] if self._dispatcher else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- the dispatcher --------------------------------------------------------------------

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._drop_cancelled()
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._in_flight >= self.max_in_flight:
                await self._until_changed()  # rows accumulate while every slot is busy
                continue
            if self._queued_rows < self.max_rows and self._in_flight > 0:
                remaining = self._queue[0].queued_at + self.wait - loop.time()
                if remaining > 0:
                    await self._until_changed(remaining)
                    continue
            batch = self._take()
            if batch:
                self._in_flight += 1
                task = asyncio.create_task(self._run(batch))
                self._calls.add(task)
                task.add_done_callback(self._calls.discard)

    async def _until_changed(self, timeout: float | None = None) -> None:
        """Until a piece is queued or a call ends (or ``timeout`` passes)."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    def _drop_cancelled(self) -> None:
        while self._queue and self._queue[0].future.done():
            self._queued_rows -= self._queue.popleft().rows.shape[0]

    def _take(self) -> list[_Piece]:
        batch: list[_Piece] = []
        rows = 0
        while self._queue:
            piece = self._queue[0]
            if piece.future.done():
                self._queue.popleft()
                self._queued_rows -= piece.rows.shape[0]
                continue
            if batch and rows + piece.rows.shape[0] > self.max_rows:
                break
            self._queue.popleft()
            self._queued_rows -= piece.rows.shape[0]
            batch.append(piece)
            rows += piece.rows.shape[0]
        return batch

    async def _run(self, batch: list[_Piece]) -> None:
        try:
            rows = batch[0].rows if len(batch) == 1 else np.concatenate([p.rows for p in batch])
            try:
                scores = await self._send(rows)
            except PredictorFailed:
                if len(batch) == 1:
                    raise
                await asyncio.gather(*(self._run_alone(p) for p in batch))
                return
            offset = 0
            for piece in batch:
                count = piece.rows.shape[0]
                if not piece.future.done():
                    piece.future.set_result(scores[offset : offset + count])
                offset += count
        except Exception as exc:  # every waiting request hears of the failure
            for piece in batch:
                if not piece.future.done():
                    piece.future.set_exception(exc)
        finally:
            self._in_flight -= 1
            self._wake.set()

    async def _run_alone(self, piece: _Piece) -> None:
        try:
            scores = await self._send(piece.rows)
        except Exception as exc:
            if not piece.future.done():
                piece.future.set_exception(exc)
            return
        if not piece.future.done():
            piece.future.set_result(scores)
