"""``explainer report``: a self-contained HTML report with every section and every image,
looked at as a person would — rendered in headless Chromium where it is installed."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from explainer.batch.report import SECTIONS
from tests.explainer.test_batch import FAST, batch, files  # noqa: F401  (shared fixture)
from tests.explainer.test_batch import report as run_report


@pytest.fixture(scope="module")
def report(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    root = tmp_path_factory.mktemp("report")
    out = root / "run.parquet"
    batch(
        str(files["root"] / "rows.csv"),
        "--out",
        str(out),
        "--model_file",
        str(files["model"]),
        *FAST,
        str(files["train"]),
    )
    page = root / "report.html"
    return run_report(out, page)


def test_every_section_is_present_and_every_image_decodes(report: Path) -> None:
    text = report.read_text()
    for key, title in SECTIONS:
        assert f'<section id="{key}"><h2>{title}</h2>' in text
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 3  # importance, beeswarm, agreement
    for encoded in images:
        pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(encoded)), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 300
        assert pixels.std() > 0.05  # not a blank canvas
    assert "http://" not in text and "https://" not in text  # self-contained
    assert "24 rows explained" in text


def test_the_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (Debian package: chromium)")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1000,2600",
            f"--screenshot={shot}",
            report.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[:2] == (2600, 1000)
    # The page drew its plots: many distinct colours, not a blank or error page.
    colours = np.unique((pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 200
