"""The row budget (``explainer.admission``): no more perturbation rows planned at once
than the budget allows, waiters let in in arrival order, and a cancelled waiter neither
keeps nor loses budget — alone, and under a burst of requests to a served explainer
whose predictor (the real MLServer, behind a slow proxy) keeps calls in flight."""

from __future__ import annotations

import asyncio

import orjson

from explainer.admission import RowBudget
from tests.conftest import ExplainerFactory, Predictor
from tests.fault_proxy import FaultProxy


async def test_holders_never_exceed_the_budget_and_wait_in_arrival_order() -> None:
    budget = RowBudget(100)
    entered: list[int] = []
    release = asyncio.Event()

    async def holder(k: int, rows: int) -> None:
        async with budget.hold(rows):
            entered.append(k)
            assert budget.used <= budget.limit
            await release.wait()

    tasks = [asyncio.create_task(holder(k, rows)) for k, rows in enumerate([60, 30, 50, 5])]
    await asyncio.sleep(0.01)
    # 60 + 30 fit; 50 does not, and 5, though it would fit, waits behind it.
    assert entered == [0, 1] and budget.used == 90
    release.set()
    await asyncio.gather(*tasks)
    assert entered == [0, 1, 2, 3]
    assert budget.used == 0 and budget.peak <= 100


async def test_more_than_the_budget_holds_all_of_it_alone() -> None:
    budget = RowBudget(100)
    async with budget.hold(1000):
        assert budget.used == 100
    assert budget.used == 0


async def test_a_cancelled_waiter_keeps_nothing_and_lets_the_next_in() -> None:
    budget = RowBudget(100)
    hold = budget.hold(80)
    await hold.__aenter__()
    first = asyncio.create_task(budget.hold(50).__aenter__())
    second_in = asyncio.Event()

    async def second() -> None:
        async with budget.hold(20):
            second_in.set()

    task = asyncio.create_task(second())
    await asyncio.sleep(0.01)
    assert not second_in.is_set()  # in line behind the first
    first.cancel()
    await asyncio.wait_for(second_in.wait(), 1)  # 80 + 20 fit once the first is gone
    await task
    await hold.__aexit__(None, None, None)
    assert budget.used == 0


async def test_a_burst_of_requests_plans_no_more_rows_than_the_budget(
    explainer: ExplainerFactory, mlserver: Predictor, proxy: FaultProxy
) -> None:
    from explainer.server.app import RUNTIME

    client = await explainer(
        "credit",
        predictor_host=f"127.0.0.1:{proxy.port}",
        background_data=str(mlserver.data / "credit.csv"),
        explainer_type="ALL",
        lime_samples=500,
        predictor_max_batch=1000,
        predictor_max_concurrency=1,
        max_in_flight=16,
    )
    engine = client.server.app[RUNTIME].engine
    assert engine.budget.limit == 2000
    rows = [r.tolist() for r in mlserver.models["credit"].test[:16]]

    async def explain(row: list[float]) -> tuple[int, dict[str, object]]:
        response = await client.post(
            "/v1/models/credit:explain", data=orjson.dumps({"instances": [row]})
        )
        body = orjson.loads(await response.read())
        body.pop("timestamp", None)
        return response.status, body

    alone = [await explain(row) for row in rows[:4]]
    proxy.set("slow")
    proxy.delay = 0.05  # calls stay in flight while the others arrive
    together = await asyncio.gather(*(explain(row) for row in rows))
    assert all(status == 200 for status, _ in together)
    assert together[:4] == alone  # waiting changes no explanation
    # Each request plans 500 + 931 rows: one at a time within 2000 rows, not 16 at once.
    assert engine.budget.peak == 1431
    assert engine.budget.used == 0
    metrics = await (await client.get("/metrics")).text()
    assert "explainer_planned_rows 0.0" in metrics
