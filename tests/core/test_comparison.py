"""The leaderboard's paired comparison on real tiny runs: the best transformer against the best
baseline of one split, DeLong for binary ROC-AUC, a paired bootstrap otherwise, the seeds'
spread, and the same row resamples as the ROI verdict."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from core.comparison import leaderboard_comparison
from core.runs import holdout_predictions, validation_predictions
from core.verdict import paired_bootstrap
from models.metrics import classification_metrics, delong_test, paired_resamples
from tests.fixtures import (
    TARGET,
    make_multiclass_frame,
    make_tabular_frame,
    payoff_home,
    register_frame,
    train,
)


def _regression_frame(n_rows: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 10.0, n_rows).round(3)
    z = rng.normal(0.0, 1.0, n_rows).round(3)
    return pd.DataFrame({"x": x, "z": z, "price": (3.0 * x + z + rng.normal(0, 1, n_rows))})


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    home = tmp_path_factory.mktemp("comparison_home")
    with payoff_home(home):
        binary = register_frame(make_tabular_frame(400, seed=5), "binary.csv")
        runs = {
            kind: train(binary.id, kind, time_budget_s=5)
            for kind in ("logreg", "lightgbm", "ft-transformer")
        }
        runs["logreg seed 1"] = train(binary.id, "logreg", seed=1, time_budget_s=5)
        multi = register_frame(
            make_multiclass_frame(240), "multi.csv", target="tier", positive_class=None
        )
        multi_runs = [train(multi.id, k, time_budget_s=5) for k in ("logreg", "ft-transformer")]
        reg = register_frame(_regression_frame(), "reg.csv", target="price", positive_class=None)
        reg_runs = [train(reg.id, k, time_budget_s=5) for k in ("lightgbm", "ft-transformer")]
        lonely = register_frame(make_tabular_frame(120, seed=8), "lonely.csv")
        train(lonely.id, "logreg", time_budget_s=5)
    return SimpleNamespace(
        home=home,
        binary=binary,
        runs=runs,
        multi=multi,
        multi_runs=multi_runs,
        reg=reg,
        reg_runs=reg_runs,
        lonely=lonely,
    )


@pytest.fixture
def shared(ledger: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, _isolated_home: Path):
    monkeypatch.setenv("PAYOFF_HOME", str(ledger.home))
    return ledger


def test_binary_uses_delong_on_the_same_test_rows_and_picks_on_validation(shared) -> None:
    result = leaderboard_comparison(shared.binary.id, TARGET)
    assert result is not None and result.seed == 0  # the split of seed 0 has both families
    ft = shared.runs["ft-transformer"]
    assert result.transformer_run == ft.id and result.method == "delong"
    assert result.metric == "roc_auc" and result.picked_on == "validation rows"
    # The best baseline is the one with the highest validation ROC-AUC, not test ROC-AUC.
    validation_auc = {
        run.id: classification_metrics(
            "binary",
            np.asarray(validation_predictions(run.id).y),
            np.asarray(validation_predictions(run.id).proba),
        )["roc_auc"]
        for run in (shared.runs["logreg"], shared.runs["lightgbm"])
    }
    assert result.baseline_run == max(validation_auc, key=validation_auc.get)
    a, b = holdout_predictions(ft.id), holdout_predictions(result.baseline_run)
    assert a.y == b.y  # the same rows, in the same order
    expected = delong_test(np.asarray(a.y), np.asarray(a.proba), np.asarray(b.proba))
    assert result.transformer_value == pytest.approx(ft.metrics.values["roc_auc"], abs=1e-12)
    assert result.difference == pytest.approx(expected.difference, abs=1e-12)
    assert (result.ci_low, result.ci_high, result.p_value) == pytest.approx(
        (expected.ci_low, expected.ci_high, expected.p_value), abs=1e-12
    )
    assert result.rows == len(a.y) and 0.0 <= result.p_value <= 1.0
    assert result.ci_low < result.difference < result.ci_high
    crosses = result.ci_low <= 0 <= result.ci_high
    assert (result.outcome == "not_distinguishable") == crosses
    assert f"same {result.rows:,} test rows" in result.sentence
    assert f"p = {result.p_value:.3g}" in result.sentence
    assert "DeLong" in result.method_label and "Sun & Xu 2014" in result.method_label
    assert result.to_dict()["method_label"] == result.method_label


def test_seed_spread_where_a_config_ran_with_several_seeds(shared) -> None:
    result = leaderboard_comparison(shared.binary.id, TARGET)
    spreads = {s.model: s for s in result.spreads}
    assert set(spreads) == {"logreg"}  # the only kind run with two seeds
    first, second = shared.runs["logreg"], shared.runs["logreg seed 1"]
    values = [first.metrics.values["roc_auc"], second.metrics.values["roc_auc"]]
    spread = spreads["logreg"]
    assert spread.seeds == (0, 1) and spread.runs == (first.id, second.id)
    assert spread.mean == pytest.approx(np.mean(values))
    assert spread.sd == pytest.approx(np.std(values, ddof=1))
    assert (spread.low, spread.high) == pytest.approx((min(values), max(values)))
    # Seed 1's split has no transformer: asking for it gives no comparison.
    assert leaderboard_comparison(shared.binary.id, TARGET, seed=1) is None


def test_multiclass_uses_a_paired_bootstrap_of_accuracy(shared) -> None:
    result = leaderboard_comparison(shared.multi.id, "tier")
    logreg, ft = shared.multi_runs
    assert result.method == "paired_bootstrap" and result.metric == "accuracy"
    assert (result.transformer_run, result.baseline_run) == (ft.id, logreg.id)
    a, b = holdout_predictions(ft.id), holdout_predictions(logreg.id)
    y = np.asarray(a.y)
    pa, pb = np.asarray(a.proba).argmax(1), np.asarray(b.proba).argmax(1)
    assert result.difference == pytest.approx((pa == y).mean() - (pb == y).mean())
    idx = np.concatenate(list(paired_resamples(y.size, 2000, seed=0)))
    diffs = (pa[idx] == y[idx]).mean(1) - (pb[idx] == y[idx]).mean(1)
    assert (result.ci_low, result.ci_high) == pytest.approx(
        tuple(np.quantile(diffs, [0.025, 0.975]))
    )
    assert result.n_boot == 2000 and 0 < result.p_value <= 1


def test_regression_is_picked_on_test_rows_and_says_so(shared) -> None:
    result = leaderboard_comparison(shared.reg.id, "price")
    lgbm, ft = shared.reg_runs
    assert result.metric == "rmse" and not result.higher_is_better
    assert result.picked_on == "test rows" and "flatters" in result.notes[0]
    assert result.transformer_value == pytest.approx(ft.metrics.values["rmse"])
    assert result.baseline_value == pytest.approx(lgbm.metrics.values["rmse"])
    assert result.difference == pytest.approx(
        ft.metrics.values["rmse"] - lgbm.metrics.values["rmse"]
    )
    if result.ci_high < 0:
        assert result.outcome == "transformer_better"  # lower RMSE is better
    elif result.ci_low > 0:
        assert result.outcome == "baseline_better"


def test_no_comparison_without_both_families(shared) -> None:
    assert leaderboard_comparison(shared.lonely.id, TARGET) is None


def test_the_verdict_resamples_the_same_rows() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(3.0, 10.0, 257), rng.normal(2.0, 10.0, 257)
    mean, low, high = paired_bootstrap(a, b, n_boot=2000, seed=0)
    diff = a - b
    means = np.concatenate([diff[i].mean(axis=1) for i in paired_resamples(257, 2000, seed=0)])
    assert mean == pytest.approx(diff.mean())
    assert (low, high) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])), abs=1e-12)
