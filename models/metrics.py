"""Evaluation metrics, confidence intervals and chart-ready curves (scikit-learn based).

Undefined values (ROC-AUC on a split with one class, R^2 on one row) are NaN rather than an
exception, so one degenerate split does not fail a whole training run.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    mean_absolute_error,
    precision_recall_curve,
    r2_score,
    roc_auc_score,
    roc_curve,
)

HEADLINE = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}
_HIGHER = {"roc_auc", "pr_auc", "accuracy", "f1", "macro_f1", "r2"}
_LOWER = {"log_loss", "brier", "rmse", "mae"}
_PROBA_EPS = 1e-15


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of `metric` means a better model."""
    if metric in _HIGHER:
        return True
    if metric in _LOWER:
        return False
    raise ValueError(f"unknown metric {metric=}")


def classification_metrics(task: str, y_true_idx: np.ndarray, proba: np.ndarray) -> dict:
    """Binary (proba = P(positive) [n]): roc_auc, pr_auc, log_loss, brier, accuracy, f1 at 0.5.

    Multiclass (proba [n, C]): accuracy, macro_f1, log_loss.
    """
    y = np.asarray(y_true_idx, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    if y.size == 0 or len(p) != y.size:
        raise ValueError(f"need matching non-empty arrays, got {y.shape=} {p.shape=}")
    if task == "binary":
        return _binary_metrics(y, p)
    if task == "multiclass":
        return _multiclass_metrics(y, p)
    raise ValueError(f"classification_metrics needs 'binary' or 'multiclass', got {task=}")


def _binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    if p.ndim != 1:
        raise ValueError(f"binary proba must be P(positive) with shape [n], got {p.shape=}")
    both = np.unique(y).size == 2
    clipped = np.clip(p, _PROBA_EPS, 1 - _PROBA_EPS)
    predicted = (p >= 0.5).astype(np.int64)
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))),
        "brier": float(np.mean((p - y) ** 2)),
        "accuracy": float(accuracy_score(y, predicted)),
        "f1": float(f1_score(y, predicted, zero_division=0.0)),
    }


def _multiclass_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    if p.ndim != 2 or y.max() >= p.shape[1] or y.min() < 0:
        raise ValueError(f"multiclass proba must be [n, C] covering every label, {p.shape=}")
    predicted = p.argmax(axis=1)
    picked = np.clip(p[np.arange(y.size), y], _PROBA_EPS, 1.0)
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "macro_f1": float(
            f1_score(y, predicted, average="macro", labels=np.arange(p.shape[1]), zero_division=0.0)
        ),
        "log_loss": float(-np.mean(np.log(picked))),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """rmse, mae and r2 (NaN with fewer than two rows)."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if y.size == 0 or y.shape != p.shape:
        raise ValueError(f"need matching non-empty arrays, got {y.shape=} {p.shape=}")
    return {
        "rmse": float(np.sqrt(np.mean((y - p) ** 2))),
        "mae": float(mean_absolute_error(y, p)),
        "r2": float(r2_score(y, p)) if y.size >= 2 else float("nan"),
    }


def bootstrap_interval(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `metric_fn(y_true, y_pred)` (plain resampling).

    For integer labels a resample with a single class is skipped (ROC-AUC is undefined
    there), as is any resample where the metric is NaN or raises ValueError.
    """
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got {n_boot=} {alpha=}")
    y = np.asarray(y_true)
    pred = np.asarray(y_pred)
    if y.size == 0 or len(pred) != len(y):
        raise ValueError(f"need matching non-empty arrays, got {y.shape=} {pred.shape=}")
    rng = np.random.default_rng(seed)
    labels = np.issubdtype(y.dtype, np.integer) or y.dtype == bool
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), size=len(y))
        if labels and np.unique(y[idx]).size < 2:
            continue
        value = _safe_metric(metric_fn, y[idx], pred[idx])
        if np.isfinite(value):
            values.append(value)
    if not values:
        return (float("nan"), float("nan"))
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return (float(low), float(high))


def _safe_metric(metric_fn: Callable, y: np.ndarray, pred: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(metric_fn(y, pred))
        except ValueError:
            return float("nan")


def curves(y_true_idx: np.ndarray, proba: np.ndarray, max_points: int = 1000) -> dict[str, Any]:
    """Binary curves as plain lists: roc (fpr, tpr), pr (precision, recall), calibration.

    Calibration uses 10 equal-width bins of predicted probability and lists non-empty bins
    only. Long curves are thinned to at most `max_points` points (ends kept) for charts.
    """
    y = np.asarray(y_true_idx, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 1 or y.shape != p.shape or np.unique(y).size != 2:
        raise ValueError(f"curves need binary labels with both classes and P(positive) {p.shape=}")
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    keep_roc = _thin(fpr.size, max_points)
    keep_pr = _thin(precision.size, max_points)
    return {
        "roc": {"fpr": fpr[keep_roc].tolist(), "tpr": tpr[keep_roc].tolist()},
        "pr": {"precision": precision[keep_pr].tolist(), "recall": recall[keep_pr].tolist()},
        "calibration": _calibration(y, p),
    }


def _thin(n: int, max_points: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def _calibration(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> dict[str, list]:
    bins = np.clip((p * n_bins).astype(np.int64), 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    sum_p = np.bincount(bins, weights=p, minlength=n_bins)
    sum_y = np.bincount(bins, weights=y, minlength=n_bins)
    filled = counts > 0
    return {
        "mean_predicted": (sum_p[filled] / counts[filled]).tolist(),
        "observed_rate": (sum_y[filled] / counts[filled]).tolist(),
        "count": counts[filled].astype(int).tolist(),
    }


# ---- a binary model at one cutoff, and the credit-risk standard views -----------------------


def _binary_inputs(y_true_idx: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true_idx, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    if y.size == 0 or p.ndim != 1 or y.shape != p.shape:
        raise ValueError(f"need binary labels and P(positive) of one shape, {y.shape=} {p.shape=}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("binary labels must be 0 (negative) or 1 (positive)")
    return y, p


def metrics_at_cutoff(y_true_idx: np.ndarray, proba: np.ndarray, cutoff: float) -> dict:
    """What flagging P(positive) >= ``cutoff`` does on these rows (scikit-learn metrics).

    accuracy, precision, recall, f1 (0 where undefined), flagged_share, the counts tn, fp, fn,
    tp, and ``confusion`` [[tn, fp], [fn, tp]] (rows actual, columns predicted).
    """
    from sklearn.metrics import confusion_matrix, precision_score, recall_score

    y, p = _binary_inputs(y_true_idx, proba)
    if not 0.0 <= float(cutoff) <= 1.0:
        raise ValueError(f"The cutoff must be between 0 and 1, got {cutoff}.")
    predicted = (p >= cutoff).astype(np.int64)
    matrix = confusion_matrix(y, predicted, labels=[0, 1])
    tn, fp, fn, tp = (int(v) for v in matrix.ravel())
    return {
        "cutoff": float(cutoff),
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision_score(y, predicted, zero_division=0.0)),
        "recall": float(recall_score(y, predicted, zero_division=0.0)),
        "f1": float(f1_score(y, predicted, zero_division=0.0)),
        "flagged_share": float(predicted.mean()),
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "tp": tp,
        "confusion": matrix.tolist(),
    }


def ks_statistic(y_true_idx: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Kolmogorov-Smirnov: the largest distance between the score CDFs of the two classes.

    ``ks`` = max over cutoffs of (share of positives at or above it) - (share of negatives at
    or above it) = max(TPR - FPR) on the ROC curve; ``at`` is the score where it is reached.
    """
    y, p = _binary_inputs(y_true_idx, proba)
    if np.unique(y).size != 2:
        return {"ks": float("nan"), "at": float("nan")}
    fpr, tpr, thresholds = roc_curve(y, p)
    gap = tpr - fpr
    best = int(np.argmax(gap))
    return {"ks": float(gap[best]), "at": float(min(thresholds[best], 1.0))}


def gini(y_true_idx: np.ndarray, proba: np.ndarray) -> float:
    """Gini coefficient (accuracy ratio) = 2 * ROC-AUC - 1; NaN with one class."""
    y, p = _binary_inputs(y_true_idx, proba)
    if np.unique(y).size != 2:
        return float("nan")
    return float(2.0 * roc_auc_score(y, p) - 1.0)


def score_bands(y_true_idx: np.ndarray, proba: np.ndarray, n_bands: int = 10) -> list[dict]:
    """Equal-count score bands, riskiest first (deciles for ``n_bands=10``).

    Rows are ordered by P(positive), highest first (ties keep their input order), and cut
    into ``n_bands`` parts whose sizes differ by at most one row. Per band: rows, its score
    range, positives, positive_rate, lift (rate / overall rate), and cumulatively from the
    top: cum_rows_share, cum_positives, capture (share of all positives in this band and the
    ones above it) and cum_lift.
    """
    y, p = _binary_inputs(y_true_idx, proba)
    if n_bands < 1:
        raise ValueError(f"n_bands must be at least 1, got {n_bands}")
    n_bands = min(n_bands, y.size)
    order = np.argsort(-p, kind="stable")
    total_pos = int(y.sum())
    base_rate = total_pos / y.size
    bands, cum_rows, cum_pos = [], 0, 0
    for band, index in enumerate(np.array_split(order, n_bands), start=1):
        rows, positives = int(index.size), int(y[index].sum())
        cum_rows += rows
        cum_pos += positives
        rate = positives / rows
        cum_rate = cum_pos / cum_rows
        bands.append(
            {
                "band": band,
                "rows": rows,
                "min_score": float(p[index].min()),
                "max_score": float(p[index].max()),
                "positives": positives,
                "positive_rate": rate,
                "lift": rate / base_rate if base_rate > 0 else float("nan"),
                "cum_rows_share": cum_rows / y.size,
                "cum_positives": cum_pos,
                "capture": cum_pos / total_pos if total_pos else float("nan"),
                "cum_lift": cum_rate / base_rate if base_rate > 0 else float("nan"),
            }
        )
    return bands


def gains_curve(
    y_true_idx: np.ndarray, proba: np.ndarray, max_points: int = 200
) -> dict[str, list[float]]:
    """Cumulative gains and lift: target the highest scores first; after a share ``x`` of the
    rows, ``gain`` is the share of all positives found and ``lift`` = gain / x.

    Points sit where the score changes (tied rows are taken together), starting at (0, 0).
    """
    y, p = _binary_inputs(y_true_idx, proba)
    total_pos = int(y.sum())
    if total_pos == 0:
        raise ValueError("A gains chart needs at least one positive row.")
    order = np.argsort(-p, kind="stable")
    sorted_p, sorted_y = p[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_p) != 0), y.size - 1]
    rows = last_of_tie + 1
    found = np.cumsum(sorted_y)[last_of_tie]
    keep = _thin(rows.size, max_points)
    x = rows[keep] / y.size
    gain = found[keep] / total_pos
    return {
        "x": [0.0, *x.tolist()],
        "gain": [0.0, *gain.tolist()],
        "lift": [float("nan"), *(gain / x).tolist()],
    }


# ---- paired comparisons of two models on the same rows ----------------------------------------


PAIRED_BOOT = 2000
_RESAMPLE_CELLS = 4_000_000  # indices held at once by paired_resamples (~32 MB)


@dataclass(frozen=True)
class PairedDifference:
    """Model A against model B on the same rows: each one's metric, the difference A - B, its
    95% interval and a two-sided p-value for "no difference"."""

    metric: str
    method: str  # "delong" or "paired_bootstrap"
    a: float
    b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    rows: int
    n_boot: int | None = None
    se: float | None = None  # DeLong's standard error of the difference

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_resamples(n: int, n_boot: int = PAIRED_BOOT, seed: int = 0) -> Iterator[np.ndarray]:
    """The paired bootstrap's row resamples: ``n_boot`` draws of ``n`` row positions with
    replacement, in batches of shape [b, n] (at most ~4M indices at once).

    The one pairing of rows in Payoff: both models of a comparison are read at the same
    positions of each resample, and the ROI verdict (core.verdict.paired_bootstrap) and the
    leaderboard's comparison draw from this same generator, so for the same rows and seed
    they resample exactly the same rows.
    """
    if n < 1 or n_boot < 1:
        raise ValueError(f"need n >= 1 and n_boot >= 1, got {n=} {n_boot=}")
    rng = np.random.default_rng(seed)
    batch = max(1, _RESAMPLE_CELLS // n)
    done = 0
    while done < n_boot:
        size = min(batch, n_boot - done)
        yield rng.integers(0, n, size=(size, n))
        done += size


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, tied values sharing their average rank (Sun & Xu's midranks)."""
    from scipy.stats import rankdata

    return rankdata(x, method="average")


def delong_components(
    y_true_idx: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC-AUCs and DeLong's structural components of k score vectors on the same rows.

    ``scores`` is [k, n] (or [n]). Returns (auc [k], v10 [k, m], v01 [k, n_neg]): v10 holds,
    per positive row, the share of negatives it outranks (ties count 1/2); v01, per negative
    row, the share of positives that outrank it. Computed with midranks in O(n log n) per
    score vector (the fast algorithm of Sun & Xu 2014) instead of the O(m x n) comparisons.
    """
    y, _ = _binary_inputs(y_true_idx, np.zeros(len(np.asarray(y_true_idx)), dtype=float))
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if s.shape[1] != y.size:
        raise ValueError(f"scores must be [k, n] over the labels' rows, got {s.shape=}")
    pos, neg = s[:, y == 1], s[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    if m == 0 or n == 0:
        raise ValueError("DeLong's test needs both positive and negative rows.")
    aucs = np.empty(s.shape[0])
    v10 = np.empty((s.shape[0], m))
    v01 = np.empty((s.shape[0], n))
    for k in range(s.shape[0]):
        tx, ty = _midranks(pos[k]), _midranks(neg[k])
        tz = _midranks(np.concatenate([pos[k], neg[k]]))
        aucs[k] = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
        v10[k] = (tz[:m] - tx) / n
        v01[k] = 1.0 - (tz[m:] - ty) / m
    return aucs, v10, v01


def delong_test(
    y_true_idx: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, alpha: float = 0.05
) -> PairedDifference:
    """DeLong's test for the difference of two correlated ROC-AUCs (the same rows scored by
    two models): AUC(A) - AUC(B), its (1 - alpha) normal interval and two-sided p-value.

    DeLong, DeLong & Clarke-Pearson (1988), "Comparing the areas under two or more
    correlated receiver operating characteristic curves: a nonparametric approach",
    Biometrics 44(3):837-845; computed with the fast algorithm of X. Sun and W. Xu (2014),
    "Fast implementation of DeLong's algorithm for comparing the areas under correlated
    receiver operating characteristic curves", IEEE Signal Processing Letters
    21(11):1389-1393. With m positive and n negative rows, S10 and S01 are the 2x2
    covariance matrices (ddof 1) of the structural components (``delong_components``);
    Var(AUC_A - AUC_B) = L (S10 / m + S01 / n) L' with L = [1, -1]; z = difference / SE.
    Identical scores (SE 0) give p = 1.
    """
    from scipy.stats import norm

    if not 0 < alpha < 1:
        raise ValueError(f"need 0 < alpha < 1, got {alpha=}")
    a = np.asarray(score_a, dtype=np.float64)
    b = np.asarray(score_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"the two models' scores must cover the same rows, {a.shape=} {b.shape=}")
    aucs, v10, v01 = delong_components(y_true_idx, np.vstack([a, b]))
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.cov(v10) if m > 1 else np.zeros((2, 2))
    s01 = np.cov(v01) if n > 1 else np.zeros((2, 2))
    contrast = np.array([1.0, -1.0])
    variance = float(contrast @ (s10 / m + s01 / n) @ contrast)
    diff = float(aucs[0] - aucs[1])
    se = float(np.sqrt(max(variance, 0.0)))
    if se <= 1e-15:
        p_value = 1.0 if abs(diff) <= 1e-15 else 0.0
        low = high = diff
    else:
        p_value = float(2.0 * norm.sf(abs(diff) / se))
        half = float(norm.ppf(1 - alpha / 2)) * se
        low, high = diff - half, diff + half
    return PairedDifference(
        metric="roc_auc",
        method="delong",
        a=float(aucs[0]),
        b=float(aucs[1]),
        difference=diff,
        ci_low=float(low),
        ci_high=float(high),
        p_value=p_value,
        rows=int(m + n),
        se=se,
    )


def _labels(pred: np.ndarray) -> np.ndarray:
    """Class index per row from probabilities [n, C] (or labels [n])."""
    pred = np.asarray(pred)
    return pred.argmax(axis=1) if pred.ndim == 2 else pred.astype(np.int64)


def _macro_f1_rows(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Macro-F1 of each row of [b, n] label matrices (classes with no rows in a resample
    and no predictions count 0, as scikit-learn's zero_division=0 with all labels)."""
    total = np.zeros(y.shape[0])
    for c in range(n_classes):
        truth, guess = y == c, pred == c
        tp = (truth & guess).sum(axis=1)
        denominator = truth.sum(axis=1) + guess.sum(axis=1)
        total += np.where(denominator > 0, 2.0 * tp / np.maximum(denominator, 1), 0.0)
    return total / n_classes


def _resampled_metric(metric: str, y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    if metric == "rmse":
        return np.sqrt(np.mean((y - pred) ** 2, axis=-1))
    if metric == "mae":
        return np.mean(np.abs(y - pred), axis=-1)
    if metric == "accuracy":
        return np.mean(y == pred, axis=-1)
    return _macro_f1_rows(np.atleast_2d(y), np.atleast_2d(pred), n_classes)


PAIRED_BOOTSTRAP_METRICS = ("rmse", "mae", "accuracy", "macro_f1")


def paired_bootstrap_test(
    metric: str,
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    n_boot: int = PAIRED_BOOT,
    seed: int = 0,
    alpha: float = 0.05,
) -> PairedDifference:
    """metric(A) - metric(B) on the same rows with a paired bootstrap (``paired_resamples``:
    both models read at the same resampled rows): percentile (1 - alpha) interval, and the
    two-sided p-value of the centred bootstrap, (1 + #{|d* - d| >= |d|}) / (1 + n_boot).

    ``metric``: rmse or mae (``pred_*`` are predictions), accuracy or macro_f1 (``pred_*``
    are probabilities [n, C] or class indices, ``y_true`` class indices).
    """
    if metric not in PAIRED_BOOTSTRAP_METRICS:
        raise ValueError(f"metric must be one of {PAIRED_BOOTSTRAP_METRICS}, got {metric=}")
    if not 0 < alpha < 1:
        raise ValueError(f"need 0 < alpha < 1, got {alpha=}")
    regression = metric in ("rmse", "mae")
    y = np.asarray(y_true, dtype=np.float64 if regression else np.int64)
    a = np.asarray(pred_a, dtype=np.float64) if regression else _labels(pred_a)
    b = np.asarray(pred_b, dtype=np.float64) if regression else _labels(pred_b)
    if y.size == 0 or a.shape != y.shape or b.shape != y.shape:
        raise ValueError(f"need matching non-empty arrays, {y.shape=} {a.shape=} {b.shape=}")
    n_classes = 0 if regression else int(max(y.max(), a.max(), b.max()) + 1)
    value_a = float(_resampled_metric(metric, y[None], a[None], n_classes)[0])
    value_b = float(_resampled_metric(metric, y[None], b[None], n_classes)[0])
    diff = value_a - value_b
    diffs = np.concatenate(
        [
            _resampled_metric(metric, y[idx], a[idx], n_classes)
            - _resampled_metric(metric, y[idx], b[idx], n_classes)
            for idx in paired_resamples(y.size, n_boot, seed)
        ]
    )
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    extreme = int(np.sum(np.abs(diffs - diff) >= abs(diff) - 1e-12))
    return PairedDifference(
        metric=metric,
        method="paired_bootstrap",
        a=value_a,
        b=value_b,
        difference=diff,
        ci_low=float(low),
        ci_high=float(high),
        p_value=float((1 + extreme) / (1 + n_boot)),
        rows=int(y.size),
        n_boot=int(n_boot),
    )
