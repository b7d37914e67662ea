"""core/stacking.py: the text + TF-IDF stack is offered only when it wins on validation rows,
cross-validated so its own fit does not flatter it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.runs import validation_predictions
from core.stacking import cross_validated_stack_auc, queue_suggested_stack, suggest_text_stack
from core.training import execute_run
from tests.fixtures import register_frame, train


def make_two_text_frame(n_rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """Two review columns, each carrying half of the signal: a model reading one of them
    misses what the other says, so a stack of a model per column beats both."""
    from tests.models.test_text_classifier import FILLER, NEGATIVE, POSITIVE

    rng = np.random.default_rng(seed)
    tone = rng.normal(0, 1, (n_rows, 2))
    columns = []
    for j in range(2):
        texts = []
        for t in tone[:, j]:
            words = list(rng.choice(FILLER, 5))
            words.insert(int(rng.integers(0, 6)), rng.choice(NEGATIVE if t > 0 else POSITIVE))
            texts.append(" ".join(words))
        columns.append(texts)
    bad = rng.random(n_rows) < 1 / (1 + np.exp(-2.5 * tone.sum(axis=1)))
    return pd.DataFrame(
        {"opening": columns[0], "closing": columns[1], "outcome": np.where(bad, "bad", "good")}
    )


def use_pretrained_tiny_bert(folder, monkeypatch) -> None:
    """PAYOFF_TEXT_MODEL -> a tiny "pretrained" encoder that already knows the sentiment words
    (a random one would learn little at the real fine-tuning learning rate)."""
    from tests.models.test_text_classifier import fit_tiny_text_model, make_tiny_bert

    tuned = fit_tiny_text_model(make_tiny_bert(folder / "random"), time_budget_s=60).model
    tuned.model.encoder.save_pretrained(folder / "pretrained")  # the mean-pooled head is new
    tuned.tokenizer.save_pretrained(folder / "pretrained")
    monkeypatch.setenv("PAYOFF_TEXT_MODEL", str(folder / "pretrained"))


def train_text_pair(dataset_id: int):
    """A text transformer reading one column and a TF-IDF run reading the other."""
    text = train(dataset_id, "text-transformer", text_columns=["opening"], time_budget_s=60)
    tfidf = train(dataset_id, "tfidf-logreg", text_columns=["closing"])
    return text, tfidf


def test_text_and_tfidf_stack_is_suggested_when_it_wins_on_validation(
    tmp_path, monkeypatch
) -> None:
    from sklearn.metrics import roc_auc_score

    use_pretrained_tiny_bert(tmp_path, monkeypatch)
    dataset = register_frame(make_two_text_frame(), "reviews.csv")
    assert suggest_text_stack(dataset.id) is None  # no runs yet
    train(dataset.id, "tfidf-logreg", text_columns=["closing"], seed=3)  # another split
    assert suggest_text_stack(dataset.id) is None  # no text transformer
    text, tfidf = train_text_pair(dataset.id)

    suggestion = suggest_text_stack(dataset.id)
    assert suggestion is not None
    assert suggestion.member_ids == (text.id, tfidf.id) and suggestion.target == "outcome"
    stored = [validation_predictions(i) for i in suggestion.member_ids]
    alone = [roc_auc_score(p.y, p.proba) for p in stored if p is not None]
    np.testing.assert_allclose(suggestion.member_val_auc, alone, atol=1e-9)
    assert suggestion.stack_val_auc > max(alone) and suggestion.gain > 0
    assert f"#{text.id}" in suggestion.message and f"#{tfidf.id}" in suggestion.message

    stack = execute_run(queue_suggested_stack(suggestion))
    assert stack.status == "succeeded", stack.error
    assert suggest_text_stack(dataset.id) is None  # offered once: it exists now
    # the stack is also the better model on the test rows, which it never saw
    auc = {r.id: r.metrics.values["roc_auc"] for r in (text, tfidf, stack)}
    assert auc[stack.id] > max(auc[text.id], auc[tfidf.id]), auc


def test_cross_validated_stack_auc_is_not_flattered_by_its_own_fit() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    noise = rng.normal(0, 1, (200, 2))  # members that know nothing
    assert cross_validated_stack_auc(noise, y) < 0.6
    with pytest.raises(ValueError, match="fewer than 2"):
        cross_validated_stack_auc(noise[:5], np.array([0, 0, 0, 0, 1]))
