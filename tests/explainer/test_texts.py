"""Texts end to end, against real peers: MLServer's scikit-learn runtime serving a
TF-IDF (words and bigrams) + logistic regression pipeline that takes one BYTES tensor of
strings (REST and gRPC), and KServe's model server taking v1 instances of strings. The
truth is brute force over word masks, computed here from the contract's masking rule on
single-spaced texts (the kept words joined by one space), not from the explainer's own
masker."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from tests.conftest import ExplainerFactory, Predictor
from tests.models import TextModel, enumerate_shapley

TEXT = "not a great film but a wonderful cast"
WORDS = TEXT.split(" ")
EVERY_COALITION = 2 ** len(WORDS) - 2


def word_shapley(model: TextModel, text: str) -> np.ndarray:
    words = text.split(" ")
    return enumerate_shapley(
        lambda kept: model.predict_proba([" ".join(words[i] for i in kept)])[0], len(words)
    )


async def post(client: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return await post_to(client, "reviews", body)


async def post_to(client: Any, model: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await client.post(f"/v1/models/{model}:explain", data=orjson.dumps(body))
    return response.status, orjson.loads(await response.read())


def by_span(block: dict[str, Any], output: str) -> list[dict[str, Any]]:
    return sorted(block["saliencies"][output], key=lambda item: item["span"][0])


@pytest.mark.parametrize("protocol", ["v2", "grpc-v2"])
async def test_shap_equals_brute_force_over_word_masks(
    explainer: ExplainerFactory, mlserver: Predictor, protocol: str
) -> None:
    client = await explainer(
        "reviews",
        explainer_type="SHAP",
        predictor_protocol=protocol,
        predictor_host=mlserver.grpc if protocol == "grpc-v2" else mlserver.host,
    )
    model = mlserver.models["reviews"].model
    status, payload = await post(
        client, {"instances": [TEXT], "parameters": {"shap_samples": EVERY_COALITION}}
    )
    assert status == 200, payload
    shap = payload["SHAP"]
    truth = word_shapley(model, TEXT)
    for k, output in enumerate(["outputs-0", "outputs-1"]):
        items = by_span(shap, output)
        assert [item["name"] for item in items] == WORDS
        assert [TEXT[a:b] for a, b in (item["span"] for item in items)] == WORDS
        np.testing.assert_allclose([item["score"] for item in items], truth[k], atol=1e-9)
        assert all(item["confidence"] == 0 for item in items)
    assert shap["exact"] is True and shap["segments"] == "words"
    full, empty = model.predict_proba([TEXT, ""])
    assert shap["prediction"]["outputs-1"] == pytest.approx(full[1], abs=1e-12)
    assert sum(i["score"] for i in shap["saliencies"]["outputs-1"]) == pytest.approx(
        full[1] - empty[1], abs=1e-9
    )


async def test_texts_of_every_length_in_one_request_and_in_v2_inputs(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    """Several texts, each with its own segments, in one request: each explanation is the
    one its text gets alone; a v2 BYTES tensor of the same texts is the same request."""
    client = await explainer("reviews", explainer_type="ALL")
    texts = [TEXT, "dull", "I loved the story but the ending was bad and slow"]
    parameters = {"seed": 4}
    status, together = await post(client, {"instances": texts, "parameters": parameters})
    assert status == 200, together
    alone = []
    for text in texts:
        status, payload = await post(client, {"instances": [text], "parameters": parameters})
        assert status == 200, payload
        payload.pop("timestamp")
        alone.append(payload)
    assert together["explanations"] == alone
    tensor = {"name": "text", "shape": [3, 1], "datatype": "BYTES", "data": texts}
    status, v2 = await post(client, {"inputs": [tensor], "parameters": parameters})
    assert status == 200, v2
    assert v2["explanations"] == alone
    for text, answer in zip(texts, alone, strict=True):
        lime = answer["LIME"]["saliencies"]["outputs-1"]
        assert sorted(item["name"] for item in lime) == sorted(text.split(" "))
        assert all(item["confidence"] > 0 for item in lime if len(text.split(" ")) > 1)


async def test_sentences_are_segments_on_request(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    client = await explainer("reviews", explainer_type="SHAP")
    text = "The cast was great. The story was dull!  I loved it"
    status, payload = await post(
        client, {"instances": [text], "parameters": {"segments": "sentences"}}
    )
    assert status == 200, payload
    items = by_span(payload["SHAP"], "outputs-1")
    assert [item["name"] for item in items] == [
        "The cast was great.",
        "The story was dull!",
        "I loved it",
    ]
    assert payload["SHAP"]["exact"] is True and payload["SHAP"]["segments"] == "sentences"


async def test_shap_over_kserve_v1_equals_brute_force(
    explainer: ExplainerFactory, mlserver: Predictor, kserve_reviews: str
) -> None:
    client = await explainer(
        "reviews", explainer_type="SHAP", predictor_protocol="v1", predictor_host=kserve_reviews
    )
    status, payload = await post(
        client, {"instances": [TEXT], "parameters": {"shap_samples": EVERY_COALITION}}
    )
    assert status == 200, payload
    truth = word_shapley(mlserver.models["reviews"].model, TEXT)
    scores = [item["score"] for item in by_span(payload["SHAP"], "outputs-1")]
    np.testing.assert_allclose(scores, truth[1], atol=1e-9)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"instances": [""]}, 400, ("'instances[0]'", "empty")),
        ({"instances": [TEXT, " \n\t"]}, 400, ("'instances[1]'", "whitespace")),
        ({"instances": [TEXT, 3]}, 400, ("'instances[1]'", "int", "not a string")),
        ({"instances": [TEXT, ["a", "b"]]}, 400, ("'instances[1]'", "list")),
        ({"instances": ["a" * 20_001]}, 413, ("20001 characters", "MAX_TEXT_CHARS")),
        (
            {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": [TEXT]}]},
            400,
            ("1 texts", "[2]"),
        ),
        (
            {"inputs": [{"name": "text", "shape": [1, 2], "datatype": "BYTES", "data": [TEXT]}]},
            400,
            ("[n] or [n, 1]",),
        ),
        ({"instances": [TEXT], "parameters": {"segments": "letters"}}, 400, ("segments",)),
        ({"instances": [[1.0, 2.0]]}, 400, ("'instances' holds rows", "takes texts")),
    ],
)
async def test_bad_texts_are_a_clear_4xx(
    explainer: ExplainerFactory,
    mlserver: Predictor,
    body: dict[str, Any],
    status: int,
    words: tuple[str, ...],
) -> None:
    client = await explainer("reviews")
    answer, payload = await post(client, body)
    assert answer == status and list(payload) == ["error"], payload
    for word in words:
        assert word in payload["error"], payload
    answer, _ = await post(client, {"instances": [TEXT]})
    assert answer == 200  # and the service goes on


async def test_texts_to_a_model_of_rows_are_a_400(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    client = await explainer("credit", background_data=str(mlserver.data / "credit.csv"))
    status, payload = await post_to(client, "credit", {"instances": [TEXT]})
    assert status == 400 and "takes rows of 5 features" in payload["error"], payload


async def test_predict_scores_texts(explainer: ExplainerFactory, mlserver: Predictor) -> None:
    client = await explainer("reviews")
    texts = [TEXT, "dull and slow"]
    response = await client.post("/v1/models/reviews:predict", json={"instances": texts})
    assert response.status == 200, await response.text()
    body = await response.json()
    expected = mlserver.models["reviews"].model.predict_proba(texts)
    np.testing.assert_allclose(np.asarray(body["predictions"]), expected, atol=1e-12)
