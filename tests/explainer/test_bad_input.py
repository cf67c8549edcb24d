"""Bad input gets a 4xx ``{"error": ...}`` that names the problem; the server keeps serving."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.conftest import ExplainerFactory, Predictor

ROW = [0.1, -0.2, 0.3, 0.4, -0.5]
EXPLAIN = "/v1/models/credit:explain"

# (case, raw body, status, words the error must contain)
CASES: list[tuple[str, bytes, int, tuple[str, ...]]] = [
    ("malformed JSON", b'{"instances": [[1, 2', 400, ("not valid JSON",)),
    ("empty body", b"", 400, ("empty",)),
    ("not an object", b"[[1, 2, 3]]", 400, ("JSON object",)),
    ("wrong key", b'{"rows": [[1, 2, 3, 4, 5]]}', 400, ("instances", "data", "inputs", "rows")),
    (
        "two row keys",
        orjson.dumps({"instances": [ROW], "data": {"ndarray": [ROW]}}),
        400,
        ("exactly one",),
    ),
    ("extra top-level key", orjson.dumps({"instances": [ROW], "foo": 1}), 400, ("foo",)),
    ("ragged rows", orjson.dumps({"instances": [ROW, ROW[:4]]}), 400, ("ragged",)),
    (
        "strings",
        orjson.dumps({"instances": [["a", "b", "c", "d", "e"]]}),
        400,
        ("feature 'Income Level'", "continuous", "CATEGORICAL_FEATURES"),
    ),
    (
        "numeric strings",
        orjson.dumps({"instances": [["1", "2", "3", "4", "5"]]}),
        400,
        ("feature 'Income Level'", "takes a number"),
    ),
    ("nulls", orjson.dumps({"instances": [[None, 1, 2, 3, 4]]}), 400, ("row 0, feature 0", "null")),
    (
        "booleans",
        orjson.dumps({"instances": [[True, False, True, True, False]]}),
        400,
        ("continuous", "takes a number"),
    ),
    ("NaN literal", b'{"instances": [[NaN, 1, 2, 3, 4]]}', 400, ("NaN",)),
    ("Infinity literal", b'{"instances": [[Infinity, 1, 2, 3, 4]]}', 400, ("JSON",)),
    ("overflow to inf", b'{"instances": [[1e999, 1, 2, 3, 4]]}', 400, ("infinity",)),
    ("wrong feature count", orjson.dumps({"instances": [ROW[:3]]}), 400, ("3 features", "5")),
    ("empty rows", orjson.dumps({"instances": [[]]}), 400, ("empty",)),
    ("no rows", orjson.dumps({"instances": []}), 400, ("non-empty",)),
    ("flat instances", orjson.dumps({"instances": ROW}), 400, ("list of rows",)),
    ("3-D instances", orjson.dumps({"instances": [[ROW]]}), 400, ("rows",)),
    ("data without ndarray", orjson.dumps({"data": {"tensor": [ROW]}}), 400, ("ndarray",)),
    ("names count", orjson.dumps({"data": {"ndarray": [ROW], "names": ["a"]}}), 400, ("names",)),
    (
        "unknown names",
        orjson.dumps({"data": {"ndarray": [ROW], "names": list("abcde")}}),
        400,
        ("missing", "unknown"),
    ),
    (
        "v2 bytes datatype",
        orjson.dumps(
            {"inputs": [{"name": "x", "shape": [1, 5], "datatype": "BYTES", "data": ROW}]}
        ),
        400,
        ("datatype",),
    ),
    (
        "v2 shape mismatch",
        orjson.dumps({"inputs": [{"name": "x", "shape": [2, 5], "datatype": "FP64", "data": ROW}]}),
        400,
        ("shape",),
    ),
    ("v2 missing field", orjson.dumps({"inputs": [{"name": "x", "data": ROW}]}), 400, ("missing",)),
    (
        "v2 two tensors",
        orjson.dumps(
            {"inputs": [{"name": "x", "shape": [5], "datatype": "FP64", "data": ROW}] * 2}
        ),
        400,
        ("same name",),
    ),
    (
        "unknown explainer type",
        orjson.dumps({"instances": [ROW], "parameters": {"explainer": "X"}}),
        400,
        ("parameters.explainer", "LIME"),
    ),
    (
        "unknown parameter",
        orjson.dumps({"instances": [ROW], "parameters": {"nsamples": 5}}),
        400,
        ("nsamples",),
    ),
    (
        "parameter of the wrong type",
        orjson.dumps({"instances": [ROW], "parameters": {"seed": "one"}}),
        400,
        ("parameters.seed",),
    ),
    (
        "negative samples",
        orjson.dumps({"instances": [ROW], "parameters": {"lime_samples": -1}}),
        400,
        ("lime_samples",),
    ),
    (
        "unknown target",
        orjson.dumps({"instances": [ROW], "parameters": {"target": "outputs-7"}}),
        400,
        ("target", "outputs-7"),
    ),
    (
        "LIME samples over the cap",
        orjson.dumps({"instances": [ROW], "parameters": {"lime_samples": 10**7}}),
        413,
        ("LIME_MAX_SAMPLES",),
    ),
    (
        "SHAP samples over the cap",
        orjson.dumps({"instances": [ROW], "parameters": {"shap_samples": 10**7}}),
        413,
        ("SHAP_MAX_SAMPLES",),
    ),
    ("too many rows", orjson.dumps({"instances": [ROW] * 101}), 413, ("MAX_ROWS",)),
]


@pytest.fixture
async def client(explainer: ExplainerFactory, mlserver: Predictor) -> Any:
    return await explainer("credit", background_data=str(mlserver.data / "credit.csv"))


async def assert_still_serving(client: Any) -> None:
    response = await client.post(EXPLAIN, data=orjson.dumps({"instances": [ROW]}))
    assert response.status == 200


@pytest.mark.parametrize(("case", "body", "status", "words"), CASES, ids=[c[0] for c in CASES])
async def test_bad_body_is_refused_with_a_clear_error(
    client: Any, case: str, body: bytes, status: int, words: tuple[str, ...]
) -> None:
    response = await client.post(EXPLAIN, data=body)
    assert response.status == status
    assert response.content_type == "application/json"
    payload = orjson.loads(await response.read())
    assert list(payload) == ["error"]
    for word in words:
        assert word in payload["error"], (case, payload["error"])
    assert "Traceback" not in payload["error"]


async def test_server_keeps_serving_after_every_bad_body(client: Any) -> None:
    for _, body, _, _ in CASES:
        await client.post(EXPLAIN, data=body)
    await assert_still_serving(client)


@pytest.mark.parametrize(
    ("method", "path", "status", "word"),
    [
        ("POST", "/v1/models/other:explain", 404, "'other'"),
        ("POST", "/v1/models/other:predict", 404, "'other'"),
        ("GET", "/v1/models/other", 404, "'other'"),
        ("GET", "/v1/models/credit:explain", 405, "POST"),
        ("POST", "/v2/models/credit/explain", 404, ":explain"),
        ("GET", "/nowhere", 404, "no route"),
    ],
)
async def test_unknown_model_route_or_method(
    client: Any, method: str, path: str, status: int, word: str
) -> None:
    response = await client.request(method, path, data=orjson.dumps({"instances": [ROW]}))
    assert response.status == status
    payload = orjson.loads(await response.read())
    assert word in payload["error"]
    await assert_still_serving(client)


async def test_body_over_the_size_limit_gets_413(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    client = await explainer(
        "credit", background_data=str(mlserver.data / "credit.csv"), max_body_bytes=4096
    )
    body = orjson.dumps({"instances": [ROW] * 400})
    response = await client.post(EXPLAIN, data=body)
    assert response.status == 413
    assert "MAX_BODY_BYTES" in orjson.loads(await response.read())["error"]
    await assert_still_serving(client)


async def test_a_declared_1_gb_body_is_refused_before_it_is_read(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    import asyncio
    import resource

    client = await explainer("credit", background_data=str(mlserver.data / "credit.csv"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        f"POST {EXPLAIN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {1 << 30}\r\n\r\n".encode()
    )
    writer.write(b'{"instances": [' + b"[1, 2, 3, 4, 5], " * 4096)  # 70 kB of the 1 GB
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 413"), head
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[
            1
        ]
    )
    body = orjson.loads(await reader.readexactly(length))
    assert "MAX_BODY_BYTES" in body["error"]
    writer.close()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB
    await assert_still_serving(client)


@pytest.mark.parametrize("depth", [50, 5000, 200_000])
async def test_deep_nesting_is_a_clear_400(client: Any, depth: int) -> None:
    body = b'{"instances": ' + b"[" * depth + b"1" + b"]" * depth + b"}"
    response = await client.post(EXPLAIN, data=body)
    assert response.status == 400
    assert orjson.loads(await response.read())["error"]
    await assert_still_serving(client)


async def test_too_many_features_is_413(explainer: ExplainerFactory) -> None:
    client = await explainer("credit", max_features=8)  # no background: any width goes
    response = await client.post(EXPLAIN, data=orjson.dumps({"instances": [[0.5] * 9]}))
    assert response.status == 413
    assert "MAX_FEATURES" in orjson.loads(await response.read())["error"]
