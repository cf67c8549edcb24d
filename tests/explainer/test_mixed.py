"""Mixed-type rows end to end, against real peers: MLServer's scikit-learn runtime
serving a ``Pipeline(ColumnTransformer(OneHotEncoder(handle_unknown="error")), booster)``
on a DataFrame, one tensor per column in its declared datatype (REST and gRPC), and
KServe's own model server taking mixed JSON lists over v1. The encoder refuses any
category it was not fitted on, so every explanation that comes back also shows that no
value the model never saw reached it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.conftest import ExplainerFactory, Predictor
from tests.mlserver import write_csv
from tests.models import APPLICANT_FEATURES, APPLICANT_TYPES, brute_force_shapley

EXPLAIN = "/v1/models/applicants:explain"
KINDS = {
    "employment": "categorical",
    "dependants": "integer",
    "owns_home": "categorical",
    "years_at_address": "integer",
    "income": "continuous",
    "region": "categorical",
}
EVERY_COALITION = 2**6 - 2


def applicant(row: np.ndarray) -> dict[str, Any]:
    return dict(zip(APPLICANT_FEATURES, row.tolist(), strict=True))


def small_background(mlserver: Predictor, tmp_path: Path, rows: int = 8) -> tuple[Path, np.ndarray]:
    background = mlserver.models["applicants"].train[:rows]
    path = tmp_path / "applicants.csv"
    write_csv(path, background, APPLICANT_FEATURES)
    return path, background


def scores_by_name(block: dict[str, Any], output: str) -> np.ndarray:
    found = {item["name"]: item for item in block["saliencies"][output]}
    return np.array([found[name]["score"] for name in APPLICANT_FEATURES])


async def post(client: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await client.post(EXPLAIN, data=orjson.dumps(body))
    return response.status, orjson.loads(await response.read())


@pytest.mark.parametrize("protocol", ["v2", "grpc-v2"])
async def test_shap_equals_brute_force_over_the_pipeline(
    explainer: ExplainerFactory, mlserver: Predictor, tmp_path: Path, protocol: str
) -> None:
    path, background = small_background(mlserver, tmp_path)
    client = await explainer(
        "applicants",
        background_data=str(path),
        explainer_type="SHAP",
        predictor_protocol=protocol,
        predictor_host=mlserver.grpc if protocol == "grpc-v2" else mlserver.host,
    )
    served = mlserver.models["applicants"]
    x = served.test[3]
    status, payload = await post(
        client, {"instances": [applicant(x)], "parameters": {"shap_samples": EVERY_COALITION}}
    )
    assert status == 200, payload
    shap = payload["SHAP"]
    truth = brute_force_shapley(served.model.predict_proba, x, background)
    for k, output in enumerate(["outputs-0", "outputs-1"]):
        np.testing.assert_allclose(scores_by_name(shap, output), truth[k], atol=1e-9)
        assert all(item["confidence"] == 0 for item in shap["saliencies"][output])
    assert shap["exact"] is True
    assert shap["feature_kinds"] == KINDS
    assert shap["prediction"]["outputs-1"] == pytest.approx(
        served.model.predict_proba(x[None, :])[0, 1], abs=1e-12
    )


async def test_every_body_format_gives_the_same_explanation(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    """Objects, lists, data.ndarray with names, and v2 inputs with one tensor per column
    (as MLServer's pandas codec sends them) are the same request."""
    client = await explainer(
        "applicants", background_data=str(mlserver.data / "applicants.csv"), explainer_type="ALL"
    )
    x = mlserver.models["applicants"].test[5]
    values = x.tolist()
    parameters = {"seed": 3}
    bodies = [
        {"instances": [applicant(x)]},
        {"instances": [values]},
        {"data": {"ndarray": [values], "names": APPLICANT_FEATURES}},
        {
            "inputs": [
                {"name": name, "shape": [1, 1], "datatype": APPLICANT_TYPES[name], "data": [value]}
                for name, value in zip(APPLICANT_FEATURES, values, strict=True)
            ]
        },
    ]
    answers = []
    for body in bodies:
        status, payload = await post(client, {**body, "parameters": parameters})
        assert status == 200, (body, payload)
        payload.pop("timestamp")
        answers.append(payload)
    assert all(answer == answers[0] for answer in answers[1:])
    lime = answers[0]["LIME"]
    assert len(lime["saliencies"]["outputs-1"]) == 6 and lime["feature_kinds"] == KINDS


@pytest.mark.parametrize(
    ("value", "feature", "words"),
    [
        ({"income": "lots"}, "income", ("continuous", "number")),
        ({"dependants": 2.5}, "dependants", ("whole number",)),
        ({"owns_home": "maybe"}, "owns_home", ("true or false",)),
        ({"employment": 3}, "employment", ("strings", "'contract'")),
        ({"region": None}, "region", ("null",)),
    ],
)
async def test_a_value_of_the_wrong_kind_is_a_400_naming_the_feature(
    explainer: ExplainerFactory,
    mlserver: Predictor,
    value: dict[str, Any],
    feature: str,
    words: tuple[str, ...],
) -> None:
    client = await explainer("applicants", background_data=str(mlserver.data / "applicants.csv"))
    row = {**applicant(mlserver.models["applicants"].test[0]), **value}
    status, payload = await post(client, {"instances": [row]})
    assert status == 400 and list(payload) == ["error"], payload
    assert f"'{feature}'" in payload["error"], payload
    for word in words:
        assert word in payload["error"], payload
    status, _ = await post(
        client, {"instances": [applicant(mlserver.models["applicants"].test[0])]}
    )
    assert status == 200  # and the service goes on


async def test_an_unknown_feature_name_is_a_400(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    client = await explainer("applicants", background_data=str(mlserver.data / "applicants.csv"))
    row = applicant(mlserver.models["applicants"].test[0])
    row["salary"] = row.pop("income")
    status, payload = await post(client, {"instances": [row]})
    assert status == 400 and "unknown ['salary']" in payload["error"], payload


async def test_shap_over_kserve_v1_equals_brute_force(
    explainer: ExplainerFactory,
    mlserver: Predictor,
    kserve_applicants: tuple[str, Any],
    tmp_path: Path,
) -> None:
    """KServe's model server over v1 gets rows of mixed JSON values."""
    host, served = kserve_applicants
    path, background = small_background(mlserver, tmp_path)
    client = await explainer(
        "applicants",
        background_data=str(path),
        explainer_type="SHAP",
        predictor_protocol="v1",
        predictor_host=host,
        integer_features=["dependants", "years_at_address"],
    )
    x = served.test[7]
    status, payload = await post(
        client, {"instances": [x.tolist()], "parameters": {"shap_samples": EVERY_COALITION}}
    )
    assert status == 200, payload
    truth = brute_force_shapley(served.model.predict_proba, x, background)
    np.testing.assert_allclose(scores_by_name(payload["SHAP"], "outputs-1"), truth[1], atol=1e-9)
    assert payload["SHAP"]["feature_kinds"] == KINDS
