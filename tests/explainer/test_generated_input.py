"""Thousands of generated requests — arbitrary JSON, near-valid bodies built from the
OpenAPI document's own request schema, odd paths, methods and headers — against an
``explainer serve`` process in front of the real MLServer. None may get a 5xx (the
predictor is healthy, so any would be the explainer's fault), hang, or lose the server;
every 4xx is ``{"error": ...}`` naming the problem, and every 200 matches the document."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import jsonschema
import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Predictor
from tests.mlserver import start_explainer, stop, wait_ok

EXPLAIN = "/v1/models/credit:explain"
ANSWERED = {200, 400, 404, 405, 413, 429}
FIELDS = ["explainer", "lime_samples", "shap_samples", "seed", "target", "tolerance"]
RUN = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,  # the same inputs on every run: CI stays reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
tried = {"requests": 0}


@pytest.fixture(scope="module")
def server(mlserver: Predictor) -> Iterator[str]:
    process, url = start_explainer(
        "credit",
        mlserver.host,
        "--background_data",
        str(mlserver.data / "credit.csv"),
        "--explainer_type",
        "ALL",
        "--lime_samples",
        "60",
        "--shap_samples",
        "16",
        "--lime_max_samples",
        "400",
        "--shap_max_samples",
        "64",
        "--max_rows",
        "4",
        stderr=subprocess.PIPE,
    )
    try:
        wait_ok(f"{url}/v2/health/ready", process)
        yield url
    finally:
        stop(process)
        _, stderr = process.communicate()
        assert b"Traceback" not in stderr, stderr.decode()[-3000:]


@pytest.fixture(scope="module")
def document(server: str) -> dict[str, Any]:
    response = requests.get(f"{server}/openapi.json", timeout=10)
    assert response.status_code == 200
    return dict(response.json())


def schema_of(document: dict[str, Any], name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}", "components": document["components"]}


def check(document: dict[str, Any], response: requests.Response, explain: bool = True) -> None:
    tried["requests"] += 1
    assert response.status_code in ANSWERED, (response.status_code, response.text[:500])
    body = response.json()
    if response.status_code >= 400:
        jsonschema.validate(body, schema_of(document, "Error"))
        assert "Traceback" not in body["error"] and 'File "' not in body["error"]
    elif explain:
        jsonschema.validate(body, schema_of(document, "Explanation"))
        for row in body.get("explanations", [body]):
            assert {"LIME", "SHAP"} & set(row)


def test_the_document_describes_every_route(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    for name, schema in document["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema), name
    paths = set(document["paths"])
    assert {"/v1/models/{name}:explain", "/v2/health/ready", "/openapi.json"} <= paths
    example = document["components"]["schemas"]["RowsRequest"]["example"]
    jsonschema.validate(example, schema_of(document, "RowsRequest"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=10), inner, max_size=6)
    ),
    max_leaves=40,
)


@RUN
@given(body=json_values | st.binary(max_size=200).map(lambda b: {"__raw__": b.hex()}))
def test_arbitrary_json_bodies(server: str, document: dict[str, Any], body: Any) -> None:
    raw = (
        bytes.fromhex(body["__raw__"])
        if isinstance(body, dict) and "__raw__" in body
        else json.dumps(body).encode()
    )
    check(document, requests.post(server + EXPLAIN, data=raw, timeout=30))


numbers = st.floats(allow_nan=False, allow_infinity=False, width=64) | st.integers(-(10**6), 10**6)
cells = numbers | st.none() | st.booleans() | st.text(max_size=4)
rows = st.lists(numbers, min_size=5, max_size=5) | st.lists(cells, max_size=7)
named_rows = st.dictionaries(
    st.sampled_from(["Credit History", "Loan Amount", "x", ""]), cells, max_size=6
)
parameters = st.dictionaries(
    st.sampled_from([*FIELDS, "extra"]),
    json_values | st.sampled_from(["LIME", "shap", "all", "anchors"]) | st.integers(-5, 500),
    max_size=3,
)
near_valid = st.fixed_dictionaries(
    {},
    optional={
        "instances": st.lists(rows | named_rows, max_size=5) | json_values,
        "data": st.fixed_dictionaries({"ndarray": st.lists(rows, max_size=3)}) | json_values,
        "inputs": st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.text(max_size=5),
                    "shape": st.lists(st.integers(-1, 6), max_size=3),
                    "datatype": st.sampled_from(["FP64", "FP32", "INT64", "BYTES", "BOOL", "x"]),
                    "data": st.lists(cells, max_size=12),
                }
            ),
            max_size=3,
        ),
        "parameters": parameters | json_values,
        "id": st.text(max_size=8) | json_values,
    },
)


@RUN
@given(body=near_valid)
def test_near_valid_bodies(server: str, document: dict[str, Any], body: dict[str, Any]) -> None:
    check(document, requests.post(server + EXPLAIN, data=json.dumps(body).encode(), timeout=30))


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(
    str.strip
)


@settings(RUN, max_examples=400)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    path=st.sampled_from(["/v1/models/", "/v2/models/", "/v1/", "/", "/v2/health/"]).flatmap(
        lambda p: st.text(
            st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="?#%"),
            max_size=30,
        ).map(lambda s: p + s)
    ),
    content_type=header_text,
    request_id=header_text,
)
def test_odd_paths_methods_and_headers(
    server: str,
    document: dict[str, Any],
    method: str,
    path: str,
    content_type: str,
    request_id: str,
) -> None:
    body = orjson.dumps({"instances": [[0.1, 0.2, 0.3, 0.4, 0.5]]})
    response = requests.request(
        method,
        server + path,
        data=body,
        headers={"Content-Type": content_type, "X-Request-Id": request_id},
        timeout=30,
    )
    tried["requests"] += 1
    assert response.status_code in ANSWERED | {503}, (
        path,
        response.status_code,
        response.text[:300],
    )
    if response.status_code >= 400 and path != "/metrics":
        jsonschema.validate(response.json(), schema_of(document, "Error"))


def test_the_server_still_answers_after_everything(server: str, document: dict[str, Any]) -> None:
    body = {"instances": [[0.93, 1.57, 3.14, 1.43, 0.76]]}
    check(document, requests.post(server + EXPLAIN, data=orjson.dumps(body), timeout=30))
    print(f"generated requests answered: {tried['requests']}")
