"""Economics maths against cases small enough to check on paper (numbers in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.economics import (
    DEVICE_CATALOG,
    HOURS_PER_MONTH,
    DeviceSpec,
    LearningCurve,
    Payoff,
    RoiResult,
    achieved_efficiency,
    best_threshold,
    best_under_capacity,
    compute_cost,
    estimate_seconds_on,
    fit_learning_curve,
    monte_carlo,
    monthly_value,
    pareto_front,
    predict_metric,
    profit_curve,
    roi,
    sensitivity,
    status_quo_value,
    value_of_more_data,
)

Y = [1, 0, 1, 0]
S = [0.9, 0.8, 0.4, 0.1]
PAYOFF = Payoff(tp=10, fp=-2, tn=1, fn=-20)
JUST_ABOVE_ONE = np.nextafter(1.0, 2.0)


def test_profit_curve_counts_and_values_by_hand() -> None:
    curve = profit_curve(Y, S, PAYOFF)
    assert curve["threshold"].tolist() == [0.0, 0.1, 0.4, 0.8, 0.9, JUST_ABOVE_ONE]
    assert curve["flagged"].tolist() == [4, 4, 3, 2, 1, 0]
    assert curve["tp"].tolist() == [2, 2, 2, 1, 1, 0]
    assert curve["fp"].tolist() == [2, 2, 1, 1, 0, 0]
    assert curve["tn"].tolist() == [0, 0, 1, 1, 2, 2]
    assert curve["fn"].tolist() == [0, 0, 0, 1, 1, 2]
    # t=0.4: 2*10 + 1*(-2) + 1*1 = 19; flag none: 2*1 + 2*(-20) = -38
    assert curve["value_total"].tolist() == [16.0, 16.0, 19.0, -11.0, -8.0, -38.0]
    assert curve["value_per_decision"].tolist() == pytest.approx([4, 4, 4.75, -2.75, -2, -9.5])
    assert curve["flagged_share"].tolist() == [1, 1, 0.75, 0.5, 0.25, 0]


def test_profit_curve_weights_are_multipliers_and_fixed_adds_per_decision() -> None:
    weights = [100, 50, 10, 200]
    multipliers = Payoff(tp=0.5, fp=-0.1, tn=0.02, fn=-1.0)
    curve = profit_curve(Y, S, multipliers, weights=weights, thresholds=[0.4])
    # flagged rows 0,1,2: tp money 110 * 0.5 = 55; fp 50 * -0.1 = -5; tn 200 * 0.02 = 4
    assert curve["value_total"].item() == pytest.approx(54.0)
    assert curve["tp"].item() == 2  # counts stay counts
    fixed = Payoff(tp=-1, fp=-1, tn=0, fn=0)
    with_fixed = profit_curve(Y, S, multipliers, weights=weights, thresholds=[0.4], fixed=fixed)
    assert with_fixed["value_total"].item() == pytest.approx(54.0 - 3.0)


def test_tied_scores_are_flagged_together() -> None:
    curve = profit_curve([1, 0, 1], [0.5, 0.5, 0.2], PAYOFF, thresholds=[0.5])
    assert (curve["flagged"].item(), curve["tp"].item(), curve["fp"].item()) == (2, 1, 1)


def test_vectorised_curve_matches_a_naive_loop() -> None:
    rng = np.random.default_rng(7)
    n = 400
    y = rng.integers(0, 2, n)
    score = np.round(rng.random(n), 2)  # many ties
    weights = rng.uniform(0, 500, n)
    payoff, fixed = Payoff(0.3, -0.05, 0.02, -0.9), Payoff(-2, -2, 0, -5)
    curve = profit_curve(y, score, payoff, weights=weights, fixed=fixed)
    for row in curve.itertuples():
        flag = score >= row.threshold
        cells = {
            "tp": flag & (y == 1),
            "fp": flag & (y == 0),
            "tn": ~flag & (y == 0),
            "fn": ~flag & (y == 1),
        }
        expected = sum(
            getattr(payoff, c) * weights[m].sum() + getattr(fixed, c) * m.sum()
            for c, m in cells.items()
        )
        assert [row.tp, row.fp, row.tn, row.fn] == [int(m.sum()) for m in cells.values()]
        assert row.value_total == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_default_thresholds_are_capped_for_many_unique_scores() -> None:
    rng = np.random.default_rng(0)
    score = rng.random(20_000)
    curve = profit_curve(rng.integers(0, 2, 20_000), score, PAYOFF)
    assert len(curve) <= 1002
    assert curve["flagged"].iloc[0] == 20_000 and curve["flagged"].iloc[-1] == 0
    assert np.isin(curve["threshold"].iloc[1:-1], score).all()  # breakpoints are real scores


def test_best_threshold_picks_max_and_breaks_ties_upward() -> None:
    best = best_threshold(profit_curve(Y, S, PAYOFF))
    assert best["threshold"] == 0.4 and best["value_total"] == 19.0 and best["flagged"] == 3
    tied = profit_curve(Y, S, Payoff(0, 0, 0, 0))
    assert best_threshold(tied)["threshold"] == JUST_ABOVE_ONE  # all equal: flag fewest
    with pytest.raises(ValueError, match="lacks columns"):
        best_threshold(pd.DataFrame({"threshold": [0.5]}))


def test_capacity_limit_picks_the_top_k() -> None:
    y, score = [1, 1, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.5]
    payoff = Payoff(tp=10, fp=-1, tn=0, fn=0)
    assert best_threshold(profit_curve(y, score, payoff))["flagged"] == 3
    two = best_under_capacity(y, score, payoff, top_k=2)
    assert (two["threshold"], two["flagged"], two["value_total"], two["max_flagged"]) == (
        0.8,
        2,
        20.0,
        2,
    )
    share = best_under_capacity(y, score, payoff, capacity_share=0.2)  # floor(0.2 * 5) = 1
    assert (share["flagged"], share["value_total"]) == (1, 10.0)


def test_capacity_never_splits_a_tie_and_may_flag_fewer() -> None:
    payoff = Payoff(tp=10, fp=-1, tn=0, fn=0)
    tie = best_under_capacity([1, 1, 1], [0.9, 0.8, 0.8], payoff, top_k=2)
    assert tie["flagged"] == 1
    losing = best_under_capacity([0, 0], [0.9, 0.8], payoff, top_k=2)
    assert losing["flagged"] == 0
    with pytest.raises(ValueError, match="exactly one"):
        best_under_capacity([0, 1], [0.1, 0.9], payoff, top_k=1, capacity_share=0.5)


def test_status_quo_policies_by_hand() -> None:
    y = [1, 0, 0, 0]
    assert status_quo_value(y, PAYOFF, "approve_all") == pytest.approx((3 * 1 - 20) / 4)
    assert status_quo_value(y, PAYOFF, "flag_all") == pytest.approx((10 - 3 * 2) / 4)
    review = status_quo_value(y, PAYOFF, "manual_review", manual_cost=0.5)
    assert review == pytest.approx((10 + 3) / 4 - 0.5)
    rule = status_quo_value(y, PAYOFF, "rule", rule_flags=[1, 1, 0, 0])
    assert rule == pytest.approx((10 - 2 + 2) / 4)
    weighted = status_quo_value(
        y, Payoff(0.5, -0.1, 0.02, -1), "approve_all", weights=[100, 10, 10, 10]
    )
    assert weighted == pytest.approx((30 * 0.02 - 100) / 4)
    with pytest.raises(ValueError, match="rule_flags"):
        status_quo_value(y, PAYOFF, "rule")
    with pytest.raises(ValueError, match="policy"):
        status_quo_value(y, PAYOFF, "approve_some")  # type: ignore[arg-type]


def test_monthly_value() -> None:
    assert monthly_value(5.0, 3.0, 1000) == 2000.0
    with pytest.raises(ValueError, match="monthly_volume"):
        monthly_value(5.0, 3.0, -1)


@pytest.mark.parametrize(
    ("y", "score", "weights", "message"),
    [
        ([1, 0], [0.5], None, "lengths must match"),
        ([1, 2], [0.5, 0.5], None, "only 0 and 1"),
        ([1, 0], [0.5, 1.5], None, r"\[0, 1\]"),
        ([1, 0], [0.5, float("nan")], None, "NaN"),
        ([1, 0], [0.5, 0.5], [1, -1], ">= 0"),
        ([], [], None, "empty"),
    ],
)
def test_profit_curve_rejects_bad_input(y, score, weights, message) -> None:
    with pytest.raises(ValueError, match=message):
        profit_curve(y, score, PAYOFF, weights=weights)


def test_fixed_requires_weights_and_payoff_must_be_finite() -> None:
    with pytest.raises(ValueError, match="fixed"):
        profit_curve(Y, S, PAYOFF, fixed=PAYOFF)
    with pytest.raises(ValueError, match="fn"):
        Payoff(1, 1, 1, float("inf"))


# --------------------------------------------------------------------------- compute cost

DOLLAR_PER_SECOND = DeviceSpec(
    "test", dollars_per_hour=3.6, peak_fp32_tflops=10, peak_bf16_tflops=None
)


def test_compute_cost_by_hand() -> None:
    # $3.6/h = $0.001/s. training: 1000 s x 12/yr / 12 = 1000 s/month = $1
    # scoring: 3.6M rows / 1000 rows/s = 3600 s = $3.6; explaining: 1000 x 36 ms = 36 s
    cost = compute_cost(1000, 12, 3.6e6, 1000, 1000, 36, DOLLAR_PER_SECOND)
    assert cost.training_per_month == pytest.approx(1.0)
    assert cost.scoring_per_month == pytest.approx(3.6)
    assert cost.explaining_per_month == pytest.approx(0.036)
    assert cost.idle_per_month == 0 and cost.first_training == pytest.approx(1.0)
    assert cost.total_per_month == pytest.approx(4.636)
    always = compute_cost(1000, 12, 3.6e6, 1000, 1000, 36, DOLLAR_PER_SECOND, always_on=True)
    assert always.idle_per_month == pytest.approx((HOURS_PER_MONTH * 3600 - 3636) * 0.001)
    assert always.total_per_month == pytest.approx(1.0 + HOURS_PER_MONTH * 3.6)
    with pytest.raises(ValueError, match="inference_rows_per_second"):
        compute_cost(1000, 12, 10, 0, 0, 0, DOLLAR_PER_SECOND)


def test_estimate_seconds_scales_by_peak_at_the_measured_efficiency() -> None:
    slow = DeviceSpec("slow", 1.0, peak_fp32_tflops=1.0, peak_bf16_tflops=None)
    fast = DeviceSpec("fast", 1.0, peak_fp32_tflops=10.0, peak_bf16_tflops=40.0)
    # 5e13 FLOP in 100 s on a 1 TFLOP/s peak = 50% efficiency; at 50% of 10 TFLOP/s: 10 s
    assert achieved_efficiency(100, slow, 5e13) == pytest.approx(0.5)
    assert estimate_seconds_on(fast, 100, slow, 5e13) == pytest.approx(10.0)
    bf16 = estimate_seconds_on(fast, 100, slow, 5e13, target_precision="bf16")
    assert bf16 == pytest.approx(2.5)
    fallback = estimate_seconds_on(slow, 10, fast, 5e13, target_precision="bf16")
    assert fallback == pytest.approx(100.0)  # no bf16 on `slow`: its fp32 peak is used
    with pytest.raises(ValueError, match="exceeds"):
        achieved_efficiency(1, slow, 5e13)


def test_device_catalog_has_sources_and_sane_peaks() -> None:
    assert {"cpu-2core", "T4", "L4", "A10G", "A100-80GB", "H100", "H200"} <= set(DEVICE_CATALOG)
    for name, spec in DEVICE_CATALOG.items():
        assert spec.name == name and "2026" in spec.source
        assert spec.peak_bf16_tflops is None or spec.peak_bf16_tflops > spec.peak_fp32_tflops


# --------------------------------------------------------------------------- ROI


def test_roi_without_discounting_by_hand() -> None:
    result = roi(1000, 200, 5000, horizon_months=12, discount_rate_per_year=0.0)
    assert result.total_benefit == pytest.approx(12_000)
    assert result.total_cost == pytest.approx(5000 + 2400)
    assert result.npv == pytest.approx(4600)
    assert result.roi == pytest.approx(4600 / 7400)
    assert result.payback_months == pytest.approx(6.25)  # 5000 / 800 a month
    assert result.cumulative_net[0] == -5000 and len(result.cumulative_net) == 13


def test_roi_with_discounting_by_hand() -> None:
    # a yearly rate of 1.01^12 - 1 is exactly 1% a month; cash at the end of months 1 and 2
    result = roi(101, 0, 100, horizon_months=2, discount_rate_per_year=1.01**12 - 1)
    assert result.total_benefit == pytest.approx(101 / 1.01 + 101 / 1.01**2)  # 199.0099
    assert result.total_cost == 100
    assert result.npv == pytest.approx(99.00990099)
    assert result.roi == pytest.approx(0.9900990099)
    assert result.payback_months == pytest.approx(1.0)


def test_roi_matches_a_month_by_month_loop() -> None:
    result = roi(3000, 500, 20_000, horizon_months=36, discount_rate_per_year=0.1)
    monthly_rate = 1.1 ** (1 / 12) - 1
    net, cumulative, payback = 0.0, -20_000.0, None
    for month in range(1, 37):
        step = 2500 / (1 + monthly_rate) ** month
        if payback is None and cumulative + step >= 0:
            payback = month - 1 - cumulative / step
        cumulative += step
        net += step
    assert result.npv == pytest.approx(net - 20_000)
    assert result.payback_months == pytest.approx(payback)


def test_roi_edge_cases() -> None:
    never = roi(100, 150, 0, horizon_months=12)
    assert never.payback_months is None and never.roi == pytest.approx(-600 / 1800)
    too_slow = roi(100, 0, 5000, horizon_months=12)
    assert too_slow.payback_months is None
    free = roi(100, 0, 0, horizon_months=12)
    assert free.roi is None and free.payback_months == 0.0
    with pytest.raises(ValueError, match="discount_rate_per_year"):
        roi(1, 1, 1, discount_rate_per_year=1.0)
    with pytest.raises(ValueError, match="horizon_months"):
        roi(1, 1, 1, horizon_months=0)


def _result(npv: float, total_cost: float) -> RoiResult:
    return RoiResult(None, None, npv, npv + total_cost, total_cost, ())


def test_sensitivity_orders_by_swing() -> None:
    def evaluate(a: dict[str, float]) -> float:
        return 3 * a["x"] + a["y"] - 10 * a["z"]

    frame = sensitivity(evaluate, {"y": 5.0, "x": 10.0, "z": 1.0})
    assert frame["assumption"].tolist() == ["x", "z", "y"]  # swings 12, 4, 2
    z = frame.set_index("assumption").loc["z"]
    assert (z["low_input"], z["high_input"]) == pytest.approx((0.8, 1.2))
    assert (z["low_output"], z["high_output"], z["swing"]) == pytest.approx((27, 23, 4))
    assert (frame["base_output"] == 25.0).all()
    with pytest.raises(ValueError, match="finite"):
        sensitivity(lambda a: None, {"x": 1.0})  # type: ignore[arg-type, return-value]


def test_monte_carlo_known_probabilities() -> None:
    always = monte_carlo(lambda a: a["x"] + 1, {"x": (0.0, 2.0)}, n=500)
    assert always["prob_positive"] == 1.0
    assert always["p05"] < always["p50"] < always["p95"]
    uniform = monte_carlo(lambda a: a["x"], {"x": (-1.0, 3.0)}, n=4000, seed=1)
    assert uniform["prob_positive"] == pytest.approx(0.75, abs=0.03)
    triangle = monte_carlo(lambda a: a["x"], {"x": (0.0, 0.0, 1.0)}, n=4000)
    assert triangle["mean"] == pytest.approx(1 / 3, abs=0.02)
    again = monte_carlo(lambda a: a["x"], {"x": (0.0, 0.0, 1.0)}, n=4000)
    assert np.array_equal(again["samples"], triangle["samples"])  # seeded
    fixed = monte_carlo(lambda a: a["x"], {"x": (2.0, 2.0)}, n=10)
    assert fixed["std"] == 0.0
    with pytest.raises(ValueError, match="increasing"):
        monte_carlo(lambda a: a["x"], {"x": (3.0, 1.0)})


# --------------------------------------------------------------------------- learning curve

SIZES = np.array([100, 200, 500, 1000, 2000, 5000, 10_000], dtype=float)


def test_learning_curve_recovers_known_parameters() -> None:
    params = fit_learning_curve(SIZES, 0.9 - 2.0 * SIZES**-0.5)
    assert params.fitted
    assert (params.a, params.b, params.c) == pytest.approx((0.9, 2.0, 0.5), rel=1e-4)
    assert predict_metric(params, 40_000) == pytest.approx(0.9 - 2.0 / 200, rel=1e-5)


def test_learning_curve_falls_back_flat_with_a_flag() -> None:
    few = fit_learning_curve([100, 200], [0.7, 0.75])
    assert not few.fitted and "3 distinct" in few.reason
    assert predict_metric(few, 1e6) == 0.75  # promises no gain
    falling = fit_learning_curve(SIZES, 0.8 - 0.001 * np.log(SIZES))
    assert not falling.fitted and "does not rise" in falling.reason
    with pytest.raises(ValueError, match="max_metric"):
        fit_learning_curve(SIZES, SIZES / 1000)


def test_value_of_more_data_is_linear_in_auc_above_half() -> None:
    params = LearningCurve(a=0.9, b=2.0, c=0.5, fitted=True, reason="", rmse=0.0)
    result = value_of_more_data(params, 100, current_auc=0.75, monthly_value_now=1000)
    gain = (0.9 - 2 / math.sqrt(200)) - 0.7  # 0.0586
    assert result["delta_auc"] == pytest.approx(gain)
    assert result["monthly_value_more"] == pytest.approx(1000 * (0.25 + gain) / 0.25)
    floor = value_of_more_data(params, 100, 0.75, 1000, monthly_value_at_random=200)
    assert floor["monthly_value_more"] == pytest.approx(200 + 800 * (0.25 + gain) / 0.25)
    with pytest.raises(ValueError, match="current_auc"):
        value_of_more_data(params, 100, current_auc=0.5, monthly_value_now=1000)


# --------------------------------------------------------------------------- comparison


def test_pareto_front_by_hand() -> None:
    costs = [1, 2, 3, 2, 1]
    scores = [0.7, 0.8, 0.75, 0.8, 0.6]
    # (3, .75) is beaten by (2, .8); (1, .6) by (1, .7); the two (2, .8) tie and both stay
    assert pareto_front(costs, scores).tolist() == [True, True, False, True, False]
    with pytest.raises(ValueError, match="scores"):
        pareto_front([1, 2], [0.5])
