"""Accuracy at the defaults, on models the estimator was not designed on (issue 15's
harness): ``python -m bench.accuracy.unseen`` writes bench/results/unseen.md and .json.

The estimand is what a user asks for: SHAP over the *whole* background they give (here
200–2000 rows), computed exactly by enumerating every coalition over every background
row. Both explainers run as users get them:

* this project at its defaults (``SHAP_BACKGROUND_SIZE`` unset: all of the background
  or a stratified draw of ``kernel_shap.default_references`` rows, and the default
  coalitions per row), exactly as the engine plans;
* shap's ``KernelExplainer`` as users write it: ``shap.kmeans(background, 50)``,
  ``nsamples="auto"``, its default ``l1_reg``.

Cases are split before anything is tuned: ``design`` cases may guide a choice, the
``held-out`` ones only report it. Coverage is the share of this project's 95% intervals
that contain the whole-background value.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from bench.common import correlated_normal, digest, publish
from explainers import kernel_shap
from explainers.background import Background, build
from explainers.maskers.numeric import NumericRows

RESULTS = Path(__file__).resolve().parent.parent / "results"
TRUTH = RESULTS / "unseen-truth"
SUMMARY_ROWS = 50  # the users' shap.kmeans(…, 50)
INSTANCES = 3
SEEDS = 24  # this project's seeds per instance (over 8 its median moved ±17% with the draw)
Model = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Case:
    family: str
    m: int
    correlated: bool
    background_rows: int
    split: str  # "design" or "held-out"
    seed: int

    @property
    def name(self) -> str:
        kind = "corr" if self.correlated else "indep"
        return f"{self.family}-M{self.m}-{kind}-B{self.background_rows}"


CASES = (
    Case("histgbm-3class", 13, True, 300, "design", 1),
    Case("mlp", 12, False, 300, "design", 2),
    Case("forest", 12, True, 1500, "design", 7),
    Case("histgbm-3class", 20, False, 600, "design", 9),
    Case("svm-rbf", 10, True, 200, "held-out", 3),
    Case("knn", 8, False, 500, "held-out", 4),
    Case("histgbm-3class", 11, False, 1000, "held-out", 5),
    Case("mlp", 13, True, 2000, "held-out", 6),
    Case("mlp", 24, True, 400, "held-out", 8),
)
EXACT_UP_TO = 14  # beyond: antithetic permutations over the whole background
TRUTH_PAIRS = 1000


def data(case: Case, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Features and a 3-level label from a target with interactions up to order 3."""
    rng = np.random.default_rng(case.seed)
    m = case.m
    x = correlated_normal(rng, m, 0.6 if case.correlated else 0.0, n)
    t = x @ (1.0 / (1.0 + np.arange(m))) + x[:, 0] * x[:, 1] + np.tanh(x[:, 2] * x[:, 3] * x[:, 4])
    t += rng.normal(scale=0.3, size=n)
    return x, np.digitize(t, np.quantile(t, [1 / 3, 2 / 3]))


def fitted(case: Case) -> tuple[Model, np.ndarray, np.ndarray]:
    """(predict_proba, background, instances)."""
    x, y = data(case, 4000 + case.background_rows)
    if case.family.startswith("histgbm"):
        model: Any = HistGradientBoostingClassifier(max_iter=100, random_state=case.seed)
    elif case.family == "forest":
        model = RandomForestClassifier(50, max_depth=8, random_state=case.seed, n_jobs=1)
    elif case.family == "mlp":
        model = make_pipeline(
            StandardScaler(), MLPClassifier((32, 16), max_iter=500, random_state=case.seed)
        )
    elif case.family == "svm-rbf":
        model = make_pipeline(StandardScaler(), SVC(probability=True, random_state=case.seed))
    else:
        model = KNeighborsClassifier(n_neighbors=15)
    model.fit(x[:3000], y[:3000])
    background = x[3000 : 3000 + case.background_rows]
    instances = x[-INSTANCES:]

    def predict(rows: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_proba(rows), dtype=np.float64)

    return predict, background, instances


def exact(f: Model, x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(K, M) Shapley values over the whole, equally weighted background, by enumeration."""
    m, b = x.shape[0], background.shape[0]
    codes = np.arange(2**m, dtype=np.int64)
    bits = ((codes[:, None] >> np.arange(m)) & 1).astype(bool)
    chunk = max(1, 2**18 // b)
    parts = []
    for i in range(0, len(codes), chunk):
        masks = bits[i : i + chunk]
        rows = np.where(masks[:, None, :], x[None, None, :], background[None, :, :])
        scores = f(rows.reshape(-1, m))
        parts.append(scores.reshape(len(masks), b, -1).mean(axis=1))
    values = np.concatenate(parts)  # (2^M, K)
    sizes = bits.sum(axis=1)
    weight = np.array(
        [math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m) for s in range(m)]
    )
    phi = np.zeros((values.shape[1], m))
    for i in range(m):
        without = codes[~bits[:, i]]
        gain = values[without | (1 << i)] - values[without]
        phi[:, i] = weight[sizes[without]] @ gain
    return phi


def permutations(
    f: Model, x: np.ndarray, background: np.ndarray, pairs: int, seed: int
) -> np.ndarray:
    """(K, M) Shapley values over the whole background by antithetic permutation
    sampling (each permutation with its reverse, each on every background row):
    unbiased and independent of the estimator under test."""
    m, b = x.shape[0], background.shape[0]
    rng = np.random.default_rng(seed)
    steps = np.arange(m + 1)[:, None]
    total: np.ndarray | None = None
    for _ in range(pairs):
        order = rng.permutation(m)
        both = np.stack([order, order[::-1]])
        ranks = np.argsort(both, axis=1)
        masks = (ranks[:, None, :] < steps[None, :, :]).reshape(-1, m)  # (2(M+1), M)
        rows = np.where(masks[:, None, :], x[None, None, :], background[None, :, :])
        values = f(rows.reshape(-1, m)).reshape(2, m + 1, b, -1).mean(axis=2)  # (2, M+1, K)
        gains = np.zeros((2, m, values.shape[2]))
        for k in range(2):
            gains[k, both[k]] = np.diff(values[k], axis=0)
        step = gains.mean(axis=0).T  # (K, M)
        total = step if total is None else total + step
    assert total is not None
    return total / pairs


def relative_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(estimate - truth) / max(np.linalg.norm(truth), 1e-12))


def ours(f: Model, x: np.ndarray, background: Background, seed: int) -> tuple[Any, int]:
    """This project at its defaults, as the engine plans it (budget, seed)."""
    plan = kernel_shap.plan(NumericRows(x, background), None, seed)
    return kernel_shap.fit(plan, f(plan.rows)), int(plan.rows.shape[0])


def theirs(f: Model, x: np.ndarray, background: np.ndarray, seed: int) -> tuple[np.ndarray, int]:
    """shap's KernelExplainer as users write it; (K, M) values and the rows it scored."""
    import shap

    counted = [0]

    def counting(rows: np.ndarray) -> np.ndarray:
        counted[0] += rows.shape[0]
        return f(rows)

    np.random.seed(seed)  # shap draws from the global RNG
    explainer = shap.KernelExplainer(counting, shap.kmeans(background, SUMMARY_ROWS))
    counted[0] = 0
    values = np.asarray(explainer.shap_values(x, nsamples="auto", silent=True))
    return values.reshape(x.shape[0], -1).T, counted[0]


def truth_of(case: Case, i: int, f: Model, x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Exact SHAP over the whole background, cached (bench/results/unseen-truth/)."""
    path = TRUTH / f"{case.name}-s{case.seed}-{i}-{digest(background, x)}.npy"
    if path.exists():
        return np.load(path)
    if x.shape[0] <= EXACT_UP_TO:
        value = exact(f, x, background)
    else:
        value = permutations(f, x, background, TRUTH_PAIRS, seed=1000 + i)
    TRUTH.mkdir(parents=True, exist_ok=True)
    np.save(path, value)
    return value


def measure(case: Case) -> dict[str, Any]:
    f, background, instances = fitted(case)
    # As the service builds it at start-up: SHAP_BACKGROUND_SIZE unset.
    built = build(background, kernel_shap.default_references(case.m))
    rows: list[dict[str, Any]] = []
    for i, x in enumerate(instances):
        truth = truth_of(case, i, f, x, background)
        shap_values, shap_rows = theirs(f, x, background, seed=i)
        for seed in range(SEEDS):
            fit, our_rows = ours(f, x, built, seed=100 * i + seed)
            covered = np.abs(fit.scores - truth) <= fit.confidence
            rows.append(
                {
                    "ours": relative_error(fit.scores, truth),
                    "shap": relative_error(shap_values, truth),
                    "coverage": float(covered.mean()),
                    "our_rows": our_rows,
                    "shap_rows": shap_rows,
                }
            )
    return {
        "case": case.name,
        "split": case.split,
        "m": case.m,
        "background_rows": case.background_rows,
        "ours": statistics.median(r["ours"] for r in rows),
        "shap": statistics.median(r["shap"] for r in rows),
        "coverage": statistics.mean(r["coverage"] for r in rows),
        "our_rows": rows[0]["our_rows"],
        "shap_rows": rows[0]["shap_rows"],
    }


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        "# Accuracy at the defaults on unseen models (`python -m bench.accuracy.unseen`)",
        "",
        "Error: relative L2 against SHAP over the whole background given (exact: every",
        f"coalition on every background row; for M > {EXACT_UP_TO}, {TRUTH_PAIRS} antithetic",
        f"permutation pairs on every row), median over 3 instances (× {SEEDS} seeds for this",
        "project). This project at its",
        "defaults (`SHAP_BACKGROUND_SIZE` unset: all background rows or a stratified draw",
        f"of {kernel_shap.DEFAULT_ROWS:,} / (2(M − 1)) − 16 of them, {kernel_shap.DEFAULT_ROWS:,}",
        "predictor rows of coalitions: antithetic pairs of orders) and shap's",
        f"KernelExplainer as users write it (`shap.kmeans(background, {SUMMARY_ROWS})`,",
        '`nsamples="auto"`). Coverage: share of this project\'s 95% intervals that contain',
        "the whole-background value.",
        "",
        "| split | case | M | background rows | ours | shap | ours ÷ shap | coverage | rows ours / shap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['split']} | {r['case']} | {r['m']} | {r['background_rows']} | "
            f"{r['ours']:.4f} | {r['shap']:.4f} | {r['ours'] / r['shap']:.2f} | "
            f"{r['coverage']:.0%} | {r['our_rows']:,} / {r['shap_rows']:,} |"
        )
    lines.append("")
    for split in ("design", "held-out"):
        chosen = [r for r in results if r["split"] == split]
        if not chosen:
            continue
        ratio = statistics.median(r["ours"] / r["shap"] for r in chosen)
        cover = statistics.mean(r["coverage"] for r in chosen)
        lines.append(f"- {split}: median ours ÷ shap {ratio:.2f}, coverage {cover:.0%}")
    return "\n".join(lines) + "\n"


def main() -> int:
    warnings.filterwarnings("ignore")
    if "--render" in sys.argv:  # the tables again from the last run's figures
        print(render(json.loads((RESULTS / "unseen.json").read_text())))
        return 0
    splits = sys.argv[1:] or ["design", "held-out"]  # e.g. "design" alone while choosing
    results = []
    for case in (c for c in CASES if c.split in splits):
        results.append(measure(case))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    publish(RESULTS, "unseen", results, render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
