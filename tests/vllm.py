"""vLLM on CPU as the real OpenAI-compatible predictor of a generative model: the tiny
Qwen2 model of ``tests/tiny_llm.py``, built and served from the vLLM environment
(``make test`` installs it as .venv-vllm), on a free loopback port, offline."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import requests

from tests.mlserver import MLServerError, free_port, stop, wait_ok
from tests.models import enumerate_shapley

REPO = Path(__file__).resolve().parents[1]
VLLM_PYTHON = Path(os.environ.get("VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))
MODEL = "tiny"
MAX_MODEL_LEN = 512
EMPTY_CONTEXT = "<|endoftext|>"  # the tokenizer's end of text: the empty prompt's context
# The settings vLLM needs on a small CPU machine with no network (../shared/PEERS.md).
ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
    "OMP_NUM_THREADS": "1",
    "VLLM_HOST_IP": "127.0.0.1",
    "VLLM_LOOPBACK_IP": "127.0.0.1",
    "VLLM_NO_USAGE_STATS": "1",
}


@contextmanager
def running_vllm(root: Path) -> Iterator[str]:
    """Build the tiny model under ``root`` and serve it; yields the API's base URL
    (http://127.0.0.1:<port>/v1)."""
    if not VLLM_PYTHON.exists():
        raise MLServerError(f"vLLM not found at {VLLM_PYTHON}: `make test` installs it")
    model = root / "model"
    subprocess.run(
        [str(VLLM_PYTHON), str(REPO / "tests" / "tiny_llm.py"), str(model)],
        check=True,
        capture_output=True,
        env={**os.environ, **ENVIRONMENT},
        timeout=600,
    )
    port = free_port()
    log_path = root / "vllm.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                str(VLLM_PYTHON),
                "-m",
                "vllm.entrypoints.openai.api_server",
                "--model",
                str(model),
                "--served-model-name",
                MODEL,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--dtype",
                "float32",
                "--max-model-len",
                str(MAX_MODEL_LEN),
                "--enforce-eager",
                "--no-enable-prefix-caching",  # vLLM #42019: prompt_logprobs vs order
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **ENVIRONMENT},
            cwd=root,
            start_new_session=True,  # its engine processes go with it
        )
        try:
            try:
                wait_ok(f"http://127.0.0.1:{port}/health", process, seconds=600)
            except MLServerError as exc:
                raise MLServerError(f"{exc}\n{log_path.read_text()[-3000:]}") from None
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            stop(process)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


# ---- the truth, from the contract: every value in a request of its own ----------------


def tokens(api: str, text: str) -> list[int]:
    """The server's tokens of ``text``, without special tokens."""
    answer = requests.post(
        f"{api}/completions",
        json={
            "model": MODEL,
            "prompt": text,
            "max_tokens": 0,
            "echo": True,
            "add_special_tokens": False,
            "return_token_ids": True,
        },
        timeout=60,
    ).json()
    return list(answer["choices"][0]["prompt_token_ids"])


def value(api: str, prompt: str, response: str) -> float:
    """log p(response | prompt): tokens(prompt, or the empty context) + tokens(response)
    scored teacher-forced, one request."""
    return after(api, tokens(api, prompt) if prompt else tokens(api, EMPTY_CONTEXT), response)


def after(api: str, context: list[int], response: str) -> float:
    """log p(response | the tokens ``context``), one request."""
    sequence = context + tokens(api, response)
    answer = requests.post(
        f"{api}/completions",
        json={"model": MODEL, "prompt": [sequence], "max_tokens": 0, "echo": True, "logprobs": 0},
        timeout=60,
    ).json()
    logprobs = answer["choices"][0]["logprobs"]["token_logprobs"]
    return float(sum(logprobs[len(context) :]))


def word_shapley(api: str, prompt: str, response: str) -> np.ndarray:
    """Each word's Shapley value of ``value``, a masked prompt being its kept words joined
    by one space (the contract's rule on a single-spaced prompt)."""
    words = prompt.split(" ")
    return enumerate_shapley(
        lambda kept: np.array([value(api, " ".join(words[i] for i in kept), response)]),
        len(words),
    )[0]
