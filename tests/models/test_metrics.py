"""Metrics against hand-computed values, bootstrap intervals, curves, and measurement helpers."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

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
    delong_test,
    higher_is_better,
    paired_bootstrap_test,
    paired_resamples,
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


# ---- paired tests: DeLong for ROC-AUC, a paired bootstrap otherwise ---------------------------


def test_delong_on_a_tiny_example_computed_by_hand() -> None:
    # 2 positives, 2 negatives. Model A: positives 0.9, 0.4; negatives 0.6, 0.1.
    #   psi(X, Y) = 1 if X > Y, 1/2 on a tie: 0.9 beats both (V10 = 1), 0.4 beats one (1/2);
    #   0.6 is beaten by one positive (V01 = 1/2), 0.1 by both (1). AUC_A = 3/4.
    # Model B: positives 0.8, 0.7 beat both negatives 0.3, 0.2: V10 = V01 = [1, 1], AUC_B = 1.
    # S10 = cov over positives: var_A = var(1, 1/2) = 1/8 (ddof 1), var_B = 0, cov = 0; the
    # same for S01. Var(AUC_A - AUC_B) = (1/8) / 2 + (1/8) / 2 = 1/8, SE = 0.35355;
    # z = -0.25 / 0.35355 = -0.70711, p = 2 * Phi(-0.70711) = 0.47950.
    y = np.array([1, 1, 0, 0])
    result = delong_test(y, np.array([0.9, 0.4, 0.6, 0.1]), np.array([0.8, 0.7, 0.3, 0.2]))
    assert result.method == "delong" and result.metric == "roc_auc" and result.rows == 4
    assert result.a == pytest.approx(0.75) and result.b == pytest.approx(1.0)
    assert result.difference == pytest.approx(-0.25)
    assert result.se == pytest.approx(math.sqrt(1 / 8))
    assert result.p_value == pytest.approx(0.479500, abs=1e-6)
    assert result.ci_low == pytest.approx(-0.25 - 1.959964 * math.sqrt(1 / 8), abs=1e-6)
    assert result.ci_high == pytest.approx(-0.25 + 1.959964 * math.sqrt(1 / 8), abs=1e-6)


def test_delong_counts_ties_as_half() -> None:
    # A: positive 0.5 ties negative 0.5 -> psi 1/2; other pairs: 0.9 > 0.5, 0.9 > 0.2,
    # 0.5 > 0.2, so AUC_A = (1 + 1 + 1/2 + 1) / 4 = 0.875; B ranks perfectly (AUC 1).
    # V10_A = [1, 3/4], V01_A = [3/4, 1]: variances 1/32 each, Var = 1/64 + 1/64 = 1/32.
    y = np.array([1, 1, 0, 0])
    result = delong_test(y, np.array([0.9, 0.5, 0.5, 0.2]), np.array([0.9, 0.8, 0.3, 0.2]))
    assert result.a == pytest.approx(0.875)
    assert result.se == pytest.approx(math.sqrt(1 / 32))


def _slow_delong(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """DeLong et al. (1988) straight from the definition: every positive-negative pair."""
    components = []
    for s in (a, b):
        pos, neg = s[y == 1], s[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        components.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
    (auc_a, v10_a, v01_a), (auc_b, v10_b, v01_b) = components
    s10, s01 = np.cov(np.vstack([v10_a, v10_b])), np.cov(np.vstack([v01_a, v01_b]))
    var = s10 / v10_a.size + s01 / v01_a.size
    return auc_a - auc_b, math.sqrt(var[0, 0] + var[1, 1] - 2 * var[0, 1])


def _synthetic_scores(n: int, gap: float, seed: int) -> tuple[np.ndarray, ...]:
    """Two correlated scorers of one binary target; B has ``gap`` less signal. Rounded so
    that ties occur."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    shared = rng.normal(size=n)
    a = (1.2 * y + shared + 0.6 * rng.normal(size=n)).round(1)
    b = ((1.2 - gap) * y + shared + 0.6 * rng.normal(size=n)).round(1)
    return y, a, b


def test_delong_equals_the_pairwise_definition_and_sklearn() -> None:
    y, a, b = _synthetic_scores(400, 0.3, seed=1)
    result = delong_test(y, a, b)
    diff, se = _slow_delong(y, a, b)
    assert result.a == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert result.b == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert result.difference == pytest.approx(diff, abs=1e-12)
    assert result.se == pytest.approx(se, rel=1e-9)


@pytest.mark.parametrize(("gap", "seed"), [(0.6, 2), (0.0, 3)])
def test_delong_agrees_with_a_paired_bootstrap_of_roc_auc(gap: float, seed: int) -> None:
    y, a, b = _synthetic_scores(600, gap, seed)
    result = delong_test(y, a, b)
    diffs = []
    for idx in paired_resamples(y.size, 2000, seed=7):
        for row in idx:
            if 0 < y[row].sum() < row.size:
                diffs.append(roc_auc_score(y[row], a[row]) - roc_auc_score(y[row], b[row]))
    diffs = np.asarray(diffs)
    # The bootstrap's spread of the paired difference is DeLong's standard error.
    assert diffs.std(ddof=1) == pytest.approx(result.se, rel=0.12)
    low, high = np.percentile(diffs, [2.5, 97.5])
    width = result.ci_high - result.ci_low
    assert abs(low - result.ci_low) < 0.15 * width and abs(high - result.ci_high) < 0.15 * width
    boot_p = (1 + np.sum(np.abs(diffs - diffs.mean()) >= abs(result.difference))) / (1 + diffs.size)
    if gap > 0:
        assert result.p_value < 0.01 and boot_p < 0.01 and result.ci_low > 0
    else:
        assert result.p_value > 0.05 and boot_p > 0.05 and result.ci_low < 0 < result.ci_high


def test_delong_of_one_model_against_itself_and_bad_input() -> None:
    y, a, _ = _synthetic_scores(100, 0.0, seed=4)
    same = delong_test(y, a, a)
    assert same.difference == 0.0 and same.p_value == 1.0 and same.se == 0.0
    with pytest.raises(ValueError, match="both positive and negative"):
        delong_test(np.ones(5, dtype=int), a[:5], a[:5])
    with pytest.raises(ValueError, match="same rows"):
        delong_test(y, a, a[:-1])


def test_paired_resamples_are_seeded_batched_and_paired() -> None:
    whole = np.concatenate(list(paired_resamples(50, 300, seed=3)))
    assert whole.shape == (300, 50) and whole.min() >= 0 and whole.max() < 50
    again = np.concatenate(list(paired_resamples(50, 300, seed=3)))
    np.testing.assert_array_equal(whole, again)
    big = list(paired_resamples(3_000_000, 3, seed=0))  # ~4M indices at a time
    assert len(big) == 3 and all(b.shape == (1, 3_000_000) for b in big)


def test_paired_bootstrap_of_rmse_and_accuracy_against_plain_numpy() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(10.0, 3.0, 300)
    a = y + rng.normal(0.0, 1.0, 300)
    b = y + rng.normal(0.0, 1.5, 300)
    result = paired_bootstrap_test("rmse", y, a, b, n_boot=1000, seed=11)
    rmse = lambda p: np.sqrt(np.mean((y - p) ** 2))  # noqa: E731
    assert result.difference == pytest.approx(rmse(a) - rmse(b))
    idx = np.concatenate(list(paired_resamples(300, 1000, seed=11)))
    ref = np.sqrt(((y[idx] - a[idx]) ** 2).mean(1)) - np.sqrt(((y[idx] - b[idx]) ** 2).mean(1))
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(np.quantile(ref, [0.025, 0.975])))
    assert result.ci_high < 0 and result.p_value < 0.01 and result.n_boot == 1000

    labels = rng.integers(0, 3, 300)
    proba_a = np.eye(3)[np.where(rng.random(300) < 0.8, labels, (labels + 1) % 3)]
    proba_b = np.eye(3)[np.where(rng.random(300) < 0.78, labels, (labels + 2) % 3)]
    acc = paired_bootstrap_test("accuracy", labels, proba_a, proba_b, n_boot=1000)
    assert acc.a == pytest.approx((proba_a.argmax(1) == labels).mean())
    assert acc.ci_low < acc.difference < acc.ci_high
    assert acc.p_value > 0.05  # two near-equal classifiers: no difference shown


def test_paired_bootstrap_macro_f1_matches_sklearn_on_each_resample() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(6)
    y = rng.integers(0, 4, 80)
    a = np.where(rng.random(80) < 0.7, y, rng.integers(0, 4, 80))
    b = np.where(rng.random(80) < 0.5, y, rng.integers(0, 4, 80))
    result = paired_bootstrap_test("macro_f1", y, a, b, n_boot=50, seed=2)
    macro = lambda t, p: f1_score(t, p, average="macro", labels=range(4), zero_division=0)  # noqa: E731
    assert result.a == pytest.approx(macro(y, a)) and result.b == pytest.approx(macro(y, b))
    idx = next(paired_resamples(80, 50, seed=2))
    ref = [macro(y[i], a[i]) - macro(y[i], b[i]) for i in idx]
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(np.quantile(ref, [0.025, 0.975])))
    with pytest.raises(ValueError, match="metric must be one of"):
        paired_bootstrap_test("roc_auc", y, a, b)
