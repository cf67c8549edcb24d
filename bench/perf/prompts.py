"""Prompts to a generative model (issue 18): ``python -m bench.perf.prompts``
(``make bench-prompts``) writes bench/results/prompts.md and .json.

vLLM on CPU serving the tests' tiny Qwen2 model (``tests/vllm.py``), the explainer in
front of it over the OpenAI API. Per prompt length, at the defaults: the predictor calls
and rows (masked prompts scored) one explanation sends and its latency (median of
``REQUESTS`` after a first), beside the one-call-per-perturbation pattern (TokenSHAP,
captum's remote path) on the same server — one completions call per masked prompt,
timed on ``SAMPLED_CALLS`` of them and extrapolated to the same rows. Exactness: for the
shortest prompt, the largest difference between SHAP and brute force (every coalition
scored in a request of its own), and |Σ scores − (prediction − baseline)|.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

from bench.common import publish
from tests.mlserver import start_explainer, stop, wait_ok
from tests.models import enumerate_shapley
from tests.vllm import MODEL, running_vllm

RESULTS = Path(__file__).resolve().parents[1] / "results"
TEXT = (
    "the bank approved the loan because the applicant had a long credit history and low "
    "debts but the income was not high and the weather was cold so the river froze while "
    "the children skated"
)
WORDS = TEXT.split(" ")
LENGTHS = (8, 16, 32)
RESPONSE = " the income was low"
REQUESTS = 3
SAMPLED_CALLS = 100
EMPTY_CONTEXT = "<|endoftext|>"


def _metric(base: str, name: str) -> float:
    body = requests.get(f"{base}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def one_call(api: str, prompt: str) -> float:
    """The value of one masked prompt in a call of its own, as the text pattern sends it."""
    answer = requests.post(
        f"{api}/completions",
        json={
            "model": MODEL,
            "prompt": (prompt or EMPTY_CONTEXT) + RESPONSE,
            "max_tokens": 0,
            "echo": True,
            "logprobs": 0,
        },
        timeout=60,
    ).json()
    return float(sum(v for v in answer["choices"][0]["logprobs"]["token_logprobs"] if v))


def brute_force(api: str, words: list[str]) -> np.ndarray:
    """Every coalition in a request of its own: tokens(prompt) + tokens(response)."""

    def tokens(text: str) -> list[int]:
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

    response = tokens(RESPONSE)

    def value(kept: list[int]) -> np.ndarray:
        context = tokens(" ".join(words[i] for i in kept) or EMPTY_CONTEXT)
        answer = requests.post(
            f"{api}/completions",
            json={
                "model": MODEL,
                "prompt": [context + response],
                "max_tokens": 0,
                "echo": True,
                "logprobs": 0,
            },
            timeout=60,
        ).json()
        return np.array([sum(answer["choices"][0]["logprobs"]["token_logprobs"][len(context) :])])

    return enumerate_shapley(value, len(words))[0]


def measure(api: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    exactness: dict[str, Any] = {}
    for kind in ("SHAP", "ALL"):
        process, base = start_explainer(
            MODEL, api, "--predictor_protocol", "openai", "--explainer_type", kind
        )
        try:
            wait_ok(f"{base}/v2/health/ready", process, seconds=120)
            for length in LENGTHS:
                prompt = " ".join(WORDS[:length])
                body = {"prompt": prompt, "response": RESPONSE}
                url = f"{base}/v1/models/{MODEL}:explain"
                first = requests.post(url, json=body, timeout=600).json()
                calls0 = _metric(base, "explainer_predictor_call_seconds_count")
                rows0 = _metric(base, "explainer_predictor_rows_total")
                seconds = []
                for _ in range(REQUESTS):
                    started = time.perf_counter()
                    answer = requests.post(url, json=body, timeout=600)
                    seconds.append(time.perf_counter() - started)
                    assert answer.status_code == 200, answer.text
                calls = (
                    _metric(base, "explainer_predictor_call_seconds_count") - calls0
                ) / REQUESTS
                sent = (_metric(base, "explainer_predictor_rows_total") - rows0) / REQUESTS
                rows.append(
                    {
                        "mode": kind,
                        "words": length,
                        "calls": calls,
                        "rows": sent,
                        "seconds": statistics.median(seconds),
                        "exact": first["SHAP"]["exact"],
                    }
                )
                if kind == "SHAP" and length == LENGTHS[0]:
                    shap = first["SHAP"]
                    items = sorted(shap["saliencies"]["response"], key=lambda i: i["span"][0])
                    truth = brute_force(api, WORDS[:length])
                    total = sum(i["score"] for i in items)
                    exactness = {
                        "words": length,
                        "max_abs_error": float(np.max(np.abs([i["score"] for i in items] - truth))),
                        "efficiency_gap": abs(
                            total - (shap["prediction"]["response"] - shap["baseline"]["response"])
                        ),
                        "largest_score": float(np.max(np.abs(truth))),
                    }
                print(f"{kind} {length} words: {rows[-1]}", file=sys.stderr)
        finally:
            stop(process)
    for row in rows:
        prompt = " ".join(WORDS[: row["words"]])
        rng = np.random.default_rng(0)
        started = time.perf_counter()
        for _ in range(SAMPLED_CALLS):
            kept = rng.random(row["words"]) < 0.5
            one_call(api, " ".join(w for w, k in zip(prompt.split(), kept, strict=True) if k))
        per_call = (time.perf_counter() - started) / SAMPLED_CALLS
        row["one_call_each_seconds"] = per_call * row["rows"]
    return {"rows": rows, "exactness": exactness}


def main() -> None:
    with tempfile.TemporaryDirectory() as root, running_vllm(Path(root)) as api:
        found = measure(api)
    lines = [
        "# Prompts to a generative model: calls and latency per explanation",
        "",
        "`make bench-prompts` (bench/perf/prompts.py): vLLM 0.32 on CPU, the tests' tiny "
        "Qwen2 model (2 layers, 128 wide), the explainer over the OpenAI API at its "
        f"defaults; response `{RESPONSE!r}`. One call per perturbation: "
        f"{SAMPLED_CALLS} single-prompt completions calls timed, times the rows.",
        "",
        "| words | mode | predictor calls | masked prompts scored | latency | one call per "
        "perturbation, same rows | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in found["rows"]:
        lines.append(
            f"| {r['words']} | {r['mode']} | {r['calls']:.0f} | {r['rows']:,.0f} | "
            f"{r['seconds']:.2f} s{' (exact)' if r['exact'] else ''} | "
            f"{r['one_call_each_seconds']:.1f} s | "
            f"**{r['one_call_each_seconds'] / r['seconds']:.0f}×** |"
        )
    e = found["exactness"]
    lines += [
        "",
        f"Exactness ({e['words']} words, every coalition): largest |SHAP − brute force| "
        f"{e['max_abs_error']:.2e} nats (largest score {e['largest_score']:.3f}); "
        f"|Σ scores − (prediction − baseline)| {e['efficiency_gap']:.1e}.",
        "",
    ]
    publish(RESULTS, "prompts", found, "\n".join(lines))


if __name__ == "__main__":
    main()
