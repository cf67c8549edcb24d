"""``explainer report``: a self-contained HTML report of a batch run, for people.

Read from the batch journal (JSON Lines), streamed: global importance (mean |SHAP| per
feature, with its spread), a beeswarm-style plot of SHAP scores against feature values,
the scores of each categorical feature by category (categories, not a number axis),
LIME vs SHAP agreement (rank correlation per row, and where they disagree most), and the
rows with the widest confidence intervals. Plots are matplotlib's, embedded as PNG.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

SECTIONS = (
    ("importance", "Global importance"),
    ("beeswarm", "SHAP scores against feature values"),
    ("categories", "SHAP scores by category"),
    ("agreement", "LIME and SHAP agreement"),
    ("uncertain", "Rows with the widest confidence intervals"),
)
TOP_FEATURES = 12
TOP_ROWS = 10
TOP_CATEGORIES = 12


@dataclass
class _Collected:
    features: list[str] = field(default_factory=list)
    output: str | None = None
    rows: list[int] = field(default_factory=list)
    shap: list[list[float]] = field(default_factory=list)
    lime: list[list[float] | None] = field(default_factory=list)
    values: list[list[Any]] = field(default_factory=list)  # numbers, strings, booleans
    kinds: dict[str, str] = field(default_factory=dict)  # the explanation's feature_kinds
    widest: list[float] = field(default_factory=list)
    failed: int = 0

    def categorical(self, j: int) -> bool:
        name = self.features[j]
        if name in self.kinds:
            return self.kinds[name] == "categorical"
        return any(isinstance(row[j], str | bool) for row in self.values)

    def numbers(self) -> np.ndarray:
        """(rows, M) the values as numbers, NaN for categories."""
        return np.array(
            [
                [
                    v if isinstance(v, int | float) and not isinstance(v, bool) else np.nan
                    for v in row
                ]
                for row in self.values
            ],
            dtype=np.float64,
        ).reshape(len(self.values), len(self.features))


def collect(journal: Path) -> _Collected:
    """One pass over the journal, keeping a few numbers per row (not the payloads)."""
    data = _Collected()
    with journal.open("rb") as handle:
        for line in handle:
            record = orjson.loads(line)
            if "error" in record or "SHAP" not in record:
                data.failed += "error" in record
                continue
            shap = record["SHAP"]["saliencies"]
            if data.output is None:
                data.output = list(shap)[-1]  # e.g. the positive class's probability
                data.features = list(record.get("input") or [i["name"] for i in shap[data.output]])
            scores = {i["name"]: i for i in shap[data.output]}
            data.rows.append(int(record["row"]))
            data.shap.append([scores[f]["score"] for f in data.features])
            data.widest.append(max(i["confidence"] for i in scores.values()))
            values = record.get("input") or {}
            data.values.append([values.get(f, np.nan) for f in data.features])
            data.kinds = data.kinds or record["SHAP"].get("feature_kinds") or {}
            lime = record.get("LIME", {}).get("saliencies", {}).get(data.output)
            data.lime.append(
                None
                if lime is None
                else [{i["name"]: i["score"] for i in lime}[f] for f in data.features]
            )
    return data


def write_report(journal: Path, out: Path) -> None:
    data = collect(journal)
    if not data.rows:
        raise ValueError(f"{journal} holds no SHAP explanation to report on")
    shap, values = np.array(data.shap), data.numbers()
    importance = np.abs(shap).mean(axis=0)
    order = np.argsort(-importance)[:TOP_FEATURES]
    sections = {
        "importance": _importance(data, shap, order),
        "beeswarm": _beeswarm(data, shap, values, order),
        "categories": _categories(data, shap, order),
        "agreement": _agreement(data, shap),
        "uncertain": _uncertain(data),
    }
    body = "\n".join(
        f'<section id="{key}"><h2>{title}</h2>{sections[key]}</section>' for key, title in SECTIONS
    )
    summary = (
        f"<p>{len(data.rows)} rows explained"
        + (f", {data.failed} failed" if data.failed else "")
        + f"; output <code>{html.escape(data.output or '')}</code>.</p>"
    )
    out.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Explanations</title>"
        "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}</style>"
        f"</head><body><h1>Explanations of {html.escape(str(journal.name))}</h1>{summary}{body}"
        "</body></html>"
    )


def _figure(draw: Any, height: float = 4.0) -> str:
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


def _importance(data: _Collected, shap: np.ndarray, order: np.ndarray) -> str:
    names = [data.features[j] for j in order][::-1]
    mean = np.abs(shap).mean(axis=0)[order][::-1]
    spread = np.abs(shap).std(axis=0)[order][::-1]

    def draw(ax: Any) -> None:
        ax.barh(names, mean, xerr=spread, color="#4c72b0", capsize=3)
        ax.set_xlabel("mean |SHAP score| (bar: ± one standard deviation across rows)")

    return _figure(draw, height=max(2.5, 0.35 * len(names) + 1))


def _beeswarm(data: _Collected, shap: np.ndarray, values: np.ndarray, order: np.ndarray) -> str:
    rng = np.random.default_rng(0)

    def draw(ax: Any) -> None:
        points = None
        for position, j in enumerate(order[::-1]):
            column = values[:, j]
            jitter = rng.uniform(-0.3, 0.3, size=len(column))
            if data.categorical(j):  # no low or high: grey here, by category below
                ax.scatter(shap[:, j], position + jitter, color="#999", s=8)
                continue
            low, high = np.nanmin(column), np.nanmax(column)
            colour = (column - low) / (high - low) if high > low else np.full_like(column, 0.5)
            points = ax.scatter(shap[:, j], position + jitter, c=colour, cmap="coolwarm", s=8)
        ax.set_yticks(range(len(order)), [data.features[j] for j in order[::-1]])
        ax.axvline(0, color="#888", linewidth=0.8)
        ax.set_xlabel("SHAP score (colour: feature value, low blue to high red; categorical: grey)")
        if points is not None:
            ax.figure.colorbar(points, ax=ax, label="feature value (scaled)")

    return _figure(draw, height=max(2.5, 0.4 * len(order) + 1))


def _categories(data: _Collected, shap: np.ndarray, order: np.ndarray) -> str:
    """Each categorical feature's SHAP scores, one row of points per category (the most
    frequent ``TOP_CATEGORIES``), with the category's mean score."""
    chosen = [j for j in order if data.categorical(j)]
    if not chosen:
        return "<p>No categorical features.</p>"
    rng = np.random.default_rng(0)
    parts = []
    for j in chosen:
        labels = np.array([str(row[j]) for row in data.values], dtype=object)
        names, counts = np.unique(labels, return_counts=True)
        shown = names[np.argsort(-counts, kind="stable")[:TOP_CATEGORIES]][::-1]

        def draw(
            ax: Any, j: int = j, labels: np.ndarray = labels, shown: np.ndarray = shown
        ) -> None:
            for position, category in enumerate(shown):
                scores = shap[labels == category, j]
                jitter = rng.uniform(-0.3, 0.3, size=len(scores))
                ax.scatter(scores, position + jitter, color="#4c72b0", s=8)
                ax.plot([scores.mean()] * 2, [position - 0.4, position + 0.4], color="#c44e52")
            ax.set_yticks(range(len(shown)), list(shown))
            ax.axvline(0, color="#888", linewidth=0.8)
            ax.set_xlabel(f"SHAP score of {data.features[j]} (red: the category's mean)")

        parts.append(
            f"<h3>{html.escape(data.features[j])}</h3>"
            + _figure(draw, height=max(2.0, 0.35 * len(shown) + 1))
        )
    return "".join(parts)


def _agreement(data: _Collected, shap: np.ndarray) -> str:
    paired = [(r, s, lime) for r, s, lime in zip(data.rows, shap, data.lime, strict=True) if lime]
    if not paired:
        return "<p>No LIME explanations in this run (EXPLAINER_TYPE was SHAP).</p>"
    from scipy.stats import spearmanr

    rho = np.array(
        [
            spearmanr(s, lime).statistic if np.ptp(lime) and np.ptp(s) else 1.0
            for _, s, lime in paired
        ]
    )

    def draw(ax: Any) -> None:
        ax.hist(rho, bins=20, range=(-1, 1), color="#55a868")
        ax.set_xlabel("Spearman rank correlation of LIME and SHAP scores, per row")
        ax.set_ylabel("rows")

    worst = np.argsort(rho)[:TOP_ROWS]
    table = "".join(
        f"<tr><td>{paired[i][0]}</td><td>{rho[i]:.2f}</td>"
        f"<td>{html.escape(_top(paired[i][1], data.features))}</td>"
        f"<td>{html.escape(_top(np.array(paired[i][2]), data.features))}</td></tr>"
        for i in worst
    )
    return (
        f"<p>Median rank correlation {np.median(rho):.2f}. Where they disagree most:</p>"
        + _figure(draw, height=3)
        + "<table><tr><th>row</th><th>rank correlation</th><th>SHAP's top 3</th>"
        f"<th>LIME's top 3</th></tr>{table}</table>"
    )


def _uncertain(data: _Collected) -> str:
    widest = np.array(data.widest)
    rows = np.argsort(-widest)[:TOP_ROWS]
    table = "".join(f"<tr><td>{data.rows[i]}</td><td>{widest[i]:.3g}</td></tr>" for i in rows)
    return (
        "<p>The largest 95% half-width among each row's SHAP scores: ask these rows again with "
        "more samples or a <code>tolerance</code>.</p>"
        f"<table><tr><th>row</th><th>widest 95% half-width</th></tr>{table}</table>"
    )


def _top(scores: np.ndarray, names: list[str]) -> str:
    return ", ".join(names[j] for j in np.argsort(-np.abs(scores))[:3])
