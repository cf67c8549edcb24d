"""``explainer batch`` and ``explainer report`` over texts: a CSV with a text column,
JSON Lines of strings and of {"text": ...} objects, and Parquet, explained by the reviews'
TF-IDF pipeline in-process; SHAP against brute force over word masks; a bad text fails
its row alone; the report colours each word by its score (and, where Chromium is
installed, renders so in a headless browser)."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson
import pytest

from tests.explainer.test_batch import batch, records, report
from tests.explainer.test_texts import word_shapley
from tests.models import REVIEWS, reviews

TEXTS = [text for text, _ in REVIEWS]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import pandas as pd

    root = tmp_path_factory.mktemp("batch-texts")
    served = reviews()
    joblib.dump(served.artifact, root / "model.joblib")
    with (root / "texts.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["text"], *([t] for t in TEXTS)])
    lines = [orjson.dumps(t if i % 2 else {"text": t}) for i, t in enumerate(TEXTS)]
    (root / "texts.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    pd.DataFrame({"text": TEXTS}).to_parquet(root / "texts.parquet")
    return {"root": root, "model": served.model}


def run(corpus: dict[str, Any], source: Path, out: Path, *extra: str, check: bool = True) -> Any:
    return batch(
        str(source),
        "--out",
        str(out),
        "--model_file",
        str(corpus["root"] / "model.joblib"),
        "--lime_samples",
        "400",
        *extra,
        check=check,
    )


def test_every_input_format_gives_the_exact_shapley_values(
    corpus: dict[str, Any], tmp_path: Path
) -> None:
    runs = {}
    for suffix in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"{suffix}.jsonl"
        run(corpus, corpus["root"] / f"texts.{suffix}", out)
        runs[suffix] = records(out)
    assert runs["jsonl"] == runs["csv"] == runs["parquet"]
    for record, text in zip(runs["csv"], TEXTS, strict=True):
        assert record["input"] == text
        items = sorted(record["SHAP"]["saliencies"]["outputs-1"], key=lambda i: i["span"][0])
        assert [i["name"] for i in items] == text.split(" ")
        truth = word_shapley(corpus["model"], text)
        np.testing.assert_allclose([i["score"] for i in items], truth[1], atol=1e-9)
        assert record["SHAP"]["exact"] is True and "LIME" in record


def test_a_bad_text_fails_its_row_alone(corpus: dict[str, Any], tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    texts = [*TEXTS[:3], "", "x" * 300, *TEXTS[3:5]]
    with source.open("w", newline="") as handle:
        csv.writer(handle).writerows([["text"], *([t] for t in texts)])
    out = tmp_path / "bad.jsonl"
    result = run(corpus, source, out, "--max_text_chars", "200", check=False)
    assert result.returncode == 1
    journal = records(out)
    assert journal[3] == {"row": 3, "error": "the text is missing"}
    assert "300 characters" in journal[4]["error"] and "MAX_TEXT_CHARS" in journal[4]["error"]
    assert [("SHAP" in r) for r in journal] == [True, True, True, False, False, True, True]


def test_the_report_colours_each_word_by_its_score(corpus: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    run(corpus, corpus["root"] / "texts.csv", out)
    page = tmp_path / "report.html"
    report(out, page)
    html = page.read_text()
    assert "10 texts explained" in html
    assert "Every SHAP score is exact" in html  # 10 words at most: every coalition
    section = html[html.index('<section id="texts">') :]
    section = section[: section.index("</section>")]
    segments = re.findall(
        r'<span class="seg" style="background:rgba\((\d+),\d+,\d+,([\d.]+)\)" '
        r'data-score="([^"]+)"[^>]*>([^<]*)</span>',
        section,
    )
    assert len(segments) == sum(len(t.split()) for t in TEXTS)
    shap = {
        (r["row"], i["name"], i["span"][0]): i["score"]
        for r in records(out)
        for i in r["SHAP"]["saliencies"]["outputs-1"]
    }
    strongest = max(abs(s) for s in shap.values())
    for red, alpha, score, word in segments:
        assert (int(red) == 196) == (float(score) > 0), (word, score)  # red raises
        assert float(alpha) == pytest.approx(abs(float(score)) / strongest, abs=0.006)
    assert sorted(float(s) for *_, s, _ in segments) == pytest.approx(
        sorted(shap.values()), abs=1e-5
    )
    words = html[html.index('<section id="words">') : html.index('<section id="texts">')]
    dull = [s for (_, name, _), s in shap.items() if name.strip(",") == "dull"]
    assert f"<td>dull</td><td>{np.mean(dull):+.3g}</td><td>{len(dull)}</td>" in words


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed")
def test_the_report_renders_red_and_blue_words_in_a_browser(
    corpus: dict[str, Any], tmp_path: Path
) -> None:
    from PIL import Image

    out = tmp_path / "run.jsonl"
    run(corpus, corpus["root"] / "texts.csv", out, "--explainer_type", "SHAP")
    page = tmp_path / "report.html"
    report(out, page)
    texts_only = tmp_path / "texts.html"
    html = page.read_text()
    start, end = html.index('<section id="texts">'), html.index("</body>")
    texts_only.write_text(html[: html.index("<body>") + 6] + html[start:end] + "</body></html>")
    shot = tmp_path / "shot.png"
    chromium = str(shutil.which("chromium"))
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1000,900",
            texts_only.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    r, g, b = pixels.T
    assert ((r - b > 60) & (r - g > 60)).sum() > 50  # words that raise the output
    assert ((b - r > 40) & (b > 120)).sum() > 50  # words that lower it


def test_the_long_parquet_output_has_each_segments_span(
    corpus: dict[str, Any], tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "run.parquet"
    run(corpus, corpus["root"] / "texts.csv", out, "--explainer_type", "SHAP")
    table = pq.read_table(out).to_pandas()
    assert list(table.columns) == [
        "row",
        "explainer",
        "output",
        "feature",
        "score",
        "confidence",
        "start",
        "end",
    ]
    for row in table.itertuples():
        assert TEXTS[row.row][row.start : row.end] == row.feature
    assert len(table) == 2 * sum(len(t.split()) for t in TEXTS)  # two outputs


def test_dask_gives_the_single_process_results_text_for_text(
    corpus: dict[str, Any], tmp_path: Path
) -> None:
    single, spread = tmp_path / "single.jsonl", tmp_path / "dask.jsonl"
    args = ("--explainer_type", "SHAP")
    run(corpus, corpus["root"] / "texts.jsonl", single, *args)
    run(
        corpus,
        corpus["root"] / "texts.jsonl",
        spread,
        *args,
        "--dask",
        "local:2",
        "--partition_rows",
        "4",
    )
    by_row = {r["row"]: r for r in records(spread)}
    assert [by_row[r["row"]] for r in records(single)] == records(single)
    assert sorted(by_row) == list(range(len(TEXTS)))
