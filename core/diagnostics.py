"""What a finished binary run does on its held-out test rows: at a cutoff, and by rank.

At a cutoff (flag P(positive) >= cutoff): accuracy, precision, recall, F1, the flagged share
and the confusion matrix, every figure labelled with the cutoff it was computed at. By rank
(no cutoff): ROC-AUC, PR-AUC, Gini, KS, log loss, Brier, the cumulative gains and lift curve
and equal-count score bands (deciles), the standard views of credit-risk model validation.
The maths is in ``models.metrics`` (scikit-learn based); this module reads the stored test
predictions and shapes the results for pages and the command line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.runs import RunInfo, holdout_predictions
from models.metrics import (
    gains_curve,
    gini,
    higher_is_better,
    ks_statistic,
    metrics_at_cutoff,
    score_bands,
)

# Shown in this order; the words say what a figure means for a reader who is not a modeller.
CUTOFF_METRICS = {
    "accuracy": "share of rows decided right",
    "precision": "flagged rows that are positive",
    "recall": "positive rows that are flagged",
    "f1": "balance of precision and recall",
    "flagged_share": "share of rows flagged",
}
RANK_METRICS = {
    "roc_auc": "ROC-AUC: a positive row outranks a negative one",
    "gini": "Gini = 2 x ROC-AUC - 1",
    "ks": "KS: largest gap between the classes' score distributions",
    "pr_auc": "PR-AUC (average precision)",
    "log_loss": "log loss (lower is better)",
    "brier": "Brier score (lower is better)",
}


@dataclass(frozen=True)
class CutoffView:
    """A binary run's test rows at one cutoff."""

    cutoff: float
    rows: int
    metrics: dict  # models.metrics.metrics_at_cutoff
    table: pd.DataFrame  # metric, value, computed at ("cutoff 0.120" or "any cutoff")


def holdout_outcomes(run: RunInfo) -> tuple[np.ndarray, np.ndarray]:
    """(labels 0/1, P(positive)) of the run's held-out test rows."""
    if run.task != "binary":
        raise ValueError(f"Run #{run.id} is a {run.task} model; these views need a binary one.")
    stored = holdout_predictions(run.id)
    if stored.proba is None:
        raise ValueError(f"Run #{run.id} has no stored test predictions.")
    return np.asarray(stored.y, dtype=int), np.asarray(stored.proba, dtype=float)


def rank_metrics(run: RunInfo) -> dict[str, float]:
    """Figures that need no cutoff: ROC-AUC, Gini, KS (and the score it is reached at),
    PR-AUC, log loss, Brier."""
    y, proba = holdout_outcomes(run)
    ks = ks_statistic(y, proba)
    stored = run.metrics.values
    return {
        "roc_auc": float(stored.get("roc_auc", float("nan"))),
        "gini": gini(y, proba),
        "ks": ks["ks"],
        "ks_at": ks["at"],
        "pr_auc": float(stored.get("pr_auc", float("nan"))),
        "log_loss": float(stored.get("log_loss", float("nan"))),
        "brier": float(stored.get("brier", float("nan"))),
    }


def at_cutoff(run: RunInfo, cutoff: float) -> CutoffView:
    """The test rows at ``cutoff``, with the threshold-free figures beside them."""
    y, proba = holdout_outcomes(run)
    at = metrics_at_cutoff(y, proba, cutoff)
    ranks = rank_metrics(run)
    where = f"cutoff {cutoff:.3f}"
    rows = [
        {"metric": name, "value": at[name], "computed at": where, "meaning": words}
        for name, words in CUTOFF_METRICS.items()
    ] + [
        {"metric": name, "value": ranks[name], "computed at": "any cutoff", "meaning": words}
        for name, words in RANK_METRICS.items()
    ]
    return CutoffView(float(cutoff), int(y.size), at, pd.DataFrame(rows))


def deciles(run: RunInfo, n_bands: int = 10) -> pd.DataFrame:
    """Equal-count score bands of the test rows, riskiest first (see models.metrics)."""
    y, proba = holdout_outcomes(run)
    return pd.DataFrame(score_bands(y, proba, n_bands))


def gains(run: RunInfo) -> pd.DataFrame:
    """Cumulative gains and lift: share of rows targeted (highest scores first), share of
    positives found, lift = found / targeted."""
    y, proba = holdout_outcomes(run)
    curve = gains_curve(y, proba)
    return pd.DataFrame({"targeted": curve["x"], "gain": curve["gain"], "lift": curve["lift"]})


def headline_higher_is_better(runs: list[RunInfo]) -> bool:
    """Whether a larger headline metric is better for these runs (the first one's metric:
    a leaderboard holds one target); True when none has a headline yet."""
    name = next((r.metrics.headline for r in runs if r.metrics.headline), None)
    return True if name is None else higher_is_better(name)
