"""Run a real MLServer — from its own virtual environment, as it would run in its own
container — serving scikit-learn models on free loopback ports."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import requests

from tests.models import ServedModel

REPO = Path(__file__).resolve().parent.parent
MLSERVER_BIN = Path(os.environ.get("MLSERVER_BIN", REPO / ".venv-mlserver" / "bin" / "mlserver"))


class MLServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ok(url: str, process: subprocess.Popen[Any] | None = None, seconds: float = 60) -> None:
    """Poll ``url`` until it answers 200; fail early if ``process`` exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise MLServerError(f"process exited ({process.returncode}) before {url} was ready")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise MLServerError(f"{url} not ready after {seconds:g} s")


def stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within 20 s."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def start_explainer(
    model: str, predictor: str, *flags: str, stderr: Any = subprocess.DEVNULL
) -> tuple[subprocess.Popen[bytes], str]:
    """(process, base URL) of ``explainer serve`` for ``model`` on a free loopback port,
    scoring with ``predictor`` (host:port); ``flags`` are more of its flags. Not waited
    for: poll ``/v2/health/ready`` (``wait_ok``)."""
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
            *flags,
        ],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    return process, f"http://127.0.0.1:{port}"


def write_csv(path: Path, rows: np.ndarray, names: list[str] | None) -> None:
    header = ",".join(names) if names else ",".join(f"inputs-{i}" for i in range(rows.shape[1]))
    if rows.dtype != object:
        np.savetxt(path, rows, delimiter=",", header=header, comments="", fmt="%.17g")
        return
    with path.open("w", newline="") as handle:  # text and booleans: as their text
        writer = csv.writer(handle)
        writer.writerow(header.split(","))
        writer.writerows([repr(v) if isinstance(v, float) else v for v in row] for row in rows)


@dataclass(frozen=True)
class Addresses:
    url: str  # http://127.0.0.1:<port>
    grpc: str  # 127.0.0.1:<port>


@contextmanager
def running_mlserver(models: dict[str, ServedModel], root: Path) -> Iterator[Addresses]:
    """Serve ``models`` from ``root`` over REST and gRPC."""
    if not MLSERVER_BIN.exists():
        raise MLServerError(f"MLServer not found at {MLSERVER_BIN}: `make test` installs it")
    for name, served in models.items():
        folder = root / name
        folder.mkdir(parents=True)
        joblib.dump(served.artifact, folder / "model.joblib")
        settings = {
            "name": name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "v1"},
            **served.metadata,
        }
        (folder / "model-settings.json").write_text(json.dumps(settings))
    http_port, grpc_port = free_port(), free_port()
    server_settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": free_port(),
        "metrics_endpoint": None,
        "parallel_workers": 0,
    }
    (root / "settings.json").write_text(json.dumps(server_settings))
    log_path = root / "mlserver.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(MLSERVER_BIN), "start", str(root)], stdout=log, stderr=subprocess.STDOUT, cwd=root
        )
        url = f"http://127.0.0.1:{http_port}"
        try:
            _wait_ready(url, list(models), process, log_path)
            yield Addresses(url, f"127.0.0.1:{grpc_port}")
        finally:
            stop(process)


def _wait_ready(url: str, names: list[str], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    pending = set(names)
    while pending and time.monotonic() < deadline:
        if process.poll() is not None:
            raise MLServerError(
                f"MLServer exited ({process.returncode}):\n{log.read_text()[-3000:]}"
            )
        for name in list(pending):
            try:
                if requests.get(f"{url}/v2/models/{name}/ready", timeout=1).status_code == 200:
                    pending.discard(name)
            except requests.ConnectionError:
                pass
        time.sleep(0.2)
    if pending:
        raise MLServerError(f"MLServer models not ready: {pending}\n{log.read_text()[-3000:]}")
