"""``explainer batch``: every input format, errors recorded inline, resumable after kill -9,
Parquet in long form, and the same explanation the service gives for the same row."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from explainer.batch.runner import finished_rows
from explainer.demo import FEATURES, credit_model
from tests.conftest import ExplainerFactory, Predictor

FAST = ["--lime_samples", "200", "--background_data"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("batch")
    credit = credit_model()
    joblib.dump(credit.model, root / "credit.joblib")
    rows = credit.test[:24]
    header = ",".join(FEATURES)
    np.savetxt(
        root / "train.csv",
        credit.train[:30],
        delimiter=",",
        header=header,
        comments="",
        fmt="%.17g",
    )
    np.savetxt(root / "rows.csv", rows, delimiter=",", header=header, comments="", fmt="%.17g")
    np.save(root / "rows.npy", rows)
    pq.write_table(pa.table({n: rows[:, j] for j, n in enumerate(FEATURES)}), root / "rows.parquet")
    (root / "rows.jsonl").write_bytes(b"".join(orjson.dumps(r.tolist()) + b"\n" for r in rows))
    return {"root": root, "model": root / "credit.joblib", "train": root / "train.csv"}


def batch(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "explainer", "batch", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def report(journal: Path, page: Path) -> Path:
    """``explainer report`` of ``journal`` into ``page``, which it returns."""
    result = subprocess.run(
        [sys.executable, "-m", "explainer", "report", str(journal), "--html", str(page)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return page


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_input_format_gives_the_same_explanations(
    files: dict[str, Path], tmp_path: Path
) -> None:
    outputs = {}
    for suffix in ("csv", "npy", "parquet", "jsonl"):
        out = tmp_path / f"{suffix}.jsonl"
        batch(
            str(files["root"] / f"rows.{suffix}"),
            "--out",
            str(out),
            "--model_file",
            str(files["model"]),
            *FAST,
            str(files["train"]),
        )
        outputs[suffix] = records(out)
    assert [r["row"] for r in outputs["csv"]] == list(range(24))
    # Names come from the input's header, else from the background CSV's: all the same here.
    assert outputs["csv"] == outputs["npy"] == outputs["parquet"] == outputs["jsonl"]
    assert {i["name"] for i in outputs["npy"][0]["SHAP"]["saliencies"]["outputs-1"]} == set(
        FEATURES
    )


def test_bad_rows_are_recorded_and_the_run_goes_on(files: dict[str, Path], tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    lines = (files["root"] / "rows.csv").read_text().splitlines()
    fields = lines[3].split(",")  # row 2: a word where a number belongs
    fields[2] = "oops"
    lines[3] = ",".join(fields)
    lines[6] = ",".join(["1"] * 5)  # row 5: unusual, but fine
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "bad.parquet"
    result = batch(
        str(source),
        "--out",
        str(out),
        "--model_file",
        str(files["model"]),
        *FAST,
        str(files["train"]),
        check=False,
    )
    assert result.returncode == 1  # some row failed
    journal = records(Path(f"{out}.jsonl"))
    assert [r["row"] for r in journal] == list(range(24))
    assert journal[2] == {"row": 2, "error": "a value is missing or not a number"}
    assert all("SHAP" in journal[r] for r in range(24) if r != 2)
    table = pq.read_table(out).to_pandas()
    assert list(table.columns) == ["row", "explainer", "output", "feature", "score", "confidence"]
    assert len(table) == 23 * 2 * 2 * 5  # rows × explainers × outputs × features
    assert 2 not in set(table["row"])


def test_a_killed_run_resumes_with_every_row_once_and_the_same_results(
    files: dict[str, Path], tmp_path: Path
) -> None:
    rows = np.load(files["root"] / "rows.npy")
    big = tmp_path / "big.npy"
    np.save(big, np.tile(rows, (6, 1)))  # 144 rows
    args = [
        "--model_file",
        str(files["model"]),
        "--chunk_rows",
        "4",
        "--in_flight",
        "1",
        "--lime_samples",
        "2000",
        "--background_data",
        str(files["train"]),
    ]
    whole = tmp_path / "whole.jsonl"
    batch(str(big), "--out", str(whole), *args)
    out = tmp_path / "killed.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "explainer", "batch", str(big), "--out", str(out), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 2000):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with out.open("ab") as journal:  # as if killed in the middle of writing a line
        journal.write(b'{"row": 9999, "LIME": {"sal')
    partial = finished_rows(out)
    assert 0 < len(partial) < 144
    resumed = batch(str(big), "--out", str(out), *args)
    assert f"{len(partial)} already done" in resumed.stderr
    assert out.read_text() == whole.read_text()  # every row once, in order, same bytes


async def test_batch_gives_the_service_answer_for_the_same_row(
    files: dict[str, Path], explainer: ExplainerFactory, mlserver: Predictor, tmp_path: Path
) -> None:
    credit = mlserver.models["credit"]
    background = str(mlserver.data / "credit.csv")
    out = tmp_path / "served.jsonl"
    batch(
        str(files["root"] / "rows.csv"),
        "--out",
        str(out),
        "--model_name",
        "credit",
        "--predictor_host",
        mlserver.host,
        "--background_data",
        background,
        "--seed",
        "3",
    )
    client = await explainer("credit", background_data=background, seed=3)
    row = credit.test[5].tolist()
    response = await client.post(
        "/v1/models/credit:explain", data=orjson.dumps({"instances": [row]})
    )
    served = orjson.loads(await response.read())
    served.pop("timestamp")
    line = records(out)[5]
    assert line.pop("input") == dict(zip(FEATURES, row, strict=True))  # the values explained
    assert line == {"row": 5, **json.loads(json.dumps(served))}


def test_a_local_dask_cluster_gives_the_single_process_results_row_for_row(
    files: dict[str, Path], tmp_path: Path
) -> None:
    args = ["--model_file", str(files["model"]), *FAST, str(files["train"])]
    single, spread = tmp_path / "single.jsonl", tmp_path / "dask.jsonl"
    batch(str(files["root"] / "rows.npy"), "--out", str(single), *args)
    run = batch(
        str(files["root"] / "rows.npy"),
        "--out",
        str(spread),
        "--dask",
        "local:2",
        "--partition_rows",
        "5",
        *args,
    )
    # One engine per worker, built once and used for every partition it was given.
    found = re.findall(r"(\d+) engine\(s\), (\d+) partition", run.stderr)
    use = [(int(builds), int(partitions)) for builds, partitions in found]
    assert len(use) == 2 and all(builds == 1 for builds, _ in use), run.stderr
    assert sum(partitions for _, partitions in use) == 5  # 24 rows in partitions of 5
    by_row = {r["row"]: r for r in records(spread)}
    assert sorted(by_row) == list(range(24))  # every row once, whatever order partitions end
    assert [by_row[r["row"]] for r in records(single)] == records(single)


def test_a_lost_predictor_stops_the_run_and_nothing_is_marked_failed(
    files: dict[str, Path], tmp_path: Path
) -> None:
    from tests.mlserver import free_port

    out = tmp_path / "gone.jsonl"
    result = batch(
        str(files["root"] / "rows.csv"),
        "--out",
        str(out),
        "--model_name",
        "credit",
        "--predictor_host",
        f"127.0.0.1:{free_port()}",
        "--predictor_retries",
        "0",
        "--background_data",
        str(files["train"]),
        check=False,
    )
    assert result.returncode == 3
    assert "unreachable" in result.stderr and "run again" in result.stderr
    assert not out.exists() or out.read_text() == ""  # no row recorded as failed
