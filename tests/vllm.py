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

from tests.mlserver import MLServerError, free_port, stop, wait_ok

REPO = Path(__file__).resolve().parents[1]
VLLM_PYTHON = Path(os.environ.get("VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))
MODEL = "tiny"
MAX_MODEL_LEN = 512
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
