"""Predictor failures map to 502/503/504 with a clear message, and the explainer keeps
serving. Faults come from the real MLServer (or its absence)."""

from __future__ import annotations

import orjson

from tests.conftest import ExplainerFactory, Predictor, free_port


async def test_unreachable_predictor_gives_503(explainer: ExplainerFactory) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from explainer.server.app import create_app
    from explainer.settings import Settings

    settings = Settings(
        model_name="credit",
        predictor_host=f"127.0.0.1:{free_port()}",
        predictor_retries=1,
        feature_names=["a", "b", "c"],
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        response = await client.post(
            "/v1/models/credit:explain", data=orjson.dumps({"instances": [[1, 2, 3]]})
        )
        assert response.status == 503
        assert "unreachable" in (await response.json())["error"]
        ready = await client.get("/v2/health/ready")
        assert ready.status == 503 and (await ready.json()) == {"ready": False}


async def test_plain_text_500_from_the_predictor_gives_502(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    # Told the model takes 19 features, the explainer sends rows MLServer's scikit-learn
    # runtime cannot score; MLServer answers 500 with a plain-text body.
    names = ",".join(f"f{i}" for i in range(19))
    client = await explainer("linear20", feature_names=names, explainer_type="LIME")
    response = await client.post(
        "/v1/models/linear20:explain", data=orjson.dumps({"instances": [[0.5] * 19]})
    )
    assert response.status == 502
    error = (await response.json())["error"]
    assert error.startswith("predictor answered 500")
    good = await client.post("/v1/models/linear20:predict", data=orjson.dumps({"instances": []}))
    assert good.status == 400  # and the explainer is still serving


async def test_slow_predictor_gives_504(explainer: ExplainerFactory, mlserver: Predictor) -> None:
    client = await explainer(
        "forest20", background_data=str(mlserver.data / "forest20.csv"), predictor_timeout=0.001
    )
    row = mlserver.models["forest20"].test[0].tolist()
    response = await client.post(
        "/v1/models/forest20:explain", data=orjson.dumps({"instances": [row]})
    )
    assert response.status == 504
    assert "within 0.001 s" in (await response.json())["error"]


async def test_unknown_model_at_the_predictor_gives_502(explainer: ExplainerFactory) -> None:
    client = await explainer("no-such-model", feature_names="a,b", predictor_output="predict")
    response = await client.post(
        "/v1/models/no-such-model:explain", data=orjson.dumps({"instances": [[1.0, 2.0]]})
    )
    assert response.status == 502
    assert "404" in (await response.json())["error"]
