"""``PredictorClient.stream``'s bookkeeping (``Scoring``): arrays of rows scored as one stream of
calls cut over their concatenation, each array's scores handed back in its own order."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from explainer.errors import PredictorFailed
from explainer.predictor import Scoring

WEIGHTS = np.array([1.0, 10.0, 100.0])


def model(rows: np.ndarray) -> np.ndarray:
    return np.stack([rows @ WEIGHTS, -rows[:, 0]], axis=1)


class Recorder:
    """A predictor call that scores ``model`` and remembers each call's rows."""

    def __init__(self, fail_call: int | None = None) -> None:
        self.calls: list[np.ndarray] = []
        self.fail_call = fail_call

    async def __call__(self, rows: np.ndarray) -> np.ndarray:
        call = len(self.calls)
        self.calls.append(rows)
        await asyncio.sleep(0.001 * (5 - call))  # later calls are answered first
        if call == self.fail_call:
            raise PredictorFailed("refused")
        return model(rows)


async def test_arrays_are_cut_over_their_concatenation_and_scored_in_their_order() -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.random((n, 3)) for n in (23, 4, 0, 9)]
    send = Recorder()
    scoring = Scoring(send, lambda features: 10)
    indices = [scoring.add(array) for array in arrays]
    assert len(scoring.calls) == 3  # the full calls are on their way before ``finish``
    scoring.finish()
    scores = await asyncio.gather(*(scoring.of(a) for a in indices))
    assert [len(c) for c in send.calls] == [10, 10, 10, 6]  # 36 rows, cut every 10
    assert scores[2].size == 0
    for a in (0, 1, 3):
        np.testing.assert_array_equal(scores[a], model(arrays[a]))
    # Only the call spanning arrays 0 and 1 is a copy; the others are views of their array.
    assert np.shares_memory(send.calls[0], arrays[0])
    assert not np.shares_memory(send.calls[2], arrays[0])


async def test_a_failed_call_fails_only_the_arrays_with_rows_in_it() -> None:
    arrays = [np.ones((10, 3)), np.ones((5, 3))]
    scoring = Scoring(Recorder(fail_call=0), lambda features: 10)
    for array in arrays:
        scoring.add(array)
    scoring.finish()
    with pytest.raises(PredictorFailed):
        await scoring.of(0)
    np.testing.assert_array_equal(await scoring.of(1), model(arrays[1]))
