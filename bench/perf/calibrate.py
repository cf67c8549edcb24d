"""Equal accuracy, found by measurement in-process (accuracy does not depend on transport).

SHAP: relative L2 error against a 100×-budget permutation estimate (``bench.accuracy.truth``),
median over rows and seeds, for shap's KernelExplainer at its default budget and for this
project at a ladder of smaller budgets; the smallest budget whose median error is at most
shap's is the equal-accuracy budget.

LIME: the spread of the scores across seeds (mean per-feature standard deviation, relative
to the largest mean score) of the lime package at 5000 samples and of this project at a
ladder of sample counts; the smallest count whose spread is at most lime's is chosen.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.accuracy import truth
from bench.common import shap_auto
from explainers import kernel_shap, lime
from explainers.background import build
from explainers.maskers.numeric import LimeStatistics, NumericRows

SHAP_LADDER = (400, 500, 700, 1000, 1400, 1700)
LIME_LADDER = (500, 1000, 2000, 3000, 5000)
LIME_REFERENCE_SAMPLES = 5000
ROWS = 4
SEEDS = 3
LIME_SEEDS = 20

Proba = Callable[[np.ndarray], np.ndarray]


def shap_budget(proba: Proba, background: np.ndarray, instances: np.ndarray) -> dict[str, Any]:
    import shap

    m = background.shape[1]
    default = shap_auto(m)
    ladder = sorted({*SHAP_LADDER, default})
    summary = build(background, background.shape[0])
    positive = lambda rows: proba(rows)[:, 1:]  # noqa: E731
    ours: dict[int, list[float]] = {b: [] for b in ladder}
    theirs: list[float] = []
    truth_se = 0.0
    for x in instances[:ROWS]:
        exact, se = truth.permutation(positive, x, background, 100 * default, seed=0)
        truth_se = max(truth_se, float(se.max()))
        norm = np.linalg.norm(exact)
        for budget in ladder:
            for seed in range(SEEDS):
                plan = kernel_shap.plan(NumericRows(x, summary), budget, seed)
                phi = kernel_shap.fit(plan, proba(plan.rows)).scores[1]
                ours[budget].append(float(np.linalg.norm(phi - exact) / norm))
        explainer = shap.KernelExplainer(lambda r: proba(r)[:, 1], background, silent=True)
        for seed in range(SEEDS):
            np.random.seed(seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                phi = np.asarray(
                    explainer.shap_values(x[None, :], nsamples=default, l1_reg=False, silent=True)
                )[0]
            theirs.append(float(np.linalg.norm(phi - exact) / norm))
    shap_error = float(np.median(theirs))
    errors = {b: float(np.median(v)) for b, v in ours.items()}
    equal = min((b for b in ladder if errors[b] <= shap_error), default=default)
    return {
        "shap_error": shap_error,
        "ours_error": errors,
        "equal_budget": equal,
        "truth_se": truth_se,
    }


def lime_samples(proba: Proba, background: np.ndarray, x: np.ndarray) -> dict[str, Any]:
    from lime.lime_tabular import LimeTabularExplainer

    m = background.shape[1]
    stats = LimeStatistics.from_training(background)

    def spread(runs: list[np.ndarray]) -> float:
        a = np.array(runs)
        return float(a.std(axis=0, ddof=1).mean() / np.abs(a.mean(axis=0)).max())

    theirs = []
    for seed in range(LIME_SEEDS):
        explainer = LimeTabularExplainer(background, mode="classification", random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explanation = explainer.explain_instance(
                x, proba, num_features=m, num_samples=LIME_REFERENCE_SAMPLES
            )
        coef = np.zeros(m)
        for j, w in explanation.as_map()[1]:
            coef[j] = w
        theirs.append(coef)
    lime_spread = spread(theirs)
    ours: dict[int, float] = {}
    for samples in LIME_LADDER:
        runs = []
        for seed in range(LIME_SEEDS):
            plan = lime.plan(NumericRows(x, statistics=stats), samples, seed)
            runs.append(lime.fit(plan, proba(plan.rows)).scores[1])
        ours[samples] = spread(runs)
    equal = min((s for s in LIME_LADDER if ours[s] <= lime_spread), default=LIME_LADDER[-1])
    return {"lime_spread": lime_spread, "ours_spread": ours, "equal_samples": equal}
