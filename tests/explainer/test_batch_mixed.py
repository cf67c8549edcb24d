"""``explainer batch`` and ``explainer report`` on mixed-type data: a CSV, Parquet and
JSON Lines with text and boolean columns, the applicants' pipeline in-process (it
refuses any category it was not fitted on), bad values recorded per row, and
categorical features shown as categories in the report."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson
import pytest

from tests.explainer.test_batch import batch, records, report
from tests.mlserver import write_csv
from tests.models import APPLICANT_FEATURES, applicant_frame, applicants, brute_force_shapley

EVERY_COALITION = str(2**6 - 2)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("batch-mixed")
    served = applicants()
    joblib.dump(served.artifact, root / "model.joblib")
    write_csv(root / "train.csv", served.train[:8], APPLICANT_FEATURES)
    rows = served.test[:12]
    write_csv(root / "rows.csv", rows, APPLICANT_FEATURES)
    applicant_frame(rows).to_parquet(root / "rows.parquet")
    (root / "rows.jsonl").write_bytes(
        b"".join(
            orjson.dumps(dict(zip(APPLICANT_FEATURES, r.tolist(), strict=True))) + b"\n"
            for r in rows
        )
    )
    return {"root": root, "served": served, "rows": rows}


def run(mixed: dict[str, Any], source: Path, out: Path, *extra: str) -> list[dict[str, Any]]:
    batch(
        str(source),
        "--out",
        str(out),
        "--model_file",
        str(mixed["root"] / "model.joblib"),
        "--background_data",
        str(mixed["root"] / "train.csv"),
        "--integer_features",
        "dependants,years_at_address",
        "--lime_samples",
        "300",
        "--shap_samples",
        EVERY_COALITION,
        *extra,
    )
    return records(out if out.suffix == ".jsonl" else Path(f"{out}.jsonl"))


def test_every_input_format_gives_the_exact_shapley_values(
    mixed: dict[str, Any], tmp_path: Path
) -> None:
    runs = {
        suffix: run(mixed, mixed["root"] / f"rows.{suffix}", tmp_path / f"{suffix}.jsonl")
        for suffix in ("csv", "parquet", "jsonl")
    }
    for suffix in ("parquet", "jsonl"):
        assert [r["SHAP"] for r in runs[suffix]] == [r["SHAP"] for r in runs["csv"]], suffix
    background = mixed["served"].train[:8]
    for record, x in zip(runs["csv"], mixed["rows"], strict=True):
        assert record["input"]["employment"] == x[0] and record["input"]["owns_home"] == x[2]
        truth = brute_force_shapley(mixed["served"].model.predict_proba, x, background)
        found = {i["name"]: i["score"] for i in record["SHAP"]["saliencies"]["outputs-1"]}
        np.testing.assert_allclose([found[n] for n in APPLICANT_FEATURES], truth[1], atol=1e-9)
        assert record["SHAP"]["feature_kinds"]["employment"] == "categorical"


def test_a_value_of_the_wrong_kind_fails_its_row_alone(
    mixed: dict[str, Any], tmp_path: Path
) -> None:
    source = tmp_path / "bad.csv"
    with (mixed["root"] / "rows.csv").open() as handle:
        lines = list(csv.reader(handle))
    lines[3][APPLICANT_FEATURES.index("dependants")] = "2.5"  # row 2: not a whole number
    lines[5][APPLICANT_FEATURES.index("employment")] = ""  # row 4: missing
    with source.open("w", newline="") as handle:
        csv.writer(handle).writerows(lines)
    out = tmp_path / "bad.jsonl"
    result = batch(
        str(source),
        "--out",
        str(out),
        "--model_file",
        str(mixed["root"] / "model.joblib"),
        "--background_data",
        str(mixed["root"] / "train.csv"),
        "--integer_features",
        "dependants,years_at_address",
        "--lime_samples",
        "300",
        check=False,
    )
    assert result.returncode == 1
    journal = records(out)
    assert "'dependants'" in journal[2]["error"] and "whole number" in journal[2]["error"]
    assert journal[4] == {"row": 4, "error": "a value is missing or not a number"}
    assert all("SHAP" in journal[r] for r in range(12) if r not in (2, 4))


def test_the_report_shows_categories_not_a_number_axis(
    mixed: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "run.jsonl"
    run(mixed, mixed["root"] / "rows.csv", out)
    page = tmp_path / "report.html"
    report(out, page)
    text = page.read_text()
    section = text[text.index('<section id="categories">') :]
    section = section[: section.index("</section>")]
    for name in ("employment", "owns_home", "region"):
        assert f"<h3>{name}</h3>" in section
    assert "<h3>income</h3>" not in section and section.count("<img") == 3
    assert "12 rows explained" in text
