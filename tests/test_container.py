"""The container, checked without a container engine: what the Dockerfile declares, and
its install steps — a wheel built from the repo, installed under the pinned constraints
into a fresh virtual environment, numba's cache compiled ahead — giving a working
``explainer serve``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import requests

from tests.conftest import Predictor
from tests.mlserver import free_port, wait_ok

REPO = Path(__file__).resolve().parent.parent


def final_stage() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile's last stage, continuations joined."""
    lines, current = [], ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current = f"{current} {line[:-1].strip()}" if line.endswith("\\") else f"{current} {line}"
        if not line.endswith("\\"):
            lines.append(current.strip())
            current = ""
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return [("FROM", stages[-1][0][1])] + stages[-1][1:] if stages else []


def arguments(instruction: str) -> list[str]:
    return [args for name, args in final_stage() if name == instruction]


def test_dockerfile_declares_user_port_entrypoint_and_healthcheck() -> None:
    assert arguments("FROM")[0].startswith("python:3.11-slim")
    (user,) = arguments("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) > 0  # numeric, so runAsNonRoot can verify it
    assert arguments("EXPOSE") == ["8080"]
    assert json.loads(arguments("ENTRYPOINT")[0]) == ["explainer", "serve"]
    (healthcheck,) = arguments("HEALTHCHECK")
    command = json.loads(healthcheck.split("CMD", 1)[1])  # exec form: no shell at run time
    assert command[:2] == ["explainer", "healthcheck"]
    assert any("NUMBA_CACHE_DIR=" in env for env in arguments("ENV"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The Dockerfile's steps in a fresh virtual environment: (venv, numba cache)."""
    runs = " ".join(arguments("RUN"))
    assert "pip install --no-cache-dir -c /tmp/constraints.txt /wheels/*.whl" in runs
    assert "explainer warm-up" in runs
    root = tmp_path_factory.mktemp("image")
    wheels, venv, cache = root / "wheels", root / "venv", root / "numba-cache"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--wheel-dir",
            str(wheels),
            str(REPO),
        ],
        check=True,
        timeout=600,
    )
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    (wheel,) = wheels.glob("*.whl")
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "-q",
            "-c",
            str(REPO / "constraints.txt"),
            str(wheel),
        ],
        check=True,
        timeout=900,
    )
    cache.mkdir()
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    subprocess.run([str(venv / "bin" / "explainer"), "warm-up"], check=True, env=env, timeout=300)
    return venv, cache


def test_installed_wheel_has_no_test_dependencies(installed: tuple[Path, Path]) -> None:
    venv, _ = installed
    listed = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format=json"], capture_output=True, check=True
    ).stdout
    names = {package["name"].lower() for package in json.loads(listed)}
    assert {"aiohttp", "numba", "numpy", "orjson", "scikit-learn"} <= names
    assert not names & {"shap", "lime", "pytest", "mlserver"}


def test_numba_cache_is_compiled_ahead(installed: tuple[Path, Path]) -> None:
    _, cache = installed
    assert list(cache.rglob("*.nbi")) and list(cache.rglob("*.nbc"))


def test_installed_explainer_serves_behind_kserve_flags(
    installed: tuple[Path, Path], mlserver: Predictor
) -> None:
    venv, cache = installed
    port = free_port()
    env = {
        **os.environ,
        "NUMBA_CACHE_DIR": str(cache),
        "HOST": "127.0.0.1",
        "EXPLAINER_TYPE": "ALL",
        "BACKGROUND_DATA": str(mlserver.data / "credit.csv"),
    }
    process = subprocess.Popen(
        [
            str(venv / "bin" / "explainer"),
            "serve",
            "--model_name",
            "credit",
            "--predictor_host",
            mlserver.host,
            "--http_port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ok(f"{url}/v2/health/ready", process)
        row = mlserver.models["credit"].test[0].tolist()
        response = requests.post(
            f"{url}/v1/models/credit:explain", data=orjson.dumps({"instances": [row]}), timeout=60
        )
        assert response.status_code == 200
        assert list(response.json()) == ["timestamp", "LIME", "SHAP"]
        healthcheck = subprocess.run(
            [str(venv / "bin" / "explainer"), "healthcheck", "--http_port", str(port)], timeout=30
        )
        assert healthcheck.returncode == 0
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    closed = subprocess.run(
        [str(venv / "bin" / "explainer"), "healthcheck", "--http_port", str(port)],
        capture_output=True,
        timeout=30,
    )
    assert closed.returncode == 1
