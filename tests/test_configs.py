"""Every YAML in ``configs/`` is what Kubernetes would accept: InferenceServices against
the InferenceService CRD's ``openAPIV3Schema`` (KServe's published CRD, vendored in
``tests/data/kserve``), with unknown fields rejected as ``kubectl``'s strict field
validation does; the background ConfigMap is the credit-score training data."""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import yaml

from explainer.background_data import load_background
from explainer.demo import FEATURES, credit_model

REPO = Path(__file__).resolve().parent.parent
CRD = (
    Path(__file__).resolve().parent / "data" / "kserve" / "serving.kserve.io_inferenceservices.yaml"
)
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def strict(schema: Any) -> Any:
    """Reject fields the schema does not declare, unless it preserves unknown fields."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@cache
def validator() -> jsonschema.Draft7Validator:
    crd = yaml.load(CRD.read_text(), Loader=yaml.CSafeLoader)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return jsonschema.Draft7Validator(strict(version["schema"]["openAPIV3Schema"]))


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def inference_services() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, doc)
        for path in CONFIGS
        for doc in documents(path)
        if doc.get("kind") == "InferenceService"
    ]


def errors(doc: dict[str, Any]) -> list[str]:
    found = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(doc)
    ]
    if not DNS_1123.match(doc.get("metadata", {}).get("name", "")):
        found.append("metadata.name: not a DNS-1123 label")
    return found


def test_there_is_a_config_for_each_explainer_type() -> None:
    types = {
        env["value"]
        for _, doc in inference_services()
        for env in doc["spec"]["explainer"]["containers"][0]["env"]
        if env["name"] == "EXPLAINER_TYPE"
    }
    assert types == {"LIME", "SHAP", "ALL"}


@pytest.mark.parametrize(
    ("name", "doc"), inference_services(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_inference_service_matches_the_crd(name: str, doc: dict[str, Any]) -> None:
    assert errors(doc) == []


@pytest.mark.parametrize(
    ("name", "doc"), inference_services(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_explainer_container_is_hardened_and_bounded(name: str, doc: dict[str, Any]) -> None:
    annotations = doc["metadata"]["annotations"]
    assert annotations["sidecar.istio.io/inject"] == "true"
    assert annotations["sidecar.istio.io/rewriteAppHTTPProbers"] == "true"
    predictor = doc["spec"]["predictor"]["model"]
    (container,) = doc["spec"]["explainer"]["containers"]
    env = {e["name"]: e.get("value") or e["valueFrom"] for e in container["env"]}
    if env.get("PREDICTOR_PROTOCOL") == "openai":  # a generative model: its vLLM backend
        assert predictor["modelFormat"]["name"] == "huggingface"
        assert "--backend=vllm" in predictor["args"]
        assert f"--model_name={doc['metadata']['name']}" in predictor["args"]
    else:
        assert predictor["protocolVersion"] == "v2"
        assert predictor["runtime"] == "kserve-sklearnserver"
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    assert security["runAsNonRoot"] is True
    assert isinstance(security["runAsUser"], int) and security["runAsUser"] > 0
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "100Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    if "BACKGROUND_DATA" not in env:
        return
    if env["BACKGROUND_DATA"].startswith("s3://"):
        # Credentials come from a secret, never inline.
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert "secretKeyRef" in env[name]
    else:
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert env["BACKGROUND_DATA"].startswith(mounts["background"] + "/")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["spec"]["explainer"]["containers"][0].update(securityContxt={}),
        lambda d: d["spec"]["explainer"]["containers"][0]["resources"].update(limits="1Gi"),
        lambda d: d["spec"]["explainer"]["containers"][0].pop("name"),
        lambda d: d["spec"]["predictor"]["model"].update(protocolVersion=2),
        lambda d: d["spec"].pop("predictor"),
        lambda d: d["metadata"].update(name="Explainer_Test"),
    ],
    ids=[
        "unknown field",
        "wrong type",
        "missing name",
        "int for string",
        "no predictor",
        "bad name",
    ],
)
def test_a_config_kubernetes_would_reject_fails(mutate: Any) -> None:
    doc = copy.deepcopy(inference_services()[0][1])
    mutate(doc)
    assert errors(doc) != []


def test_background_configmap_is_the_credit_score_training_data(tmp_path: Path) -> None:
    (configmap,) = documents(REPO / "configs" / "credit-score-background.yaml")
    assert configmap["kind"] == "ConfigMap"
    assert DNS_1123.match(configmap["metadata"]["name"])
    path = tmp_path / "background.csv"
    path.write_text(configmap["data"]["background.csv"])
    rows, names = load_background(str(path))
    assert names == FEATURES
    np.testing.assert_allclose(rows, credit_model().train[: len(rows)], atol=1e-6)
    referenced = {
        volume["configMap"]["name"]
        for _, doc in inference_services()
        for volume in doc["spec"]["explainer"].get("volumes", [])
    }
    assert referenced == {configmap["metadata"]["name"]}
