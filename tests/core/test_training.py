"""Training runs end to end: queue, execute, measure, store, load; cancel and failure paths.

The three tabular kinds are trained once per module (tiny data, tiny FT-Transformer) into one
ledger that the read-only tests share; tests that change state get a fresh ledger each.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from core import runs as runs_module
from core import training as training_module
from core.datasets import Roles, register_dataset, set_roles
from core.db import session_factory
from core.jobs import request_cancel
from core.records import DatasetSplitRecord
from core.runs import delete_run, get_run, list_runs
from core.settings import load_settings
from core.training import budget_summary, create_run, execute_run, load_run_model, predict_frame
from tests.fixtures import (
    POSITIVE,
    TARGET,
    csv_bytes,
    make_tabular_frame,
    payoff_home,
    register_frame,
    train,
)

TABULAR = ("logreg", "lightgbm", "ft-transformer")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One dataset, a run of each tabular kind, and a second seeded FT-Transformer run.

    No time budget for the FT-Transformer: early stopping ends it (in seconds here), so two
    runs with the same seed must agree exactly, whatever the machine's load.
    """
    home = tmp_path_factory.mktemp("training_home")
    with payoff_home(home):
        dataset = register_frame(make_tabular_frame(), money_column="amount")
        runs = {
            kind: train(
                dataset.id, kind, **({"time_budget_s": None} if kind == "ft-transformer" else {})
            )
            for kind in TABULAR
        }
        again = train(dataset.id, "ft-transformer", time_budget_s=None)
    return SimpleNamespace(home=home, dataset=dataset, runs=runs, ft_again=again)


@pytest.fixture
def shared(trained: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, _isolated_home: Path):
    monkeypatch.setenv("PAYOFF_HOME", str(trained.home))
    return trained


@pytest.fixture
def dataset():
    """A fresh ledger's dataset, for tests that queue, cancel or fail runs."""
    return register_frame(make_tabular_frame(150, seed=1), money_column="amount")


# ---- create_run -------------------------------------------------------------------------------


def test_create_run_queues_with_the_dataset_roles(dataset) -> None:
    run = get_run(create_run(dataset.id, "lightgbm", seed=3, time_budget_s=5))
    assert run.status == "queued" and run.progress == {"stage": "queued"}
    assert run.target == TARGET and run.options.positive_class == POSITIVE
    assert run.features == ("age", "income", "region")  # the money column is not a feature
    assert (run.seed, run.time_budget_s, run.size) == (3, 5, None)
    assert get_run(create_run(dataset.id, "ft-transformer")).size == "small"


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        ("xgboost", {}, "xgboost"),
        ("logreg", {"target": "no_such_column"}, "no_such_column"),
        ("logreg", {"time_budget_s": 0}, "time budget"),
        ("lightgbm", {"tune": True, "time_budget_s": None}, "Tuning needs a time budget"),
        ("logreg", {"features": ["region"], "target": "region"}, "at least one numeric"),
        ("text-transformer", {}, "needs a text column"),
        ("tfidf-logreg", {}, "needs a text column"),
        ("text-transformer", {"text_columns": ["ghost"]}, "ghost"),
    ],
)
def test_create_run_refuses_bad_choices(dataset, model: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_run(dataset.id, model, **options)
    assert list_runs() == []


def test_create_run_needs_a_target() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=50).round(4), "y": rng.normal(size=50).round(4)})
    info = register_dataset(csv_bytes(frame), "no_target.csv")
    assert info.roles.target is None
    with pytest.raises(ValueError, match="no target column"):
        create_run(info.id, "logreg")
    with pytest.raises(ValueError, match="no dataset with id 77"):
        create_run(77, "logreg")


# ---- execute_run ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TABULAR)
def test_execute_run_records_a_complete_run(shared, kind: str) -> None:
    run = get_run(shared.runs[kind].id)
    assert run.status == "succeeded" and run.error is None
    assert run.task == "binary" and run.positive_class == POSITIVE
    assert run.classes == ("good", POSITIVE)
    metrics = run.metrics
    assert metrics.test_rows == 60 and "roc_auc" in metrics.values
    assert metrics.headline == "roc_auc" and 0.6 < metrics.values["roc_auc"] <= 1.0
    assert metrics.interval is not None
    low, high = metrics.interval
    assert 0.0 <= low <= high <= 1.0
    assert run.train_seconds > 0 and run.params > 0 and run.infer_rows_per_s > 0
    assert run.device == "cpu" and run.device_name
    assert run.peak_rss_bytes > 0
    assert (run.flops_per_row is None) == (kind == "lightgbm")  # trees have no matmuls
    assert run.progress["stage"] == "done"
    if kind == "ft-transformer":
        assert run.size == "tiny" and len(run.progress["history"]) >= 1
    assert run.artifact_path.is_dir() and (run.artifact_path / "manifest.json").is_file()
    assert run.artifact_path.parent == load_settings().artifacts_dir


@pytest.mark.parametrize("kind", TABULAR)
def test_loaded_model_reproduces_the_evaluation(shared, kind: str) -> None:
    run_id = shared.runs[kind].id
    stored = runs_module.holdout_predictions(run_id)
    test = training_module.holdout_frame(run_id)
    assert len(stored.proba) == len(stored.y) == len(stored.money) == len(test) == 60
    assert stored.money == test["amount"].tolist()
    fresh = predict_frame(load_run_model(run_id), test)
    np.testing.assert_allclose(fresh, stored.proba, rtol=0, atol=1e-12)
    assert stored.y == (test[TARGET] == POSITIVE).astype(int).tolist()


def test_every_model_on_a_dataset_uses_one_stored_split(shared) -> None:
    with session_factory().begin() as session:
        splits = session.scalar(select(func.count()).select_from(DatasetSplitRecord))
    assert splits == 1
    tests = [training_module.holdout_frame(run.id) for run in shared.runs.values()]
    for other in tests[1:]:
        pd.testing.assert_frame_equal(tests[0], other)
    ys = {json.dumps(runs_module.holdout_predictions(run.id).y) for run in shared.runs.values()}
    assert len(ys) == 1


def test_seeded_ft_transformer_is_reproducible(shared) -> None:
    first = runs_module.holdout_predictions(shared.runs["ft-transformer"].id).proba
    second = runs_module.holdout_predictions(shared.ft_again.id).proba
    assert first == second
    assert len(set(np.round(first, 6))) > 1  # a real model, not a constant


def test_only_a_queued_run_can_be_started(shared) -> None:
    with pytest.raises(ValueError, match="only a queued run"):
        execute_run(shared.runs["logreg"].id)


# ---- cancel, failure, delete ------------------------------------------------------------------


def _artifact_entries() -> list[Path]:
    folder = load_settings().artifacts_dir
    return sorted(folder.iterdir()) if folder.exists() else []


def test_cancel_before_start(dataset) -> None:
    run_id = create_run(dataset.id, "logreg")
    request_cancel(run_id)
    run = execute_run(run_id)
    assert run.status == "cancelled" and run.finished_at is not None
    assert run.artifact_path is None and _artifact_entries() == []


def test_cancel_during_training_stops_after_the_epoch(dataset, monkeypatch) -> None:
    """The cancel flag is read after each epoch; the run stops without saving a model."""
    run_id = create_run(dataset.id, "ft-transformer", size="tiny", time_budget_s=30)
    real = training_module.cancel_requested
    calls = []

    def cancel_on_second_check(checked_id: int) -> bool:
        calls.append(checked_id)
        if len(calls) == 2:  # the first check is before training, the second after epoch 1
            request_cancel(checked_id)
        return real(checked_id)

    monkeypatch.setattr(training_module, "cancel_requested", cancel_on_second_check)
    run = execute_run(run_id)
    assert run.status == "cancelled"
    assert run.progress["stage"] == "cancelled" and len(run.progress["history"]) == 1
    assert run.artifact_path is None and _artifact_entries() == []


def test_a_tuned_run_records_its_budget_trials_and_time(dataset) -> None:
    run = execute_run(create_run(dataset.id, "logreg", time_budget_s=3, tune=True))
    assert run.status == "succeeded" and run.options.tune is True
    tuning = run.metrics.extra["tuning"]
    assert tuning["family"] == "linear" and tuning["budget_s"] == 3  # models' estimator id
    assert tuning["trials"] >= 1 and tuning["completed"] >= 1
    assert tuning["seconds_used"] <= 3 + 1.0  # checked between trials
    assert set(tuning["best_params"]) == {"C", "class_weight"}
    summary = budget_summary(run)
    assert summary["budget_s"] == 3 and summary["spent_s"] == run.train_seconds
    assert summary["trials"].startswith(f"{tuning['completed']} done")
    untuned = execute_run(create_run(dataset.id, "logreg", time_budget_s=3))
    assert "tuning" not in untuned.metrics.extra and not untuned.options.tune
    assert budget_summary(untuned)["trials"] == "1 (defaults)"


def test_a_tuned_run_cancelled_before_its_first_trial_ends_cancelled(dataset, monkeypatch) -> None:
    run_id = create_run(dataset.id, "lightgbm", time_budget_s=30, tune=True)
    real = training_module.cancel_requested
    calls = []

    def cancel_after_start(checked_id: int) -> bool:
        calls.append(checked_id)
        if len(calls) == 2:  # the first check is before training, the next before trial 0
            request_cancel(checked_id)
        return real(checked_id)

    monkeypatch.setattr(training_module, "cancel_requested", cancel_after_start)
    run = execute_run(run_id)
    assert run.status == "cancelled" and run.error is None
    assert run.artifact_path is None and _artifact_entries() == []


def test_a_failing_run_is_recorded_with_a_readable_error() -> None:
    # A one-class target is now refused before a run is queued (core.datasets.check_target);
    # a stored file that vanished between queueing and training still fails the run.
    info = register_frame(make_tabular_frame(100, seed=2))
    run_id = create_run(info.id, "logreg", target=TARGET)
    info.stored_path.unlink()
    run = execute_run(run_id)
    assert run.status == "failed" and run.finished_at is not None
    assert "missing" in run.error and "Traceback" not in run.error
    assert run.progress["stage"] == "failed" and "Traceback" in run.progress["trace"]
    assert run.artifact_path is None and _artifact_entries() == []
    with pytest.raises(ValueError, match="no trained model"):
        load_run_model(run.id)


def test_delete_run_removes_its_artifact_but_not_a_queued_one(dataset) -> None:
    run = train(dataset.id, "logreg")
    queued = create_run(dataset.id, "logreg")
    with pytest.raises(ValueError, match="cancel it first"):
        delete_run(queued)
    delete_run(run.id)
    assert not run.artifact_path.exists()
    assert [r.id for r in list_runs()] == [queued]


def test_features_follow_roles_changed_after_upload(dataset) -> None:
    set_roles(dataset.id, Roles(target=TARGET, positive_class=POSITIVE, features=("age",)))
    run = train(dataset.id, "logreg")
    assert run.features == ("age",)
    assert load_run_model(run.id).spec.columns == ("age",)
