"""Texts, sans I/O: the masking rule, KernelSHAP against brute-force enumeration over word
masks, LIME against the lime package's text explainer (the same masking), with a
TF-IDF + logistic regression pipeline whose bigrams make words interact."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from explainers import kernel_shap, lime
from explainers.maskers.text import SENTENCES, Text, segment_spans
from tests.models import TextModel, enumerate_shapley, reviews


@pytest.fixture(scope="module")
def model() -> TextModel:
    return reviews().model


def masked(text: str, keep: list[int]) -> str:
    masker = Text(text)
    kept = np.zeros((1, masker.segments), dtype=bool)
    kept[0, keep] = True
    return str(masker.masked(kept)[0])


def test_the_masking_rule() -> None:
    assert masked("a b c", [0]) == "a"
    assert masked("a b c", [1]) == "b"
    assert masked("a b c", [0, 2]) == "a c"
    assert masked("  a\tb \n c ", [1]) == "  b "  # leading and trailing whitespace stay
    assert masked("a b c", []) == ""
    assert masked("one. two!  three?", []) == ""


@given(
    st.lists(st.text(alphabet="ab.", min_size=1, max_size=3), min_size=1, max_size=8),
    st.lists(st.sampled_from([" ", "  ", "\n", "\t "]), min_size=8, max_size=8),
    st.data(),
)
def test_a_masked_text_holds_exactly_the_kept_segments_in_order(
    words: list[str], gaps: list[str], data: st.DataObject
) -> None:
    text = "".join(w + g for w, g in zip(words, gaps, strict=False)).rstrip()
    keep = data.draw(st.lists(st.sampled_from(range(len(words))), unique=True))
    out = masked(text, sorted(keep))
    assert out.split() == [words[i] for i in sorted(keep)]
    if keep:  # whitespace only between kept segments, as it was after the earlier one
        assert not out[0].isspace() and not out[-1].isspace()


def test_sentences_are_segments() -> None:
    text = 'It rained. "Really?" she asked!  Then it stopped'
    spans = segment_spans(text, SENTENCES)
    assert [text[a:b] for a, b in spans] == [
        "It rained.",
        '"Really?"',
        "she asked!",
        "Then it stopped",
    ]


def test_shap_is_exact_against_brute_force_over_word_masks(model: TextModel) -> None:
    text = "not a great film but a wonderful cast"
    masker = Text(text)
    plan = kernel_shap.plan(masker, samples=2**masker.segments - 2, seed=0)
    fitted = kernel_shap.fit(plan, model.predict_proba(plan.rows))
    truth = enumerate_shapley(
        lambda keep: model.predict_proba([masked(text, keep)])[0], masker.segments
    )
    np.testing.assert_allclose(fitted.scores, truth, atol=1e-10)
    assert (fitted.confidence == 0).all() and fitted.facts["exact"]
    full, empty = model.predict_proba([text, ""])
    np.testing.assert_allclose(fitted.scores.sum(axis=1), full - empty, atol=1e-12)


def test_sampled_shap_intervals_cover_the_exact_values(model: TextModel) -> None:
    text = "I loved the story and the cast but the ending was slow dull and not good"
    masker = Text(text)
    exact_plan = kernel_shap.plan(masker, samples=2**masker.segments - 2, seed=0)
    truth = kernel_shap.fit(exact_plan, model.predict_proba(list(exact_plan.rows))).scores
    covered = []
    for seed in range(10):
        plan = kernel_shap.plan(masker, samples=600, seed=seed)
        fitted = kernel_shap.fit(plan, model.predict_proba(plan.rows))
        covered.append(np.abs(fitted.scores - truth) <= fitted.confidence)
    assert np.mean(covered) >= 0.85


def test_lime_perturbations_follow_limes_text_scheme() -> None:
    masker = Text(" ".join(f"w{i}" for i in range(10)))
    plan = lime.plan(masker, samples=4001, seed=1)
    removed = 10 - plan.binary[1:].sum(axis=1)
    counts = np.bincount(removed.astype(int), minlength=11)[1:]
    assert counts.min() > 300 and counts.max() < 500  # uniform on 1..10: 400 each
    assert set(removed) == set(range(1, 11))
    for row, binary in zip(plan.rows[1:50], plan.binary[1:50], strict=True):
        assert row.split() == [f"w{i}" for i in range(10) if binary[i]]


@pytest.mark.parametrize(
    "text", ["not a great film but a wonderful cast", "slow and dull but I loved it"]
)
def test_lime_mean_is_within_the_lime_packages_interval(model: TextModel, text: str) -> None:
    from lime.lime_text import LimeTextExplainer
    from scipy.stats import norm

    m = Text(text).segments
    theirs = []
    for seed in range(30):
        reference = LimeTextExplainer(
            split_expression=r"\s+",
            bow=False,
            mask_string="",
            feature_selection="none",
            random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explanation = reference.explain_instance(
                text,
                model.predict_proba,
                num_features=m,
                num_samples=3000,
            )
        coef = np.zeros(m)
        for j, weight in explanation.as_map()[1]:
            coef[j] = weight
        theirs.append(coef)
    ours = []
    for seed in range(30):
        plan = lime.plan(Text(text), samples=3000, seed=seed, ridge_alpha=1.0)
        ours.append(lime.fit(plan, model.predict_proba(plan.rows)).scores[1])
    mean, se = np.mean(theirs, axis=0), np.std(theirs, axis=0, ddof=1) / np.sqrt(len(theirs))
    z = norm.ppf(1 - 0.05 / (2 * m))
    assert (np.abs(np.mean(ours, axis=0) - mean) <= z * se + 1e-4).all(), (
        np.mean(ours, axis=0),
        mean,
        se,
    )
