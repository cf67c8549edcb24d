"""What the benchmarks share: an ``explainer serve`` process against a predictor, and
reading a process's resident memory."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests import mlserver


def shap_auto(m: int) -> int:
    """shap's ``nsamples="auto"``: 2M + 2048 coalitions — the references' budget."""
    return 2 * m + 2048


def start_explainer(
    predictor: str, background: Path, kind: str, model: str = "forest20"
) -> tuple[subprocess.Popen[bytes], str]:
    """(process, base URL) of an explainer on a free loopback port."""
    return mlserver.start_explainer(
        model, predictor, "--explainer_type", kind, "--background_data", str(background)
    )


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` now (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")
