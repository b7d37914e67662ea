"""Typed views of a run's JSON columns: what any version wrote reads back, unknown keys survive
a read-modify-write, and null (how JSON holds NaN) reads as NaN."""

from __future__ import annotations

import math

from core.runs import PartPredictions, RunMetrics, RunOptions


def test_options_read_old_rows_and_keep_keys_they_do_not_know() -> None:
    assert RunOptions.from_dict(None) == RunOptions()
    oldest = RunOptions.from_dict({"positive_class": "bad"})  # the first version wrote this
    assert oldest.train_fraction == 1.0 and oldest.members == () and oldest.rule == "stack"
    stored = {
        "positive_class": None,
        "train_fraction": 0.5,
        "members": [3, 4],
        "rule": "mean",
        "allow_pii": ["email"],
        "subsample_seed": 2,
        "tuning": {"trials": 20},  # written by a branch this code does not know
    }
    options = RunOptions.from_dict(stored)
    assert options.members == (3, 4) and options.allow_pii == ("email",)
    assert options.subsample_seed == 2 and options.extra == {"tuning": {"trials": 20}}
    assert options.to_dict() == stored
    assert RunOptions.from_dict(options.to_dict()) == options


def test_metrics_split_values_from_their_descriptions() -> None:
    stored = {
        "accuracy": 0.75,
        "roc_auc": None,  # NaN, as JSON holds it
        "headline": "roc_auc",
        "interval": [0.5, None],
        "curves": {"roc": {"x": [0, 1], "y": [0, 1]}},
        "test_rows": 40,
        "dropped_missing_target": 2,
        "note": "from a newer branch",
    }
    metrics = RunMetrics.from_dict(stored)
    assert list(metrics.values) == ["accuracy", "roc_auc"]
    assert metrics.values["accuracy"] == 0.75 and math.isnan(metrics.values["roc_auc"])
    assert metrics.headline == "roc_auc" and metrics.test_rows == 40
    assert metrics.interval is not None and math.isnan(metrics.interval[1])
    assert metrics.extra == {"note": "from a newer branch"}
    assert metrics.figures() == {
        "accuracy": 0.75,
        "roc_auc": metrics.values["roc_auc"],
        "test_rows": 40,
        "dropped_missing_target": 2,
    }
    again = metrics.to_dict()
    assert again["note"] == "from a newer branch" and again["curves"] == stored["curves"]
    assert RunMetrics.from_dict(None) == RunMetrics()


def test_part_predictions_by_task() -> None:
    binary = PartPredictions.from_dict({"y": [0, 1], "proba": [0.2, 0.9], "money": [1.0, 2.0]})
    assert binary.prediction is None and binary.to_dict()["money"] == [1.0, 2.0]
    regression = PartPredictions.from_dict({"y": [1.5], "prediction": [1.25]})
    assert regression.proba is None and regression.to_dict() == {"y": [1.5], "prediction": [1.25]}
    assert PartPredictions.from_dict({}) == PartPredictions() and PartPredictions().y == []
