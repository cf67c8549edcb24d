"""Retries with exponential backoff, bounded by one deadline, for every transport.

A call is a series of attempts. An attempt that meets a transient fault (a refused or
reset connection, a gateway's 502/503/504, gRPC's UNAVAILABLE) raises ``Transient``
with the error to report if no attempt is left; the next attempt starts after
``BASE_SECONDS · 2^n``. The whole call, pauses included, ends within ``timeout``: each
attempt is given only the time that is left, and a pause that would pass the deadline
ends the call with a ``PredictorTimeout`` instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from explainer.errors import PredictorError, PredictorTimeout

T = TypeVar("T")
BASE_SECONDS = 0.05
MIN_ATTEMPT_SECONDS = 0.001


class Transient(Exception):  # noqa: N818 — a signal between an attempt and the loop
    """Raised by an attempt: retry if there is time; else raise ``error``."""

    def __init__(self, cause: str, error: PredictorError) -> None:
        super().__init__(cause)
        self.cause = cause
        self.error = error


async def with_retries(
    attempt: Callable[[float], Awaitable[T]], *, retries: int, timeout: float, what: str
) -> T:
    """``await attempt(seconds_left)`` until it returns, at most ``1 + retries`` times;
    ``what`` names the call in a timeout's message ("POST http://…/infer")."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    attempts = 1 + retries
    for n in range(attempts):
        try:
            return await attempt(max(deadline - loop.time(), MIN_ATTEMPT_SECONDS))
        except Transient as exc:
            if n + 1 == attempts:
                raise exc.error from None
            cause = exc.cause
        pause = BASE_SECONDS * 2**n
        if loop.time() + pause >= deadline:
            raise PredictorTimeout(
                f"predictor did not answer {what} within {timeout:g} s "
                f"({n + 1} attempt(s), last: {cause})"
            )
        await asyncio.sleep(pause)
    raise AssertionError("unreachable")
