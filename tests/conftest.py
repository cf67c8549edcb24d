"""A real MLServer (its own virtual environment, as in production where the predictor
is another container) serving the test models on free loopback ports, and a factory
for explainers started against it and driven over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import requests
from aiohttp.test_utils import TestClient

from explainer.app import RUNTIME, create_app
from explainer.settings import Settings
from tests import models

REPO = Path(__file__).resolve().parent.parent
MLSERVER_BIN = Path(os.environ.get("MLSERVER_BIN", REPO / ".venv-mlserver" / "bin" / "mlserver"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Predictor:
    url: str
    host: str  # host:port, as --predictor_host takes it
    models: dict[str, models.ServedModel]
    data: Path  # background CSVs: <model>.csv and <model>-full.csv


@pytest.fixture(scope="session")
def served_models() -> dict[str, models.ServedModel]:
    return {m.name: m for m in (models.credit(), models.forest20(), models.linear20())}


@pytest.fixture(scope="session")
def mlserver(
    tmp_path_factory: pytest.TempPathFactory, served_models: dict[str, models.ServedModel]
) -> Iterator[Predictor]:
    if not MLSERVER_BIN.exists():
        pytest.fail(f"MLServer not found at {MLSERVER_BIN}: run `make test`, which installs it")
    root = tmp_path_factory.mktemp("mlserver")
    data = tmp_path_factory.mktemp("background")
    for name, served in served_models.items():
        folder = root / name
        folder.mkdir()
        joblib.dump(served.model, folder / "model.joblib")
        settings = {
            "name": name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "v1"},
            **served.metadata,
        }
        (folder / "model-settings.json").write_text(json.dumps(settings))
        _write_csv(
            data / f"{name}.csv",
            served.train[: 30 if name == "credit" else 50],
            served.feature_names,
        )
        _write_csv(data / f"{name}-full.csv", served.train, served.feature_names)
    http_port = free_port()
    server_settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "metrics_endpoint": None,
        "parallel_workers": 0,
    }
    (root / "settings.json").write_text(json.dumps(server_settings))
    log = (root / "mlserver.log").open("w")
    process = subprocess.Popen(
        [str(MLSERVER_BIN), "start", str(root)], stdout=log, stderr=subprocess.STDOUT, cwd=root
    )
    url = f"http://127.0.0.1:{http_port}"
    try:
        _wait_ready(url, list(served_models), process, root / "mlserver.log")
        yield Predictor(url, f"127.0.0.1:{http_port}", served_models, data)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _write_csv(path: Path, rows: np.ndarray, names: list[str] | None) -> None:
    header = ",".join(names) if names else ",".join(f"inputs-{i}" for i in range(rows.shape[1]))
    np.savetxt(path, rows, delimiter=",", header=header, comments="", fmt="%.17g")


def _wait_ready(url: str, names: list[str], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    pending = set(names)
    while pending and time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"MLServer exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        for name in list(pending):
            try:
                if requests.get(f"{url}/v2/models/{name}/ready", timeout=1).status_code == 200:
                    pending.discard(name)
            except requests.ConnectionError:
                pass
        time.sleep(0.2)
    if pending:
        pytest.fail(f"MLServer models not ready: {pending}\n{log.read_text()[-3000:]}")


ExplainerFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def explainer(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], mlserver: Predictor
) -> AsyncIterator[ExplainerFactory]:
    """Start an explainer for one of the served models; keyword arguments are settings."""

    async def start(model: str, **settings: Any) -> TestClient[Any, Any]:
        config = Settings(
            model_name=model,
            predictor_host=mlserver.host,
            host="127.0.0.1",
            http_port=0,
            **settings,
        )
        app = create_app(config)
        client = await aiohttp_client(app)
        await asyncio.wait_for(app[RUNTIME].warmed.wait(), 60)
        return client

    yield start
