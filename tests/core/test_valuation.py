"""ROI of a run, checked by hand on a dataset every model separates perfectly."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from core import economics as eco
from core import training as training_module
from core.training import get_run
from core.usecases import get_use_case
from core.valuation import compare_runs, roi_summary, run_outcomes, value_run
from tests.fixtures import make_separable_frame, payoff_home, register_frame, train

PAYOFF = {"tp": 10.0, "fp": -2.0, "tn": 5.0, "fn": -50.0}
VOLUME = 5000  # credit_scoring's monthly volume
KINDS = ("logreg", "lightgbm", "ft-transformer")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    home = tmp_path_factory.mktemp("valuation_home")
    rng = np.random.default_rng(1)
    frame = make_separable_frame(200).assign(amount=rng.integers(1000, 9000, 200).astype(float))
    with payoff_home(home):
        dataset = register_frame(frame, money_column="amount", use_case="credit_scoring")
        runs = {kind: train(dataset.id, kind, time_budget_s=5) for kind in KINDS}
    return SimpleNamespace(home=home, dataset=dataset, runs=runs)


@pytest.fixture
def shared(trained: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, _isolated_home: Path):
    monkeypatch.setenv("PAYOFF_HOME", str(trained.home))
    return trained


@pytest.fixture
def separated(shared) -> SimpleNamespace:
    """The logreg run's test part, checked to be perfectly ranked (the premise of the maths)."""
    run = shared.runs["logreg"]
    stored = training_module.holdout_predictions(run.id)
    y = np.asarray(stored["y"])
    proba = np.asarray(stored["proba"])
    money = np.asarray(stored["money"])
    assert proba[y == 1].min() > proba[y == 0].max()
    return SimpleNamespace(run=run, y=y, proba=proba, money=money, n=len(y))


def test_value_per_decision_is_the_hand_computed_payoff(separated) -> None:
    s = separated
    n_bad, n_good = int(s.y.sum()), int((1 - s.y).sum())
    summary = roi_summary(s.run.id, "credit_scoring", assumptions={"payoff": PAYOFF})
    assert summary["rows"] == s.n == 40
    # Best threshold flags exactly the positives: tp on every bad, tn on every good.
    expected = (PAYOFF["tp"] * n_bad + PAYOFF["tn"] * n_good) / s.n
    assert summary["value_per_decision"] == pytest.approx(expected)
    assert s.proba[s.y == 0].max() < summary["best_threshold"] <= s.proba[s.y == 1].min()
    assert summary["flagged_share"] == pytest.approx(n_bad / s.n)
    # Status quo of credit scoring: approve everybody (tn on goods, fn on bads).
    status_quo = (PAYOFF["tn"] * n_good + PAYOFF["fn"] * n_bad) / s.n
    assert summary["status_quo_value_per_decision"] == pytest.approx(status_quo)
    assert summary["monthly_value"] == pytest.approx((expected - status_quo) * VOLUME)
    assert summary["payoff"] == PAYOFF and summary["money_weighted"] is False
    assert summary["npv"] == pytest.approx(summary["total_benefit"] - summary["total_cost"])
    assert summary["roi"] == pytest.approx(summary["npv"] / summary["total_cost"])
    assert summary["monthly_cost"] == pytest.approx(
        summary["monthly_compute_cost"] + summary["monthly_people_cost"]
    )


def test_money_weighting_is_the_default_with_a_money_column(separated) -> None:
    s = separated
    summary = roi_summary(s.run.id, "credit_scoring")
    assert summary["money_weighted"] is True
    good, bad = s.money[s.y == 0].sum(), s.money[s.y == 1].sum()
    # Multipliers of the loan amount: +4% on a repaid loan, -45% on a default, 0 if declined.
    assert summary["value_per_decision"] == pytest.approx(0.04 * good / s.n)
    assert summary["status_quo_value_per_decision"] == pytest.approx(
        (0.04 * good - 0.45 * bad) / s.n
    )


def test_an_explicit_payoff_switches_money_weighting_off_unless_asked(separated) -> None:
    run_id = separated.run.id
    plain = roi_summary(run_id, "credit_scoring", assumptions={"payoff": PAYOFF})
    both = roi_summary(
        run_id, "credit_scoring", assumptions={"payoff": PAYOFF, "use_money_column": True}
    )
    assert plain["money_weighted"] is False
    assert both["money_weighted"] is True
    assert both["value_per_decision"] != pytest.approx(plain["value_per_decision"])


def test_monthly_volume_scales_the_monthly_value(separated) -> None:
    run_id = separated.run.id
    base = roi_summary(run_id, "credit_scoring", assumptions={"payoff": PAYOFF})
    double = roi_summary(
        run_id, "credit_scoring", assumptions={"payoff": PAYOFF, "monthly_volume": 2 * VOLUME}
    )
    assert double["monthly_volume"] == 2 * VOLUME
    assert double["monthly_value"] == pytest.approx(2 * base["monthly_value"])


@pytest.mark.parametrize(
    ("use_case", "assumptions", "message"),
    [
        ("credit_scoring", {"payoff": {"tp": 1.0, "bogus": 2.0}}, "bogus"),
        ("credit_scoring", {"payoff": {"tp": "lots"}}, "tp"),
        ("credit_scoring", {"no_such_field": 1}, "no_such_field"),
        ("credit_scoring", {"device": "abacus"}, "abacus"),
        ("astrology", {}, "astrology"),
    ],
)
def test_bad_assumptions_are_refused(shared, use_case: str, assumptions: dict, message: str):
    with pytest.raises(ValueError, match=message):
        roi_summary(shared.runs["logreg"].id, use_case, assumptions=assumptions)


def test_compare_runs_marks_the_pareto_front_and_incremental_roi(shared) -> None:
    use_case = get_use_case("credit_scoring")
    frame = compare_runs(shared.dataset.id, use_case, target="outcome")
    assert sorted(frame["run_id"]) == sorted(r.id for r in shared.runs.values())
    for front, score in (("pareto_accuracy", "metric"), ("pareto_profit", "monthly_net")):
        cost, value = frame["monthly_cost"].to_numpy(), frame[score].to_numpy()
        for i, on_front in enumerate(frame[front]):
            dominated = any(
                cost[j] <= cost[i]
                and value[j] >= value[i]
                and (cost[j] < cost[i] or value[j] > value[i])
                for j in range(len(frame))
            )
            assert bool(on_front) == (not dominated), (front, i)
    valuations = {
        kind: value_run(get_run(run.id), use_case, run_outcomes(get_run(run.id)))
        for kind, run in shared.runs.items()
    }
    cheapest = min(("logreg", "lightgbm"), key=lambda k: valuations[k].total_cost)
    baseline = valuations[cheapest]
    assert set(frame["baseline_run_id"]) == {shared.runs[cheapest].id}
    for kind, run in shared.runs.items():
        row = frame.loc[frame["run_id"] == run.id].iloc[0]
        extra_cost = valuations[kind].total_cost - baseline.total_cost
        if kind == cheapest or extra_cost <= 0:
            assert row["incremental_roi_vs_baseline"] is None or np.isnan(
                row["incremental_roi_vs_baseline"]
            )
            continue
        expected = (valuations[kind].npv - baseline.npv) / extra_cost
        assert row["incremental_roi_vs_baseline"] == pytest.approx(expected)
    ft = shared.runs["ft-transformer"].id
    summary = roi_summary(ft, "credit_scoring")
    assert summary["baseline_run_id"] == shared.runs[cheapest].id
    expected_ft = frame.loc[frame["run_id"] == ft, "incremental_roi_vs_baseline"].iloc[0]
    if expected_ft is None or np.isnan(expected_ft):
        assert summary["incremental_roi_vs_baseline"] is None
    else:
        assert summary["incremental_roi_vs_baseline"] == pytest.approx(expected_ft)


def test_compute_cost_is_priced_from_each_runs_measured_figures(shared) -> None:
    """Measured seconds differ run to run, so check the pricing, not which run was faster."""
    use_case = get_use_case("credit_scoring")
    device = eco.DEVICE_CATALOG["cpu-2core"]
    per_second = device.dollars_per_hour / 3600
    for run in shared.runs.values():
        run = get_run(run.id)
        cost = value_run(run, use_case, run_outcomes(run), device=device).monthly_compute_cost
        training = run.train_seconds * use_case.running_costs.retrains_per_year / 12
        scoring = use_case.monthly_volume / run.infer_rows_per_s
        assert cost == pytest.approx((training + scoring) * per_second)
        assert cost > 0
