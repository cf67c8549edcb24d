"""The ``explainer`` command: KServe's flags, settings from env and flags, start-up errors,
and the demo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import requests

from explainer.cli.options import StartupError, load_settings
from explainer.settings import Settings
from tests.conftest import Predictor, free_port
from tests.mlserver import wait_ok


def run_explainer(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "explainer", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_serve_with_the_flags_kserve_appends(mlserver: Predictor) -> None:
    port = free_port()
    process = run_explainer(
        "serve",
        "--model_name",
        "credit",
        "--predictor_host",
        mlserver.host,
        "--http_port",
        str(port),
        "--workers",
        "2",
        # Flags KServe's own explainers know, and one nobody knows yet:
        "--predictor_protocol",
        "v2",
        "--predictor_use_ssl",
        "false",
        "--predictor_request_timeout_seconds",
        "30",
        "--predictor_request_retries",
        "1",
        "--enable_latency_logging",
        env={
            "EXPLAINER_TYPE": "shap",
            "HOST": "127.0.0.1",
            "BACKGROUND_DATA": str(mlserver.data / "credit.csv"),
        },
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ok(f"{url}/v2/health/ready", process)
        row = mlserver.models["credit"].test[0].tolist()
        response = requests.post(
            f"{url}/v1/models/credit:explain", data=orjson.dumps({"instances": [row]}), timeout=30
        )
        assert response.status_code == 200
        assert list(response.json()) == ["timestamp", "SHAP"]
        names = {item["name"] for item in response.json()["SHAP"]["saliencies"]["outputs-0"]}
        assert "Credit History" in names  # names from the background CSV's header
        assert "predictor" in response.headers["Server-Timing"]
        assert response.headers["X-Request-Id"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "--enable_latency_logging" in stderr  # reported as ignored, not fatal


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        ([], {"EXPLAINER_TYPE": "KERNEL"}, "EXPLAINER_TYPE"),
        (["--explainer_type", "anchors"], {}, "EXPLAINER_TYPE"),
        (["--http_port", "eighty"], {}, "HTTP_PORT"),
        (["--predictor_host", "ftp://x"], {}, "PREDICTOR_HOST"),
        (["--shap_samples", "2"], {}, "SHAP_SAMPLES"),
        (["--response_format", "xml"], {}, "RESPONSE_FORMAT"),
        (["--predictor_protocol", "grpc-v3"], {}, "PREDICTOR_PROTOCOL"),
        (["--background_data", "/no/such/file.csv"], {}, "BACKGROUND_DATA"),
        (["--feature_names", "a,b"], {"BACKGROUND_DATA": "__credit__"}, "FEATURE_NAMES"),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line(
    mlserver: Predictor, args: list[str], env: dict[str, str], named: str
) -> None:
    env = {k: str(mlserver.data / "credit.csv") if v == "__credit__" else v for k, v in env.items()}
    base = ["serve", "--model_name", "credit", "--predictor_host", mlserver.host]
    process = run_explainer(*base, *args, env=env)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert named in lines[0]


def test_missing_model_name_is_named(tmp_path: Path) -> None:
    process = run_explainer("serve", "--predictor_host", "svc", env={"MODEL_NAME": ""})
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and "MODEL_NAME" in stderr


def test_flags_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPLAINER_TYPE", "LIME")
    monkeypatch.setenv("PORT", "9000")
    settings = load_settings({"model_name": "m", "predictor_host": "h", "explainer_type": "shap"})
    assert settings.explainer_type == "SHAP"
    assert settings.http_port == 9000
    with pytest.raises(StartupError, match="PREDICTOR_HOST"):
        load_settings({"model_name": "m"})


@pytest.mark.parametrize(
    ("host", "ssl", "url"),
    [
        ("credit-predictor.default", False, "http://credit-predictor.default:80"),
        ("credit-predictor.default:8081", False, "http://credit-predictor.default:8081"),
        ("credit-predictor.default", True, "https://credit-predictor.default:443"),
        ("http://10.0.0.3:9000/", False, "http://10.0.0.3:9000"),
    ],
)
def test_predictor_host_without_port_means_port_80(host: str, ssl: bool, url: str) -> None:
    assert Settings(predictor_host=host, predictor_use_ssl=ssl).predictor_url() == url


def test_demo_once_sends_every_body_format_and_exits_0() -> None:
    process = run_explainer("demo", "--once", "--http_port", "0")
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert stdout.count("-> 200") == 4
    for body in ("instances body", "data.ndarray body", "inputs body"):
        assert body in stdout
    assert '"SHAP"' in stdout and '"LIME"' in stdout


def test_every_explaining_command_runs_with_one_blas_thread() -> None:
    """The explainer's matrices are small: a BLAS thread per core would only contend with
    the predictor. In a fresh process (so no other test's limits count), ``main`` leaves
    every BLAS library numpy and scipy load at one thread."""
    script = (
        "import threadpoolctl, sys\n"
        "from explainer import cli\n"
        "cli.main(['warm-up'])\n"
        "info = threadpoolctl.threadpool_info()\n"
        "blas = [i['num_threads'] for i in info if i['user_api'] == 'blas']\n"
        "print(blas)\n"
        "sys.exit(0 if blas and set(blas) == {1} else 1)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_explaining_commands_keep_freed_blocks_for_the_next_request() -> None:
    """A freed 20 MB block goes back to the kernel under glibc's defaults (so the next
    request pays its page faults again); after ``main`` it stays for reuse."""
    script = (
        "import os, sys\n"
        "import numpy as np\n"
        "from explainer import cli\n"
        "if sys.argv[1] == 'explainer':\n"
        "    cli.main(['warm-up'])\n"
        "def rss():\n"
        "    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')\n"
        "block = np.ones((20 << 20) // 8)\n"
        "before = rss()\n"
        "del block\n"
        "print(before - rss())\n"
    )
    returned = {}
    for kind in ("plain", "explainer"):
        done = subprocess.run(
            [sys.executable, "-c", script, kind], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        returned[kind] = int(done.stdout.split()[-1])
    assert returned["plain"] > 15 << 20
    assert returned["explainer"] < 2 << 20
