"""The ensemble kind: members checked at queue time, the LoadedModel protocol over its
members, and artifacts written before models had estimator ids."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.kinds.registry import family_of, get_kind
from core.runs import LOOKUP, get_run, holdout_predictions, load_run_model
from core.training import create_run, execute_run, holdout_frame
from tests.core.kinds.legacy_artifacts import write_legacy_artifact
from tests.fixtures import make_tabular_frame, register_frame, train


@pytest.fixture()
def members():
    dataset = register_frame(make_tabular_frame(240), "tabular.csv")
    return dataset, train(dataset.id, "logreg"), train(dataset.id, "lightgbm")


def test_protocol_round_trip_and_old_artifacts(members, tmp_path) -> None:
    dataset, linear, trees = members
    run = execute_run(create_run(dataset.id, "ensemble", members=[linear.id, trees.id]))
    assert run.status == "succeeded", run.error
    assert run.label == f"#{run.id} Ensemble (stack: #{linear.id} + #{trees.id})"
    assert family_of(run, LOOKUP) == "other"  # no transformer among its members
    model = load_run_model(run.id)
    assert set(model.features) == set(run.features)
    assert len(model.tabular_parts()) == 2  # each member's tabular model
    rows = holdout_frame(run.id)
    proba = model.predict_frame(rows)
    np.testing.assert_allclose(proba, holdout_predictions(run.id).proba, atol=1e-6)
    model.save(tmp_path / "copy")
    again = get_kind("ensemble").load(
        dataclasses.replace(run, artifact_path=tmp_path / "copy"), LOOKUP
    )
    np.testing.assert_allclose(again.predict_frame(rows), proba, atol=1e-9)
    for member in (linear, trees):  # artifacts written the old way, members and combiner
        write_legacy_artifact(member.id, tmp_path / f"old-{member.id}", member.model)
    write_legacy_artifact(run.id, tmp_path / "old", "ensemble")
    np.testing.assert_allclose(load_run_model(run.id).predict_frame(rows), proba, atol=1e-9)


def test_members_are_checked_when_queued(members) -> None:
    dataset, linear, trees = members
    with pytest.raises(ValueError, match="at least two different runs"):
        create_run(dataset.id, "ensemble", members=[linear.id, linear.id])
    with pytest.raises(ValueError, match="rule must be one of mean, stack"):
        create_run(dataset.id, "ensemble", members=[linear.id, trees.id], rule="vote")
    other = register_frame(make_tabular_frame(240, seed=1), "other.csv")
    with pytest.raises(ValueError, match="another dataset"):
        create_run(other.id, "ensemble", members=[linear.id, trees.id])
    queued = get_run(create_run(dataset.id, "ensemble", members=[linear.id, trees.id]))
    assert queued.options.members == (linear.id, trees.id)
    with pytest.raises(ValueError, match="is an ensemble itself"):
        create_run(dataset.id, "ensemble", members=[queued.id, trees.id])
