"""Use-case templates: complete sources, consistent money modes, validated edits, JSON."""

from __future__ import annotations

import json

import pytest

from core.economics import Payoff
from core.usecases import USE_CASES, UseCase, get_use_case

# The typical amount each template's per-decision payoff was derived from (see its sources).
TYPICAL_AMOUNT = {
    "credit_scoring": 10_000,
    "fraud": 100,
    "churn": 500,
    "manufacturing_quality": 200,
}


def test_six_templates_in_order() -> None:
    assert list(USE_CASES) == [
        "credit_scoring",
        "fraud",
        "churn",
        "healthcare_triage",
        "manufacturing_quality",
        "customer_service_routing",
    ]
    assert all(case.task == "binary" and case.horizon_months == 36 for case in USE_CASES.values())
    assert get_use_case("fraud").positive_decision == "block the payment"
    with pytest.raises(ValueError, match="unknown use case"):
        get_use_case("astrology")


@pytest.mark.parametrize("key", list(USE_CASES))
def test_every_default_has_a_source(key: str) -> None:
    case = USE_CASES[key]
    assert set(case.sources) == set(case.assumptions())
    assert all(len(text) > 10 for text in case.sources.values())


@pytest.mark.parametrize("key", list(TYPICAL_AMOUNT))
def test_money_mode_agrees_with_per_decision_payoff(key: str) -> None:
    case = USE_CASES[key]
    amount = TYPICAL_AMOUNT[key]
    for cell in ("tp", "fp", "tn", "fn"):
        from_money = (
            getattr(case.money_fixed, cell) + getattr(case.money_multipliers, cell) * amount
        )
        assert from_money == pytest.approx(getattr(case.payoff, cell)), cell


def test_with_overrides_edits_a_copy_and_marks_sources() -> None:
    base = get_use_case("credit_scoring")
    edited = base.with_overrides(
        monthly_volume=8000,
        review_capacity=250.7,
        running_costs={"retrains_per_year": 3},
        **{"payoff.fn": -5000},
    )
    assert (edited.monthly_volume, edited.review_capacity) == (8000.0, 250)  # no half reviews
    assert edited.payoff == Payoff(0, 0, 400, -5000)
    assert edited.running_costs.retrains_per_year == 3
    assert edited.running_costs.cost_per_retrain == base.running_costs.cost_per_retrain
    assert edited.sources["payoff.fn"] == "edited by the analyst (was -4500.0)"
    assert edited.sources["payoff.tn"] == base.sources["payoff.tn"]
    assert base.monthly_volume == 5000 and base.payoff.fn == -4500  # template untouched
    assert edited.with_overrides(review_capacity=None).review_capacity is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"monthly_volume": -1}, "monthly_volume"),
        ({"review_capacity": 0}, "review_capacity"),
        ({"discount_rate_per_year": 1.0}, "discount_rate_per_year"),
        ({"discount_rate_per_year": -0.1}, "discount_rate_per_year"),
        ({"horizon_months": 2.5}, "horizon_months"),
        ({"payoff.fn": float("nan")}, "fn"),
        ({"payoff.oops": 1}, "oops"),
        ({"status_quo": {"policy": "pray"}}, "status_quo.policy"),
        ({"one_off_costs.integration": -5}, "one_off_costs.integration"),
        ({"task": "multiclass"}, "task"),
        ({"colour": "red"}, "colour"),
        ({"money_multipliers": None}, "money_multipliers"),
    ],
)
def test_with_overrides_rejects_bad_values_naming_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        get_use_case("churn").with_overrides(**changes)


def test_json_round_trip_and_strict_loading() -> None:
    for case in USE_CASES.values():
        text = json.dumps(case.to_dict())
        assert UseCase.from_dict(json.loads(text)) == case
    data = get_use_case("fraud").to_dict()
    with pytest.raises(ValueError, match="unknown keys"):
        UseCase.from_dict({**data, "extra": 1})
    with pytest.raises(ValueError, match="payoff"):
        UseCase.from_dict({**data, "payoff": {"tp": 1}})


def test_running_and_one_off_totals() -> None:
    case = get_use_case("credit_scoring")
    assert case.one_off_costs.total == 40_000
    assert case.running_costs.per_month == pytest.approx((8000 + 2 * 3000) / 12)
