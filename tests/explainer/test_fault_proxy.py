"""Predictor faults injected by a proxy in front of the real MLServer: each gives the
right 502/503/504 with a clear message within the configured timeout, transient ones are
retried (bounded) and then succeed, and the explainer keeps serving — and its readiness
follows the predictor going away and coming back."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from tests.conftest import ExplainerFactory, Predictor
from tests.fault_proxy import FaultProxy

TIMEOUT = 2.0
RETRIES = 2


@pytest.fixture
async def client(explainer: ExplainerFactory, mlserver: Predictor, proxy: FaultProxy) -> Any:
    return await explainer(
        "credit",
        predictor_host=f"127.0.0.1:{proxy.port}",
        background_data=str(mlserver.data / "credit.csv"),
        explainer_type="LIME",  # one predictor call per explanation (ALL makes one per kind)
        lime_samples=200,
        predictor_timeout=TIMEOUT,
        predictor_retries=RETRIES,
    )


async def explain(client: Any, mlserver: Predictor) -> tuple[int, dict[str, Any]]:
    row = mlserver.models["credit"].test[0].tolist()
    response = await client.post(
        "/v1/models/credit:explain", data=orjson.dumps({"instances": [row]})
    )
    return response.status, orjson.loads(await response.read())


@pytest.mark.parametrize(
    ("mode", "status", "words", "attempts"),
    [
        ("drop", 503, "unreachable", 1 + RETRIES),
        ("reset", 503, "unreachable", 1 + RETRIES),
        ("slow", 504, f"within {TIMEOUT:g} s", 1),
        ("text-500", 502, "predictor answered 500: Internal Server Error: out of memory", 1),
        ("busy-503", 503, "not ready (503): upstream connect error", 1 + RETRIES),
        ("invalid-json", 502, "not a v2 inference response", 1),
        ("wrong-shape", 502, "values for", 1),
        ("nan", 502, "NaN or infinite", 1),
    ],
)
async def test_each_fault_gets_its_status_within_the_timeout_and_nothing_breaks(
    client: Any,
    proxy: FaultProxy,
    mlserver: Predictor,
    mode: str,
    status: int,
    words: str,
    attempts: int,
) -> None:
    proxy.set(mode)
    got, body = await explain(client, mlserver)
    assert got == status, body
    assert words in body["error"]
    assert proxy.inference_calls == attempts  # transient faults retried, bounded; others not
    proxy.set("pass")
    got, body = await explain(client, mlserver)
    assert got == 200, body


@pytest.mark.parametrize("mode", ["drop", "reset", "busy-503"])
async def test_a_transient_fault_is_retried_and_the_explanation_succeeds(
    client: Any, proxy: FaultProxy, mlserver: Predictor, mode: str
) -> None:
    proxy.set("pass")
    _, clean = await explain(client, mlserver)
    proxy.set(mode, failures=RETRIES)
    got, body = await explain(client, mlserver)
    assert got == 200, body
    assert proxy.inference_calls == RETRIES + 1
    del body["timestamp"], clean["timestamp"]
    assert body == clean  # the retried explanation is the same explanation


async def test_readiness_follows_the_predictor_down_and_back_up(
    client: Any, proxy: FaultProxy, mlserver: Predictor
) -> None:
    assert (await client.get("/v2/health/ready")).status == 200
    await proxy.stop()  # connections refused from now on
    assert (await client.get("/v2/health/ready")).status == 503
    got, body = await explain(client, mlserver)
    assert got == 503 and "unreachable" in body["error"]
    await proxy.start()
    for _ in range(50):
        if (await client.get("/v2/health/ready")).status == 200:
            break
        await asyncio.sleep(0.1)
    assert (await client.get("/v2/health/ready")).status == 200
    got, body = await explain(client, mlserver)
    assert got == 200, body
