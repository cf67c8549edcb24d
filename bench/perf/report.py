"""The markdown tables of ``make bench`` from its JSON (``python -m bench.perf.report``
re-renders the last run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "results"
TRANSPORT = {"v2": "REST JSON", "grpc-v2": "gRPC raw", "grpc-v2-fp32": "gRPC raw FP32"}


def render(result: dict[str, Any], repeats: int, reference_repeats: int) -> str:
    lines = [
        "One row per explanation, 50-row background, MLServer 1.7.1 (scikit-learn runtime, "
        "`parallel_workers: 0`) on loopback, explainer and predictor sharing 2 cores. "
        f"Each explainer is a fresh process: *first* is its first request after start; "
        f"median and p95 over the next {repeats}. *Predictor alone*: the same rows, split "
        "and encoded as the explainer sends them, from a bare client (the limit), each call "
        "alternating with an explanation.",
        "",
        "## Against the limit",
        "",
        "| model | mode | transport | budgets | predictor rows | wire MB | first ms | "
        "median ms | p95 ms | predictor alone ms | median / alone |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["explainer"]:
        asked = {k: r[f"{k.lower()}_samples"] for k in ("LIME", "SHAP")}
        budgets = ", ".join(f"{k} {n}" for k, n in asked.items() if n)
        lines.append(
            f"| {r['model']} | {r['mode']} | {TRANSPORT[r['transport']]} | "
            f"{r['budgets']}: {budgets} | "
            f"{r['rows']:,} | {r['wire_mb']:.1f} | {1000 * r['first_s']:.0f} | "
            f"{1000 * r['median_s']:.0f} | {1000 * r['p95_s']:.0f} | {1000 * r['alone_s']:.0f} | "
            f"{r['median_s'] / r['alone_s']:.2f} |"
        )
    lines += [
        "",
        "## Against the reference pipeline",
        "",
        "Reference: lime's `LimeTabularExplainer` (5000 samples) and shap's `KernelExplainer` "
        "(nsamples 2·M + 2048, `l1_reg=False`), same background, each `predict_fn` posting its "
        f"batch to the same MLServer over v2 REST (requests + orjson); medians of "
        f"{reference_repeats}. *Equal accuracy*: this project at the smallest budgets whose "
        "SHAP error (median relative L2 against a 100×-budget permutation estimate, 4 rows × "
        "3 seeds) is at most shap's and whose LIME spread across 20 seeds is at most lime's.",
        "",
        "*Reference* asks for identity encoding (a tuned client); *as written* keeps requests' "
        "default `Accept-Encoding: gzip`, which MLServer answers gzipped at level 9. Speed-ups "
        "are for this project over gRPC with FP32 tensors (`PREDICTOR_DATATYPE=FP32`).",
        "",
        "| model | mode | reference s | reference as written s | reference rows | ours, same "
        "budgets, REST s | ours, equal accuracy, gRPC FP64 / FP32 s | speed-up vs reference | "
        "speed-up vs "
        "as written | one call per coalition (TrustyAI) s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    by = {(r["model"], r["transport"], r["mode"], r["budgets"]): r for r in result["explainer"]}
    for ref in result["reference"]:
        name = ref["model"]
        for mode, seconds, written, rows in (
            ("SHAP", ref["shap_s"], ref["shap_gzip_s"], ref["shap_rows"]),
            ("ALL", ref["all_s"], ref["all_gzip_s"], ref["shap_rows"] + ref["lime_rows"]),
        ):
            same = by[(name, "v2", mode, "default")]
            fp64 = by[(name, "grpc-v2", mode, "equal")]["median_s"]
            ours = by[(name, "grpc-v2-fp32", mode, "equal")]["median_s"]
            lines.append(
                f"| {name} | {mode} | {seconds:.3f} | {written:.3f} | {rows:,} | "
                f"{same['median_s']:.3f} | {fp64:.3f} / {ours:.3f} | **{seconds / ours:.1f}×** | "
                f"**{written / ours:.1f}×** | {ref['per_coalition_s']:.1f} |"
            )
    lines += [
        "",
        '## Accuracy behind "equal"',
        "",
        "| model | shap KernelExplainer error (2088 coalitions) | ours at each budget | "
        "chosen SHAP budget | lime spread (5000) | ours at each sample count | "
        "chosen LIME samples |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, cal in result["calibration"].items():
        shap_cal, lime_cal = cal["shap"], cal["lime"]
        ladder = ", ".join(f"{b}: {e:.4f}" for b, e in shap_cal["ours_error"].items())
        spreads = ", ".join(f"{s}: {v:.4f}" for s, v in lime_cal["ours_spread"].items())
        lines.append(
            f"| {name} | {shap_cal['shap_error']:.4f} | {ladder} | {shap_cal['equal_budget']} | "
            f"{lime_cal['lime_spread']:.4f} | {spreads} | {lime_cal['equal_samples']} |"
        )
    t = result["throughput"]
    lines += [
        "",
        "## Throughput and cross-request batching",
        "",
        "| figure | value |",
        "|---|---|",
        f"| {t['model']} {t['mode']}, {t['clients']} clients, {t['seconds']:.0f} s | "
        f"{t['explanations']} explanations, {t['errors']} errors, {t['per_second']:.2f}/s "
        f"(p50 {1000 * t['p50_s']:.0f} ms, p99 {1000 * t['p99_s']:.0f} ms) |",
        f"| predictor's own rate, same rows and transport | {t['predictor_rows_per_second']:,.0f} "
        f"rows/s ÷ {t['rows_per_explanation']:,} rows = {t['limit_per_second']:.2f}/s |",
        f"| explanations/s ÷ predictor limit | **{t['per_second'] / t['limit_per_second']:.2f}** |",
        f"| explainer RSS under load: at 20% of the run → at its end (peak) | "
        f"{t['rss_load_early_mib']:.0f} → {t['rss_load_end_mib']:.0f} MiB "
        f"(**{t['rss_load_end_mib'] / t['rss_load_early_mib'] - 1:+.1%}**; peak "
        f"{t['rss_peak_mib']:.0f}; idle before the load {t['rss_idle_mib']:.0f}) |",
        "",
        f"Cross-request coalescing, LIME, {t['clients']} clients "
        "(explanations/s with coalescing on and off):",
        "",
        "| model | transport | LIME samples | on /s | off /s | gain | p50 on / off ms | "
        "errors on / off |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in result["coalescing"]:
        lines.append(
            f"| {c['model']} | {TRANSPORT[c['transport']]} | {c['lime_samples']:,} | "
            f"{c['on_per_second']:.1f} | {c['off_per_second']:.1f} | **{c['gain']:.2f}×** | "
            f"{1000 * c['on_p50_s']:.0f} / {1000 * c['off_p50_s']:.0f} | "
            f"{c['on_errors']} / {c['off_errors']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    data = json.loads((RESULTS / "perf.json").read_text())
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 25
    print(render(data, repeats, 5))
