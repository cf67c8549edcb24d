"""Same seed, same bytes — in separate processes, whatever their hash seed."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import hashlib, numpy as np
from tests.models import forest20
from explainers import kernel_shap, lime
from explainers.background import build
from explainers.maskers.numeric import LimeStatistics, NumericRows
model = forest20()
x = model.test[0]
background = build(model.train, 20, seed=0)
shap_plan = kernel_shap.plan(NumericRows(x, background), samples=500, seed=5)
shap = kernel_shap.fit(shap_plan, model.model.predict_proba(shap_plan.rows))
statistics = LimeStatistics.from_training(model.train)
lime_plan = lime.plan(NumericRows(x, statistics=statistics), samples=800, seed=5)
fitted = lime.fit(lime_plan, model.model.predict_proba(lime_plan.rows))
digest = hashlib.sha256()
for array in (shap.scores, shap.confidence, fitted.scores, fitted.confidence):
    digest.update(np.ascontiguousarray(array).tobytes())
print(digest.hexdigest())
"""


def run(hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return result.stdout.strip()


def test_explanations_are_byte_identical_across_processes() -> None:
    first, second = run("1"), run("2")
    assert len(first) == 64
    assert first == second
