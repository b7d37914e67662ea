"""Word-span attributions: additive, batched across texts, and pointing at the sentiment word.

Also covers the TF-IDF baseline, which attribution must serve through the same interface.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import log_softmax
from sklearn.linear_model import LogisticRegression

from models.artifacts import ArtifactError
from models.shapley import effect_values
from models.tasks import TargetEncoder
from models.text_attribution import (
    explain_text,
    explain_texts,
    same_game_reference,
    span_fidelity,
    spans_for_budget,
    split_spans,
)
from models.text_baseline import FittedTfidfModel, fit_tfidf_logreg, make_vectorizer
from models.text_classifier import FittedTextModel
from tests.models.test_text_classifier import (
    binary_target,
    fit_tiny_text_model,
    make_corpus,
    make_tiny_bert,
)


@pytest.fixture(scope="module")
def tfidf() -> FittedTfidfModel:
    texts, y = make_corpus(300, seed=11)
    return fit_tfidf_logreg(texts, binary_target().encode(y), binary_target(), seed=0)


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> FittedTextModel:
    return fit_tiny_text_model(make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))).model


class CountingModel:
    """Passes calls through to a model and records how many texts each call scored."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.target = model.target
        self.calls: list[int] = []

    def predict_texts(self, texts: list[str], *, output: str = "proba") -> np.ndarray:
        self.calls.append(len(texts))
        return self.model.predict_texts(texts, output=output)


class WordGame:
    """A toy text model whose log-odds is a sum of terms, each paid when all its words are
    present: a game with known interactions (words are the players when each is a span)."""

    def __init__(self, terms: dict[tuple[str, ...], float]) -> None:
        self.terms = terms
        self.target = binary_target()
        self.calls: list[int] = []

    def predict_texts(self, texts: list[str], *, output: str = "proba") -> np.ndarray:
        self.calls.append(len(texts))
        logits = np.array(
            [
                sum(a for words, a in self.terms.items() if set(words) <= set(t.split()))
                for t in texts
            ]
        )
        return logits if output == "logit" else 1 / (1 + np.exp(-logits))


# 11 words: fewer than BLEND_MIN_SPANS, so the default is the effects alone
SENTENCE = "tea was fresh and strong but box came late and crushed"


def test_effects_are_exact_with_pairwise_interactions_only() -> None:
    pairwise = WordGame(
        {
            ("fresh",): 1.2,
            ("crushed",): -0.9,
            ("late",): -0.4,
            ("tea",): 0.1,
            ("fresh", "strong"): 0.7,  # synergy
            ("late", "crushed"): 0.5,  # substitutes: a second complaint adds less
            ("tea", "box"): -0.3,
        }
    )
    (effects,) = explain_texts(pairwise, [SENTENCE], method="effects")
    (exact,) = explain_texts(pairwise, [SENTENCE], method="exact")
    assert effects.spans == SENTENCE.split() and len(effects.spans) == 11  # not enumerated
    np.testing.assert_allclose(effects.values, exact.values, atol=1e-9)
    assert exact.values[effects.spans.index("fresh")] == pytest.approx(1.2 + 0.35)
    assert effects.additivity_error < 1e-9 and effects.base_value == 0.0
    # its cost: the empty text, the text, 11 words alone, 11 texts less a word, in one call;
    # "and" alone is scored once
    assert pairwise.calls[0] == 2 + 2 * 11 - 1


def test_effects_are_exact_for_a_pure_three_way_interaction() -> None:
    three_way = WordGame({("fresh", "strong", "tea"): 2.4, ("box",): -0.5})
    (effects,) = explain_texts(three_way, [SENTENCE], method="effects")
    (exact,) = explain_texts(three_way, [SENTENCE], method="exact")
    np.testing.assert_allclose(effects.values, exact.values, atol=1e-9)
    for word in ("fresh", "strong", "tea"):
        assert effects.values[effects.spans.index(word)] == pytest.approx(0.8)
    assert effects.values[effects.spans.index("box")] == pytest.approx(-0.5)
    # a 4-way interaction is beyond it: values still add up, but are no longer exact
    four_way = WordGame({("fresh", "strong", "tea", "late"): 2.0, ("but", "box"): 1.0})
    (approx,) = explain_texts(four_way, [SENTENCE], method="effects")
    assert approx.additivity_error < 1e-9
    assert approx.output == pytest.approx(3.0) and approx.base_value == 0.0


def test_effect_values_share_the_gap_by_interaction() -> None:
    # means 1, 0.5, 2.5 leave a gap of 1 to 5 - 0, shared by the two players that interact
    values = effect_values(np.array([1.0, 0.0, 2.0]), np.array([1.0, 1.0, 3.0]), 5.0, 0.0)
    np.testing.assert_allclose(values, [1.0, 1.0, 3.0])
    # rows at once; equal shares when no player interacts
    rows = effect_values(np.ones((2, 2)), np.ones((2, 2)), np.array([2.0, 3.0]), 0.0)
    np.testing.assert_allclose(rows, [[1.0, 1.0], [1.5, 1.5]])
    with pytest.raises(ValueError, match="one shape"):
        effect_values(np.ones(2), np.ones(3), 1.0, 0.0)


def test_small_games_are_enumerated_under_effects() -> None:
    three = WordGame({("a", "b", "c"): 1.0, ("a",): 0.5, ("b", "c"): -0.4})
    (result,) = explain_texts(three, ["a b c"], method="effects")
    np.testing.assert_allclose(result.values, [0.5 + 1 / 3, 1 / 3 - 0.2, 1 / 3 - 0.2])
    assert three.calls == [8]  # every coalition (2^3) costs no more than the effects' 8
    for words, calls in (("a b c d", 2 + 2 * 4), ("a b c d e", 2 + 2 * 5)):
        game = WordGame({("a",): 1.0})
        explain_texts(game, [words], method="effects")
        assert game.calls == [calls]  # effects, not 2^4 or 2^5 coalitions


def test_long_games_blend_the_effects_with_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    import models.text_attribution as attribution

    words = " ".join(f"w{i}" for i in range(14))  # 14 spans >= BLEND_MIN_SPANS
    game = WordGame({("w1", "w2", "w3"): 1.0, ("w1", "w4", "w5"): -0.6, ("w2",): 0.3})
    (blended,) = explain_texts(game, [words], n_pairs=2, seed=1)  # the default method
    # the effects in one call, then the pairs: the empty text, then the text and its chains
    assert len(game.calls) == 3 and game.calls[0] == 2 + 2 * 14
    (pairs,) = explain_texts(game, [words], n_pairs=2, method="antithetic", seed=1)
    monkeypatch.setattr(attribution, "BLEND_MIN_SPANS", 99)
    (effects,) = explain_texts(game, [words], n_pairs=2, seed=1)
    weight = attribution.EFFECTS_AS_PAIRS
    expected = (weight * effects.values + 2 * pairs.values) / (weight + 2)
    np.testing.assert_allclose(blended.values, expected, atol=1e-12)
    assert blended.additivity_error < 1e-9
    assert not np.allclose(effects.values, pairs.values)  # two estimates, truly blended


def test_split_spans_groups_consecutive_words() -> None:
    words = [f"w{i}" for i in range(40)]
    spans = split_spans("<p>" + "  ".join(words) + "</p>", max_groups=16)
    assert len(spans) == 16 and " ".join(spans) == " ".join(words)
    assert {len(s.split()) for s in spans} == {2, 3}
    assert split_spans("good tea", max_groups=16) == ["good", "tea"]
    assert split_spans(None) == []
    with pytest.raises(ValueError, match="max_groups"):
        split_spans("a b", max_groups=0)


def test_span_ends_snap_to_nearby_punctuation() -> None:
    text = "we loved it. but the box was crushed, so we sent it back"
    # 13 words in 3 spans: even cuts before words 4 and 9 move to after "it." and "crushed,"
    assert split_spans(text, max_groups=3) == [
        "we loved it.",
        "but the box was crushed,",
        "so we sent it back",
    ]
    words = "one two three four five six seven eight".split()
    assert split_spans(" ".join(words), max_groups=4) == [
        "one two",
        "three four",
        "five six",
        "seven eight",
    ]


def test_spans_for_budget_keeps_tokens_per_pair_near_the_budget() -> None:
    assert spans_for_budget(128, 640, 16) == 5  # 128 tokens x 5 spans = 640
    assert spans_for_budget(20, 640, 16) == 16  # a sentence keeps every word
    assert spans_for_budget(512, 640, 16) == 2  # never fewer than 2
    with pytest.raises(ValueError, match="token_budget"):
        spans_for_budget(10, 0, 16)


def test_token_budget_gives_long_texts_fewer_spans(bert: FittedTextModel, tfidf) -> None:
    short = "great tea"
    long = " ".join(["the coffee box arrived with my tea"] * 6)  # 42 words, cut at 32 tokens
    assert list(bert.token_counts([short, long])) == [4, 32]  # [CLS] great tea [SEP]; max_length
    results = explain_texts(bert, [short, long], n_pairs=1, token_budget=96)
    assert [len(r.spans) for r in results] == [2, 3]  # 96 // 4 capped at the 2 words; 96 // 32
    assert max(r.additivity_error for r in results) < 1e-5
    more_pairs = explain_texts(bert, [long], n_pairs=3, token_budget=96)
    assert more_pairs[0].spans == results[1].spans  # the budget is per pair: same spans
    # TF-IDF has no token counts (it costs microseconds): the budget does not coarsen it
    assert len(explain_text(tfidf, long, token_budget=96).spans) == 16


def test_span_fidelity_compares_each_text_on_its_own_spans() -> None:
    # Two spans in reverse order: rank correlation -1. Padded with the 4-span text's width,
    # the shared zeros would have made it positive.
    figures = span_fidelity(
        [np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.2, 0.1])],
        [np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.1, 0.2])],
    )
    assert figures["spearman"] == pytest.approx(0.0)  # mean of 1 and -1
    assert figures["max_abs_error"] == pytest.approx(0.1 / 0.3) and figures["rows"] == 2
    with pytest.raises(ValueError, match="as many references"):
        span_fidelity([np.ones(2)], [])


def test_same_game_reference_keeps_the_explained_spans(bert: FittedTextModel) -> None:
    long = " ".join(["the coffee box arrived with my tea"] * 6)
    (budgeted,) = explain_texts(bert, [long], n_pairs=1, token_budget=96)
    exact = same_game_reference(bert, long, budgeted.spans, exact=True)
    assert len(exact) == len(budgeted.spans) == 3  # not the 16 spans max_groups allows
    assert abs(budgeted.base_value + exact.sum() - budgeted.output) < 1e-5
    with pytest.raises(ValueError, match="does not split"):
        same_game_reference(bert, long, ["the coffee"], exact=True)


@pytest.mark.parametrize("which", ["tfidf", "bert"])
def test_attributions_add_up_and_find_the_sentiment_word(which: str, request) -> None:
    model = request.getfixturevalue(which)
    # the tiny BERT learns "no positive word -> other", so a positive word is what it must find
    text = "the coffee box arrived with my tea and it was delicious for the kids"
    result = explain_text(model, text, n_pairs=2, seed=0)
    assert result.spans == text.split()  # 14 words <= 16 groups: one word per span
    assert result.additivity_error < 1e-5
    assert abs(result.base_value + result.values.sum() - result.output) < 1e-5
    np.testing.assert_allclose(result.output, model.predict_texts([text], output="logit")[0])
    np.testing.assert_allclose(result.base_value, model.predict_texts([""], output="logit")[0])
    assert result.spans[int(np.argmax(np.abs(result.values)))] == "delicious"
    assert result.values[result.spans.index("delicious")] < -1.0  # pushes away from "other"


def test_many_texts_share_one_batched_predict_call(bert: FittedTextModel) -> None:
    texts, _ = make_corpus(6, seed=12)
    texts += ["great tea", "", "awful coffee box"]
    counting = CountingModel(bert)
    batched = explain_texts(counting, texts, n_pairs=2, seed=3, method="auto")
    # one call for the empty-text baseline, one for every masked text of every text
    assert len(counting.calls) == 2 and counting.calls[0] == 1
    assert max(r.additivity_error for r in batched) < 1e-5
    assert batched[7].spans == [] and batched[7].values.shape == (0,)
    # the default (effects): one call for every masked text, the empty one among them, and
    # for the games of 12 spans or more, their pairs (the empty text, then the chains)
    counting.calls.clear()
    effects = explain_texts(counting, texts)
    assert any(len(s) >= 12 for s in (r.spans for r in effects))
    assert len(counting.calls) == 3 and max(r.additivity_error for r in effects) < 1e-5
    # games of <= 3 spans are solved exactly, so batching must not change them
    for i in (6, 8):
        np.testing.assert_allclose(effects[i].values, batched[i].values, atol=1e-6)
        # (the wrapper hides `native_bf16`: float32 throughout, as here)
        alone = explain_text(bert, texts[i], n_pairs=2, seed=3, method="auto", bf16_masks=False)
        np.testing.assert_allclose(batched[i].values, alone.values, atol=1e-6)
        assert batched[i].spans == alone.spans


def test_long_text_cost_is_bounded_by_max_groups(tfidf: FittedTfidfModel) -> None:
    text = " ".join(["the food box"] * 100 + ["awful"])
    counting = CountingModel(tfidf)
    result = explain_text(counting, text, max_groups=8, n_pairs=2, method="auto")
    assert len(result.spans) == 8 and result.additivity_error < 1e-5
    assert sum(counting.calls) <= 1 + 1 + 2 * 2 * (8 - 1)  # baseline + text + chain steps
    assert int(np.argmax(result.values)) == 7  # the last span holds "awful"


def test_multiclass_explains_the_predicted_class() -> None:
    texts, y = make_corpus(300, seed=13)
    y = y.where(~pd.Series(texts).str.contains("love"), "fan")
    target = TargetEncoder.fit(y, task="multiclass")
    model = fit_tfidf_logreg(texts, target.encode(y), target, seed=0)
    text = "my dog and kids love this snack"
    result = explain_text(model, text)
    logits = model.predict_texts([text], output="logit")[0]
    assert result.explained_class == int(np.argmax(logits)) == target.classes.index("fan")
    np.testing.assert_allclose(result.output, log_softmax(logits)[result.explained_class])
    assert result.additivity_error < 1e-9
    assert result.spans[int(np.argmax(result.values))] == "love"
    forced = explain_text(model, text, class_index=0)
    assert forced.explained_class == 0
    with pytest.raises(ValueError, match="class_index"):
        explain_text(model, text, class_index=3)


def test_bad_options_are_refused(tfidf: FittedTfidfModel) -> None:
    with pytest.raises(ValueError, match="n_pairs"):
        explain_text(tfidf, "good tea", n_pairs=0)
    with pytest.raises(ValueError, match="positive class"):
        explain_text(tfidf, "good tea", class_index=0)


def test_tfidf_matches_sklearn_and_round_trips(tfidf: FittedTfidfModel, tmp_path: Path) -> None:
    texts, y = make_corpus(300, seed=11)
    y_idx = binary_target().encode(y)
    vectorizer = make_vectorizer()
    x = vectorizer.fit_transform(texts)
    reference = LogisticRegression(C=tfidf.c, max_iter=2000, random_state=0).fit(x, y_idx)
    probe, _ = make_corpus(40, seed=14)
    expected = reference.predict_proba(vectorizer.transform(probe))[:, 1]
    np.testing.assert_allclose(tfidf.predict_texts(probe), expected, atol=1e-9)
    assert tfidf.c in (0.3, 1.0, 3.0, 10.0, 30.0)

    folder = tfidf.save(tmp_path / "tfidf")
    loaded = FittedTfidfModel.load(folder)
    np.testing.assert_array_equal(
        loaded.predict_texts(probe, output="logit"), tfidf.predict_texts(probe, output="logit")
    )
    assert loaded.target == tfidf.target and loaded.predict_texts([]).shape == (0,)
    payload = folder / "tfidf_logreg.json"
    payload.write_text(payload.read_text().replace('"c": ', '"c": 1'))
    with pytest.raises(ArtifactError, match="sha256"):
        FittedTfidfModel.load(folder)


def test_tfidf_refuses_bad_labels() -> None:
    texts, y = make_corpus(20, seed=15)
    target = binary_target()
    with pytest.raises(ValueError, match="one label per text"):
        fit_tfidf_logreg(texts, target.encode(y)[:5], target)
    with pytest.raises(ValueError, match="every class"):
        fit_tfidf_logreg(texts, np.zeros(20, dtype=np.int64), target)
    with pytest.raises(ValueError, match="class indices"):
        fit_tfidf_logreg(texts, np.full(20, 2), target)


def test_masked_texts_in_bf16_still_add_up_to_the_float32_score(bert: FittedTextModel) -> None:
    text = "the coffee box arrived with my tea and it was delicious for the kids"
    fast = explain_text(bert, text)  # masked texts in bfloat16 where the CPU has it natively
    slow = explain_text(bert, text, bf16_masks=False)
    float32 = bert.predict_texts([text, ""], output="logit")
    np.testing.assert_allclose([fast.output, fast.base_value], float32, atol=1e-6)
    assert fast.additivity_error < 1e-5
    np.testing.assert_allclose(fast.values, slow.values, atol=0.05)
    if bert.native_bf16:  # elsewhere both are float32
        assert not np.array_equal(fast.values, slow.values)
