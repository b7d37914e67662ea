"""Equal-budget tuning (models/tuning.py) through the real fit path, on tiny seeded data."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from models.preprocessing import FeatureSpec
from models.tabular import FittedTabularModel, fit_tabular
from models.tasks import TargetEncoder
from models.training_loop import warm_up_optimizer
from models.tuning import (
    MIN_TUNING_BUDGET_S,
    BudgetTooSmall,
    Candidate,
    lightgbm_space,
    linear_space,
    tune,
)
from tests.models.test_ft_transformer import SPEC, make_toy


def _imbalanced(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """About 6% positives that x1 and c1 predict."""
    rng = np.random.default_rng(seed)
    frame, _ = make_toy(n, seed)
    logit = 2.0 * frame["x1"].to_numpy() + 1.5 * frame["c1"].isin(["a"]).to_numpy() - 4.0
    y = np.where(rng.uniform(size=n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return frame, pd.Series(y, name="y")


def _fit(kind: str, train, y_train, val, y_val, target, **options):
    return fit_tabular(
        kind,
        train_df=train,
        y_train=y_train,
        val_df=val,
        y_val=y_val,
        spec=options.pop("spec", SPEC),
        target=target,
        **options,
    )


def test_tuning_stays_within_its_budget_and_records_what_it_spent() -> None:
    train, y_train = make_toy(300, seed=1)
    val, y_val = make_toy(150, seed=2)
    target = TargetEncoder.fit(y_train, positive="yes")
    budget = 4.0
    warm_up_optimizer()  # a process's first AdamW imports torch's compiler: not tuning time
    started = time.perf_counter()
    reports = []
    result = _fit(
        "ft_transformer",
        train,
        y_train,
        val,
        y_val,
        target,
        size="tiny",
        time_budget_s=budget,
        tune=True,
        on_epoch=reports.append,
    )
    elapsed = time.perf_counter() - started
    report = result.tuning
    # Progress names each evaluation's trial (the Train page breaks its chart there): the
    # defaults are trial 0, later trials follow in order, evaluations are counted across all.
    trials = [r.trial for r in reports]
    assert trials[0] == 0 and trials == sorted(trials)
    assert 1 <= len(set(trials)) <= report["trials"]
    assert [r.epoch for r in reports] == list(range(1, len(reports) + 1))
    # Time is checked between optimiser steps and before each trial: a step, an evaluation
    # and the building of one model may run past it.
    assert report["seconds_used"] <= budget + 1.5
    assert elapsed <= budget + 3.0
    assert report["budget_s"] == budget and report["family"] == "ft_transformer"
    assert report["trials"] == report["completed"] + report["pruned"] + report["failed"] >= 1
    assert report["completed"] >= 1 and report["metric"] == "roc_auc"
    assert report["best_trial"] is not None and math.isfinite(report["best_value"])
    assert set(report["best_params"]) >= {"lr", "weight_decay", "d_block", "class_weight"}
    # The model kept is the best trial's: its validation score is the recorded best.
    assert result.loop.best_val_metric == pytest.approx(report["best_value"])
    # Rows seen count every trial (the run's training rows/s is per second of tuning).
    # (batches of 32 rows or more: 300 rows make 9 full batches and one of 12, 30 a step)
    assert result.loop.rows_seen >= result.loop.steps * 30


def test_every_family_tunes_with_the_same_rule_and_defaults_first() -> None:
    train, y_train = make_toy(300, seed=1)
    val, y_val = make_toy(150, seed=2)
    target = TargetEncoder.fit(y_train, positive="yes")
    for kind in ("gbdt", "linear"):
        result = _fit(
            kind, train, y_train, val, y_val, target, time_budget_s=30, tune=True, max_trials=5
        )
        report = result.tuning
        assert report["max_trials"] == 5 and report["trials"] == 5, report
        assert report["stopped_by"] == "trials"
        assert report["seconds_used"] < 30
        # Trial 0 is the default settings, so the best is at least as good on validation.
        untuned = _fit(kind, train, y_train, val, y_val, target, time_budget_s=30)
        z_val = untuned.model.preprocessor.encode(val)
        default_auc = _auc(target.encode(y_val), untuned.model.predict_encoded(z_val))
        assert report["best_value"] >= default_auc - 1e-9


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from models.metrics import classification_metrics

    return classification_metrics("binary", y, p)["roc_auc"]


def test_a_failing_trial_is_recorded_and_skipped() -> None:
    calls = []

    def fit(params, seconds, reporter) -> Candidate:
        calls.append(params["C"])
        if len(calls) == 2:
            raise FloatingPointError("training diverged: the loss is nan")
        if len(calls) == 3:
            raise MemoryError("out of memory")
        if len(calls) == 4:
            return Candidate(float("nan"), None)
        return Candidate(-abs(math.log10(params["C"])), params["C"])

    best, report = tune(
        "linear",
        space=lambda trial: linear_space(trial, classification=False),
        fit=fit,
        defaults={"C": 1.0},
        time_budget_s=30,
        metric="roc_auc",
        max_trials=6,
    )
    assert (report.completed, report.failed, report.pruned) == (3, 3, 0)
    assert report.failures[0].startswith("trial 1: FloatingPointError: training diverged")
    assert "MemoryError: out of memory" in report.failures[1]
    assert "the validation roc_auc is nan" in report.failures[2]
    assert best.model == 1.0 and report.best_trial == 0  # the defaults: C = 1 scores 0
    assert report.to_dict()["trials"] == 6


def test_every_trial_failing_fails_with_the_first_error() -> None:
    def fit(params, seconds, reporter) -> Candidate:
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(ValueError, match="every tuning trial.*CUDA out of memory"):
        tune(
            "linear",
            space=lambda trial: linear_space(trial, classification=False),
            fit=fit,
            defaults={"C": 1.0},
            time_budget_s=30,
            metric="rmse",
            max_trials=3,
        )


def test_a_budget_too_small_states_the_minimum() -> None:
    train, y_train = make_toy(300, seed=1)
    val, y_val = make_toy(150, seed=2)
    target = TargetEncoder.fit(y_train, positive="yes")
    with pytest.raises(ValueError, match=rf"give at least {MIN_TUNING_BUDGET_S:g} s"):
        _fit("linear", train, y_train, val, y_val, target, time_budget_s=0.2, tune=True)
    # Enough for tuning in general, but the default trial's share (a quarter) does not fit
    # one epoch of the paper's 3-block model on 3,000 rows: the message says what would.
    big, y_big = make_toy(3000, seed=3)
    with pytest.raises(BudgetTooSmall, match=r"too small to tune.*give at least (\d+) s") as info:
        _fit(
            "ft_transformer",
            big,
            y_big,
            val,
            y_val,
            target,
            size="default",
            time_budget_s=1.0,
            tune=True,
        )
    assert info.value.needed_s > 1.0


def test_regression_is_trained_scaled_and_predicted_in_original_units() -> None:
    train, _ = make_toy(400, seed=1)
    val, _ = make_toy(150, seed=2)
    test, _ = make_toy(200, seed=3)
    rng = np.random.default_rng(0)

    def truth(frame: pd.DataFrame) -> pd.Series:
        noise = rng.normal(0, 5, len(frame))
        return pd.Series(1000 + 50 * frame["x1"] + 30 * frame["c1"].isin(["a", "b"]) + noise)

    y_train, y_val, y_test = truth(train), truth(val), truth(test)
    target = TargetEncoder.fit(y_train, task="regression")
    assert target.mean == pytest.approx(y_train.mean()) and target.std > 1
    assert abs(float(target.encode(y_train).mean())) < 1e-5  # trained on the scaled target
    result = _fit(
        "ft_transformer", train, y_train, val, y_val, target, size="tiny", time_budget_s=None
    )  # no wall clock: early stopping ends it, whatever the machine's load
    pred = result.model.predict_frame(test)
    rmse = float(np.sqrt(np.mean((pred - y_test) ** 2)))
    mean_rmse = float(np.sqrt(np.mean((y_train.mean() - y_test) ** 2)))
    assert abs(pred.mean() - y_test.mean()) < 15  # original units, not the scaled target
    assert rmse < 0.5 * mean_rmse, (rmse, mean_rmse)
    assert result.loop.stopped_by == "early_stop"
    assert result.loop.steps >= 400  # small data still gets its minimum number of steps


def test_class_weight_choice_is_tuned_and_recorded() -> None:
    train, y_train = _imbalanced(600, seed=1)
    val, y_val = _imbalanced(400, seed=2)
    target = TargetEncoder.fit(y_train, positive="yes")
    assert (target.encode(y_train) == 1).mean() < 0.15
    result = _fit(
        "linear", train, y_train, val, y_val, target, time_budget_s=30, tune=True, max_trials=12
    )
    params = result.tuning["best_params"]
    assert params["class_weight"] in ("none", "balanced") and params["C"] > 0
    only_defaults = _fit(
        "linear", train, y_train, val, y_val, target, time_budget_s=30, tune=True, max_trials=1
    )
    assert only_defaults.tuning["best_params"] == {"C": 1.0, "class_weight": "none"}
    weighted = fit_tabular_linear(train, y_train, val, y_val, target, "balanced")
    unweighted = fit_tabular_linear(train, y_train, val, y_val, target, "none")
    z = weighted.preprocessor.encode(val)
    positives = target.encode(y_val) == 1
    # Balanced weights raise the predicted risk of the rare class.
    assert (
        weighted.predict_encoded(z)[positives].mean()
        > unweighted.predict_encoded(z)[positives].mean() + 0.05
    )


def fit_tabular_linear(train, y_train, val, y_val, target, class_weight: str) -> FittedTabularModel:
    from models.baselines import LinearModel
    from models.preprocessing import TabularPreprocessor

    pre = TabularPreprocessor().fit(train, SPEC)
    estimator = LinearModel.fit(
        pre.encode(train),
        target.encode(y_train),
        task="binary",
        n_numeric=len(SPEC.numeric),
        cat_cardinalities=pre.cat_cardinalities,
        class_weight=class_weight,
    )
    return FittedTabularModel("linear", None, SPEC, target, pre, estimator)


def test_ft_class_weights_and_tuned_architecture_survive_save_and_load(tmp_path) -> None:
    train, y_train = _imbalanced(400, seed=1)
    val, y_val = _imbalanced(200, seed=2)
    target = TargetEncoder.fit(y_train, positive="yes")
    result = _fit(
        "ft_transformer",
        train,
        y_train,
        val,
        y_val,
        target,
        size="tiny",
        time_budget_s=6,
        tune=True,
        max_trials=4,
    )
    assert result.tuning["best_params"]["class_weight"] in ("none", "balanced")
    model = result.model
    model.save(tmp_path / "m")
    loaded = FittedTabularModel.load(tmp_path / "m")
    assert loaded.architecture == model.architecture
    np.testing.assert_allclose(loaded.predict_frame(val), model.predict_frame(val), rtol=1e-6)


def _tune_lightgbm_on_toy(**options):
    """LightGBM tuned (60 s) on the toy data: 300 training rows, 150 validation rows."""
    train, y_train = make_toy(300, seed=1)
    val, y_val = make_toy(150, seed=2)
    target = TargetEncoder.fit(y_train, positive="yes")
    return _fit("gbdt", train, y_train, val, y_val, target, time_budget_s=60, tune=True, **options)


def test_lightgbm_tuning_is_deterministic_given_the_seed() -> None:
    runs = [_tune_lightgbm_on_toy(max_trials=6, seed=seed) for seed in (3, 3, 4)]
    first, second, other = runs
    val, _ = make_toy(150, seed=2)  # the helper's validation rows
    assert first.tuning["best_params"] == second.tuning["best_params"]
    assert first.tuning["best_value"] == second.tuning["best_value"]
    np.testing.assert_array_equal(first.model.predict_frame(val), second.model.predict_frame(val))
    assert first.tuning["seed"] == 3 and other.tuning["seed"] == 4
    assert other.tuning["best_params"] != first.tuning["best_params"] or (
        other.tuning["best_trial"] == first.tuning["best_trial"] == 0
    )


def test_multiclass_tuning_scores_accuracy() -> None:
    train, _ = make_toy(240, seed=1)
    val, _ = make_toy(120, seed=2)
    spec = FeatureSpec(numeric=("x1", "x2"), categorical=("c2",))
    target = TargetEncoder.fit(train["c1"])
    result = _fit(
        "gbdt",
        train,
        train["c1"],
        val,
        val["c1"],
        target,
        spec=spec,
        time_budget_s=20,
        tune=True,
        max_trials=3,
    )
    assert result.tuning["metric"] == "accuracy"
    assert 0 <= result.tuning["best_value"] <= 1


def test_lightgbm_searches_categorical_splits_only_where_a_table_has_categories() -> None:
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    with_categories = lightgbm_space(study.ask(), classification=True, categorical=True)
    numeric_only = lightgbm_space(study.ask(), classification=True, categorical=False)
    knobs = {"min_data_per_group", "cat_smooth"}
    assert knobs <= set(with_categories)
    assert not knobs & set(numeric_only)
    assert set(with_categories) - knobs == set(numeric_only)
    # fit_tabular passes the table's shape: every trial on numeric columns leaves them out
    numeric = FeatureSpec(numeric=("x1", "x2"))
    for spec, searched in ((numeric, False), (SPEC, True)):
        fitted = _tune_lightgbm_on_toy(spec=spec, max_trials=4, seed=0)
        assert fitted.tuning["completed"] >= 2
        assert (knobs <= set(fitted.tuning["best_params"])) is searched
