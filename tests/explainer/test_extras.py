"""A command whose extra is not installed says so in one line, with exit status 2 — not a
traceback. The extra's modules are hidden from a real ``explainer`` process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from explainer.cli.extras import EXTRAS

HIDE = """
import sys
for name in {hidden!r}:
    sys.modules[name] = None  # `import name` fails; find_spec(name) is None
from explainer.cli import main
sys.exit(main(sys.argv[1:]))
"""


def explainer_without(hidden: tuple[str, ...], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HIDE.format(hidden=hidden), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("hidden", [("pandas",), ("distributed",), EXTRAS["batch"]])
@pytest.mark.parametrize("command", ["batch", "report"])
def test_a_missing_extra_is_one_line_naming_it_and_exit_2(
    tmp_path: Path, command: str, hidden: tuple[str, ...]
) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("a,b\n1,2\n")
    if command == "batch":
        args = ["batch", str(data), "--out", str(tmp_path / "out.jsonl"), "--model_name", "m",
                "--predictor_host", "127.0.0.1:9"]  # fmt: skip
    else:
        args = ["report", str(tmp_path / "out.jsonl"), "--html", str(tmp_path / "r.html")]
    done = explainer_without(hidden, *args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'explainer-sidecar[batch]'" in lines[0]
    assert hidden[0] in lines[0]


def test_with_the_extra_installed_the_same_command_gets_past_the_check(tmp_path: Path) -> None:
    done = explainer_without(
        (), "report", str(tmp_path / "missing.jsonl"), "--html", str(tmp_path / "r.html")
    )
    assert done.returncode == 2
    assert "explainer-sidecar[batch]" not in done.stderr and "missing.jsonl" in done.stderr
