"""``parameters.tolerance``: sample in rounds until every score's 95% half-width meets it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from explainer.server.app import RUNTIME
from explainers.kernel_shap import default_budget
from tests.conftest import ExplainerFactory, Predictor


async def explain_with(
    client: Any, row: list[float], tolerance: float
) -> tuple[dict[str, Any], int]:
    predictor = client.server.app[RUNTIME].predictor
    before = predictor.rows_sent
    response = await client.post(
        "/v1/models/forest20:explain",
        data=orjson.dumps({"instances": [row], "parameters": {"tolerance": tolerance}}),
    )
    assert response.status == 200, await response.text()
    return orjson.loads(await response.read()), predictor.rows_sent - before


def widest(block: dict[str, Any]) -> float:
    return max(item["confidence"] for items in block["saliencies"].values() for item in items)


@pytest.fixture
async def client(explainer: ExplainerFactory, mlserver: Predictor) -> Any:
    return await explainer(
        "forest20",
        background_data=str(mlserver.data / "forest20.csv"),
        lime_max_samples=40_000,
        shap_max_samples=12_000,
    )


async def test_loose_tolerance_uses_fewer_rows_than_the_default(
    client: Any, mlserver: Predictor
) -> None:
    row = mlserver.models["forest20"].test[4].tolist()
    answer, rows = await explain_with(client, row, tolerance=0.05)
    shap_default = default_budget(20, 50)  # per row of the 50-row background, used whole
    default_rows = 5000 + 1 + 50 + shap_default * 50
    assert rows < default_rows / 2
    for kind in ("LIME", "SHAP"):
        assert answer[kind]["tolerance_met"] is True
        assert widest(answer[kind]) <= 0.05
    assert answer["LIME"]["samples"] < 5000
    assert answer["SHAP"]["samples"] < shap_default


@pytest.mark.parametrize(
    ("kind", "tolerance", "default"),
    [("LIME", 0.005, 5000), ("SHAP", 0.0005, default_budget(20, 50))],
)
async def test_tight_tolerance_samples_more_and_meets_it(
    explainer: ExplainerFactory, mlserver: Predictor, kind: str, tolerance: float, default: int
) -> None:
    client = await explainer(
        "forest20",
        background_data=str(mlserver.data / "forest20.csv"),
        explainer_type=kind,
        lime_max_samples=40_000,
        shap_max_samples=12_000,
    )
    row = mlserver.models["forest20"].test[4].tolist()
    answer, _ = await explain_with(client, row, tolerance)
    assert answer[kind]["samples"] > default
    assert answer[kind]["tolerance_met"] is True
    assert widest(answer[kind]) <= tolerance


async def test_an_unreachable_tolerance_stops_at_the_cap_and_says_so(
    explainer: ExplainerFactory, mlserver: Predictor
) -> None:
    client = await explainer(
        "forest20",
        background_data=str(mlserver.data / "forest20.csv"),
        explainer_type="SHAP",
        shap_max_samples=1000,
    )
    row = mlserver.models["forest20"].test[4].tolist()
    answer, _ = await explain_with(client, row, tolerance=1e-6)
    assert answer["SHAP"]["tolerance_met"] is False
    assert answer["SHAP"]["samples"] <= 1000
