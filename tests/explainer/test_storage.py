"""Background data and batch inputs from an S3-compatible store (moto's standalone server
with IAM authentication on) and over http, read the way KServe's storage initializer reads
them — and the one-line start-up errors when they cannot be."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson
import pytest

from explainer import storage
from explainer.background_data import load_background
from tests.conftest import ExplainerFactory, Predictor
from tests.s3 import S3Store, running_moto


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory, mlserver: Predictor) -> Iterator[S3Store]:
    with running_moto(tmp_path_factory.mktemp("moto")) as store:
        csv = (mlserver.data / "credit.csv").read_bytes()
        rows, _ = load_background(str(mlserver.data / "credit.csv"))
        np.save(mlserver.data / "credit-background.npy", rows)
        store.put("background/credit.csv", csv)
        store.put("background/credit.npy", (mlserver.data / "credit-background.npy").read_bytes())
        store.put("models/credit/train.csv", csv)  # a prefix holding one data file
        store.put("models/credit/README.md", b"not data")
        yield store


@pytest.fixture
def s3_env(s3: S3Store, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    return s3


@pytest.fixture(scope="module")
def http_root(mlserver: Predictor) -> Iterator[str]:
    handler = partial(QuietHandler, directory=str(mlserver.data))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


async def explanation(explainer: ExplainerFactory, mlserver: Predictor, source: str) -> bytes:
    client = await explainer(
        "credit", background_data=source, explainer_type="ALL", lime_samples=500
    )
    row = mlserver.models["credit"].test[0].tolist()
    response = await client.post(
        "/v1/models/credit:explain", data=orjson.dumps({"instances": [row], "parameters": {}})
    )
    assert response.status == 200, await response.text()
    body = orjson.loads(await response.read())
    del body["timestamp"]
    for block in ("LIME", "SHAP"):
        body[block].pop("background", None)  # names its source: the one difference
    return orjson.dumps(body)


@pytest.mark.parametrize(
    ("key", "same_as"),
    [
        ("background/credit.csv", "credit.csv"),
        ("background/credit.npy", "credit-background.npy"),
        ("models/credit/", "credit.csv"),
    ],
)
async def test_background_from_s3_gives_the_local_file_explanation(
    explainer: ExplainerFactory, mlserver: Predictor, s3_env: S3Store, key: str, same_as: str
) -> None:
    local = await explanation(explainer, mlserver, str(mlserver.data / same_as))
    remote = await explanation(explainer, mlserver, f"s3://{s3_env.bucket}/{key}")
    assert remote == local


async def test_background_over_http_gives_the_local_file_explanation(
    explainer: ExplainerFactory, mlserver: Predictor, http_root: str
) -> None:
    local = await explanation(explainer, mlserver, str(mlserver.data / "credit.csv"))
    assert await explanation(explainer, mlserver, f"{http_root}/credit.csv") == local


def test_kserve_s3_variables_map_to_the_client() -> None:
    options = storage.s3_options(
        {
            "AWS_ACCESS_KEY_ID": "id",
            "AWS_SECRET_ACCESS_KEY": "secret",
            "S3_ENDPOINT": "minio.kubeflow:9000",
            "S3_USE_HTTPS": "0",
            "S3_VERIFY_SSL": "0",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }
    )
    assert options["key"] == "id" and options["secret"] == "secret"
    assert options["client_kwargs"] == {
        "endpoint_url": "http://minio.kubeflow:9000",
        "region_name": "eu-west-1",
        "verify": False,
    }
    https = storage.s3_options(
        {"AWS_ENDPOINT_URL": "https://s3.example:443", "AWS_CA_BUNDLE": "/ca.pem"}
    )
    assert https["client_kwargs"] == {"endpoint_url": "https://s3.example:443", "verify": "/ca.pem"}
    assert storage.s3_options({"awsAnonymousCredential": "true", "AWS_ACCESS_KEY_ID": "x"})["anon"]


def serve_with(
    env: dict[str, str], background: str, predictor: str, log_level: str = "INFO"
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "explainer",
            "serve",
            "--model_name",
            "credit",
            "--predictor_host",
            predictor,
            "--http_port",
            "0",
        ],
        env={**clean, **env, "BACKGROUND_DATA": background, "LOG_LEVEL": log_level},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("change", "key", "cause"),
    [
        (
            {"AWS_SECRET_ACCESS_KEY": "wrong-secret-value-1234"},
            "background/credit.csv",
            "access denied",
        ),
        ({}, "no-such-bucket/credit.csv", "no such bucket"),
        ({}, "explainer-data/background/missing.csv", "no such bucket, key or file"),
        ({"S3_ENDPOINT": "127.0.0.1:9"}, "background/credit.csv", "cannot reach the endpoint"),
    ],
)
def test_s3_failures_stop_start_up_with_one_line_and_no_secret(
    s3: S3Store, mlserver: Predictor, change: dict[str, str], key: str, cause: str
) -> None:
    env = s3.env(**change)
    uri = f"s3://{key}" if not key.startswith("background/") else f"s3://{s3.bucket}/{key}"
    result = serve_with(env, uri, mlserver.host)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "BACKGROUND_DATA" in lines[0] and cause in lines[0]
    # Not even debug logging shows a credential.
    debug = serve_with(env, uri, mlserver.host, log_level="DEBUG")
    for secret in (s3.secret, env["AWS_SECRET_ACCESS_KEY"], s3.key):
        assert secret not in result.stderr + result.stdout + debug.stderr + debug.stdout


def test_unreadable_format_from_s3_is_one_line(s3: S3Store, mlserver: Predictor) -> None:
    s3.put("bad/data.npy", b"this is not numpy")
    result = serve_with(s3.env(), f"s3://{s3.bucket}/bad/data.npy", mlserver.host)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not a readable .npy file" in result.stderr


def test_batch_reads_its_input_from_s3(s3: S3Store, mlserver: Predictor, tmp_path: Path) -> None:
    served = mlserver.models["credit"]
    joblib.dump(served.model, tmp_path / "credit.joblib")
    rows = served.test[:6]
    buffer = io.BytesIO()
    np.save(buffer, rows)
    s3.put("batch/rows.npy", buffer.getvalue())
    np.save(tmp_path / "rows.npy", rows)
    outputs = []
    for source, out in (
        (f"s3://{s3.bucket}/batch/rows.npy", "remote.jsonl"),
        (str(tmp_path / "rows.npy"), "local.jsonl"),
    ):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "explainer",
                "batch",
                source,
                "--out",
                str(tmp_path / out),
                "--model_file",
                str(tmp_path / "credit.joblib"),
                "--lime_samples",
                "200",
                "--background_data",
                str(mlserver.data / "credit.csv"),
            ],
            env={**os.environ, **s3.env()},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        records = [orjson.loads(line) for line in (tmp_path / out).read_text().splitlines()]
        for record in records:
            record.pop("timestamp", None)
        outputs.append(records)
    assert outputs[0] == outputs[1]
    assert (tmp_path / "remote.jsonl.input.npy").is_file()
