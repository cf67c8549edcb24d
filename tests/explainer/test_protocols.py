"""The same explanation comes back whichever protocol carries the rows: v2 REST and
gRPC against MLServer, v1 against KServe's own Python model server."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from explainer.demo import FEATURES
from tests.conftest import ExplainerFactory, Predictor
from tests.mlserver import free_port


async def explain(
    client: Any, model: str, rows: list[list[float]], **parameters: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"instances": rows}
    if parameters:
        body["parameters"] = parameters
    response = await client.post(f"/v1/models/{model}:explain", data=orjson.dumps(body))
    assert response.status == 200, await response.text()
    answer = orjson.loads(await response.read())
    answer.pop("timestamp")
    return answer


def scores(answer: dict[str, Any]) -> dict[tuple[str, str, str], float]:
    """(explainer, output, feature) → score, for every saliency in a one-row answer."""
    return {
        (kind, output, item["name"]): item["score"]
        for kind in ("LIME", "SHAP")
        if kind in answer
        for output, items in answer[kind]["saliencies"].items()
        for item in items
    }


def assert_same_explanation(one: dict[str, Any], other: dict[str, Any]) -> None:
    a, b = scores(one), scores(other)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=1e-9), key


async def test_grpc_gives_the_same_explanation_as_rest(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    credit = mlserver.models["credit"]
    background = str(mlserver.data / "credit.csv")
    rest = await explainer("credit", background_data=background)
    grpc = await explainer(
        "credit",
        background_data=background,
        predictor_protocol="grpc-v2",
        predictor_host=mlserver.grpc,
    )
    rows = [credit.test[438].tolist()]
    over_rest, over_grpc = await explain(rest, "credit", rows), await explain(grpc, "credit", rows)
    assert_same_explanation(over_rest, over_grpc)
    assert over_grpc["SHAP"]["exact"] is True


async def test_grpc_calls_are_split_to_fit_the_message_limit(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    from explainer.server.app import RUNTIME

    forest = mlserver.models["forest20"]
    background = str(mlserver.data / "forest20.csv")
    grpc = await explainer(
        "forest20",
        background_data=background,
        predictor_protocol="grpc-v2",
        predictor_host=mlserver.grpc,
        predictor_grpc_max_message_bytes=1024 * 1024,
        explainer_type="SHAP",
    )
    rest = await explainer("forest20", background_data=background, explainer_type="SHAP")
    predictor = grpc.server.app[RUNTIME].predictor
    before = predictor.calls
    rows = [forest.test[2].tolist()]
    over_grpc = await explain(grpc, "forest20", rows)
    width = over_grpc["SHAP"]["background"]["rows_per_explanation"]
    sent = 1 + width + over_grpc["SHAP"]["samples"] * width
    per_call = (1024 * 1024 - 64 * 1024) // (20 * 8)
    assert predictor.calls - before == -(-sent // per_call)
    assert_same_explanation(over_grpc, await explain(rest, "forest20", rows))


async def test_grpc_predict_probes_and_probabilities(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    forest = mlserver.models["forest20"]
    client = await explainer(
        "forest20",
        background_data=str(mlserver.data / "forest20.csv"),
        predictor_protocol="grpc-v2",
        predictor_host=mlserver.grpc,
    )
    response = await client.post(
        "/v1/models/forest20:predict", data=orjson.dumps({"instances": forest.test[:3].tolist()})
    )
    assert response.status == 200
    expected = forest.model.predict_proba(forest.test[:3])
    assert np.allclose((await response.json())["predictions"], expected, atol=1e-12)
    assert (await client.get("/v2/health/ready")).status == 200


async def test_grpc_unreachable_and_unknown_model(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    down = await explainer(
        "credit",
        feature_names="a,b",
        predictor_protocol="grpc-v2",
        predictor_host=f"127.0.0.1:{free_port()}",
        predictor_retries=0,
    )
    response = await down.post(
        "/v1/models/credit:explain", data=orjson.dumps({"instances": [[1, 2]]})
    )
    assert response.status == 503
    assert (await down.get("/v2/health/ready")).status == 503
    unknown = await explainer(
        "nope",
        feature_names="a,b",
        predictor_protocol="grpc-v2",
        predictor_host=mlserver.grpc,
        predictor_output="predict",
    )
    response = await unknown.post(
        "/v1/models/nope:explain", data=orjson.dumps({"instances": [[1, 2]]})
    )
    assert response.status == 502
    assert "NOT_FOUND" in (await response.json())["error"]


async def test_v1_against_kserve_gives_the_same_explanation_as_v2(
    explainer: ExplainerFactory, mlserver: Predictor, kserve_v1: str
) -> None:
    credit = mlserver.models["credit"]
    background = str(mlserver.data / "credit.csv")
    v2 = await explainer("credit", background_data=background)
    v1 = await explainer(
        "credit", background_data=background, predictor_protocol="v1", predictor_host=kserve_v1
    )
    rows = [credit.test[438].tolist()]
    assert_same_explanation(await explain(v2, "credit", rows), await explain(v1, "credit", rows))
    response = await v1.post("/v1/models/credit:predict", data=orjson.dumps({"instances": rows}))
    assert response.status == 200
    expected = credit.model.predict_proba(np.array(rows))
    assert np.allclose((await response.json())["predictions"], expected, atol=1e-12)
    assert (await v1.get("/v1/models/credit")).status == 200


@pytest.mark.parametrize("protocol", ["v2", "grpc-v2"])
async def test_names_come_from_the_predictors_metadata(
    explainer: ExplainerFactory, mlserver: Predictor, protocol: str
) -> None:
    import pandas as pd

    from tests.models import brute_force_shapley

    named = mlserver.models["credit-named"]
    host = mlserver.grpc if protocol == "grpc-v2" else mlserver.host
    # The background CSV's header says inputs-<i>; the names the predictor declares win.
    client = await explainer(
        "credit-named",
        predictor_protocol=protocol,
        predictor_host=host,
        background_data=str(mlserver.data / "credit-named.csv"),
        explainer_type="SHAP",
    )
    row = named.test[438]
    answer = await explain(client, "credit-named", [row.tolist()])
    assert list(answer["SHAP"]["saliencies"]) == ["predict"]  # a one-column output, declared
    got = {item["name"]: item["score"] for item in answer["SHAP"]["saliencies"]["predict"]}
    assert set(got) == set(FEATURES)

    def labels(rows: np.ndarray) -> np.ndarray:
        return named.model.predict(pd.DataFrame(rows, columns=FEATURES)).reshape(-1, 1)

    truth = brute_force_shapley(labels, row, named.train[:50])[0]
    for j, name in enumerate(FEATURES):
        assert got[name] == pytest.approx(truth[j], abs=1e-9)


async def test_binary_tensor_extension_against_kserve_gives_the_same_explanation(
    explainer: ExplainerFactory, mlserver: Predictor, kserve_v1: str
) -> None:
    """KServe's model server over v2 REST with raw tensor bytes both ways; MLServer, which
    lists no extensions at GET /v2, keeps getting JSON."""
    from explainer.server.app import RUNTIME

    credit = mlserver.models["credit"]
    background = str(mlserver.data / "credit.csv")
    over_json = await explainer("credit", background_data=background)
    binary = await explainer(
        "credit", background_data=background, predictor_host=kserve_v1, predictor_binary=True
    )
    kserve_json = await explainer(
        "credit", background_data=background, predictor_host=kserve_v1, predictor_binary=False
    )
    assert over_json.server.app[RUNTIME].predictor.transport.binary is False  # auto: not offered
    rows = [credit.test[438].tolist(), credit.test[7].tolist()]
    expected = await explain(over_json, "credit", rows)
    assert_same_explanation(await explain(binary, "credit", rows), expected)
    assert_same_explanation(await explain(kserve_json, "credit", rows), expected)
    raw, text = (c.server.app[RUNTIME].predictor for c in (binary, kserve_json))
    assert raw.transport.binary is True and text.transport.binary is False
    # 8 bytes a value instead of ~19 characters
    assert raw.transport.bytes_sent / raw.rows_sent < text.transport.bytes_sent / text.rows_sent / 2
