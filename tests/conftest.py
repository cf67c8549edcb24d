"""A real MLServer (its own virtual environment, as in production where the predictor
is another container) serving the test models on free loopback ports, and a factory
for explainers started against it and driven over HTTP."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import settings as hypothesis_settings

from explainer.server.app import RUNTIME, create_app
from explainer.settings import Settings
from tests import models
from tests.fault_proxy import FaultProxy
from tests.mlserver import (
    REPO,
    MLServerError,
    free_port,
    running_mlserver,
    stop,
    wait_ok,
    write_csv,
)

__all__ = ["ExplainerFactory", "Predictor", "free_port"]

# No hypothesis deadlines: a first call compiles numba kernels, and a shared CI machine
# may be slow at any moment. Durations are measured in benchmarks, not asserted here.
hypothesis_settings.register_profile("suite", deadline=None)
hypothesis_settings.load_profile("suite")


@dataclass(frozen=True)
class Predictor:
    url: str
    host: str  # host:port, as --predictor_host takes it
    grpc: str  # host:port of MLServer's gRPC service
    models: dict[str, models.ServedModel]
    data: Path  # background CSVs: <model>.csv (30 or 50 rows) and <model>-full.csv


@pytest.fixture(scope="session")
def served_models() -> dict[str, models.ServedModel]:
    served = (
        models.credit(),
        models.credit_named(),
        models.forest20(),
        models.linear20(),
        models.applicants(),
        models.reviews(),
    )
    return {m.name: m for m in served}


@pytest.fixture(scope="session")
def mlserver(
    tmp_path_factory: pytest.TempPathFactory, served_models: dict[str, models.ServedModel]
) -> Iterator[Predictor]:
    data = tmp_path_factory.mktemp("background")
    for name, served in served_models.items():
        if served.train.ndim == 1:  # texts need no background
            continue
        rows = served.train[: 30 if name == "credit" else 50]
        write_csv(data / f"{name}.csv", rows, served.feature_names)
        write_csv(data / f"{name}-full.csv", served.train, served.feature_names)
    try:
        with running_mlserver(served_models, tmp_path_factory.mktemp("mlserver")) as address:
            host = address.url.removeprefix("http://")
            yield Predictor(address.url, host, address.grpc, served_models, data)
    except MLServerError as exc:
        pytest.fail(str(exc))


KSERVE_PYTHON = REPO / ".venv-kserve" / "bin" / "python"


@pytest.fixture(scope="session")
def kserve_v1(
    tmp_path_factory: pytest.TempPathFactory, served_models: dict[str, models.ServedModel]
) -> Iterator[str]:
    """KServe's Python model server (v1 protocol) serving the credit-score model with
    probabilities, as kserve-sklearnserver does with PREDICT_PROBA=true. Yields host:port."""
    with running_kserve(served_models["credit"], tmp_path_factory.mktemp("kserve")) as host:
        yield host


@pytest.fixture(scope="session")
def kserve_applicants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """KServe's model server over v1 serving the mixed-type applicants' model (its
    pipeline reads rows as kserve-sklearnserver passes them). Yields (host:port, model)."""
    served = models.applicants_v1()
    with running_kserve(served, tmp_path_factory.mktemp("kserve-applicants")) as host:
        yield host, served


@pytest.fixture(scope="session")
def kserve_reviews(
    tmp_path_factory: pytest.TempPathFactory, served_models: dict[str, models.ServedModel]
) -> Iterator[str]:
    """KServe's model server over v1 serving the reviews' text pipeline (instances of
    strings). Yields host:port."""
    with running_kserve(
        served_models["reviews"], tmp_path_factory.mktemp("kserve-reviews")
    ) as host:
        yield host


@pytest.fixture(scope="session")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vLLM on CPU serving the tiny Qwen2 model (``tests/vllm.py``), started once per
    session: yields the OpenAI API's base URL."""
    from tests.vllm import running_vllm

    try:
        with running_vllm(tmp_path_factory.mktemp("vllm")) as url:
            yield url
    except MLServerError as exc:
        pytest.fail(str(exc))


@contextmanager
def running_kserve(served: models.ServedModel, root: Path) -> Iterator[str]:
    python = Path(os.environ.get("KSERVE_PYTHON", KSERVE_PYTHON))
    if not python.exists():
        pytest.fail(
            f"kserve's environment not found at {python}: run `make test`, which installs it"
        )
    joblib.dump(served.artifact, root / "model.joblib")
    port = free_port()
    env = {
        **os.environ,
        "MODEL_NAME": served.name,
        "MODEL_PATH": str(root / "model.joblib"),
        "HTTP_PORT": str(port),
        "PREDICT_PROBA": "true",
    }
    log = (root / "kserve.log").open("w")
    process = subprocess.Popen(
        [str(python), str(REPO / "tests" / "kserve_server.py")],
        env=env,
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ok(f"http://127.0.0.1:{port}/v1/models/{served.name}", process, seconds=120)
        yield f"127.0.0.1:{port}"
    except MLServerError as exc:
        pytest.fail(f"{exc}\n{(root / 'kserve.log').read_text()[-3000:]}")
    finally:
        stop(process)
        log.close()


ExplainerFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def explainer(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], mlserver: Predictor
) -> AsyncIterator[ExplainerFactory]:
    """Start an explainer for one of the served models; keyword arguments are settings."""

    async def start(model: str, **settings: Any) -> TestClient[Any, Any]:
        settings.setdefault("predictor_host", mlserver.host)
        config = Settings(
            model_name=model,
            host="127.0.0.1",
            http_port=0,
            **settings,
        )
        app = create_app(config)
        client = await aiohttp_client(app)
        await asyncio.wait_for(app[RUNTIME].warmed.wait(), 300)  # a hang guard, not a speed
        return client

    yield start


@pytest.fixture
async def proxy(mlserver: Predictor) -> AsyncIterator[FaultProxy]:
    """A fault-injecting proxy in front of the session's MLServer (passing, to start)."""
    faults = FaultProxy(mlserver.url, free_port())
    await faults.start()
    yield faults
    await faults.close()
