"""What both HTML reports (tabular: ``explainer.batch.report``; texts:
``explainer.batch.text_report``) are made of: the page, its plots (matplotlib, embedded
as PNG), the summary line, LIME and SHAP rank agreement, the widest intervals."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

TOP_ROWS = 10


def explanations(journal: Path) -> Iterator[dict[str, Any] | None]:
    """The journal's records with a SHAP explanation, in order, and None for each failed
    row (records with neither are skipped), read a line at a time."""
    with journal.open("rb") as handle:
        for line in handle:
            record = orjson.loads(line)
            if "error" in record:
                yield None
            elif "SHAP" in record:
                yield record


def figure(draw: Any, height: float = 4.0) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, height))
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="plot" src="data:image/png;base64,{encoded}">'


def summary(rows: int, failed: int, output: str | None, noun: str = "rows") -> str:
    return (
        f"<p>{rows} {noun} explained"
        + (f", {failed} failed" if failed else "")
        + f"; output <code>{html.escape(output or '')}</code>.</p>"
    )


def write_page(
    out: Path,
    journal: Path,
    titles: tuple[tuple[str, str], ...],
    sections: dict[str, str],
    head: str,
    style: str = "",
) -> None:
    """The report's one HTML page: a section per (key, title)."""
    body = "\n".join(
        f'<section id="{key}"><h2>{title}</h2>{sections[key]}</section>' for key, title in titles
    )
    out.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Explanations</title>"
        "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto}"
        f"table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}{style}"
        f"</style></head><body><h1>Explanations of {html.escape(str(journal.name))}</h1>{head}"
        f"{body}</body></html>"
    )


def rank_correlations(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Spearman's rank correlation of SHAP and LIME scores, per row (1 where either is
    constant)."""
    from scipy.stats import spearmanr

    return np.array(
        [
            spearmanr(shap, lime).statistic if np.ptp(lime) and np.ptp(shap) else 1.0
            for shap, lime in pairs
        ]
    )


def correlation_histogram(rho: np.ndarray) -> str:
    def draw(ax: Any) -> None:
        ax.hist(rho, bins=20, range=(-1, 1), color="#55a868")
        ax.set_xlabel("Spearman rank correlation of LIME and SHAP scores, per row")
        ax.set_ylabel("rows")

    return figure(draw, height=3)


def uncertain(rows: list[int], widest: list[float]) -> str:
    """The rows whose widest SHAP interval is the widest."""
    if max(widest, default=0.0) == 0:
        return "<p>Every SHAP score is exact (confidence 0): every coalition was scored.</p>"
    order = np.argsort(-np.array(widest))[:TOP_ROWS]
    table = "".join(f"<tr><td>{rows[i]}</td><td>{widest[i]:.3g}</td></tr>" for i in order)
    return (
        "<p>The largest 95% half-width among each row's SHAP scores: ask these rows again with "
        "more samples or a <code>tolerance</code>.</p>"
        f"<table><tr><th>row</th><th>widest 95% half-width</th></tr>{table}</table>"
    )
