"""The HTML report of a batch run over texts: the words that matter most across the
texts (mean SHAP score per word, lower-cased, without surrounding punctuation), each text
with its segments coloured by SHAP score (red raises the output, blue lowers it; the
stronger the colour, the larger |score|; hover for score ± 95% half-width), LIME and
SHAP agreement per text, and the texts with the widest intervals. Read from the journal
in one pass, like the tabular report (``explainer.batch.report``)."""

from __future__ import annotations

import html
import string
from collections import defaultdict
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

SECTIONS = (
    ("words", "Words by importance"),
    ("texts", "Texts, coloured by SHAP score"),
    ("agreement", "LIME and SHAP agreement"),
    ("uncertain", "Texts with the widest confidence intervals"),
)
TOP_WORDS = 20
SHOWN_TEXTS = 100
STYLE = (
    ".text{line-height:1.9;border-bottom:1px solid #eee;padding:6px 0}"
    ".seg{border-radius:3px;padding:1px 2px}.row{color:#888;font-size:small;margin-right:8px}"
)


@dataclass
class _Text:
    row: int
    text: str
    spans: list[tuple[int, int]]
    shap: np.ndarray
    confidence: np.ndarray


@dataclass
class _Collected:
    output: str | None = None
    texts: list[_Text] = field(default_factory=list)  # the first SHOWN_TEXTS
    rows: list[int] = field(default_factory=list)
    widest: list[float] = field(default_factory=list)
    words: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    agreement: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    failed: int = 0


def _word(segment: str) -> str:
    """A segment as a word to count: lower-cased, without surrounding punctuation."""
    return segment.lower().strip(string.punctuation) or segment


def _in_order(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: item["span"][0])


def collect(journal: Path) -> _Collected:
    data = _Collected()
    for record in explanations(journal):
        if record is None:
            data.failed += 1
            continue
        saliencies = record["SHAP"]["saliencies"]
        data.output = data.output or list(saliencies)[-1]
        items = _in_order(saliencies[data.output])
        shap = np.array([i["score"] for i in items])
        confidence = np.array([i["confidence"] for i in items])
        lime_items = record.get("LIME", {}).get("saliencies", {}).get(data.output)
        lime = None if lime_items is None else np.array([i["score"] for i in _in_order(lime_items)])
        data.rows.append(int(record["row"]))
        data.widest.append(float(confidence.max()))
        for item in items:
            data.words[_word(item["name"])].append(item["score"])
        if lime is not None and len(lime) > 1:
            data.agreement.append((shap, lime))
        if len(data.texts) < SHOWN_TEXTS:
            spans = [(int(a), int(b)) for a, b in (i["span"] for i in items)]
            data.texts.append(
                _Text(
                    int(record["row"]),
                    str(record.get("input", "")),
                    spans,
                    shap,
                    confidence,
                )
            )
    return data


def write_text_report(journal: Path, out: Path) -> None:
    data = collect(journal)
    if not data.rows:
        raise ValueError(f"{journal} holds no SHAP explanation to report on")
    sections = {
        "words": _words(data),
        "texts": _texts(data),
        "agreement": _agreement(data),
        "uncertain": uncertain(data.rows, data.widest),
    }
    head = summary(len(data.rows), data.failed, data.output, noun="texts")
    write_page(out, journal, SECTIONS, sections, head, STYLE)


def _words(data: _Collected) -> str:
    words = list(data.words)
    mean = np.array([np.mean(data.words[w]) for w in words])
    counts = np.array([len(data.words[w]) for w in words])
    order = np.argsort(-np.abs(mean), kind="stable")[:TOP_WORDS]
    names = [words[j] for j in order][::-1]
    values = mean[order][::-1]

    def draw(ax: Any) -> None:
        ax.barh(names, values, color=["#c44e52" if v > 0 else "#4c72b0" for v in values])
        ax.axvline(0, color="#888", linewidth=0.8)
        ax.set_xlabel("mean SHAP score of the word where it occurs (red raises, blue lowers)")

    table = "".join(
        f"<tr><td>{html.escape(words[j])}</td><td>{mean[j]:+.3g}</td><td>{counts[j]}</td></tr>"
        for j in order
    )
    return (
        figure(draw, height=max(2.5, 0.3 * len(names) + 1))
        + "<table><tr><th>word</th><th>mean SHAP score</th><th>occurrences</th></tr>"
        + f"{table}</table>"
    )


def _colour(score: float, scale: float) -> str:
    alpha = min(abs(score) / scale, 1.0) if scale > 0 else 0.0
    red, green, blue = (196, 78, 82) if score > 0 else (76, 114, 176)
    return f"rgba({red},{green},{blue},{alpha:.2f})"


def _texts(data: _Collected) -> str:
    scale = max((float(np.abs(t.shap).max()) for t in data.texts if len(t.shap)), default=0.0)
    parts = []
    for t in data.texts:
        pieces, at = [], 0
        for (a, b), score, half in zip(t.spans, t.shap, t.confidence, strict=True):
            pieces.append(html.escape(t.text[at:a]))
            pieces.append(
                f'<span class="seg" style="background:{_colour(score, scale)}" '
                f'data-score="{score:.6g}" title="{score:+.3g} ± {half:.2g}">'
                f"{html.escape(t.text[a:b])}</span>"
            )
            at = b
        pieces.append(html.escape(t.text[at:]))
        parts.append(f'<div class="text"><span class="row">{t.row}</span>{"".join(pieces)}</div>')
    shown = (
        f"the first {len(data.texts)} of {len(data.rows)}"
        if len(data.texts) < len(data.rows)
        else "every text"
    )
    return (
        f"<p>{shown}; colour scale: |score| {scale:.3g} is full colour. Hover a word for its "
        f"score and 95% half-width.</p>" + "".join(parts)
    )


def _agreement(data: _Collected) -> str:
    if not data.agreement:
        return "<p>No LIME explanations in this run (EXPLAINER_TYPE was SHAP).</p>"
    rho = rank_correlations(data.agreement)
    return (
        f"<p>Median rank correlation over {len(rho)} texts: {np.median(rho):.2f}; "
        f"lowest {np.sort(rho)[: min(TOP_ROWS, len(rho))].round(2).tolist()}.</p>"
        + correlation_histogram(rho)
    )
