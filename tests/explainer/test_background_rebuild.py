"""Without BACKGROUND_DATA the reservoir's summary is rebuilt on the executor, off the
lock that ``observe`` takes on the event loop: a rebuild never holds up the loop, so
probes and other requests are answered while it runs. The rebuild is held open by a
gate in front of the real summary, so that the test can look while it is running."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import orjson

from explainer.background_data import BackgroundStore
from explainer.server.app import RUNTIME
from explainers.background import Background, build
from tests.conftest import ExplainerFactory, Predictor

HANG_GUARD_SECONDS = 120  # only ever reached when the code under test deadlocks


class GatedBuild:
    """The real stratified background, started and then held until ``gate`` is set."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.gate = threading.Event()

    def __call__(
        self, data: np.ndarray, size: int, seed: int, categorical: np.ndarray | None
    ) -> Background:
        self.started.set()
        self.gate.wait(HANG_GUARD_SECONDS)
        return build(data, size, seed, categorical)


def test_observe_does_not_wait_for_a_rebuild_in_progress() -> None:
    gated = GatedBuild()
    store = BackgroundStore(
        None, source="reservoir", shap_size=5, reservoir_size=100, seed=0, build=gated
    )
    rng = np.random.default_rng(0)
    store.observe(rng.normal(size=(20, 3)))
    builder = threading.Thread(target=store.snapshot)
    builder.start()
    assert gated.started.wait(HANG_GUARD_SECONDS)
    observer = threading.Thread(target=store.observe, args=(rng.normal(size=(20, 3)),))
    observer.start()
    observer.join(HANG_GUARD_SECONDS)
    waited = observer.is_alive()
    gated.gate.set()
    builder.join(HANG_GUARD_SECONDS)
    assert not waited  # observe() returned while the rebuild was still held
    assert store.snapshot().description["rows"] == 40  # the next snapshot sees every row


async def test_probes_and_requests_are_answered_while_a_rebuild_runs(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    credit = mlserver.models["credit"]
    client = await explainer("credit", explainer_type="SHAP", shap_background_size=5)
    store = client.server.app[RUNTIME].engine.store
    gated = GatedBuild()
    store._build_shap = gated  # the real stratification, behind a gate
    loop = asyncio.get_running_loop()

    def explain(row: int) -> asyncio.Task[object]:
        body = orjson.dumps({"instances": [credit.test[row].tolist()]})
        return asyncio.ensure_future(client.post("/v1/models/credit:explain", data=body))

    first = explain(0)  # its snapshot() starts the rebuild, which waits at the gate
    assert await loop.run_in_executor(None, gated.started.wait, HANG_GUARD_SECONDS)
    second = explain(1)  # observe() on the loop, then snapshot() waits on the executor
    while store._reservoir.seen < 2:
        await asyncio.sleep(0.01)
    for path in ("/v2/health/live", "/v2/health/ready", "/metrics"):
        response = await client.get(path)
        assert response.status == 200, path
    assert not first.done() and not second.done()  # the rebuild is still held
    gated.gate.set()
    for task in (first, second):
        response = await task
        assert response.status == 200, await response.text()  # type: ignore[attr-defined]
