"""Ensemble runs, including the mixed-rows stack of a text model and a tabular model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.explanations import explain_frame
from core.runs import get_run
from core.scoring import score_source
from core.training import create_run, execute_run, holdout_frame, load_run_model, predict_frame
from tests.fixtures import register_frame, train

WORDS_BAD = ["broken", "late", "refund", "awful", "damaged"]
WORDS_GOOD = ["great", "fast", "lovely", "perfect", "fresh"]


def make_mixed_frame(n_rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """The label depends on a numeric column AND on the words of a text column, so neither
    half alone can predict it as well as both together."""
    rng = np.random.default_rng(seed)
    spend = rng.normal(0, 1, n_rows)
    tone = rng.normal(0, 1, n_rows)
    texts = []
    for t in tone:
        pool = WORDS_BAD if t > 0 else WORDS_GOOD
        words = list(rng.choice(pool, 3)) + list(rng.choice(WORDS_BAD + WORDS_GOOD, 2))
        texts.append("the order was " + " ".join(words))
    logit = 1.5 * spend + 1.5 * tone
    bad = rng.random(n_rows) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {"spend": spend.round(3), "comment": texts, "outcome": np.where(bad, "bad", "good")}
    )


@pytest.fixture()
def mixed():
    dataset = register_frame(make_mixed_frame(), "mixed.csv")
    assert "comment" in dataset.roles.features and "spend" in dataset.roles.features
    text = train(dataset.id, "tfidf-logreg")
    tabular = train(dataset.id, "logreg")
    return dataset, text, tabular


def test_stack_of_text_and_tabular_beats_each_member(mixed) -> None:
    dataset, text, tabular = mixed
    stack = execute_run(
        create_run(dataset.id, "ensemble", members=[text.id, tabular.id], rule="stack")
    )
    assert stack.status == "succeeded", stack.error
    assert set(stack.features) == {"comment", "spend"}
    auc = {r.id: r.metrics["roc_auc"] for r in (text, tabular, stack)}
    assert auc[stack.id] > max(auc[text.id], auc[tabular.id]) + 0.02, auc
    assert stack.train_seconds >= text.train_seconds + tabular.train_seconds


def test_ensemble_scores_files_and_reloads(mixed, tmp_path) -> None:
    dataset, text, tabular = mixed
    run = execute_run(
        create_run(dataset.id, "ensemble", members=[text.id, tabular.id], rule="mean")
    )
    model = load_run_model(run.id)
    rows = holdout_frame(run.id)
    np.testing.assert_allclose(predict_frame(model, rows), run_proba(run.id), rtol=1e-9)
    path = tmp_path / "rows.csv"
    rows.drop(columns=["outcome"]).to_csv(path, index=False)
    report = score_source(run.id, path, out_path=tmp_path / "out.csv", reasons_for_rows=10)
    assert report.rows == len(rows)
    assert "probability" in pd.read_csv(tmp_path / "out.csv").columns


def run_proba(run_id: int) -> np.ndarray:
    from core.runs import holdout_predictions

    return np.asarray(holdout_predictions(run_id)["proba"])


def test_members_must_share_the_split(mixed) -> None:
    dataset, text, tabular = mixed
    other_seed = train(dataset.id, "logreg", seed=7)
    with pytest.raises(ValueError, match="same split"):
        create_run(dataset.id, "ensemble", members=[text.id, other_seed.id])
    with pytest.raises(ValueError, match="two different runs"):
        create_run(dataset.id, "ensemble", members=[text.id, text.id])
    with pytest.raises(ValueError, match="rule"):
        create_run(dataset.id, "ensemble", members=[text.id, tabular.id], rule="median")


def test_ensemble_explanations_point_to_members(mixed) -> None:
    dataset, text, tabular = mixed
    run = execute_run(create_run(dataset.id, "ensemble", members=[text.id, tabular.id]))
    with pytest.raises(ValueError, match="member runs"):
        explain_frame(run.id, holdout_frame(run.id), n_rows=3)
    assert get_run(run.id).status == "succeeded"


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
    tuned.model.save_pretrained(folder / "pretrained")
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

    from core.ensembles import suggest_text_stack
    from core.runs import validation_predictions

    use_pretrained_tiny_bert(tmp_path, monkeypatch)
    dataset = register_frame(make_two_text_frame(), "reviews.csv")
    assert suggest_text_stack(dataset.id) is None  # no runs yet
    train(dataset.id, "tfidf-logreg", text_columns=["closing"], seed=3)  # another split
    assert suggest_text_stack(dataset.id) is None  # no text transformer
    text, tfidf = train_text_pair(dataset.id)

    suggestion = suggest_text_stack(dataset.id)
    assert suggestion is not None
    assert suggestion.member_ids == (text.id, tfidf.id) and suggestion.target == "outcome"
    stored = [validation_predictions(i) or {} for i in suggestion.member_ids]
    alone = [roc_auc_score(p["y"], p["proba"]) for p in stored]
    np.testing.assert_allclose(suggestion.member_val_auc, alone, atol=1e-9)
    assert suggestion.stack_val_auc > max(alone) and suggestion.gain > 0
    assert f"#{text.id}" in suggestion.message and f"#{tfidf.id}" in suggestion.message

    stack = execute_run(
        create_run(dataset.id, "ensemble", members=list(suggestion.member_ids), rule="stack")
    )
    assert stack.status == "succeeded", stack.error
    assert suggest_text_stack(dataset.id) is None  # offered once: it exists now
    # the stack is also the better model on the test rows, which it never saw
    auc = {r.id: r.metrics["roc_auc"] for r in (text, tfidf, stack)}
    assert auc[stack.id] > max(auc[text.id], auc[tfidf.id]), auc


def test_cross_validated_stack_auc_is_not_flattered_by_its_own_fit() -> None:
    from core.ensembles import cross_validated_stack_auc

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    noise = rng.normal(0, 1, (200, 2))  # members that know nothing
    assert cross_validated_stack_auc(noise, y) < 0.6
    with pytest.raises(ValueError, match="fewer than 2"):
        cross_validated_stack_auc(noise[:5], np.array([0, 0, 0, 0, 1]))
