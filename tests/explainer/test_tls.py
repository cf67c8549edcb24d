"""An https predictor: TLS verified against PREDICTOR_CA_BUNDLE. A small TLS-terminating
proxy (aiohttp) sits in front of the real MLServer, with a self-signed certificate."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import orjson
import pytest
from aiohttp import web

from tests.conftest import ExplainerFactory, Predictor


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
async def https_predictor(
    certificate: tuple[Path, Path], mlserver: Predictor
) -> AsyncIterator[str]:
    """https://127.0.0.1:<port> forwarding every request to MLServer."""
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        async with session.request(
            request.method,
            f"{mlserver.url}{request.rel_url}",
            data=await request.read(),
            headers={"Content-Type": "application/json", "Accept-Encoding": "identity"},
        ) as upstream:
            return web.Response(
                status=upstream.status,
                body=await upstream.read(),
                content_type=upstream.content_type,
            )

    app = web.Application(client_max_size=1024**3)
    app.router.add_route("*", "/{path:.*}", forward)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()
    await session.close()


async def test_https_predictor_verified_with_the_ca_bundle(
    explainer: ExplainerFactory,
    mlserver: Predictor,
    https_predictor: str,
    certificate: tuple[Path, Path],
) -> None:
    row = mlserver.models["credit"].test[0].tolist()
    background = str(mlserver.data / "credit.csv")
    trusted = await explainer(
        "credit",
        predictor_host=https_predictor,
        predictor_ca_bundle=str(certificate[0]),
        background_data=background,
        explainer_type="SHAP",
    )
    response = await trusted.post(
        "/v1/models/credit:explain", data=orjson.dumps({"instances": [row]})
    )
    assert response.status == 200
    untrusted = await explainer(
        "credit",
        predictor_host=https_predictor,
        background_data=background,
        explainer_type="SHAP",
        predictor_retries=0,
    )
    response = await untrusted.post(
        "/v1/models/credit:explain", data=orjson.dumps({"instances": [row]})
    )
    assert response.status == 503
    assert "Certificate" in (await response.json())["error"]


async def run_batch(*args: str) -> tuple[int, str]:
    """``explainer batch`` in its own process, while this loop serves the https proxy."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "explainer", "batch", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 300)
    return process.returncode or 0, stderr.decode()


async def test_batch_verifies_an_https_predictor_with_the_ca_bundle(
    mlserver: Predictor, https_predictor: str, certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    """The batch runner builds its predictor client where the service does
    (``explainer.composition``), so PREDICTOR_CA_BUNDLE reaches it too."""
    rows = tmp_path / "rows.npy"
    np.save(rows, mlserver.models["credit"].test[:3])
    common = ["--model_name", "credit", "--predictor_host", https_predictor,
              "--background_data", str(mlserver.data / "credit.csv"), "--explainer_type", "SHAP",
              "--predictor_retries", "0"]  # fmt: skip
    trusted = tmp_path / "trusted.jsonl"
    status, stderr = await run_batch(
        str(rows), "--out", str(trusted), *common, "--predictor_ca_bundle", str(certificate[0])
    )
    assert status == 0, stderr
    lines = [orjson.loads(line) for line in trusted.read_bytes().splitlines()]
    assert [line["row"] for line in lines] == [0, 1, 2] and all("SHAP" in x for x in lines)
    status, stderr = await run_batch(str(rows), "--out", str(tmp_path / "untrusted.jsonl"), *common)
    assert status == 3 and "Certificate" in stderr
