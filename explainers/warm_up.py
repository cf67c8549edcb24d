"""Run every kernel once on tiny inputs, so no request pays for JIT compilation."""

from __future__ import annotations

import numpy as np

from explainers import kernel_shap, lime
from explainers.background import build
from explainers.maskers.numeric import LimeStatistics, NumericRows


def warm_up() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(16, 5))
    score = np.array([0.5, -1.0, 0.25, 2.0, 0.1])
    background = build(data[:8], size=4)  # stratified: two strata of the 8 rows
    masker = NumericRows(data[0], background, LimeStatistics.from_training(data))
    lime_plan = lime.plan(masker, samples=16)
    lime.fit(lime_plan, (lime_plan.rows @ score)[:, None])
    # 20 coalitions of 5 features per reference: one size pair enumerated, the rest sampled.
    shap_plan = kernel_shap.plan(masker, samples=20)
    kernel_shap.fit(shap_plan, (shap_plan.rows @ score)[:, None])
