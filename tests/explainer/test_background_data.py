"""Background files, and the reservoir used when there are none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from explainer.background_data import BLOCK_ROWS, BackgroundStore, load_background
from explainer.settings import Settings
from explainers import kernel_shap, permutations


def test_csv_with_header_gives_names(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("Age,Income\n30,1.5\n40,2.5\n")
    rows, names = load_background(str(path))
    assert names == ["Age", "Income"]
    np.testing.assert_array_equal(rows, [[30, 1.5], [40, 2.5]])


def test_csv_without_header_and_npy(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("1,2\n3,4\n")
    np.save(tmp_path / "a.npy", np.array([[1.0, 2.0], [3.0, 4.0]]))
    for name in ("a.csv", "a.npy"):
        rows, names = load_background(str(tmp_path / name))
        assert names is None
        np.testing.assert_array_equal(rows, [[1, 2], [3, 4]])


def test_directory_holding_one_data_file(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("not data")
    (tmp_path / "train.csv").write_text("a,b\n1,2\n")
    rows, names = load_background(str(tmp_path))
    assert names == ["a", "b"] and rows.shape == (1, 2)
    (tmp_path / "more.npy").write_bytes(b"")
    with pytest.raises(ValueError, match="2 data files"):
        load_background(str(tmp_path))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("a,b\n1,x\n2,\n", "line 3 has a missing value"),
        ("1,2\n3\n", "line 2"),
        ("a,b\n", "non-empty"),
        ("1,nan\n", "non-finite"),
    ],
)
def test_bad_csv_is_named(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=words):
        load_background(str(path))


def test_csv_with_text_and_booleans_is_a_table_of_values(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("job,age,owner\nclerk,30,true\n nurse ,41,False\n")
    rows, names = load_background(str(path))
    assert names == ["job", "age", "owner"]
    assert rows.dtype == object
    assert rows.tolist() == [["clerk", 30.0, True], ["nurse", 41.0, False]]


def test_csv_column_that_turns_to_text_later_is_named(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    lines = ["a,b"] + [f"{i},x" for i in range(BLOCK_ROWS)] + ["oops,y"]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"line {BLOCK_ROWS + 2}: 'a' is 'oops'"):
        load_background(str(path))


def test_parquet_with_string_columns(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "train.parquet"
    frame = pd.DataFrame({"job": ["clerk", "nurse"], "age": [30, 41], "owner": [True, False]})
    frame.to_parquet(path)
    rows, names = load_background(str(path))
    assert names == ["job", "age", "owner"]
    assert rows.tolist() == [["clerk", 30.0, True], ["nurse", 41.0, False]]


def store(capacity: int = 100, shap_size: int = 10) -> BackgroundStore:
    return BackgroundStore(
        None, source="reservoir", shap_size=shap_size, reservoir_size=capacity, seed=0
    )


def test_reservoir_is_bounded_and_seeded() -> None:
    one, two = store(capacity=20), store(capacity=20)
    rows = np.random.default_rng(0).normal(size=(200, 3))
    for chunk in np.array_split(rows, 20):
        one.observe(chunk)
        two.observe(chunk)
    assert one.snapshot().description["rows"] == 20
    np.testing.assert_array_equal(one.snapshot().shap.rows, two.snapshot().shap.rows)


def test_large_reservoir_summary_is_rebuilt_only_after_growth() -> None:
    reservoir = store(capacity=1000, shap_size=10)
    rows = np.random.default_rng(1).normal(size=(400, 3))
    reservoir.observe(rows[:100])
    first = reservoir.snapshot()
    reservoir.observe(rows[100:105])  # 5% more rows seen: keep the summary
    assert reservoir.snapshot() is first
    reservoir.observe(rows[105:120])  # 20% more: rebuild
    assert reservoir.snapshot() is not first
    assert reservoir.snapshot().description["rows"] == 120


@pytest.mark.parametrize(("m", "rows"), [(12, 2000), (24, 400), (4, 100)])
def test_by_default_an_explanation_uses_as_many_rows_as_the_default_budget_scores(
    m: int, rows: int
) -> None:
    """SHAP_BACKGROUND_SIZE unset: one pair of orders per background row within the
    default rows, less the 16 whose second pairs calibrate the intervals (12,000 /
    (2(M − 1)) − 16, at most 1000); a background within it is whole."""
    data = np.random.default_rng(m).normal(size=(rows, m))
    fixed = BackgroundStore(data, source="file", shap_size=None, reservoir_size=1, seed=0)
    described = fixed.snapshot().description
    size = min(1000, kernel_shap.DEFAULT_ROWS // (2 * (m - 1)) - permutations.CALIBRATING)
    assert described["rows_per_explanation"] == min(rows, size)
    assert described["sampled"] is (rows > size)
    for name in ("shap_samples", "shap_background_size"):
        assert f"{kernel_shap.DEFAULT_ROWS:,}" in str(Settings.model_fields[name].description)
