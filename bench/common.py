"""What the benchmarks share: an ``explainer serve`` process against a predictor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.mlserver import free_port


def start_explainer(
    predictor: str, background: Path, kind: str, model: str = "forest20"
) -> tuple[subprocess.Popen[bytes], str]:
    """(process, base URL) of an explainer on a free loopback port."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "explainer",
            "serve",
            "--model_name",
            model,
            "--predictor_host",
            predictor,
            "--http_port",
            str(port),
            "--host",
            "127.0.0.1",
            "--explainer_type",
            kind,
            "--background_data",
            str(background),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, f"http://127.0.0.1:{port}"
