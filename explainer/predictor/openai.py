"""An OpenAI-compatible server (vLLM's own, or KServe's huggingface runtime with its vLLM
backend under ``/openai/v1``) as the predictor of a generative model.

The value of a row (``explainers.maskers.prompt.Prompted``) is log p(response | prompt),
teacher-forced: the server scores the token sequence tokens(prompt) + tokens(response),
each its own tokenization of that text without special tokens, in one completions call
with ``echo`` and ``max_tokens: 0`` for many rows; the value is the sum of the response
tokens' log-probabilities. Texts are tokenized by the server too, many per call (the
same completions form, ``return_token_ids``), and remembered. A prompt that masking
leaves empty still needs a context for the first response token: ``EMPTY_CONTEXT`` (the
tokenizer's end-of-text token for Qwen and GPT-2 style vocabularies, sent as text and
read as the special token).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import numpy as np
import orjson

from explainer.errors import PayloadTooLarge, PredictorFailed
from explainer.predictor.metadata import ModelMetadata
from explainer.predictor.rest import RestTransport
from explainer.predictor.transport import RESPONSE_OUTPUT, Layout
from explainers.maskers.prompt import Prompted

Conversation = tuple[tuple[str, str], ...]  # (role, content) per message
Prompt = str | Conversation
_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
_TOKENS_REMEMBERED = 200_000
NO_LOGPROBS = (
    "the predictor returned no log-probabilities for the prompt tokens (KServe's "
    "huggingface runtime does this with its HF backend): serve the model with its vLLM "
    "backend, or with vLLM's own OpenAI server"
)


class OpenAICompletions(RestTransport):
    chooses_output = False
    generative = True

    def __init__(
        self,
        session: Any,
        api_url: str,
        model_name: str,
        *,
        timeout: float = 60.0,
        retries: int = 2,
        max_prompts: int = 1024,
        empty_context: str = "<|endoftext|>",
    ) -> None:
        super().__init__(session, api_url, model_name, timeout=timeout, retries=retries)
        self.max_prompts = max_prompts
        self.empty_context = empty_context
        self.max_model_len: int | None = None
        self._tokens: OrderedDict[Prompt, tuple[int, ...]] = OrderedDict()
        self.tokens_scored = 0
        # vLLM renders and tokenizes a chat at /tokenize beside the API's /v1
        self.tokenize_url = f"{api_url.removesuffix('/v1')}/tokenize"

    @property
    def model_url(self) -> str:
        return f"{self.base_url}/models"

    async def fetch_metadata(self) -> ModelMetadata:
        document = orjson.loads(await self.model_document())
        served = [m for m in document.get("data") or [] if isinstance(m, dict)]
        names = [str(m.get("id")) for m in served]
        if self.model_name not in names:
            raise PredictorFailed(
                f"the predictor serves {names}, not '{self.model_name}': set MODEL_NAME to "
                "the OpenAI model name"
            )
        card = served[names.index(self.model_name)]
        length = card.get("max_model_len")
        self.max_model_len = int(length) if isinstance(length, int) else None
        return ModelMetadata(outputs=(RESPONSE_OUTPUT,), output_widths={RESPONSE_OUTPUT: 1})

    async def ready(self) -> bool:
        answer = await self.probe(self.model_url)
        return answer is not None and answer[0] == 200

    def rows_per_call(self, row_bytes: int) -> int | None:
        return self.max_prompts

    async def _post(self, path: str, request: dict[str, Any]) -> dict[str, Any]:
        payload = orjson.dumps({"model": self.model_name, **request})
        status, body, _ = await self.request(
            "POST", f"{self.base_url}/{path}", payload, headers=_HEADERS
        )
        self.bytes_sent += len(payload)
        self.bytes_received += len(body)
        if status != 200:
            raise self.failure(status, body)
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise PredictorFailed(f"the predictor's {path} answer is not JSON") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
            raise PredictorFailed(f"the predictor's {path} answer has no 'choices'")
        return answer

    async def tokenize(self, texts: list[str]) -> list[tuple[int, ...]]:
        """The server's token ids of each text, without special tokens ("" has none)."""
        todo = list(dict.fromkeys(t for t in texts if t and t not in self._tokens))
        for start in range(0, len(todo), self.max_prompts):
            part = todo[start : start + self.max_prompts]
            answer = await self._post(
                "completions",
                {
                    "prompt": part,
                    "max_tokens": 0,
                    "echo": True,
                    "add_special_tokens": False,
                    "return_token_ids": True,
                },
            )
            choices = sorted(answer["choices"], key=lambda c: int(c.get("index", 0)))
            if len(choices) != len(part):
                raise PredictorFailed(f"{len(choices)} choices for {len(part)} prompts")
            for text, choice in zip(part, choices, strict=True):
                ids = choice.get("prompt_token_ids")
                if not isinstance(ids, list):
                    raise PredictorFailed(
                        "the predictor did not return prompt_token_ids: it needs vLLM's "
                        "return_token_ids (vLLM 0.10 or later)"
                    )
                self._remember(text, tuple(int(i) for i in ids))
        return [self._tokens[t] if t else () for t in texts]

    async def tokenize_chats(self, chats: list[Conversation]) -> list[tuple[int, ...]]:
        """The server's tokens of each chat as its template renders it, with the
        generation prompt (vLLM's /tokenize: one chat a call, several at once)."""
        todo = list(dict.fromkeys(c for c in chats if c not in self._tokens))
        limit = asyncio.Semaphore(16)

        async def one(chat: Conversation) -> None:
            body = orjson.dumps(
                {
                    "model": self.model_name,
                    "messages": [{"role": r, "content": c} for r, c in chat],
                    "add_generation_prompt": True,
                }
            )
            async with limit:
                status, answer, _ = await self.request(
                    "POST", self.tokenize_url, body, headers=_HEADERS
                )
            if status == 404:
                raise PredictorFailed(
                    f"the predictor has no {self.tokenize_url} to render chat messages (vLLM's "
                    "OpenAI server has it): send the rendered chat as 'prompt'"
                )
            if status != 200:
                raise self.failure(status, answer)
            ids = orjson.loads(answer).get("tokens")
            if not isinstance(ids, list):
                raise PredictorFailed(f"{self.tokenize_url} answered no 'tokens'")
            self._remember(chat, tuple(int(i) for i in ids))

        await asyncio.gather(*(one(chat) for chat in todo))
        return [self._tokens[c] for c in chats]

    def _remember(self, text: Prompt, ids: tuple[int, ...]) -> None:
        self._tokens[text] = ids
        if len(self._tokens) > _TOKENS_REMEMBERED:
            self._tokens.popitem(last=False)

    async def sequence(self, prompt: Prompt, response: str) -> tuple[int, ...]:
        """tokens(prompt) + tokens(response) — the empty context where the prompt has
        no tokens."""
        context, answer = await self.tokenize([self.empty_context, response])
        if isinstance(prompt, str):
            (ids,) = await self.tokenize([prompt])
        else:
            (ids,) = await self.tokenize_chats([prompt])
        return (ids or context) + answer

    async def check_length(self, prompt: Prompt, response: str) -> int:
        """The longest sequence this explanation scores, in tokens: a 413 when over the
        model's context."""
        try:
            full = await self.sequence(prompt, response)
            empty = await self.sequence(_emptied(prompt), response)
        except PredictorFailed as exc:
            if exc.upstream_status == 400 and "context" in exc.message:
                raise PayloadTooLarge(
                    f"the prompt or the response is longer than the model's context "
                    f"({self.max_model_len} tokens, its max_model_len): shorten it "
                    f"(the predictor said: {exc.message})"
                ) from None
            raise
        longest = max(len(full), len(empty))
        if self.max_model_len is not None and longest > self.max_model_len:
            raise PayloadTooLarge(
                f"the prompt and response are {longest} tokens; the model's context is "
                f"{self.max_model_len} (its max_model_len): shorten the prompt or the response"
            )
        return longest

    async def score(self, rows: np.ndarray, output: str | None, layout: Layout) -> np.ndarray:
        prompted: list[Prompted] = rows.tolist()
        unique = list(dict.fromkeys(prompted))
        texts = list(dict.fromkeys(p.prompt for p in unique if isinstance(p.prompt, str)))
        chats = list(dict.fromkeys(p.prompt for p in unique if not isinstance(p.prompt, str)))
        responses = list(dict.fromkeys(p.response for p in unique))
        ids = await self.tokenize([self.empty_context, *texts, *responses])
        context = ids[0]
        by_prompt: dict[Prompt, tuple[int, ...]] = dict(
            zip(texts, ids[1 : 1 + len(texts)], strict=True)
        )
        by_prompt.update(zip(chats, await self.tokenize_chats(chats), strict=True))
        by_response = dict(zip(responses, ids[1 + len(texts) :], strict=True))
        sequences = [
            list((by_prompt[p.prompt] or context) + by_response[p.response]) for p in unique
        ]
        answer = await self._post(
            "completions", {"prompt": sequences, "max_tokens": 0, "echo": True, "logprobs": 0}
        )
        choices = sorted(answer["choices"], key=lambda c: int(c.get("index", 0)))
        if len(choices) != len(unique):
            raise PredictorFailed(f"{len(choices)} choices for {len(unique)} prompts")
        values = {}
        for p, sequence, choice in zip(unique, sequences, choices, strict=True):
            logprobs = (choice.get("logprobs") or {}).get("token_logprobs")
            count = len(by_response[p.response])
            if not isinstance(logprobs, list) or len(logprobs) < len(sequence):
                raise PredictorFailed(NO_LOGPROBS)
            tail = logprobs[len(sequence) - count : len(sequence)]
            if any(not isinstance(v, int | float) for v in tail):
                raise PredictorFailed(NO_LOGPROBS)
            values[p] = float(sum(tail))
            self.tokens_scored += len(sequence)
        return np.array([[values[p]] for p in prompted], dtype=np.float64)

    async def generate(self, prompt: Prompt, max_tokens: int) -> str:
        """The response at temperature 0 (a chat's: the assistant message's content)."""
        request: dict[str, Any]
        if isinstance(prompt, str):
            path, request = "completions", {"prompt": prompt}
        else:
            messages = [{"role": r, "content": c} for r, c in prompt]
            path, request = "chat/completions", {"messages": messages}
        answer = await self._post(path, {**request, "max_tokens": max_tokens, "temperature": 0})
        choice = answer["choices"][0] if answer["choices"] else {}
        if isinstance(prompt, str):
            text = choice.get("text")
        else:
            text = (choice.get("message") or {}).get("content")
        if not isinstance(text, str):
            raise PredictorFailed(f"the predictor's {path} answer has no text")
        return text


def _emptied(prompt: Prompt) -> Prompt:
    """The prompt with every segment masked."""
    return "" if isinstance(prompt, str) else tuple((role, "") for role, _ in prompt)
