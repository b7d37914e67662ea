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
    auc = {r.id: r.metrics.values["roc_auc"] for r in (text, tabular, stack)}
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

    return np.asarray(holdout_predictions(run_id).proba)


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
