"""core.text_runs: rows become texts the same way at fit and predict time; a text run fits,
saves and loads (TF-IDF here: the pretrained encoder's path is tests/models/test_text_classifier)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from core.text_runs import fit_text_run, is_text_model, load_text_model, rows_to_texts, texts_of
from models.tasks import TargetEncoder

GOOD = ["great tea, love it", "delicious and fresh", "love this coffee", "great value"]
BAD = ["stale and broken", "awful taste", "arrived broken", "stale awful box"]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    good = rng.uniform(size=n) < 0.5
    review = [rng.choice(GOOD) if g else rng.choice(BAD) for g in good]
    return pd.DataFrame(
        {
            "subject": [f"order {i}" for i in range(n)],
            "review": review,
            "label": np.where(good, "good", "bad"),
        }
    )


def test_one_column_gives_its_cells_and_missing_cells_give_empty_text() -> None:
    frame = pd.DataFrame({"review": ["fine", None, "bad"]})
    assert rows_to_texts(frame, ("review",)) == ["fine", "", "bad"]


def test_several_columns_are_joined_with_their_names() -> None:
    frame = pd.DataFrame({"subject": ["Late", None], "body": ["where is it", "thanks"]})
    assert rows_to_texts(frame, ("subject", "body")) == [
        "subject: Late\nbody: where is it",
        "subject: \nbody: thanks",
    ]


def test_a_missing_text_column_is_named() -> None:
    with pytest.raises(ValueError, match="missing the text column.*body"):
        rows_to_texts(pd.DataFrame({"subject": ["x"]}), ("subject", "body"))


def test_a_tfidf_run_fits_saves_and_loads(tmp_path: Path) -> None:
    parts = {"train": _frame(80, 1), "val": _frame(40, 2)}
    target = TargetEncoder.fit(parts["train"]["label"], positive="bad")
    run = SimpleNamespace(model="tfidf-logreg", features=["review"], target="label", seed=0)
    fit = fit_text_run(run, parts, target, device="cpu", threads=1, on_epoch=None)
    assert is_text_model(fit.model) and fit.model.text_columns == ("review",)
    vocabulary = len(fit.model.model.terms)
    assert fit.loop is None and fit.params == vocabulary + 1 and fit.train_seconds > 0
    test = _frame(30, 3)
    proba = fit.model.predict_texts(texts_of(fit.model, test))
    y = target.encode(test["label"])
    assert ((proba > 0.5) == (y == 1)).mean() > 0.9  # the sentiment words decide the label
    folder = tmp_path / "run"
    fit.model.save(folder)
    loaded = load_text_model(SimpleNamespace(**vars(run), artifact_path=folder))
    assert loaded.kind == "tfidf-logreg" and loaded.target == target
    np.testing.assert_allclose(loaded.predict_texts(texts_of(loaded, test)), proba, atol=1e-12)
