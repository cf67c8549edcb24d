"""Run every kernel once on tiny inputs, so no request pays for JIT compilation."""

from __future__ import annotations

import numpy as np

from explainers import kernel_shap, lime
from explainers.background import Background
from explainers.maskers.numeric import LimeStatistics, NumericRows


def warm_up() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(16, 5))
    score = np.array([0.5, -1.0, 0.25, 2.0, 0.1])
    background = Background(rows=data[:4].copy(), weights=np.full(4, 0.25), source_rows=4)
    masker = NumericRows(data[0], background, LimeStatistics.from_training(data))
    lime_plan = lime.plan(masker, samples=16)
    lime.fit(lime_plan, (lime_plan.rows @ score)[:, None])
    # 20 coalitions of 5 features: one size pair enumerated, the rest sampled in pairs.
    shap_plan = kernel_shap.plan(masker, samples=20)
    kernel_shap.fit(shap_plan, (shap_plan.rows @ score)[:, None])
