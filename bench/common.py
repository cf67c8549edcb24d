"""What the benchmarks share: an ``explainer serve`` process against a predictor, and
reading a process's resident memory."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np

from tests import mlserver


def publish(results: Path, name: str, data: object, text: str) -> None:
    """Write a bench's figures (``name``.json) and its tables (``name``.md), and print them."""
    results.mkdir(exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(data, indent=2))
    (results / f"{name}.md").write_text(text)
    print(text)


def correlated_normal(rng: np.random.Generator, m: int, rho: float, n: int) -> np.ndarray:
    """(n, m) standard normals with correlation ``rho`` between every two columns, drawn
    by Cholesky: numpy's default (SVD) draws differently with the CPU's BLAS kernels."""
    cov = np.full((m, m), rho) + np.eye(m) * (1.0 - rho)
    return rng.multivariate_normal(np.zeros(m), cov, size=n, method="cholesky")


def digest(*arrays: np.ndarray) -> str:
    """A short key for what a cached ground truth was computed from."""
    return hashlib.sha1(b"".join(a.tobytes() for a in arrays)).hexdigest()[:12]


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


def metric(base: str, name: str) -> float:
    """The sum of an explainer's Prometheus samples named ``name`` (every label), now."""
    import requests

    body = requests.get(f"{base}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` now (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")
