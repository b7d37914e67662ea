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


# ---- cutoff metrics, KS, Gini, score bands, gains (hand-checked on ten rows) -------------------

# Ten rows already in score order: positives at ranks 1, 3 and 6.
HAND_Y = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0])
HAND_P = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])


def test_metrics_at_cutoff_by_hand() -> None:
    from models.metrics import metrics_at_cutoff

    # P >= 0.55 flags the top four rows: 2 true positives, 2 false positives.
    m = metrics_at_cutoff(HAND_Y, HAND_P, 0.55)
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (5, 2, 1, 2)
    assert m["confusion"] == [[5, 2], [1, 2]]
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert m["flagged_share"] == pytest.approx(0.4)
    # The rule is >=: a cutoff equal to a score flags that row.
    assert (
        metrics_at_cutoff(HAND_Y, HAND_P, 0.6)["tp"] + metrics_at_cutoff(HAND_Y, HAND_P, 0.6)["fp"]
        == 4
    )
    with pytest.raises(ValueError, match="between 0 and 1"):
        metrics_at_cutoff(HAND_Y, HAND_P, 1.5)


@pytest.mark.parametrize("cutoff", [0.0, 0.05, 0.3, 0.5, 0.77, 1.0])
def test_metrics_at_cutoff_match_scikit_learn(cutoff: float) -> None:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    from models.metrics import metrics_at_cutoff

    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.1).astype(int)
    p = np.clip(0.1 + 0.3 * y + rng.normal(0, 0.2, 500), 0, 1)
    predicted = (p >= cutoff).astype(int)
    m = metrics_at_cutoff(y, p, cutoff)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, predicted))
    assert m["precision"] == pytest.approx(precision_score(y, predicted, zero_division=0))
    assert m["recall"] == pytest.approx(recall_score(y, predicted, zero_division=0))
    assert m["f1"] == pytest.approx(f1_score(y, predicted, zero_division=0))
    assert m["flagged_share"] == pytest.approx(predicted.mean())


def test_ks_and_gini_by_hand_and_against_scipy() -> None:
    from scipy.stats import ks_2samp
    from sklearn.metrics import roc_auc_score

    from models.metrics import gini, ks_statistic

    # TPR - FPR is largest after the sixth row (score 0.4): 3/3 - 3/7 = 4/7.
    ks = ks_statistic(HAND_Y, HAND_P)
    assert ks["ks"] == pytest.approx(4 / 7)
    assert ks["at"] == pytest.approx(0.4)
    # 17 of the 21 (positive, negative) pairs are ranked right: AUC 17/21, Gini 13/21.
    assert gini(HAND_Y, HAND_P) == pytest.approx(13 / 21)
    rng = np.random.default_rng(5)
    y = (rng.random(400) < 0.2).astype(int)
    p = rng.random(400) * 0.6 + 0.3 * y
    assert ks_statistic(y, p)["ks"] == pytest.approx(ks_2samp(p[y == 1], p[y == 0]).statistic)
    assert gini(y, p) == pytest.approx(2 * roc_auc_score(y, p) - 1)
    assert np.isnan(gini(np.zeros(5, int), np.linspace(0, 1, 5)))


def test_score_bands_by_hand() -> None:
    from models.metrics import score_bands

    bands = score_bands(HAND_Y, HAND_P, n_bands=5)
    assert [b["rows"] for b in bands] == [2] * 5
    assert [b["positives"] for b in bands] == [1, 1, 1, 0, 0]
    assert [b["positive_rate"] for b in bands] == pytest.approx([0.5, 0.5, 0.5, 0, 0])
    assert [b["capture"] for b in bands] == pytest.approx([1 / 3, 2 / 3, 1, 1, 1])
    assert bands[0]["lift"] == pytest.approx(0.5 / 0.3)
    assert [b["cum_lift"] for b in bands] == pytest.approx([5 / 3, 5 / 3, 5 / 3, 1.25, 1.0])
    assert (bands[0]["max_score"], bands[0]["min_score"]) == (0.9, 0.8)
    deciles = score_bands(HAND_Y, HAND_P)
    assert len(deciles) == 10 and sum(b["rows"] for b in deciles) == 10
    # Uneven counts differ by one row at most and still cover every row.
    uneven = score_bands(np.r_[HAND_Y, 1, 0, 0], np.r_[HAND_P, 0.95, 0.01, 0.02], n_bands=5)
    assert sorted({b["rows"] for b in uneven}) == [2, 3] and sum(b["rows"] for b in uneven) == 13


def test_gains_curve_by_hand_with_ties() -> None:
    from models.metrics import gains_curve

    gains = gains_curve(HAND_Y, HAND_P)
    assert gains["x"] == pytest.approx([0.0, *np.arange(1, 11) / 10])
    found = [1, 1, 2, 2, 2, 3, 3, 3, 3, 3]
    assert gains["gain"] == pytest.approx([0.0, *(np.array(found) / 3)])
    assert gains["lift"][1] == pytest.approx((1 / 3) / 0.1)
    assert gains["lift"][-1] == pytest.approx(1.0)
    # Tied scores are taken together: one point for the two rows at 0.5.
    tied = gains_curve(np.array([1, 0, 1, 0]), np.array([0.9, 0.5, 0.5, 0.1]))
    assert tied["x"] == pytest.approx([0.0, 0.25, 0.75, 1.0])
    assert tied["gain"] == pytest.approx([0.0, 0.5, 1.0, 1.0])
