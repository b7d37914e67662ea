"""Saved scenarios and the HTML report."""

from __future__ import annotations

import pandas as pd
import pytest

from core.scenarios import (
    compare_table,
    delete_scenario,
    html_report,
    list_scenarios,
    save_scenario,
)


def test_scenarios_round_trip_and_compare() -> None:
    first = save_scenario(
        "Base case",
        None,
        "credit_scoring",
        {"use_case": {"monthly_volume": 5000}, "device": "cpu-2core"},
        {"roi": 1.5, "npv": 1000.0},
    )
    second = save_scenario(
        "Twice the volume",
        None,
        "credit_scoring",
        {"use_case": {"monthly_volume": 10000}, "device": "H100"},
        {"roi": 3.0, "npv": 2500.0},
    )
    stored = list_scenarios()
    assert [s["scenario_id"] for s in stored] == [second, first]
    table = compare_table(stored)
    assert list(table.columns) == [f"#{second} Twice the volume", f"#{first} Base case"]
    # Shown to people: formatted as money, percentages and counts (never 2.5e+03).
    assert table.loc["npv"].tolist() == ["$2,500.00", "$1,000.00"]
    assert table.loc["roi"].tolist() == ["300%", "150%"]
    assert table.loc["monthly_volume"].tolist() == ["10,000", "5,000"]
    delete_scenario(first)
    assert [s["scenario_id"] for s in list_scenarios()] == [second]
    with pytest.raises(ValueError, match="no scenario"):
        delete_scenario(first)
    with pytest.raises(ValueError, match="name"):
        save_scenario("   ", None, "credit_scoring", {}, {})


def test_html_report_has_every_section_and_escapes_values() -> None:
    report = html_report(
        dataset={"name": "<script>alert(1)</script>", "rows": 10},
        run={"run": "#1 LightGBM"},
        metrics={"roc_auc": 0.84},
        importance=pd.DataFrame({"column": ["Income"], "mean_abs": [0.3]}),
        assumptions={"use_case": {"monthly_volume": 5000, "payoff": {"tp": 1}}, "device": "H100"},
        results={"roi": 2.5, "monthly_cost": 1200.0},
    )
    for section in (
        "Data",
        "Model",
        "Metrics",
        "Explanation summary",
        "Assumptions",
        "ROI and cost",
    ):
        assert f"<h2>{section}" in report
    assert "<script>alert(1)</script>" not in report
    assert "&lt;script&gt;" in report
    assert "use_case.monthly_volume" in report and "Income" in report
    assert "http" not in report  # self-contained: no external requests
