"""Prompts to a generative model (issue 18): ``python -m bench.perf.prompts``
(``make bench-prompts``) writes bench/results/prompts.md and .json.

vLLM on CPU serving the tests' tiny Qwen2 model (``tests/vllm.py``), the explainer in
front of it over the OpenAI API, through a proxy that counts its HTTP calls and the
prompt tokens the server scored. Per prompt length, at the defaults: calls, masked
prompts scored, tokens, and the latency (median of ``REQUESTS`` prompts it has not seen,
after a first), beside the one-call-per-perturbation pattern (TokenSHAP, captum's remote
path) on the same server — one completions call per masked prompt, timed on
``SAMPLED_CALLS`` of them and extrapolated to the same rows. Exactness: for the shortest
prompt, the largest difference between SHAP and brute force (every coalition scored in a
request of its own), and |Σ scores − (prediction − baseline)|.
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

from bench.common import metric, publish
from tests.mlserver import start_explainer, stop, wait_ok
from tests.vllm import EMPTY_CONTEXT, MODEL, running_vllm, word_shapley

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
ROWS = "explainer_predictor_rows_total"  # masked prompts the explainer had scored


class CountingProxy:
    """An HTTP proxy in front of vLLM counting every call the explainer makes and the
    prompt tokens the server reports it scored (``usage.prompt_tokens``)."""

    def __init__(self, upstream: str) -> None:
        import http.server
        import threading

        self.calls = 0
        self.tokens = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def _forward(self) -> None:
                body = self._body()
                answer = requests.request(
                    self.command,
                    upstream + self.path,
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=600,
                )
                if self.command == "POST":
                    proxy.calls += 1
                    usage = answer.json().get("usage") if answer.ok else None
                    proxy.tokens += int((usage or {}).get("prompt_tokens") or 0)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def _body(self) -> bytes | None:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    length = int(self.headers.get("Content-Length") or 0)
                    return self.rfile.read(length) if length else None
                parts = []  # the explainer streams its bodies in chunks
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(parts)

            do_GET = do_POST = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


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


def measure(api: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    exactness: dict[str, Any] = {}
    counting = CountingProxy(api.removesuffix("/v1"))
    for kind in ("SHAP", "ALL"):
        process, base = start_explainer(
            MODEL, f"{counting.url}/v1", "--predictor_protocol", "openai", "--explainer_type", kind
        )
        try:
            wait_ok(f"{base}/v2/health/ready", process, seconds=120)
            for length in LENGTHS:
                url = f"{base}/v1/models/{MODEL}:explain"
                body = {"prompt": " ".join(WORDS[:length]), "response": RESPONSE}
                first = requests.post(url, json=body, timeout=600).json()
                calls0, tokens0, rows0 = counting.calls, counting.tokens, metric(base, ROWS)
                seconds = []
                for r in range(1, REQUESTS + 1):  # prompts it has not seen: no token reuse
                    words = WORDS[r:] + WORDS[:r]
                    again = {"prompt": " ".join(words[:length]), "response": RESPONSE}
                    started = time.perf_counter()
                    answer = requests.post(url, json=again, timeout=600)
                    seconds.append(time.perf_counter() - started)
                    assert answer.status_code == 200, answer.text
                rows.append(
                    {
                        "mode": kind,
                        "words": length,
                        "calls": (counting.calls - calls0) / REQUESTS,
                        "tokens": (counting.tokens - tokens0) / REQUESTS,
                        "rows": (metric(base, ROWS) - rows0) / REQUESTS,
                        "seconds": statistics.median(seconds),
                        "exact": first["SHAP"]["exact"],
                    }
                )
                if kind == "SHAP" and length == LENGTHS[0]:
                    shap = first["SHAP"]
                    items = sorted(shap["saliencies"]["response"], key=lambda i: i["span"][0])
                    truth = word_shapley(api, body["prompt"], RESPONSE)
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
        "| words | mode | HTTP calls to the server | masked prompts scored | prompt tokens "
        "the server scored | latency | one call per perturbation, same rows | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in found["rows"]:
        lines.append(
            f"| {r['words']} | {r['mode']} | {r['calls']:.0f} | {r['rows']:,.0f} | "
            f"{r['tokens']:,.0f} | "
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
