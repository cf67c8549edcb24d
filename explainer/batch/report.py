"""``explainer report``: a self-contained HTML report of a batch run, for people.

Read from the batch journal (JSON Lines), streamed: global importance (mean |SHAP| per
feature, with its spread), a beeswarm-style plot of SHAP scores against feature values,
the scores of each categorical feature by category (categories, not a number axis),
LIME vs SHAP agreement (rank correlation per row, and where they disagree most), and the
rows with the widest confidence intervals (the page and its plots:
``explainer.batch.report_page``). A journal of texts gets the text report instead
(``explainer.batch.text_report``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from explainer.batch.report_page import (
    TOP_ROWS,
    correlation_histogram,
    explanations,
    figure,
    rank_correlations,
    summary,
    uncertain,
    write_page,
)
from explainer.batch.runner import is_text_journal

SECTIONS = (
    ("importance", "Global importance"),
    ("beeswarm", "SHAP scores against feature values"),
    ("categories", "SHAP scores by category"),
    ("agreement", "LIME and SHAP agreement"),
    ("uncertain", "Rows with the widest confidence intervals"),
)
TOP_FEATURES = 12
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
    for record in explanations(journal):
        if record is None:
            data.failed += 1
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
    if is_text_journal(journal):
        from explainer.batch.text_report import write_text_report

        write_text_report(journal, out)
        return
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
        "uncertain": uncertain(data.rows, data.widest),
    }
    write_page(out, journal, SECTIONS, sections, summary(len(data.rows), data.failed, data.output))


def _importance(data: _Collected, shap: np.ndarray, order: np.ndarray) -> str:
    names = [data.features[j] for j in order][::-1]
    mean = np.abs(shap).mean(axis=0)[order][::-1]
    spread = np.abs(shap).std(axis=0)[order][::-1]

    def draw(ax: Any) -> None:
        ax.barh(names, mean, xerr=spread, color="#4c72b0", capsize=3)
        ax.set_xlabel("mean |SHAP score| (bar: ± one standard deviation across rows)")

    return figure(draw, height=max(2.5, 0.35 * len(names) + 1))


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

    return figure(draw, height=max(2.5, 0.4 * len(order) + 1))


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
            + figure(draw, height=max(2.0, 0.35 * len(shown) + 1))
        )
    return "".join(parts)


def _agreement(data: _Collected, shap: np.ndarray) -> str:
    paired = [(r, s, lime) for r, s, lime in zip(data.rows, shap, data.lime, strict=True) if lime]
    if not paired:
        return "<p>No LIME explanations in this run (EXPLAINER_TYPE was SHAP).</p>"
    rho = rank_correlations([(s, np.array(lime)) for _, s, lime in paired])

    worst = np.argsort(rho)[:TOP_ROWS]
    table = "".join(
        f"<tr><td>{paired[i][0]}</td><td>{rho[i]:.2f}</td>"
        f"<td>{html.escape(_top(paired[i][1], data.features))}</td>"
        f"<td>{html.escape(_top(np.array(paired[i][2]), data.features))}</td></tr>"
        for i in worst
    )
    return (
        f"<p>Median rank correlation {np.median(rho):.2f}. Where they disagree most:</p>"
        + correlation_histogram(rho)
        + "<table><tr><th>row</th><th>rank correlation</th><th>SHAP's top 3</th>"
        f"<th>LIME's top 3</th></tr>{table}</table>"
    )


def _top(scores: np.ndarray, names: list[str]) -> str:
    return ", ".join(names[j] for j in np.argsort(-np.abs(scores))[:3])
