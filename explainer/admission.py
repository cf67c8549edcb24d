"""How many perturbation rows exist at once: a budget shared by every request.

An explanation's rows are materialised when it is planned (a SHAP plan at the default
budget is ~100k rows, 17 MB at M = 20), but the predictor only ever holds
``PREDICTOR_MAX_CONCURRENCY`` calls of ``PREDICTOR_MAX_BATCH`` rows. Planning every
accepted request at once makes memory follow the queue; planning only what the
predictor can be busy with (twice its calls in flight: those being scored and the next
ones ready) makes memory follow the calls, and loses no throughput, as planning takes a
millisecond or two beside each call's tens. Requests wait their turn in arrival order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class RowBudget:
    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.used = 0
        self.peak = 0  # the most rows held at once, since start
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @asynccontextmanager
    async def hold(self, rows: int) -> AsyncIterator[None]:
        """Hold ``rows`` of the budget (all of it if more) for the ``async with``."""
        rows = min(max(rows, 0), self.limit)
        if self._waiting or self.used + rows > self.limit:
            granted = asyncio.get_running_loop().create_future()
            self._waiting.append((rows, granted))
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._release(rows)  # granted, then cancelled before it ran
                else:
                    self._grant()  # it may have been first in line
                raise
        else:
            self._take(rows)
        try:
            yield
        finally:
            self._release(rows)

    def _take(self, rows: int) -> None:
        self.used += rows
        self.peak = max(self.peak, self.used)

    def _release(self, rows: int) -> None:
        self.used -= rows
        self._grant()

    def _grant(self) -> None:
        """Let waiters in, in order, while the budget has room for the first of them."""
        while self._waiting:
            rows, granted = self._waiting[0]
            if granted.cancelled():
                self._waiting.popleft()
                continue
            if self.used + rows > self.limit:
                return
            self._waiting.popleft()
            self._take(rows)
            granted.set_result(None)
