"""ROI of a run at its operating threshold, checked by hand on a dataset every model separates
perfectly (the threshold is chosen on validation rows, valued on test rows)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from core import economics as eco
from core import runs as runs_module
from core import training as training_module
from core.runs import get_run, list_runs
from core.thresholds import choose_on_validation, reset_operating_threshold, set_operating_threshold
from core.training import part_frame
from core.usecases import get_use_case
from core.valuation import (
    NEGLIGIBLE_COMPUTE_SHARE,
    learning_curve_points,
    queue_learning_curve,
    run_outcomes,
    value_of_twice_the_data,
    value_run,
)
from core.verdict import compare_table, roi_summary, setting_from
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
    stored = runs_module.holdout_predictions(run.id)
    y = np.asarray(stored.y)
    proba = np.asarray(stored.proba)
    money = np.asarray(stored.money)
    assert proba[y == 1].min() > proba[y == 0].max()
    return SimpleNamespace(run=run, y=y, proba=proba, money=money, n=len(y))


def _by_hand(y, proba, threshold, payoff) -> float:
    """Value per decision of "flag when proba >= threshold", cell by cell."""
    flagged = proba >= threshold
    counts = {
        "tp": (flagged & (y == 1)).sum(),
        "fp": (flagged & (y == 0)).sum(),
        "tn": (~flagged & (y == 0)).sum(),
        "fn": (~flagged & (y == 1)).sum(),
    }
    return sum(payoff[c] * counts[c] for c in counts) / len(y)


def test_value_is_taken_at_the_operating_threshold_chosen_on_validation(separated) -> None:
    s = separated
    n_bad, n_good = int(s.y.sum()), int((1 - s.y).sum())
    summary = roi_summary(s.run.id, "credit_scoring", assumptions={"payoff": PAYOFF})
    assert summary["rows"] == s.n == 40
    # The threshold is the validation choice for this payoff, never the test rows' optimum.
    setting = setting_from("credit_scoring", {"payoff": PAYOFF})
    expected_t, _ = choose_on_validation(get_run(s.run.id), setting.use_case, use_money=False)
    assert summary["threshold"] == pytest.approx(expected_t)
    assert summary["threshold_chosen_on"] == "validation"
    value = _by_hand(s.y, s.proba, summary["threshold"], PAYOFF)
    assert summary["value_per_decision"] == pytest.approx(value)
    assert summary["flagged_share"] == pytest.approx((s.proba >= summary["threshold"]).mean())
    # Hindsight (shown apart): the test rows' own optimum flags exactly the positives.
    hindsight = (PAYOFF["tp"] * n_bad + PAYOFF["tn"] * n_good) / s.n
    assert summary["hindsight_value_per_decision"] == pytest.approx(hindsight)
    assert s.proba[s.y == 0].max() < summary["hindsight_best_threshold"] <= s.proba[s.y == 1].min()
    assert summary["best_threshold"] == summary["hindsight_best_threshold"]
    # Status quo of credit scoring: approve everybody (tn on goods, fn on bads).
    status_quo = (PAYOFF["tn"] * n_good + PAYOFF["fn"] * n_bad) / s.n
    assert summary["status_quo_value_per_decision"] == pytest.approx(status_quo)
    assert summary["monthly_value"] == pytest.approx((value - status_quo) * VOLUME)
    assert summary["payoff"] == PAYOFF and summary["money_weighted"] is False
    assert summary["npv"] == pytest.approx(summary["total_benefit"] - summary["total_cost"])
    assert summary["roi"] == pytest.approx(summary["npv"] / summary["total_cost"])
    assert summary["monthly_cost"] == pytest.approx(
        summary["monthly_compute_cost"] + summary["monthly_people_cost"]
    )


def test_a_user_threshold_is_used_and_said(separated) -> None:
    s = separated
    try:
        set_operating_threshold(s.run.id, 0.99)
        summary = roi_summary(s.run.id, "credit_scoring", assumptions={"payoff": PAYOFF})
        assert summary["threshold"] == 0.99 and summary["threshold_chosen_on"] == "user"
        assert "set by the user" in summary["threshold_source"]
        assert summary["value_per_decision"] == pytest.approx(_by_hand(s.y, s.proba, 0.99, PAYOFF))
    finally:
        reset_operating_threshold(s.run.id)


def test_money_weighting_is_the_default_with_a_money_column(separated) -> None:
    s = separated
    summary = roi_summary(s.run.id, "credit_scoring")
    assert summary["money_weighted"] is True
    flagged = s.proba >= summary["threshold"]
    m = get_use_case("credit_scoring").money_multipliers
    parts = {
        "tp": flagged & (s.y == 1),
        "fp": flagged & (s.y == 0),
        "tn": ~flagged & (s.y == 0),
        "fn": ~flagged & (s.y == 1),
    }
    expected = sum(getattr(m, c) * s.money[mask].sum() for c, mask in parts.items()) / s.n
    assert summary["value_per_decision"] == pytest.approx(expected)
    good, bad = s.money[s.y == 0].sum(), s.money[s.y == 1].sum()
    # Multipliers of the loan amount: +4% on a repaid loan, -45% on a default, 0 if declined.
    assert summary["hindsight_value_per_decision"] == pytest.approx(0.04 * good / s.n)
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


def test_a_labelled_file_of_the_test_rows_gives_the_same_value(separated) -> None:
    run_id = separated.run.id
    on_test = roi_summary(run_id, "credit_scoring", assumptions={"payoff": PAYOFF})
    frame = part_frame(run_id, "test")
    on_file = roi_summary(run_id, "credit_scoring", frame=frame, assumptions={"payoff": PAYOFF})
    assert on_file["outcomes_source"] == "labelled file"
    assert on_file["threshold"] == on_test["threshold"]
    assert on_file["value_per_decision"] == pytest.approx(on_test["value_per_decision"])


@pytest.mark.parametrize(
    ("use_case", "assumptions", "message"),
    [
        ("credit_scoring", {"payoff": {"tp": 1.0, "bogus": 2.0}}, "bogus"),
        ("credit_scoring", {"payoff": {"tp": "lots"}}, "tp"),
        ("credit_scoring", {"no_such_field": 1}, "no_such_field"),
        ("credit_scoring", {"device": "abacus"}, "abacus"),
        ("credit_scoring", {"explanations_per_month": -5}, "explanations_per_month"),
        ("astrology", {}, "astrology"),
    ],
)
def test_bad_assumptions_are_refused(shared, use_case: str, assumptions: dict, message: str):
    with pytest.raises(ValueError, match=message):
        roi_summary(shared.runs["logreg"].id, use_case, assumptions=assumptions)


def test_guardrails_warn_when_a_figure_should_not_be_trusted(separated) -> None:
    run_id = separated.run.id
    # 20 positives in 40 test rows; approving everyone loses money with fn = -50.
    warnings = " ".join(
        roi_summary(run_id, "credit_scoring", assumptions={"payoff": PAYOFF})["warnings"]
    )
    assert "Only 20 positive" in warnings
    assert "Today's policy loses money (-$" in warnings
    assert "device choice does not matter" in warnings  # compute ~$0.00 vs thousands of value
    flag_everyone = {"tp": 10.0, "fp": 5.0, "tn": 0.0, "fn": -50.0}
    summary = roi_summary(run_id, "credit_scoring", assumptions={"payoff": flag_everyone})
    assert summary["flagged_share"] > 0.5
    assert any("more than half" in w for w in summary["warnings"])
    # When compute is not negligible, no device warning.
    pricey = roi_summary(
        run_id,
        "credit_scoring",
        assumptions={"payoff": PAYOFF, "dollars_per_hour": 1e9, "explanations_per_month": 1e6},
    )
    assert pricey["monthly_compute_cost"] > NEGLIGIBLE_COMPUTE_SHARE * abs(pricey["monthly_value"])
    assert not any("device choice" in w for w in pricey["warnings"])


def test_compute_cost_counts_training_scoring_and_explaining(shared) -> None:
    """Measured seconds differ run to run, so check the pricing, not which run was faster."""
    use_case = get_use_case("credit_scoring")
    device = eco.DEVICE_CATALOG["cpu-2core"]
    per_second = device.dollars_per_hour / 3600
    for run in shared.runs.values():
        run = get_run(run.id)
        valuation = value_run(
            run,
            use_case,
            run_outcomes(run),
            threshold=0.5,
            device=device,
            explanations_per_month=1000,
            explain_ms_per_row=20.0,
        )
        training = run.train_seconds * use_case.running_costs.retrains_per_year / 12
        scoring = use_case.monthly_volume / run.infer_rows_per_s
        explaining = 1000 * 20.0 / 1000
        assert valuation.monthly_compute_cost == pytest.approx(
            (training + scoring + explaining) * per_second
        )
        assert valuation.cost["explaining_per_month"] == pytest.approx(explaining * per_second)


def test_the_cli_summary_prices_explanations_from_the_run(separated) -> None:
    summary = roi_summary(separated.run.id, "credit_scoring", assumptions={"payoff": PAYOFF})
    # No explanation stored yet: the plan's estimate, said so; 10% of volume by default.
    assert "estimated" in summary["explain_ms_source"]
    assert summary["explanations_per_month"] == pytest.approx(0.1 * VOLUME)
    assert summary["cost"]["explaining_per_month"] > 0


def test_compare_table_shows_money_differences_and_pareto_fronts(shared) -> None:
    setting = setting_from("credit_scoring")
    run = get_run(shared.runs["ft-transformer"].id)
    frame = compare_table(run, setting)
    assert sorted(frame["run_id"]) == sorted(r.id for r in shared.runs.values())
    assert not any("roi" in c for c in frame.columns)  # no ratio of micro-dollars
    assert np.allclose(frame["monthly_net"], frame["monthly_value"] - frame["monthly_cost"])
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


# ---- learning curve -------------------------------------------------------------------------


def _points(sizes: int, repeats: int, noise: float = 0.002) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    fractions = np.linspace(0.1, 1.0, sizes)
    rows = [
        {
            "run_id": i,
            "fraction": f,
            "subsample_seed": r,
            "metric": 0.9 - 0.05 * (f * 1000) ** -0.5 * 10 + rng.normal(0, noise),
        }
        for i, (f, r) in enumerate((f, r) for f in fractions for r in range(repeats))
    ]
    return pd.DataFrame(rows)


def test_learning_curve_refuses_to_extrapolate_from_few_sizes() -> None:
    with pytest.raises(ValueError, match="Not extrapolating: 3 training size"):
        value_of_twice_the_data(None, _points(3, 2), 1000, 10_000.0)


def test_learning_curve_prices_twice_the_data_with_an_interval() -> None:
    more = value_of_twice_the_data(None, _points(6, 3), 1000, 10_000.0, n_boot=100)
    assert more["fitted"] and more["sizes"] == 6 and more["runs"] == 18
    assert more["delta_auc"] > 0
    assert more["ci_low"] <= more["delta_monthly_value"] <= more["ci_high"]
    single = value_of_twice_the_data(None, _points(5, 1), 1000, 10_000.0)
    assert single["ci_low"] is None and "no interval" in single["interval_note"]


def test_learning_curve_runs_are_queued_on_the_same_split(shared) -> None:
    run = get_run(shared.runs["logreg"].id)
    ids = queue_learning_curve(run, fractions=(0.25, 0.5), repeats=2)
    assert len(ids) == 4
    queued = [get_run(i) for i in ids]
    assert {(r.train_fraction, r.options.subsample_seed) for r in queued} == {
        (0.25, 0), (0.25, 1), (0.5, 0), (0.5, 1)
    }  # fmt: skip
    assert {r.seed for r in queued} == {run.seed}  # same split
    parts = [training_module._prepare_data(r)["parts"] for r in queued[:2]]
    train_rows = len(part_frame(run.id, "train"))
    assert len(parts[0]["train"]) == round(train_rows * 0.25)
    # Another subsample seed, other training rows; the test rows stay the same.
    assert not parts[0]["train"].equals(parts[1]["train"])
    assert parts[0]["test"].equals(parts[1]["test"])
    # Queued points are not queued twice; they are not learning-curve points until done.
    assert queue_learning_curve(run, fractions=(0.25, 0.5), repeats=2) == []
    assert learning_curve_points(run)["run_id"].tolist() == [run.id]


def test_a_learning_curve_is_queued_whole_or_not_at_all(shared) -> None:
    """One action, one transaction: a point that cannot be queued leaves none queued."""
    run = get_run(shared.runs["logreg"].id)
    before = len(list_runs(run.dataset_id))
    with pytest.raises(ValueError, match="share of training rows"):
        queue_learning_curve(run, fractions=(0.75, 0.01), repeats=1)
    assert len(list_runs(run.dataset_id)) == before
