"""One contract over every explainer and every masker (``explainers.interface``): what the
engine relies on, whatever the estimator or the input kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from explainers.background import build
from explainers.interface import Explainer, Masker
from explainers.kernel_shap import KernelShap
from explainers.lime import Lime
from explainers.maskers.numeric import LimeStatistics, NumericRows
from explainers.maskers.text import Text

EXPLAINERS: list[Explainer[Any]] = [Lime(), KernelShap()]
M = 12  # > 11: KernelSHAP samples, so seeds, rounds and intervals all matter
WEIGHTS = np.linspace(-1.0, 1.0, M)


def model(rows: np.ndarray) -> np.ndarray:
    """Two outputs with interactions of order 3, so that sampling has something to miss."""
    linear = (rows * WEIGHTS).sum(axis=1)  # row by row: the same bits in any chunking
    return np.stack([linear + rows[:, 0] * rows[:, 1] * rows[:, 2], np.tanh(linear)], axis=1)


def numeric(seed: int = 0) -> Masker:
    data = np.random.default_rng(seed).normal(size=(200, M))
    # 8 background rows used whole: growing the coalitions narrows every interval (a
    # sampled background's rows are drawn once; more coalitions do not shrink their part).
    return NumericRows(data[0], build(data[1:9], 8), LimeStatistics.from_training(data[1:]))


def mixed(seed: int = 0) -> Masker:
    """Rows whose first three features are categorical (codes 0–3) and the next two
    integers: the same masker, with lime's categorical scheme and whole numbers."""
    data = np.random.default_rng(seed).normal(size=(200, M))
    data[:, :3] = np.floor(np.abs(data[:, :3]) * 2).clip(0, 3)
    data[:, 3:5] = np.round(data[:, 3:5] * 3)
    categorical = np.arange(M) < 3
    integer = (np.arange(M) >= 3) & (np.arange(M) < 5)
    statistics = LimeStatistics.from_training(data[1:], categorical, integer)
    return NumericRows(data[0], build(data[1:9], 8, categorical=categorical), statistics)


WORDS = [f"w{j}" for j in range(M)]


def text() -> Masker:
    """A text of M words; its model below reads which words a masked text keeps."""
    return Text("  ".join(WORDS) + " ")


def text_model(texts: np.ndarray) -> np.ndarray:
    """``model`` on the words a text holds: 1 where kept, 0 where masked."""
    kept = np.array([[w in t.split() for w in WORDS] for t in texts.tolist()], dtype=np.float64)
    return model(kept.reshape(len(texts), M))


MASKERS: dict[str, Callable[[], Masker]] = {
    "numeric rows": numeric,
    "mixed rows": mixed,
    "text": text,
}
MODELS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "numeric rows": model,
    "mixed rows": model,
    "text": text_model,
}
CASES = [(e, m) for e in EXPLAINERS for m in MASKERS]
IDS = [f"{e.name}-{m}" for e, m in CASES]


def samples_of(explainer: Explainer[Any]) -> int:
    return 600 if explainer.name == "LIME" else 300


@pytest.mark.parametrize(("explainer", "masker"), CASES, ids=IDS)
def test_a_seed_gives_the_same_rows_and_saliencies_and_another_seed_others(
    explainer: Explainer[Any], masker: str
) -> None:
    one, two, other = (
        explainer.plan(MASKERS[masker](), samples_of(explainer), seed) for seed in (4, 4, 5)
    )
    np.testing.assert_array_equal(one.rows, two.rows)
    assert not np.array_equal(one.rows, other.rows)
    a = explainer.fit(one, MODELS[masker](one.rows), explainer.prepare(one))
    b = explainer.fit(two, MODELS[masker](two.rows))  # prepared or not: the same fit
    for x, y in ((a.scores, b.scores), (a.confidence, b.confidence)):
        assert x.tobytes() == y.tobytes()
    assert a.facts["seed"] == 4


@pytest.mark.parametrize(("explainer", "masker"), CASES, ids=IDS)
def test_rows_planned_bounds_the_plan_and_saliencies_have_one_score_per_segment(
    explainer: Explainer[Any], masker: str
) -> None:
    made = MASKERS[masker]()
    samples = samples_of(explainer)
    plan = explainer.plan(made, samples, 0)
    assert len(plan.rows) <= explainer.rows_planned(made, samples)
    fitted = explainer.fit(plan, MODELS[masker](plan.rows))
    assert fitted.scores.shape == fitted.confidence.shape == (2, made.segments)
    assert np.isfinite(fitted.scores).all() and (fitted.confidence >= 0).all()
    assert explainer.default_samples(made) > 0
    assert explainer.pilot_samples(samples, made.segments) <= samples


@pytest.mark.parametrize(("explainer", "masker"), CASES, ids=IDS)
def test_scores_are_read_in_row_order(explainer: Explainer[Any], masker: str) -> None:
    plan = explainer.plan(MASKERS[masker](), samples_of(explainer), 0)
    scores = MODELS[masker](plan.rows)
    in_calls = np.concatenate(
        [MODELS[masker](plan.rows[i : i + 97]) for i in range(0, len(plan.rows), 97)]
    )
    np.testing.assert_array_equal(
        explainer.fit(plan, in_calls).scores, explainer.fit(plan, scores).scores
    )
    shuffled = scores[np.random.default_rng(0).permutation(len(scores))]
    assert not np.allclose(explainer.fit(plan, shuffled).scores, explainer.fit(plan, scores).scores)


@pytest.mark.parametrize(("explainer", "masker"), CASES, ids=IDS)
def test_extend_appends_rows_and_the_refit_narrows_the_interval(
    explainer: Explainer[Any], masker: str
) -> None:
    plan = explainer.plan(MASKERS[masker](), samples_of(explainer), 0)
    fitted = explainer.fit(plan, MODELS[masker](plan.rows))
    widest = float(fitted.confidence.max())
    assert explainer.extend(plan, fitted, 10 * widest, 10**6) is None  # already met
    assert explainer.extend(plan, fitted, widest / 2, samples_of(explainer)) is None  # at the cap
    grown = explainer.extend(plan, fitted, widest / 2, 10**6)
    assert grown is not None
    extended, new_rows = grown
    again = explainer.extend(plan, fitted, widest / 2, 10**6)
    assert again is not None
    np.testing.assert_array_equal(again[1], new_rows)  # extending is seeded too
    n = len(plan.rows)
    np.testing.assert_array_equal(extended.rows[:n], plan.rows)
    np.testing.assert_array_equal(extended.rows[n:], new_rows)
    refit = explainer.fit(
        extended, np.concatenate([MODELS[masker](plan.rows), MODELS[masker](new_rows)])
    )
    np.testing.assert_array_equal(
        refit.scores, explainer.fit(extended, MODELS[masker](extended.rows)).scores
    )
    assert refit.confidence.max() < widest
