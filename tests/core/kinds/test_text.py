"""The text kinds (fine-tuned transformer, TF-IDF + logistic regression): the LoadedModel
protocol round trip on tiny data (a tiny BERT built by tests/models), queue-time checks, and
artifacts written before models had estimator ids."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from core.kinds.registry import get_kind
from core.kinds.text import rows_to_texts
from core.runs import LOOKUP, holdout_predictions, load_run_model
from core.training import create_run, holdout_frame
from tests.core.kinds.legacy_artifacts import write_legacy_artifact
from tests.fixtures import register_frame, train
from tests.models.test_text_classifier import make_corpus, make_tiny_bert


@pytest.fixture()
def reviews():
    texts, labels = make_corpus(200, seed=3)
    frame = pd.DataFrame({"review": texts, "stars": np.arange(200) % 5, "label": labels})
    return register_frame(frame, "reviews.csv", target="label", positive_class="other")


@pytest.fixture()
def tiny_text_model(tmp_path, monkeypatch):
    # room for the app's 128-token texts
    monkeypatch.setenv("PAYOFF_TEXT_MODEL", str(make_tiny_bert(tmp_path / "tiny_bert", 160)))


@pytest.mark.parametrize("name", ["tfidf-logreg", "text-transformer"])
def test_protocol_round_trip(name, reviews, tiny_text_model, tmp_path) -> None:
    run = train(reviews.id, name, time_budget_s=20)
    assert run.features == ("review",)  # text kinds keep the text columns only
    assert run.params is not None and run.params > 0  # learned weights are counted
    model = load_run_model(run.id)
    assert model.features == ("review",) and model.tabular_parts() == []
    assert model.target.task == "binary" and tuple(model.target.classes) == run.classes
    rows = holdout_frame(run.id)
    proba = model.predict_frame(rows)
    np.testing.assert_allclose(proba, holdout_predictions(run.id).proba, atol=1e-5)
    logit = model.predict_frame(rows, output="logit")
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), proba, atol=1e-5)
    model.save(tmp_path / "copy")
    again = get_kind(name).load(dataclasses.replace(run, artifact_path=tmp_path / "copy"), LOOKUP)
    np.testing.assert_allclose(again.predict_frame(rows), proba, atol=1e-6)
    # Old artifacts named the app's kind in their manifest: they still load.
    write_legacy_artifact(run.id, tmp_path / "old", name)
    np.testing.assert_allclose(load_run_model(run.id).predict_frame(rows), proba, atol=1e-6)


def test_text_kinds_need_a_text_column(reviews) -> None:
    with pytest.raises(ValueError, match="needs a text column"):
        create_run(reviews.id, "tfidf-logreg", features=["stars"])
    with pytest.raises(ValueError, match="ghost"):
        create_run(reviews.id, "tfidf-logreg", text_columns=["ghost"])


def test_rows_become_labelled_texts() -> None:
    frame = pd.DataFrame({"subject": ["Late", None], "body": ["box broken", "fine"]})
    assert rows_to_texts(frame, ("body",)) == ["box broken", "fine"]
    assert rows_to_texts(frame, ("subject", "body")) == [
        "subject: Late\nbody: box broken",
        "subject: \nbody: fine",
    ]
    with pytest.raises(ValueError, match="missing the text column"):
        rows_to_texts(frame, ("title",))


def test_the_transformer_explains_spans_by_effects_at_its_default(reviews, tiny_text_model) -> None:
    from core.explanations import explain_frame, text_options

    run = train(reviews.id, "text-transformer", time_budget_s=20)
    assert text_options(run) == {"n_pairs": 2, "token_budget": 512, "method": "effects"}
    assert text_options(run, 4)["method"] == "auto"  # other settings walk their pairs
    rows = holdout_frame(run.id).head(3)
    default = explain_frame(run.id, rows, fidelity_rows=1)
    assert default.quality["default_method"] and "main + total effects" in default.method
    assert default.additivity_error < 1e-5  # bf16 masks (where native), float32 ends
    np.testing.assert_allclose(
        default.output, load_run_model(run.id).predict_frame(rows, output="logit"), atol=1e-5
    )
    assert default.quality["fidelity"]["rows"] == 1
    sampled = explain_frame(run.id, rows, n_pairs=4, fidelity_rows=0)
    assert not sampled.quality["default_method"] and "antithetic pairs" in sampled.method
    # the Score page's reasons and the what-if row use the same default: the same values
    from core.explanations import explain_row, row_reasons

    model = load_run_model(run.id)
    one = explain_row(run, model, rows.head(1))
    # (batched with other rows, bfloat16 kernels may round a little differently)
    np.testing.assert_allclose(one.values, default.values[0, : len(one.values)], atol=1e-3)
    (reasons,) = row_reasons(run, model, rows.head(1), top=len(one.values), threshold=0.5)
    assert reasons.unit == "word" and reasons.reasons
    assert all(np.isclose(one.values, r.value, atol=1e-9).any() for r in reasons.reasons)
