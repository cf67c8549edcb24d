"""Prompts to a generative model, against a real vLLM on CPU serving a tiny Qwen2 model
built by the tests. The truth is brute force through the same server, coded here from
the contract: v(S) = Σ log p(response tokens | tokens(prompt with the words outside S
masked) + tokens(response)), each text tokenized by the server without special tokens,
the empty prompt replaced by the end-of-text token; every coalition scored by its own
request."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import orjson
import pytest
import requests
from aiohttp import web

from tests.conftest import ExplainerFactory, Predictor
from tests.mlserver import free_port
from tests.models import enumerate_shapley
from tests.vllm import MODEL, after, value, word_shapley

EXPLAIN = f"/v1/models/{MODEL}:explain"
PROMPT = "Why was the loan refused"
RESPONSE = " the income was low"
WORDS = PROMPT.split(" ")


async def post(client: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await client.post(EXPLAIN, data=orjson.dumps(body))
    return response.status, orjson.loads(await response.read())


async def start(explainer: ExplainerFactory, api: str, **settings: Any) -> Any:
    return await explainer(MODEL, predictor_protocol="openai", predictor_host=api, **settings)


def in_order(block: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(block["saliencies"]["response"], key=lambda item: item["span"][0])


async def test_shap_equals_brute_force_through_the_same_server(
    explainer: ExplainerFactory, vllm: str
) -> None:
    client = await start(explainer, vllm, explainer_type="SHAP")
    status, payload = await post(client, {"prompt": PROMPT, "response": RESPONSE})
    assert status == 200, payload
    shap = payload["SHAP"]
    items = in_order(shap)
    assert [i["name"] for i in items] == WORDS
    assert [PROMPT[a:b] for a, b in (i["span"] for i in items)] == WORDS
    truth = word_shapley(vllm, PROMPT, RESPONSE)
    np.testing.assert_allclose([i["score"] for i in items], truth, atol=2e-4)
    assert shap["exact"] is True and all(i["confidence"] == 0 for i in items)
    assert shap["prediction"]["response"] == pytest.approx(value(vllm, PROMPT, RESPONSE), abs=1e-4)
    assert shap["baseline"]["response"] == pytest.approx(value(vllm, "", RESPONSE), abs=1e-4)
    total = sum(i["score"] for i in items)
    assert total == pytest.approx(shap["prediction"]["response"] - shap["baseline"]["response"])
    assert shap["response"] == RESPONSE and shap["segments"] == "words"


async def test_without_a_response_the_model_answers_first_at_temperature_zero(
    explainer: ExplainerFactory, vllm: str
) -> None:
    client = await start(explainer, vllm, lime_samples=400)
    status, payload = await post(client, {"prompt": PROMPT, "max_tokens": 5})
    assert status == 200, payload
    expected = requests.post(
        f"{vllm}/completions",
        json={"model": MODEL, "prompt": PROMPT, "max_tokens": 5, "temperature": 0},
        timeout=60,
    ).json()["choices"][0]["text"]
    assert payload["SHAP"]["response"] == payload["LIME"]["response"] == expected
    lime = in_order(payload["LIME"])
    assert [i["name"] for i in lime] == WORDS
    assert all(i["confidence"] > 0 for i in lime)


async def test_sampled_shap_intervals_cover_the_exact_values(
    explainer: ExplainerFactory, vllm: str
) -> None:
    """A prompt of 16 words: sampled coalitions, against the exact explanation of the same
    server (every coalition fits 2^16 − 2)."""
    prompt = (
        "The bank approved the loan because the applicant had a long credit history and low debts"
    )
    client = await start(explainer, vllm, explainer_type="SHAP", shap_max_samples=70_000)
    status, exact = await post(
        client, {"prompt": prompt, "response": RESPONSE, "parameters": {"shap_samples": 65_534}}
    )
    assert status == 200 and exact["SHAP"]["exact"] is True, exact
    truth = np.array([i["score"] for i in in_order(exact["SHAP"])])
    covered = []
    for seed in range(4):
        status, sampled = await post(
            client,
            {
                "prompt": prompt,
                "response": RESPONSE,
                "parameters": {"shap_samples": 1000, "seed": seed},
            },
        )
        assert status == 200, sampled
        items = in_order(sampled["SHAP"])
        scores = np.array([i["score"] for i in items])
        half = np.array([i["confidence"] for i in items])
        covered.append(np.abs(scores - truth) <= half + 1e-4)
    assert np.mean(covered) >= 0.85, np.mean(covered)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"prompt": ""}, 400, ("'prompt'", "non-empty")),
        ({"prompt": PROMPT, "messages": []}, 400, ("not both",)),
        ({"prompt": PROMPT, "response": 3}, 400, ("'response'",)),
        ({"prompt": PROMPT, "max_tokens": 0}, 400, ("'max_tokens'",)),
        ({"prompt": PROMPT, "max_tokens": 100_000}, 413, ("MAX_RESPONSE_TOKENS",)),
        ({"prompt": " ".join(["word"] * 600), "response": "x"}, 413, ("context", "512")),
        ({"instances": [[1.0, 2.0]]}, 400, ("generative model", "prompt")),
        ({"instances": ["a text"]}, 400, ("generative model",)),
        ({"prompt": PROMPT, "temperature": 1}, 400, ("unknown top-level key",)),
        ({"messages": [{"role": "user"}]}, 400, ("'messages[0]'", "'content'")),
        ({"prompt": PROMPT, "parameters": {"segments": "messages"}}, 400, ("chat",)),
    ],
)
async def test_bad_prompts_are_a_clear_4xx(
    explainer: ExplainerFactory,
    vllm: str,
    body: dict[str, Any],
    status: int,
    words: tuple[str, ...],
) -> None:
    client = await start(explainer, vllm)
    answer, payload = await post(client, body)
    assert answer == status and list(payload) == ["error"], payload
    for word in words:
        assert word in payload["error"], payload
    answer, _ = await post(client, {"prompt": PROMPT, "response": RESPONSE})
    assert answer == 200  # and the service goes on


async def test_a_prompt_to_a_model_of_rows_is_a_400(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    client = await explainer("credit", background_data=str(mlserver.data / "credit.csv"))
    response = await client.post("/v1/models/credit:explain", data=orjson.dumps({"prompt": PROMPT}))
    payload = orjson.loads(await response.read())
    assert response.status == 400 and "generative model" in payload["error"], payload


@contextlib.asynccontextmanager
async def proxy(
    vllm: str, change: Callable[[str, dict[str, Any]], dict[str, Any]], delay: float = 0.0
) -> AsyncIterator[str]:
    """A proxy in front of vLLM that passes ``change(path, answer)`` on for every
    completions answer, after ``delay`` seconds; yields its API URL."""
    import aiohttp

    async with aiohttp.ClientSession() as session:

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            upstream = vllm.removesuffix("/v1") + request.path
            headers = {"Content-Type": "application/json"}
            async with session.request(
                request.method, upstream, data=body or None, headers=headers
            ) as answer:
                data, status = await answer.read(), answer.status
            if request.path.endswith("/completions") and status == 200:
                await asyncio.sleep(delay)
                data = orjson.dumps(change(request.path, orjson.loads(data)))
            return web.Response(body=data, status=status, content_type="application/json")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            await runner.cleanup()


def no_logprobs(path: str, answer: dict[str, Any]) -> dict[str, Any]:
    for choice in answer.get("choices", []):
        choice["logprobs"] = None
    return answer


async def test_a_server_with_no_log_probabilities_is_a_502_naming_the_fix(
    explainer: ExplainerFactory, vllm: str
) -> None:
    """KServe's huggingface runtime with its HF backend answers ``logprobs: null``: a
    proxy in front of vLLM does the same."""
    async with proxy(vllm, no_logprobs) as api:
        client = await start(explainer, api)
        answer, payload = await post(client, {"prompt": PROMPT, "response": RESPONSE})
    assert answer == 502, payload
    assert "no log-probabilities" in payload["error"] and "vLLM backend" in payload["error"]


async def test_a_server_that_times_out_is_a_504_and_the_service_goes_on(
    explainer: ExplainerFactory, vllm: str
) -> None:
    async with proxy(vllm, lambda _, answer: answer, delay=3.0) as api:
        client = await start(explainer, api, predictor_timeout=1.0, predictor_retries=0)
        answer, payload = await post(client, {"prompt": PROMPT, "response": RESPONSE})
        assert answer == 504 and "within 1 s" in payload["error"], payload
    direct = await start(explainer, vllm)
    answer, _ = await post(direct, {"prompt": PROMPT, "response": RESPONSE})
    assert answer == 200


async def test_a_tolerance_is_met_by_sampling_in_rounds(
    explainer: ExplainerFactory, vllm: str
) -> None:
    prompt = (
        "The bank approved the loan because the applicant had a long credit history and low debts"
    )
    client = await start(explainer, vllm, explainer_type="SHAP")
    body = {"prompt": prompt, "response": RESPONSE, "parameters": {"tolerance": 0.05}}
    status, payload = await post(client, body)
    assert status == 200, payload
    shap = payload["SHAP"]
    assert shap["tolerance_met"] is True and shap["exact"] is False
    assert max(i["confidence"] for i in shap["saliencies"]["response"]) <= 0.05


CHAT = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Why was the loan refused?"},
    {"role": "assistant", "content": "The income was low."},
    {"role": "user", "content": "And the debts?"},
]


def chat_value(api: str, messages: list[dict[str, str]], response: str) -> float:
    """log p(response | the chat template's rendering with the generation prompt)."""
    rendered = requests.post(
        api.removesuffix("/v1") + "/tokenize",
        json={"model": MODEL, "messages": messages, "add_generation_prompt": True},
        timeout=60,
    ).json()["tokens"]
    return after(api, list(rendered), response)


async def test_chat_messages_as_segments_equal_brute_force(
    explainer: ExplainerFactory, vllm: str
) -> None:
    """A masked message keeps its role with empty content."""
    client = await start(explainer, vllm, explainer_type="SHAP")
    body = {"messages": CHAT, "response": RESPONSE, "parameters": {"segments": "messages"}}
    status, payload = await post(client, body)
    assert status == 200, payload
    items = sorted(payload["SHAP"]["saliencies"]["response"], key=lambda i: i["message"])
    assert [i["name"] for i in items] == [m["content"] for m in CHAT]
    assert [i["span"] for i in items] == [[0, len(m["content"])] for m in CHAT]

    def kept_messages(kept: list[int]) -> np.ndarray:
        masked = [
            {"role": m["role"], "content": m["content"] if i in kept else ""}
            for i, m in enumerate(CHAT)
        ]
        return np.array([chat_value(vllm, masked, RESPONSE)])

    truth = enumerate_shapley(kept_messages, len(CHAT))[0]
    np.testing.assert_allclose([i["score"] for i in items], truth, atol=2e-4)
    assert payload["SHAP"]["exact"] is True


async def test_chat_words_carry_their_message_and_span(
    explainer: ExplainerFactory, vllm: str
) -> None:
    client = await start(explainer, vllm, lime_samples=300)
    status, payload = await post(client, {"messages": CHAT[1:2], "max_tokens": 3})
    assert status == 200, payload
    expected = requests.post(
        f"{vllm}/chat/completions",
        json={"model": MODEL, "messages": CHAT[1:2], "max_tokens": 3, "temperature": 0},
        timeout=60,
    ).json()["choices"][0]["message"]["content"]
    assert payload["SHAP"]["response"] == expected
    content = CHAT[1]["content"]
    items = sorted(payload["SHAP"]["saliencies"]["response"], key=lambda i: i["span"][0])
    assert [content[a:b] for a, b in (i["span"] for i in items)] == content.split(" ")
    assert {i["message"] for i in items} == {0}
    shap = payload["SHAP"]
    total = sum(i["score"] for i in items)
    assert total == pytest.approx(shap["prediction"]["response"] - shap["baseline"]["response"])
