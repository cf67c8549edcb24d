"""The accuracy harness: accuracy per predictor row, honesty of ``confidence``, and
LIME's stability — this project against shap and lime, on one suite, in one run.

    make bench-accuracy      # writes bench/results/accuracy.md and accuracy.json
    python -m bench.accuracy --lime-only    # rerun LIME, keep the last SHAP rows

SHAP: this project's KernelSHAP and shap's KernelExplainer (``l1_reg=False``) over the same
background with the same coalition budget (2M + 2048, so the same predictor rows), scored
against exact Shapley values (M ≤ 16) or a 100×-budget permutation estimate (beyond).
LIME: this project and the lime package at 5000 samples over 50 seeds (BENCH_SEEDS).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bench.accuracy import suite, truth
from bench.common import digest, shap_auto
from explainers import kernel_shap, lime
from explainers.background import Background
from explainers.maskers.numeric import LimeStatistics, NumericRows
from explainers.saliencies import TOP_K

RESULTS = Path(__file__).resolve().parent.parent / "results"
CACHE = RESULTS / "accuracy-truth.npz"
SEEDS = int(os.environ.get("BENCH_SEEDS", "50"))
LIME_CASES = [("boosting", 5), ("boosting", 12), ("boosting", 20), ("forest", 12), ("forest", 20)]


def relative_error(estimate: np.ndarray, exact: np.ndarray) -> float:
    return float(np.linalg.norm(estimate - exact) / max(np.linalg.norm(exact), 1e-12))


def top5(scores: np.ndarray) -> set[int]:
    return set(np.argsort(-np.abs(scores), kind="stable")[:5].tolist())


def ground_truth(
    case: suite.Case, index: int, cache: dict[str, np.ndarray]
) -> tuple[np.ndarray, float]:
    x = case.instances[index]
    # Keyed by what the truth depends on: data drawn differently gets its own.
    key = f"{case.name}-{index}-{digest(case.background, x, case.predict(x[None, :]))}"
    if key not in cache:
        if case.m <= truth.EXACT_UP_TO:
            cache[key] = np.concatenate([truth.exact(case.predict, x, case.background), [0.0]])
        else:
            budget = 100 * shap_auto(case.m)
            phi, se = truth.permutation(case.predict, x, case.background, budget, seed=index)
            cache[key] = np.concatenate([phi, [float(se.max())]])
    stored = cache[key]
    return stored[:-1], float(stored[-1])


def shap_row(case: suite.Case, cache: dict[str, np.ndarray]) -> dict[str, Any]:
    import shap

    background = Background(
        case.background,
        np.full(len(case.background), 1 / len(case.background)),
        len(case.background),
    )
    budget = shap_auto(case.m)
    ours_err, theirs_err, ours_top, theirs_top, ours_t, theirs_t = [], [], [], [], [], []
    covered, truth_se = [], 0.0
    for index, x in enumerate(case.instances):
        exact, se = ground_truth(case, index, cache)
        truth_se = max(truth_se, se)
        start = time.perf_counter()
        plan = kernel_shap.plan(NumericRows(x, background), budget, index)
        ours = kernel_shap.fit(plan, case.predict(plan.rows))
        ours_t.append(time.perf_counter() - start)
        start = time.perf_counter()
        explainer = shap.KernelExplainer(
            lambda rows: case.predict(rows)[:, 0], case.background, silent=True
        )
        np.random.seed(index)  # shap samples from the global RNG
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = np.asarray(
                explainer.shap_values(x[None, :], nsamples=budget, l1_reg=False, silent=True)
            )[0]
        theirs_t.append(time.perf_counter() - start)
        ours_err.append(relative_error(ours.scores[0], exact))
        theirs_err.append(relative_error(theirs, exact))
        ours_top.append(len(top5(ours.scores[0]) & top5(exact)) / min(5, case.m))
        theirs_top.append(len(top5(theirs) & top5(exact)) / min(5, case.m))
        if ours.facts["exact"]:
            covered.extend([bool(np.abs(ours.scores[0] - exact).max() < 1e-9)] * case.m)
        else:
            covered.extend((np.abs(ours.scores[0] - exact) <= ours.confidence[0] + 2 * se).tolist())
    return {
        "case": case.name,
        "model": case.model_name,
        "m": case.m,
        "correlated": case.correlated,
        "rows": int(plan.rows.shape[0]),
        "exact": bool(ours.facts["exact"]),
        "ours_error": float(np.median(ours_err)),
        "shap_error": float(np.median(theirs_err)),
        "ours_top5": float(np.mean(ours_top)),
        "shap_top5": float(np.mean(theirs_top)),
        "ours_seconds": float(np.median(ours_t)),
        "shap_seconds": float(np.median(theirs_t)),
        "coverage": float(np.mean(covered)),
        "covered_n": len(covered),
        "truth_se": truth_se,
    }


def jaccard_across_seeds(runs: list[np.ndarray]) -> float:
    sets = [top5(r) for r in runs]
    return float(np.mean([len(a & b) / len(a | b) for a, b in itertools.combinations(sets, 2)]))


def lime_at_default(masker: NumericRows, predict: Any, seed: int) -> tuple[np.ndarray, int]:
    """LIME as the engine runs it at its default: a first round, then more rows until
    the top 5 are settled, up to lime's 5000. (scores of output 0, rows scored)"""
    explainer = lime.Lime()
    cap = explainer.default_samples(masker)
    plan = explainer.plan(masker, explainer.settling_samples(cap, masker.segments), seed)
    scores = predict(plan.rows)
    fitted = explainer.fit(plan, scores)
    while (grown := explainer.extend(plan, fitted, None, cap)) is not None:
        plan, new_rows = grown
        scores = np.concatenate([scores, predict(new_rows)])
        fitted = explainer.fit(plan, scores)
    return fitted.scores[0], int(plan.rows.shape[0])


def lime_row(case: suite.Case, instance: int) -> dict[str, Any]:
    from lime.lime_tabular import LimeTabularExplainer

    x = case.instances[instance]
    stats = LimeStatistics.from_training(case.train)
    ours, theirs, covered, default, default_rows = [], [], [], [], []
    says_settled = []  # per seed: whether the response calls its top 5 settled
    reference_plan = lime.plan(NumericRows(x, statistics=stats), 100 * 5000, 10**6)
    # What a 5000-sample plan estimates on average (its instance row is 1/5000 of it).
    reference_fit = lime.fit(lime.at_share(reference_plan, 5000), case.predict(reference_plan.rows))
    reference = reference_fit.scores[0]
    for seed in range(SEEDS):
        plan = lime.plan(NumericRows(x, statistics=stats), 5000, seed)
        fitted = lime.fit(plan, case.predict(plan.rows))
        ours.append(fitted.scores[0])
        says_settled.append(bool(fitted.settled()[0] == TOP_K))
        settled, rows = lime_at_default(NumericRows(x, statistics=stats), case.predict, seed)
        default.append(settled)
        default_rows.append(rows)
        covered.extend((np.abs(fitted.scores[0] - reference) <= fitted.confidence[0]).tolist())
        explainer = LimeTabularExplainer(case.train, mode="regression", random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explanation = explainer.explain_instance(
                x, lambda rows: case.predict(rows)[:, 0], num_features=case.m, num_samples=5000
            )
        coef = np.zeros(case.m)
        for j, w in (
            explanation.as_map()[0] if 0 in explanation.as_map() else explanation.as_map()[1]
        ):
            coef[j] = w
        theirs.append(coef)
    ours_a, theirs_a = np.array(ours), np.array(theirs)
    scale = np.abs(ours_a.mean(axis=0)).max()
    ranked = np.sort(np.abs(reference))[::-1]
    return {
        "case": case.name,
        "instance": instance,
        "m": case.m,
        # How far apart the 5th and 6th |score| are, in standard deviations of a score
        # across seeds: below ~1 the top 5 is a coin flip for any sampler of this spread.
        "gap_5_6": float((ranked[4] - ranked[5]) / ours_a.std(axis=0, ddof=1).mean())
        if case.m > 5
        else float("inf"),
        "ours_spread": float(ours_a.std(axis=0, ddof=1).mean() / scale),
        "lime_spread": float(theirs_a.std(axis=0, ddof=1).mean() / scale),
        "ours_jaccard": jaccard_across_seeds(ours),
        "lime_jaccard": jaccard_across_seeds(theirs),
        "default_jaccard": jaccard_across_seeds(default),
        "default_rows": float(np.mean(default_rows)),
        "coverage": float(np.mean(covered)),
        # What the response's ``settled`` tells a user: how often it calls the top 5
        # settled, and how often it does so with another top 5 than the reference's.
        "settled_share": float(np.mean(says_settled)),
        "settled_wrong": float(
            np.mean(
                [s and top5(o) != top5(reference) for s, o in zip(says_settled, ours, strict=True)]
            )
        ),
    }


def main() -> int:
    if "--report-only" in sys.argv:  # re-render the tables from the last run
        saved = json.loads((RESULTS / "accuracy.json").read_text())
        summary = summarise(saved["shap"], saved["lime"])
        saved["summary"] = summary
        (RESULTS / "accuracy.json").write_text(json.dumps(saved, indent=2))
        (RESULTS / "accuracy.md").write_text(report(summary, saved["shap"], saved["lime"]))
        return 0
    RESULTS.mkdir(exist_ok=True)
    stored = dict(np.load(CACHE)) if CACHE.exists() else {}
    cache = {k: v for k, v in stored.items() if re.fullmatch(r".*-[0-9a-f]{12}", k)}
    shap_rows = []
    if "--lime-only" in sys.argv:  # keep the last run's SHAP rows
        shap_rows = json.loads((RESULTS / "accuracy.json").read_text())["shap"]
    for case in [] if shap_rows else suite.cases():
        shap_rows.append(shap_row(case, cache))
        print(json.dumps(shap_rows[-1]), flush=True)
        np.savez(CACHE, **cache)
    lime_rows = []
    for name, m in LIME_CASES:
        case = suite.build(name, m, correlated=True)
        for instance in range(suite.INSTANCES):
            lime_rows.append(lime_row(case, instance))
            print(json.dumps(lime_rows[-1]), flush=True)
    summary = summarise(shap_rows, lime_rows)
    (RESULTS / "accuracy.json").write_text(
        json.dumps({"summary": summary, "shap": shap_rows, "lime": lime_rows}, indent=2)
    )
    (RESULTS / "accuracy.md").write_text(report(summary, shap_rows, lime_rows))
    print(report(summary, shap_rows, lime_rows))
    return 0


def summarise(shap_rows: list[dict[str, Any]], lime_rows: list[dict[str, Any]]) -> dict[str, Any]:
    sampled = [r for r in shap_rows if r["shap_error"] > 1e-6]
    ours = float(np.median([r["ours_error"] for r in sampled]))
    theirs = float(np.median([r["shap_error"] for r in sampled]))

    def coverage(rows: list[dict[str, Any]]) -> float:
        return sum(r["coverage"] * r["covered_n"] for r in rows) / sum(r["covered_n"] for r in rows)

    # Cases where our scores carry real sampling error (not exact, not exact by pairing).
    noisy = [r for r in shap_rows if not r["exact"] and r["ours_error"] > 1e-9]
    trees = [r for r in sampled if r["model"] in ("boosting", "forest")]
    return {
        "sampled_cases": len(sampled),
        "median_error_ours": ours,
        "median_error_shap": theirs,
        "error_ratio": ours / theirs,
        "tree_error_ratio": float(
            np.median([r["ours_error"] for r in trees])
            / np.median([r["shap_error"] for r in trees])
        ),
        "shap_coverage": coverage([r for r in shap_rows if not r["exact"]]),
        "shap_coverage_noisy": coverage(noisy),
        "exact_cases_exact": all(r["coverage"] == 1.0 for r in shap_rows if r["exact"]),
        "lime_coverage": float(np.mean([r["coverage"] for r in lime_rows])),
        "lime_jaccard_ours": float(np.mean([r["ours_jaccard"] for r in lime_rows])),
        "lime_jaccard_lime": float(np.mean([r["lime_jaccard"] for r in lime_rows])),
        # Over every instance and seed: how often a response calls its top 5 settled, and
        # how often it does so with another top 5 than the reference's.
        "lime_says_settled": float(np.mean([r.get("settled_share", np.nan) for r in lime_rows])),
        "lime_settled_wrong": float(np.mean([r.get("settled_wrong", np.nan) for r in lime_rows])),
        "lime_jaccard_forest20": [
            round(r["ours_jaccard"], 2) for r in lime_rows if r["case"] == "forest-M20-corr"
        ],
    }


def report(
    summary: dict[str, Any], shap_rows: list[dict[str, Any]], lime_rows: list[dict[str, Any]]
) -> str:
    lines = [
        "# Accuracy",
        "",
        f"SHAP, over the {summary['sampled_cases']} cases where sampling matters (shap's error "
        f"> 1e-6): median relative L2 error **{summary['median_error_ours']:.4f}** (this project) vs "
        f"**{summary['median_error_shap']:.4f}** (shap KernelExplainer) at the same predictor rows: "
        f"ratio **{summary['error_ratio']:.2f}** (tree models alone: "
        f"{summary['tree_error_ratio']:.2f}; on models with interactions of order ≤ 2 this "
        "project is exact and shap is not). 95% interval coverage of the scores with sampling "
        f"error: **{summary['shap_coverage_noisy']:.1%}** (all sampled scores, including those "
        f"exact by pairing: {summary['shap_coverage']:.1%}); exact cases exact with confidence 0: "
        f"{summary['exact_cases_exact']}. LIME coverage: **{summary['lime_coverage']:.1%}**; "
        f"top-5 Jaccard across seeds {summary['lime_jaccard_ours']:.2f} (this project) vs "
        f"{summary['lime_jaccard_lime']:.2f} (lime); on the 20-feature forest's instances "
        f"{' / '.join(f'{j:.2f}' for j in summary.get('lime_jaccard_forest20', []))}. "
        f"A response calls its top 5 settled (`settled`: 5) in "
        f"{summary.get('lime_says_settled', float('nan')):.0%} of seeds over all instances, "
        f"with another top 5 than the reference's in "
        f"{summary.get('lime_settled_wrong', float('nan')):.1%}.",
        "",
        "| case | rows | exact | rel. error ours | rel. error shap | ratio | top-5 ours | top-5 shap | coverage | s ours | s shap | truth s.e. |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in shap_rows:
        ratio = r["ours_error"] / r["shap_error"] if r["shap_error"] > 1e-6 else float("nan")
        lines.append(
            f"| {r['case']} | {r['rows']} | {r['exact']} | {r['ours_error']:.2e} | {r['shap_error']:.2e} | "
            f"{ratio:.2f} | {r['ours_top5']:.2f} | {r['shap_top5']:.2f} | {r['coverage']:.2f} | "
            f"{r['ours_seconds']:.2f} | {r['shap_seconds']:.2f} | {r['truth_se']:.1e} |"
        )
    lines += [
        "",
        f"LIME, 5000 samples, {SEEDS} seeds, each instance (spread: mean std of a score across "
        "seeds ÷ largest |score|; gap: the 5th minus the 6th |score| of the reference, in "
        "standard deviations of our scores — below ~1 the 5th place is a coin flip; says "
        "settled: share of seeds whose `settled` is 5, and in brackets of seeds that say so "
        "with another top 5 than the reference's):",
        "",
        "| case | instance | gap 5th–6th | spread ours | spread lime | top-5 Jaccard ours | "
        "top-5 Jaccard lime | coverage ours | says settled (wrongly) | "
        "LIME alone at its default: top-5 Jaccard, mean rows |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in lime_rows:
        lines.append(
            f"| {r['case']} | {r.get('instance', 0)} | {r.get('gap_5_6', float('nan')):.1f} | "
            f"{r['ours_spread']:.4f} | {r['lime_spread']:.4f} | {r['ours_jaccard']:.2f} | "
            f"{r['lime_jaccard']:.2f} | {r['coverage']:.2f} | "
            f"{r.get('settled_share', float('nan')):.0%} ({r.get('settled_wrong', float('nan')):.0%}) | "
            f"{r.get('default_jaccard', float('nan')):.2f}, {r.get('default_rows', 0):,.0f} |"
        )
    lines.append(
        "\nAt its default LIME alone scores 1000 rows first and adds rows, up to 5000, only "
        "until the top 5 are settled; beside SHAP (`ALL`) it scores 5000 at once "
        "(`docs/algorithms.md`)."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
