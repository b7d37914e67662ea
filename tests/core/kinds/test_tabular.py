"""The tabular kinds (FT-Transformer, LightGBM, logistic regression): the LoadedModel protocol
round trip on tiny data, and artifacts written before models had estimator ids."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.kinds.registry import get_kind
from core.kinds.tabular import candidate_values
from core.runs import LOOKUP, get_run, holdout_predictions, load_run_model
from core.training import create_run, holdout_frame
from tests.core.kinds.legacy_artifacts import write_legacy_artifact
from tests.fixtures import FEATURES, make_tabular_frame, register_frame, train


@pytest.mark.parametrize("name", ["ft-transformer", "lightgbm", "logreg"])
def test_protocol_round_trip(name: str, tmp_path) -> None:
    dataset = register_frame(make_tabular_frame(200), "tabular.csv")
    run = train(dataset.id, name)
    model = load_run_model(run.id)
    assert model.features == run.features == FEATURES
    assert (model.target.task, tuple(model.target.classes)) == ("binary", run.classes)
    rows = holdout_frame(run.id)
    proba = model.predict_frame(rows)
    np.testing.assert_allclose(proba, holdout_predictions(run.id).proba, atol=1e-6)
    logit = model.predict_frame(rows, output="logit")
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), proba, atol=1e-6)
    assert model.tabular_parts() == [model]  # scoring reads drift off it
    model.save(tmp_path / "copy")
    again = get_kind(name).load(dataclasses.replace(run, artifact_path=tmp_path / "copy"), LOOKUP)
    np.testing.assert_allclose(again.predict_frame(rows), proba, atol=1e-9)


@pytest.mark.parametrize("name", ["ft-transformer", "lightgbm", "logreg"])
def test_artifacts_written_before_estimator_ids_still_load(name: str, tmp_path) -> None:
    dataset = register_frame(make_tabular_frame(200), "tabular.csv")
    run = train(dataset.id, name)
    expected = load_run_model(run.id).predict_frame(holdout_frame(run.id))
    write_legacy_artifact(run.id, tmp_path / "old", name)  # config + manifest: "kind": name
    assert get_run(run.id).artifact_path == tmp_path / "old"
    np.testing.assert_allclose(
        load_run_model(run.id).predict_frame(holdout_frame(run.id)), expected, atol=1e-9
    )


def test_queue_time_checks_keep_numeric_and_categorical_columns() -> None:
    frame = make_tabular_frame(100)
    frame["note"] = [f"free text number {i} about the customer" for i in range(len(frame))]
    dataset = register_frame(frame, "with_text.csv")
    run = train(dataset.id, "logreg", features=[*FEATURES, "note"])
    assert run.features == FEATURES and run.size is None
    with pytest.raises(ValueError, match="at least one numeric or categorical feature"):
        create_run(dataset.id, "ft-transformer", features=["note"])
    assert get_run(create_run(dataset.id, "ft-transformer")).size == "small"  # its default


def test_candidate_values_are_training_values() -> None:
    dataset = register_frame(make_tabular_frame(200), "tabular.csv")
    model = load_run_model(train(dataset.id, "lightgbm").id)
    cands = candidate_values(model, ["age", "region"])
    assert set(cands.values) == {"age", "region"} and cands.numeric == {"age"}
    assert set(cands.values["region"]) == {"north", "south", "east", "west"}
    ages = cands.values["age"]
    assert ages == sorted(ages) and 20 <= ages[0] and ages[-1] < 70
    assert all(float(a).is_integer() for a in ages)  # whole numbers stay whole
