"""Saved what-if scenarios (assumptions + results) and the downloadable HTML report."""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import select

from core import audit
from core.access import Actor
from core.db import session_factory
from core.records import ScenarioRecord


def save_scenario(
    name: str,
    run_id: int | None,
    use_case: str,
    assumptions: dict,
    results: dict,
    *,
    actor: Actor | None = None,
) -> int:
    actor = audit.authorize(actor, "scenario_save", "scenario")
    name = " ".join(str(name).split())[:200]
    if not name:
        raise ValueError("Give the scenario a name.")
    with session_factory().begin() as session:
        record = ScenarioRecord(
            name=name,
            run_id=run_id,
            use_case=use_case,
            assumptions_json=json.dumps(assumptions, default=float),
            results_json=json.dumps(results, default=float),
        )
        session.add(record)
        session.flush()
        audit.record(session, actor, "scenario_save", "scenario", record.id)
        return record.id


def list_scenarios() -> list[dict[str, Any]]:
    with session_factory().begin() as session:
        records = session.scalars(select(ScenarioRecord).order_by(ScenarioRecord.id.desc())).all()
        return [
            {
                "scenario_id": r.id,
                "name": r.name,
                "run_id": r.run_id,
                "use_case": r.use_case,
                "assumptions": json.loads(r.assumptions_json),
                "results": json.loads(r.results_json),
                "created_at": r.created_at,
            }
            for r in records
        ]


def delete_scenario(scenario_id: int, *, actor: Actor | None = None) -> None:
    actor = audit.authorize(actor, "delete", "scenario", scenario_id)
    with session_factory().begin() as session:
        record = session.get(ScenarioRecord, scenario_id)
        if record is None:
            raise ValueError(f"There is no scenario with id {scenario_id}.")
        session.delete(record)
        audit.record(session, actor, "delete", "scenario", scenario_id)


def compare_table(scenarios: list[dict[str, Any]]) -> pd.DataFrame:
    """Scenarios side by side: one column per scenario, one row per figure."""
    keys = [
        "best_threshold",
        "value_per_decision",
        "monthly_value",
        "monthly_cost",
        "roi",
        "payback_months",
        "npv",
        "one_off_cost",
    ]
    data = {}
    for s in scenarios:
        results = s["results"]
        column = {k: results.get(k) for k in keys}
        column["monthly_volume"] = s["assumptions"].get("use_case", {}).get("monthly_volume")
        column["device"] = s["assumptions"].get("device")
        data[f"#{s['scenario_id']} {s['name']}"] = column
    return pd.DataFrame(data)


def _table(rows: dict[str, Any]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table>{cells}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def html_report(
    *,
    dataset: dict[str, Any],
    run: dict[str, Any],
    metrics: dict[str, Any],
    importance: pd.DataFrame | None,
    assumptions: dict[str, Any],
    results: dict[str, Any],
    figures_html: list[str] | None = None,
) -> str:
    """A self-contained HTML report (no external requests): data, model, metrics, explanation
    summary, assumptions, ROI and cost. Every value is escaped."""
    importance_html = (
        _table(dict(zip(importance["column"], importance["mean_abs"].round(4), strict=True)))
        if importance is not None and not importance.empty
        else "<p>No explanation computed for this model yet.</p>"
    )
    flat_assumptions = {k: v for k, v in assumptions.items() if not isinstance(v, dict)}
    for group, values in assumptions.items():
        if isinstance(values, dict):
            for k, v in values.items():
                if not isinstance(v, dict):
                    flat_assumptions[f"{group}.{k}"] = v
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Payoff report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2rem auto;color:#222}}
table{{border-collapse:collapse;margin:0.5rem 0 1.5rem}}th,td{{border:1px solid #ddd;padding:4px 8px;text-align:left}}
th{{background:#f5f5f5;font-weight:600}}h1{{margin-bottom:0}}.muted{{color:#666}}</style></head><body>
<h1>Payoff report</h1><p class="muted">Generated {datetime.now():%Y-%m-%d %H:%M}</p>
<h2>Data</h2>{_table(dataset)}
<h2>Model</h2>{_table(run)}
<h2>Metrics (held-out test part)</h2>{_table(metrics)}
<h2>Explanation summary (mean |SHAP value|)</h2>{importance_html}
<h2>Assumptions</h2>{_table(flat_assumptions)}
<h2>ROI and cost</h2>{_table(results)}
{"".join(figures_html or [])}
</body></html>"""
