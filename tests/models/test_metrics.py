"""Metrics against hand-computed values, bootstrap intervals, curves, and measurement helpers."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from models.measure import (
    PeakMemory,
    device_name,
    flops_per_row,
    matmul_flops_per_second,
    peak_rss_bytes,
    resolve_device,
)
from models.metrics import (
    HEADLINE,
    bootstrap_interval,
    classification_metrics,
    curves,
    higher_is_better,
    regression_metrics,
)

Y = np.array([0, 0, 1, 1])
P = np.array([0.1, 0.4, 0.35, 0.8])


def test_binary_metrics_match_hand_computation() -> None:
    m = classification_metrics("binary", Y, P)
    # Of the 4 (positive, negative) pairs only (0.35 vs 0.4) is ranked wrongly.
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(0.75)  # predictions 0, 0, 0, 1
    assert m["f1"] == pytest.approx(2 / 3)  # precision 1, recall 1/2
    assert m["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    expected_loss = -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4
    assert m["log_loss"] == pytest.approx(expected_loss)
    # Precision at recall 0.5 is 1 (0.8), at recall 1 it is 2/3: AP = 0.5 * 1 + 0.5 * 2/3.
    assert m["pr_auc"] == pytest.approx(0.5 + 1 / 3)


def test_one_class_split_gives_nan_auc_not_an_error() -> None:
    m = classification_metrics("binary", np.array([1, 1]), np.array([0.2, 0.9]))
    assert math.isnan(m["roc_auc"]) and m["accuracy"] == 0.5


def test_multiclass_metrics_match_hand_computation() -> None:
    y = np.array([0, 1, 2, 2])
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    m = classification_metrics("multiclass", y, proba)
    assert m["accuracy"] == pytest.approx(0.75)
    # F1 per class: 1, 2/3 (tp 1, fp 1), 2/3 (tp 1, fn 1)
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    expected = -(math.log(0.7) + math.log(0.6) + math.log(0.3) + math.log(0.8)) / 4
    assert m["log_loss"] == pytest.approx(expected)


def test_regression_metrics_match_hand_computation() -> None:
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert m["rmse"] == pytest.approx(math.sqrt(4 / 3))
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["r2"] == pytest.approx(1 - 4 / 2)


def test_headline_metrics_and_direction() -> None:
    assert HEADLINE == {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}
    assert higher_is_better("roc_auc") and not higher_is_better("rmse")
    with pytest.raises(ValueError, match="metric='bogus'"):
        higher_is_better("bogus")


def test_bootstrap_interval_brackets_the_estimate_and_skips_one_class_resamples() -> None:
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=400) < 0.3).astype(np.int64)
    p = np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.2, size=400), 0, 1)

    def auc(a: np.ndarray, b: np.ndarray) -> float:
        return classification_metrics("binary", a, b)["roc_auc"]

    low, high = bootstrap_interval(auc, y, p, n_boot=100, seed=1)
    assert low < auc(y, p) < high and high - low < 0.2
    assert bootstrap_interval(auc, y, p, n_boot=100, seed=1) == (low, high)
    tiny = bootstrap_interval(auc, np.array([0, 1]), np.array([0.2, 0.7]), n_boot=50)
    assert tiny == (1.0, 1.0)  # only resamples holding both classes count


def test_curves_are_plain_lists_with_calibration_bins() -> None:
    out = curves(Y, P)
    assert out["roc"]["fpr"][0] == 0.0 and out["roc"]["tpr"][-1] == 1.0
    assert len(out["pr"]["precision"]) == len(out["pr"]["recall"])
    cal = out["calibration"]
    assert sum(cal["count"]) == 4 and cal["count"] == [1, 1, 1, 1]
    assert cal["mean_predicted"] == pytest.approx([0.1, 0.35, 0.4, 0.8])
    assert cal["observed_rate"] == [0.0, 1.0, 0.0, 1.0]
    many = curves(np.arange(5000) % 2, np.linspace(0, 1, 5000), max_points=100)
    assert len(many["pr"]["precision"]) <= 100


# ----- measurement helpers (models/measure.py) -------------------------------------------------
def test_resolve_device() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")
    assert device_name("cpu")


def test_flops_per_row_counts_a_linear_layer() -> None:
    model = torch.nn.Linear(10, 5)
    assert flops_per_row(model, (torch.zeros(4, 10),)) == 2 * 10 * 5
    assert model.training  # mode restored


def test_peak_memory_sees_a_temporary_allocation() -> None:
    with PeakMemory() as peak:
        block = np.ones(64 * 1024 * 1024 // 8)  # 64 MiB, touched
        time.sleep(0.1)  # held for several 20 ms samples; shorter spikes can be missed
        del block
    assert peak.peak_rss_bytes - peak.start_rss_bytes > 48 * 1024 * 1024
    assert peak.peak_cuda_bytes is None
    assert peak_rss_bytes() >= peak.peak_rss_bytes * 0.5


def test_matmul_throughput_is_positive_and_restores_threads() -> None:
    before = torch.get_num_threads()
    assert matmul_flops_per_second(threads=1, n=128) > 1e6
    assert torch.get_num_threads() == before
