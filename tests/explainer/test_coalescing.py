"""Cross-request batching against the real MLServer, seen through a proxy that records
every inference call: concurrent explanations share calls (bounded in size), each is the
same explanation it would be alone, and one request's rows the predictor refuses fail
that request only."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from tests.conftest import ExplainerFactory, Predictor
from tests.fault_proxy import FaultProxy

CLIENTS = 16
MAX_BATCH = 2048
LIME_SAMPLES = 300


async def start(
    explainer: ExplainerFactory, mlserver: Predictor, proxy: FaultProxy, **settings: Any
) -> Any:
    return await explainer(
        "credit",
        predictor_host=f"127.0.0.1:{proxy.port}",
        background_data=str(mlserver.data / "credit.csv"),
        explainer_type="LIME",
        lime_samples=LIME_SAMPLES,
        predictor_max_batch=MAX_BATCH,
        max_in_flight=CLIENTS,
        **settings,
    )


async def explain(client: Any, row: list[float]) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        "/v1/models/credit:explain", data=orjson.dumps({"instances": [row]})
    )
    body = orjson.loads(await response.read())
    body.pop("timestamp", None)
    return response.status, body


def rows(mlserver: Predictor) -> list[list[float]]:
    return [r.tolist() for r in mlserver.models["credit"].test[:CLIENTS]]


async def test_concurrent_requests_share_calls_and_get_their_own_explanations(
    explainer: ExplainerFactory, mlserver: Predictor, proxy: FaultProxy
) -> None:
    client = await start(explainer, mlserver, proxy)
    proxy.set("pass")  # forget the start-up calls
    alone = [await explain(client, row) for row in rows(mlserver)]
    assert len(proxy.call_rows) == CLIENTS  # one at a time: one call each, nothing waits
    sent_alone = sum(proxy.call_rows)
    proxy.set("slow")
    proxy.delay = 0.2  # calls stay in flight, so the others' rows accumulate
    together = await asyncio.gather(*(explain(client, row) for row in rows(mlserver)))
    assert together == alone
    assert sum(proxy.call_rows) == sent_alone  # no row lost or sent twice
    assert len(proxy.call_rows) < CLIENTS / 2, proxy.call_rows
    assert max(proxy.call_rows) <= MAX_BATCH  # bounded size


async def test_without_coalescing_every_request_makes_its_own_call(
    explainer: ExplainerFactory, mlserver: Predictor, proxy: FaultProxy
) -> None:
    client = await start(explainer, mlserver, proxy, predictor_coalesce=False)
    proxy.set("slow")
    proxy.delay = 0.2
    answers = await asyncio.gather(*(explain(client, row) for row in rows(mlserver)))
    assert all(status == 200 for status, _ in answers)
    assert len(proxy.call_rows) == CLIENTS


async def test_rows_the_predictor_refuses_fail_only_their_own_request(
    explainer: ExplainerFactory, mlserver: Predictor, proxy: FaultProxy
) -> None:
    client = await start(explainer, mlserver, proxy)
    good = rows(mlserver)[:8]
    alone = [await explain(client, row) for row in good]
    poisoned = list(good[0])
    poisoned[0] = 12345.5
    proxy.poison = 12345.5
    proxy.set("slow")
    proxy.delay = 0.2
    answers = await asyncio.gather(*(explain(client, row) for row in [poisoned, *good]))
    status, body = answers[0]
    assert status == 502 and "value out of range" in body["error"], body
    assert answers[1:] == alone


async def test_concurrent_texts_share_calls_and_get_their_own_explanations(
    explainer: ExplainerFactory, mlserver: Predictor, proxy: FaultProxy
) -> None:
    """Texts of different lengths, each its own masker and plan, from concurrent requests:
    their perturbed texts go out in shared BYTES tensors."""
    from tests.models import REVIEWS

    client = await explainer(
        "reviews",
        predictor_host=f"127.0.0.1:{proxy.port}",
        explainer_type="LIME",
        lime_samples=LIME_SAMPLES,
        max_in_flight=CLIENTS,
        # two calls in flight at most: texts planned meanwhile wait, and share the next
        predictor_max_concurrency=2,
    )

    async def explain_text(text: str) -> tuple[int, dict[str, Any]]:
        response = await client.post(
            "/v1/models/reviews:explain", data=orjson.dumps({"instances": [text]})
        )
        body = orjson.loads(await response.read())
        body.pop("timestamp", None)
        return response.status, body

    texts = [text for text, _ in REVIEWS]
    proxy.set("pass")
    alone = [await explain_text(text) for text in texts]
    assert len(proxy.call_rows) == len(texts)
    proxy.set("slow")
    proxy.delay = 0.2
    together = await asyncio.gather(*(explain_text(text) for text in texts))
    assert together == alone
    assert sum(proxy.call_rows) == LIME_SAMPLES * len(texts)
    assert len(proxy.call_rows) < len(texts) / 2, proxy.call_rows
