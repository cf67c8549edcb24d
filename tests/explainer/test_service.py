"""The explainer against a real MLServer, driven over HTTP, checked against ground truth."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import orjson
import pytest

from explainer.demo import FEATURES
from explainers.kernel_shap import coalitions_planned, default_budget, rows_planned
from tests.conftest import ExplainerFactory, Predictor
from tests.models import brute_force_shapley


async def post(client: Any, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await client.post(path, data=orjson.dumps(body))
    return response.status, orjson.loads(await response.read())


def without_timestamp(raw: bytes) -> bytes:
    """The raw body after its first key, the timestamp — compared byte for byte."""
    assert raw.startswith(b'{"timestamp":')
    return raw.split(b",", 1)[1]


def scores_by_name(block: dict[str, Any], output: str) -> dict[str, tuple[float, float]]:
    return {i["name"]: (i["score"], i["confidence"]) for i in block["saliencies"][output]}


async def test_shap_on_credit_equals_brute_force_shapley(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    credit = mlserver.models["credit"]
    client = await explainer("credit", background_data=str(mlserver.data / "credit.csv"))
    background = credit.train[:30]
    rows = credit.test[:3]
    status, body = await post(
        client,
        "/v1/models/credit:explain",
        {"instances": rows.tolist(), "parameters": {"explainer": "SHAP"}},
    )
    assert status == 200
    assert len(body["explanations"]) == 3
    for row, explanation in zip(rows, body["explanations"], strict=True):
        truth = brute_force_shapley(credit.model.predict_proba, row, background)
        shap = explanation["SHAP"]
        assert shap["exact"] is True
        for k in range(2):
            got = scores_by_name(shap, f"outputs-{k}")
            for j, name in enumerate(FEATURES):
                score, confidence = got[name]
                assert score == pytest.approx(truth[k, j], abs=1e-9)
                assert confidence == 0.0


async def test_shap_on_linear_model_matches_closed_form(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    linear = mlserver.models["linear20"]
    client = await explainer(
        "linear20", background_data=str(mlserver.data / "linear20.csv"), explainer_type="SHAP"
    )
    x = linear.test[0]
    status, body = await post(client, "/v1/models/linear20:explain", {"instances": [x.tolist()]})
    assert status == 200
    shap = body["SHAP"]
    assert shap["exact"] is False  # 2^20 − 2 coalitions exceed the default budget
    expected = linear.model.coef_ * (x - linear.train[:50].mean(axis=0))
    got = scores_by_name(shap, "outputs-0")
    for j in range(20):
        assert got[f"inputs-{j}"][0] == pytest.approx(expected[j], abs=1e-6)


@pytest.mark.parametrize("explainer_type", ["SHAP", "ALL"])
async def test_shap_scores_add_up_for_every_output(
    explainer: ExplainerFactory, mlserver: Predictor, explainer_type: str
) -> None:
    forest = mlserver.models["forest20"]
    client = await explainer(
        "forest20",
        background_data=str(mlserver.data / "forest20.csv"),
        explainer_type=explainer_type,
    )
    status, body = await post(
        client, "/v1/models/forest20:explain", {"instances": forest.test[:2].tolist()}
    )
    assert status == 200
    for explanation in body["explanations"]:
        shap = explanation["SHAP"]
        assert set(shap["saliencies"]) == {"outputs-0", "outputs-1"}  # probabilities
        for output, items in shap["saliencies"].items():
            total = sum(item["score"] for item in items)
            assert total == pytest.approx(
                shap["prediction"][output] - shap["baseline"][output], abs=1e-9
            )
            assert any(item["confidence"] > 0 for item in items)  # sampled: not exact
        width = shap["background"]["rows_per_explanation"]
        # the default's coalitions per row: whole pairs of orders within its share of rows
        assert shap["samples"] == coalitions_planned(20, default_budget(20, width), width)
    expected = forest.model.predict_proba(forest.test[:2])
    for explanation, probabilities in zip(body["explanations"], expected, strict=True):
        got = [explanation["SHAP"]["prediction"][f"outputs-{k}"] for k in range(2)]
        assert got == pytest.approx(probabilities.tolist(), abs=1e-12)


def boundary_rows_with_clear_shap(credit: Any) -> list[int]:
    """Applicants near the boundary where exact SHAP gives the weaker informative
    feature (Loan Amount) clear weight: at least 0.02 of probability, and at least three
    times the weight of every noise feature."""
    p = credit.model.predict_proba(credit.test)[:, 1]
    background = credit.train[:: len(credit.train) // 50][:50]
    chosen = []
    for i in np.flatnonzero((p > 0.2) & (p < 0.8)):
        phi = np.abs(brute_force_shapley(credit.model.predict_proba, credit.test[i], background)[1])
        if phi[2] >= 0.02 and phi[2] >= 3 * max(phi[0], phi[1], phi[3]):
            chosen.append(int(i))
        if len(chosen) == 3:
            return chosen
    raise AssertionError("no such applicants")


async def test_lime_ranks_the_informative_credit_features_first_for_ten_seeds(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    credit = mlserver.models["credit"]
    client = await explainer(
        "credit", background_data=str(mlserver.data / "credit-full.csv"), explainer_type="LIME"
    )
    for i in boundary_rows_with_clear_shap(credit):
        for seed in range(10):
            status, body = await post(
                client,
                "/v1/models/credit:explain",
                {"instances": [credit.test[i].tolist()], "parameters": {"seed": seed}},
            )
            assert status == 200
            lime = body["LIME"]
            assert lime["samples"] == 5000
            top_two = {item["name"] for item in lime["saliencies"]["outputs-1"][:2]}
            assert top_two == {"Credit History", "Loan Amount"}, (i, seed, lime["saliencies"])
            assert all(item["confidence"] > 0 for item in lime["saliencies"]["outputs-1"])


async def test_every_body_format_gives_the_same_explanation(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    credit = mlserver.models["credit"]
    client = await explainer("credit", background_data=str(mlserver.data / "credit.csv"))
    row = credit.test[5].tolist()
    bodies = [
        {"instances": [row]},
        {"instances": [dict(zip(FEATURES, row, strict=True))]},
        {"data": {"ndarray": [row]}},
        {"data": {"ndarray": [row], "names": FEATURES}},
        {"inputs": [{"name": "x", "shape": [1, 5], "datatype": "FP64", "data": row}]},
        {"inputs": [{"name": "x", "shape": [5], "datatype": "FP32", "data": row}]},
    ]
    answers = []
    for body in bodies:
        status, answer = await post(client, "/v1/models/credit:explain", body)
        assert status == 200, answer
        assert list(answer) == ["timestamp", "LIME", "SHAP"]
        answer.pop("timestamp")
        answers.append(answer)
    fp32 = answers.pop()  # rounding the input to FP32 moves the scores a little
    assert all(answer == answers[0] for answer in answers)
    assert fp32["SHAP"]["saliencies"]["outputs-1"][0]["name"] == "Credit History"
    item = answers[0]["LIME"]["saliencies"]["outputs-0"][0]
    assert list(item) == ["name", "score", "confidence"]


async def test_feature_names_in_any_order_are_matched_to_the_model(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    credit = mlserver.models["credit"]
    client = await explainer("credit", background_data=str(mlserver.data / "credit.csv"))
    row = credit.test[5]
    reordered = {name: float(row[j]) for j, name in reversed(list(enumerate(FEATURES)))}
    _, by_position = await post(client, "/v1/models/credit:explain", {"instances": [row.tolist()]})
    _, by_name = await post(client, "/v1/models/credit:explain", {"instances": [reordered]})
    assert by_name["SHAP"] == by_position["SHAP"]


async def test_same_seed_same_bytes_other_seed_other_scores(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    forest = mlserver.models["forest20"]
    client = await explainer("forest20", background_data=str(mlserver.data / "forest20.csv"))
    body = {"instances": [forest.test[3].tolist()], "parameters": {"seed": 11}}
    first = await (await client.post("/v1/models/forest20:explain", data=orjson.dumps(body))).read()
    again = await (await client.post("/v1/models/forest20:explain", data=orjson.dumps(body))).read()
    assert without_timestamp(first) == without_timestamp(again)
    body["parameters"]["seed"] = 12
    other = await (await client.post("/v1/models/forest20:explain", data=orjson.dumps(body))).read()
    assert without_timestamp(other) != without_timestamp(first)


async def test_trustyai_response_format(explainer: ExplainerFactory, mlserver: Predictor) -> None:
    credit = mlserver.models["credit"]
    client = await explainer(
        "credit", background_data=str(mlserver.data / "credit.csv"), response_format="trustyai"
    )
    status, body = await post(
        client, "/v1/models/credit:explain", {"instances": [credit.test[0].tolist()]}
    )
    assert status == 200
    assert list(body) == ["timestamp", "type", "saliencies"]
    assert body["type"] == "explanation"
    assert list(body["saliencies"]) == ["LIME", "SHAP"]
    assert len(body["saliencies"]["SHAP"]["outputs-0"]) == 5


async def test_without_background_the_reservoir_of_inputs_is_used(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    forest = mlserver.models["forest20"]
    client = await explainer("forest20")
    # A cold start: the only background is the row itself, so nothing can vary.
    status, body = await post(
        client, "/v1/models/forest20:explain", {"instances": [forest.test[10].tolist()]}
    )
    assert status == 200
    assert body["SHAP"]["background"]["rows"] == 1
    assert all(item["score"] == 0 for item in body["SHAP"]["saliencies"]["outputs-1"])
    status, body = await post(
        client, "/v1/models/forest20:explain", {"instances": forest.test[:3].tolist()}
    )
    assert status == 200
    for explanation in body["explanations"]:
        for kind in ("LIME", "SHAP"):
            assert explanation[kind]["background"] == {
                "source": "reservoir of inputs seen",
                "rows": 4,
                "rows_per_explanation": 4,
                "sampled": False,
            }
    status, body = await post(
        client, "/v1/models/forest20:explain", {"instances": [forest.test[9].tolist()]}
    )
    assert status == 200 and body["SHAP"]["background"]["rows"] == 5


async def test_target_parameter_selects_outputs(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    credit = mlserver.models["credit"]
    client = await explainer("credit", background_data=str(mlserver.data / "credit.csv"))
    row = credit.test[0].tolist()
    for target in (1, "outputs-1", [1]):
        status, body = await post(
            client,
            "/v1/models/credit:explain",
            {"instances": [row], "parameters": {"target": target, "explainer": "shap"}},
        )
        assert status == 200
        assert list(body["SHAP"]["saliencies"]) == ["outputs-1"]
        assert list(body["SHAP"]["baseline"]) == ["outputs-1"]


async def test_linear_model_without_probabilities_explains_its_prediction(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    linear = mlserver.models["linear20"]
    client = await explainer("linear20", background_data=str(mlserver.data / "linear20.csv"))
    status, body = await post(
        client, "/v1/models/linear20:explain", {"instances": [linear.test[1].tolist()]}
    )
    assert status == 200
    assert list(body["SHAP"]["saliencies"]) == ["outputs-0"]
    assert body["SHAP"]["prediction"]["outputs-0"] == pytest.approx(
        float(linear.model.predict(linear.test[1:2])[0]), abs=1e-9
    )


async def test_all_mode_sends_its_rows_as_one_stream_of_calls_cut_only_by_the_limit(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    from explainer.server.app import RUNTIME

    forest = mlserver.models["forest20"]
    client = await explainer(
        "forest20",
        background_data=str(mlserver.data / "forest20.csv"),
        predictor_max_batch=10_000,
    )
    predictor = client.server.app[RUNTIME].predictor
    calls_before, rows_before = predictor.calls, predictor.rows_sent
    status, body = await post(
        client, "/v1/models/forest20:explain", {"instances": [forest.test[0].tolist()]}
    )
    assert status == 200
    rows = predictor.rows_sent - rows_before
    width = body["SHAP"]["background"]["rows_per_explanation"]
    shap_rows = rows_planned(20, default_budget(20, width), width)
    # At its default LIME samples its whole 5000 at once beside SHAP's larger plan
    # instead of settling in rounds that would each wait behind SHAP's rows.
    assert body["LIME"]["samples"] == 5000
    assert rows == 5000 + shap_rows == 17_051
    # One stream of calls cut only by the limit: SHAP's 12,051 rows fill a call and part
    # of a second, which LIME's 5,000 share (whatever the timing) — two calls, where
    # LIME's own would make three. Never a call per coalition.
    assert predictor.calls - calls_before == -(-rows // 10_000) == 2


async def test_lime_alone_adds_rows_only_until_its_top_five_are_settled_and_says_so(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    from explainer.server.app import RUNTIME

    forest = mlserver.models["forest20"]
    client = await explainer(
        "forest20", background_data=str(mlserver.data / "forest20.csv"), explainer_type="LIME"
    )
    predictor = client.server.app[RUNTIME].predictor
    reached = []
    for row in forest.test[:8]:
        rows_before = predictor.rows_sent
        status, body = await post(
            client, "/v1/models/forest20:explain", {"instances": [row.tolist()]}
        )
        assert status == 200
        samples = body["LIME"]["samples"]
        assert predictor.rows_sent - rows_before == samples  # every row scored once
        assert 1000 <= samples <= 5000
        reached.append(samples)
        for output, items in body["LIME"]["saliencies"].items():  # ordered by |score|
            fifth, sixth = items[4], items[5]
            gap = abs(fifth["score"]) - abs(sixth["score"])
            apart = gap > np.hypot(fifth["confidence"], sixth["confidence"])
            # lime's budget is where an unsettled ranking stops; below it, all are settled
            assert apart or samples == 5000, (samples, items)
            assert (body["LIME"]["settled"][output] == 5) == apart, (body["LIME"], items)
    assert min(reached) < 5000 and max(reached) > 1000, reached  # it stopped, and it grew


async def test_predict_passes_through_and_probes_report_ready(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    credit = mlserver.models["credit"]
    client = await explainer("credit", background_data=str(mlserver.data / "credit.csv"))

    async def rows_scored() -> float:
        metrics = await (await client.get("/metrics")).text()
        scored = re.search(r"^explainer_predictor_rows_total (\S+)$", metrics, re.MULTILINE)
        assert scored is not None
        return float(scored.group(1))

    before = await rows_scored()  # the warm-up explanation's rows
    assert before == 5000 + 1 + 30 + 30 * 30
    status, body = await post(
        client, "/v1/models/credit:predict", {"instances": credit.test[:2].tolist()}
    )
    assert status == 200
    assert np.allclose(body["predictions"], credit.model.predict_proba(credit.test[:2]), atol=1e-12)
    for path in (
        "/v1/models/credit",
        "/v2/health/ready",
        "/v2/models/credit/ready",
        "/v2/health/live",
    ):
        response = await client.get(path)
        assert response.status == 200, path
    assert (await (await client.get("/v1/models/credit")).json()) == {
        "name": "credit",
        "ready": True,
    }
    await post(client, "/v1/models/credit:explain", {"instances": [credit.test[0].tolist()]})
    await post(client, "/v1/models/credit:explain", {"instances": [[1.0]]})
    metrics = await (await client.get("/metrics")).text()
    assert 'explainer_explain_requests_total{explainer="ALL",status="200"} 1.0' in metrics
    assert 'explainer_explain_requests_total{explainer="ALL",status="400"} 1.0' in metrics
    assert 'explainer_predictor_call_seconds_count{outcome="ok"}' in metrics
    # 2 rows of :predict, then LIME's 5000 and exact SHAP's x, background, 30 coalitions × 30
    assert await rows_scored() - before == 2 + 5000 + 1 + 30 + 30 * 30


async def test_many_rows_are_explained_in_bounded_groups_each_as_if_alone(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    from explainer.server.app import RUNTIME

    forest = mlserver.models["forest20"]
    client = await explainer(
        "forest20",
        background_data=str(mlserver.data / "forest20.csv"),
        explainer_type="LIME",
        predictor_max_batch=6000,
        predictor_max_concurrency=1,
    )
    predictor = client.server.app[RUNTIME].predictor
    calls_before = predictor.calls
    rows = forest.test[:3].tolist()
    status, together = await post(client, "/v1/models/forest20:explain", {"instances": rows})
    assert status == 200
    assert (
        predictor.calls - calls_before == 3
    )  # one 5000-row group per row, not one 15000-row batch
    for row, explanation in zip(rows, together["explanations"], strict=True):
        status, alone = await post(client, "/v1/models/forest20:explain", {"instances": [row]})
        assert status == 200
        alone.pop("timestamp")
        assert explanation == alone


async def test_past_max_in_flight_new_explanations_get_429_with_retry_after(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    import asyncio

    forest = mlserver.models["forest20"]
    client = await explainer(
        "forest20", background_data=str(mlserver.data / "forest20.csv"), max_in_flight=1
    )
    body = orjson.dumps({"instances": [forest.test[0].tolist()]})
    first = asyncio.ensure_future(client.post("/v1/models/forest20:explain", data=body))
    await asyncio.sleep(0.05)  # the first is now in progress (it takes ~0.4 s)
    second = await client.post("/v1/models/forest20:explain", data=body)
    assert second.status == 429
    assert second.headers["Retry-After"] == "1"
    assert "MAX_IN_FLIGHT=1" in (await second.json())["error"]
    assert (await first).status == 200
    third = await client.post("/v1/models/forest20:explain", data=body)
    assert third.status == 200  # nothing leaked: the slot was given back
