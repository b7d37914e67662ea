"""Runs diagnostics of a trained binary run: metrics at a cutoff (against scikit-learn), and
the rank views (KS, Gini, gains, deciles) on the same stored test rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score

from core.diagnostics import at_cutoff, deciles, gains, holdout_outcomes, rank_metrics
from tests.fixtures import make_multiclass_frame, make_tabular_frame, register_frame, train


@pytest.fixture
def run():
    return train(register_frame(make_tabular_frame(300)).id, "logreg")


@pytest.mark.parametrize("cutoff", [0.1, 0.35, 0.9])
def test_metrics_at_a_cutoff_are_labelled_and_match_scikit_learn(run, cutoff: float) -> None:
    y, proba = holdout_outcomes(run)
    assert y.size == run.metrics.test_rows
    view = at_cutoff(run, cutoff)
    predicted = (proba >= cutoff).astype(int)
    assert view.metrics["confusion"] == confusion_matrix(y, predicted, labels=[0, 1]).tolist()
    table = view.table.set_index("metric")
    assert table.loc["f1", "value"] == pytest.approx(f1_score(y, predicted, zero_division=0))
    assert table.loc["flagged_share", "value"] == pytest.approx(predicted.mean())
    at = table["computed at"]
    assert set(at[["accuracy", "precision", "recall", "f1", "flagged_share"]]) == {
        f"cutoff {cutoff:.3f}"
    }
    assert set(at[["roc_auc", "gini", "ks", "pr_auc", "log_loss", "brier"]]) == {"any cutoff"}


def test_rank_views_of_the_test_rows(run) -> None:
    y, proba = holdout_outcomes(run)
    ranks = rank_metrics(run)
    assert ranks["gini"] == pytest.approx(2 * roc_auc_score(y, proba) - 1)
    assert ranks["roc_auc"] == pytest.approx(roc_auc_score(y, proba))
    assert 0 < ranks["ks"] <= 1
    bands = deciles(run)
    assert len(bands) == 10 and bands["rows"].sum() == y.size
    assert bands["positives"].sum() == y.sum()
    assert bands["capture"].iloc[-1] == pytest.approx(1.0)
    assert np.all(np.diff(bands["max_score"]) <= 0)  # riskiest band first
    curve = gains(run)
    assert curve["targeted"].iloc[-1] == pytest.approx(1.0)
    assert curve["gain"].iloc[-1] == pytest.approx(1.0)
    assert np.all(np.diff(curve["gain"]) >= 0)


def test_a_multiclass_run_has_no_cutoff_views() -> None:
    multi = train(
        register_frame(make_multiclass_frame(), target="tier", positive_class=None).id, "logreg"
    )
    with pytest.raises(ValueError, match="binary"):
        at_cutoff(multi, 0.5)
