"""The one retry policy every transport uses (``explainer.predictor.retry``)."""

from __future__ import annotations

import pytest

from explainer.errors import PredictorTimeout, PredictorUnavailable
from explainer.predictor.retry import BASE_SECONDS, Transient, with_retries


class Flaky:
    """An attempt that meets a transient fault ``faults`` times, then answers."""

    def __init__(self, faults: int) -> None:
        self.faults = faults
        self.given: list[float] = []  # the seconds each attempt was given

    async def __call__(self, seconds: float) -> str:
        self.given.append(seconds)
        if len(self.given) <= self.faults:
            raise Transient("reset", PredictorUnavailable("predictor is unreachable"))
        return "scores"


async def test_transient_faults_are_retried_within_one_shrinking_deadline() -> None:
    attempt = Flaky(faults=3)
    assert await with_retries(attempt, retries=3, timeout=60.0, what="a call") == "scores"
    assert len(attempt.given) == 4
    assert all(a > b for a, b in zip(attempt.given, attempt.given[1:], strict=False))
    assert attempt.given[0] <= 60.0


async def test_when_no_retry_is_left_the_attempts_error_is_raised() -> None:
    attempt = Flaky(faults=10)
    with pytest.raises(PredictorUnavailable, match="unreachable"):
        await with_retries(attempt, retries=2, timeout=60.0, what="a call")
    assert len(attempt.given) == 3


async def test_a_pause_that_would_pass_the_deadline_ends_the_call_at_once() -> None:
    attempt = Flaky(faults=10)
    expected = r"a call within 0.01 s \(1 attempt\(s\), last: reset"
    with pytest.raises(PredictorTimeout, match=expected):
        await with_retries(attempt, retries=5, timeout=BASE_SECONDS / 5, what="a call")
    assert len(attempt.given) == 1


async def test_other_errors_are_not_retried() -> None:
    calls = 0

    async def refused(seconds: float) -> None:
        nonlocal calls
        calls += 1
        raise PredictorTimeout("slow")

    with pytest.raises(PredictorTimeout, match="slow"):
        await with_retries(refused, retries=5, timeout=60.0, what="a call")
    assert calls == 1
