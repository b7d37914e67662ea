"""Saved what-if scenarios (assumptions + results) and the downloadable HTML report."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
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
    """Scenarios side by side: one column per scenario, one row per figure (formatted)."""
    keys = [
        "threshold",
        "threshold_chosen_on",
        "value_per_decision",
        "monthly_value",
        "monthly_cost",
        "roi",
        "payback_months",
        "npv",
        "one_off_cost",
        "verdict_label",
        "verdict_net_per_month",
    ]
    data = {}
    for s in scenarios:
        results = s["results"]
        column = {k: format_value(k, results.get(k)) for k in keys}
        use_case = s["assumptions"].get("use_case", {})
        column["monthly_volume"] = format_value("monthly_volume", use_case.get("monthly_volume"))
        column["device"] = str(s["assumptions"].get("device"))
        data[f"#{s['scenario_id']} {s['name']}"] = column
    return pd.DataFrame(data)


# ---- formatting -----------------------------------------------------------------------------


def money(value: float | None, decimals: int = 2) -> str:
    """$1,234.56 / -$1,234.56; amounts under a cent keep two significant digits ($0.00018),
    never scientific notation."""
    if value is None:
        return "n/a"
    value = float(value)
    if value != 0 and abs(value) < 0.005:
        digits = min(12, 1 - math.floor(math.log10(abs(value))))
        text = f"${abs(value):.{digits}f}"
    else:
        text = f"${abs(value):,.{decimals}f}"
    return f"-{text}" if value < 0 else text


def percent(ratio: float | None, decimals: int = 0) -> str:
    """A ratio as a percentage: 141.96 -> "14,196%"."""
    return "n/a" if ratio is None else f"{100 * float(ratio):,.{decimals}f}%"


_MONEY_WORDS = (
    "value",
    "cost",
    "npv",
    "benefit",
    "net",
    "dollars",
    "ci_",
    "integration",
    "maintenance",
    "labelling",
    "payoff.",
    "money_fixed",
    "per_retrain",
    "per_decision",
    "training",
    "scoring",
    "explaining",
    "idle",
    "compute",
    "sign-off",
    "one-off",
)


def format_value(key: str, value: Any) -> str:
    """A figure formatted by what its name says it is (money, share, threshold, count)."""
    name = str(key).lower()
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if name.startswith("money_multipliers"):
        return f"x {value:g} of the amount"
    if "volume" in name or name.endswith("rows") or "positives" in name or "explanations" in name:
        return f"{value:,.0f}"
    if name in ("roi",) or name.endswith("_roi") or "share" in name or "rate" in name:
        return percent(value, 1 if abs(value) < 1 else 0)
    if "threshold" in name:
        return f"{value:.3f}"
    if "months" in name:
        return f"{value:,.1f} months"
    if name.endswith("_ms") or "ms_per_row" in name:
        return f"{value:,.1f} ms"
    if "per_year" in name and "retrains" in name:
        return f"{value:g}"
    if any(word in name for word in _MONEY_WORDS):
        return money(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def _table(rows: dict[str, Any], sources: dict[str, str] | None = None) -> str:
    head = "<tr><th>item</th><th>value</th><th>source</th></tr>" if sources is not None else ""
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(format_value(k, v))}</td>"
        + (f"<td>{html.escape(sources.get(k, ''))}</td>" if sources is not None else "")
        + "</tr>"
        for k, v in rows.items()
    )
    return f"<table>{head}{cells}</table>"


def _frame_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(format_value(c, row[c]))}</td>" for c in frame.columns)
        + "</tr>"
        for _, row in frame.iterrows()
    )
    return f"<table><tr>{head}</tr>{body}</table>"


# ---- inline SVG charts (no scripts, no requests: prints to PDF as drawn) ---------------------


def svg_lines(
    series: list[tuple[str, list[float], list[float]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    vlines: Sequence[tuple[str, float]] = (),
    hlines: Sequence[tuple[str, float]] = (),
    width: int = 640,
    height: int = 300,
) -> str:
    """A small line chart as inline SVG."""
    left, right, top, bottom = 70, 20, 30, 40
    xs = [x for _, line_xs, _ in series for x in line_xs] + [v for _, v in vlines]
    ys = [y for _, _, line_ys in series for y in line_ys] + [v for _, v in hlines]
    if not xs or not ys:
        return ""
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def py(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    colours = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
    parts = [
        f'<svg width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{left}" y="18" font-size="13" font-weight="600">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
        'stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>',
        f'<text x="{(left + width) / 2}" y="{height - 8}" font-size="11" text-anchor="middle">'
        f"{html.escape(x_label)}</text>",
        f'<text x="12" y="{(top + height) / 2}" font-size="11" transform="rotate(-90 12 '
        f'{(top + height) / 2})" text-anchor="middle">{html.escape(y_label)}</text>',
        f'<text x="{left - 4}" y="{py(y1) + 4}" font-size="10" text-anchor="end">'
        f"{html.escape(_short(y1))}</text>",
        f'<text x="{left - 4}" y="{py(y0) + 4}" font-size="10" text-anchor="end">'
        f"{html.escape(_short(y0))}</text>",
        f'<text x="{left}" y="{height - bottom + 14}" font-size="10">{x0:g}</text>',
        f'<text x="{width - right}" y="{height - bottom + 14}" font-size="10" '
        f'text-anchor="end">{x1:g}</text>',
    ]
    for i, (name, x, y) in enumerate(series):
        colour = colours[i % len(colours)]
        points = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x, y, strict=True))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>'
        )
        parts.append(
            f'<text x="{width - right - 4}" y="{top + 14 * (i + 1)}" font-size="11" '
            f'text-anchor="end" fill="{colour}">{html.escape(name)}</text>'
        )
    for name, v in vlines:
        parts.append(
            f'<line x1="{px(v):.1f}" y1="{top}" x2="{px(v):.1f}" y2="{height - bottom}" '
            'stroke="#555" stroke-dasharray="4 3"/>'
            f'<text x="{px(v) + 3:.1f}" y="{top + 10}" font-size="10">{html.escape(name)}</text>'
        )
    for name, v in hlines:
        parts.append(
            f'<line x1="{left}" y1="{py(v):.1f}" x2="{width - right}" y2="{py(v):.1f}" '
            'stroke="#999" stroke-dasharray="2 2"/>'
            f'<text x="{left + 4}" y="{py(v) - 3:.1f}" font-size="10">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def svg_bars(rows: list[tuple[str, float]], *, title: str, width: int = 640, bar: int = 22) -> str:
    """Horizontal bars with their values written as money, as inline SVG."""
    if not rows:
        return ""
    label_w, value_w = 300, 110
    height = 30 + bar * len(rows) + 10
    top = max((abs(v) for _, v in rows), default=1.0) or 1.0
    span = width - label_w - value_w
    parts = [
        f'<svg width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="0" y="18" font-size="13" font-weight="600">{html.escape(title)}</text>',
    ]
    for i, (name, value) in enumerate(rows):
        y = 30 + i * bar
        w = abs(value) / top * span
        colour = "#d62728" if value < 0 else "#1f77b4"
        parts.append(
            f'<text x="0" y="{y + bar * 0.65:.1f}" font-size="11">{html.escape(name)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{bar - 6}" '
            f'fill="{colour}"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + bar * 0.65:.1f}" font-size="11">'
            f"{html.escape(money(value))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _short(value: float) -> str:
    return money(value, 0) if abs(value) >= 100 else money(value)


def html_report(
    *,
    dataset: dict[str, Any],
    run: dict[str, Any],
    metrics: dict[str, Any],
    importance: pd.DataFrame | None,
    assumptions: dict[str, Any],
    results: dict[str, Any],
    figures_html: list[str] | None = None,
    verdict: dict[str, Any] | None = None,
    payoff: dict[str, Any] | None = None,
    costs: dict[str, Any] | None = None,
    threshold: dict[str, Any] | None = None,
    models: pd.DataFrame | None = None,
    explanation: dict[str, Any] | None = None,
    sources: dict[str, str] | None = None,
    warnings: list[str] | None = None,
) -> str:
    """A self-contained HTML report (no scripts, no external requests; charts are inline SVG,
    so it prints to PDF as shown): the verdict first, then the payoff matrix, every cost, the
    threshold and where it was chosen, the models with metrics and intervals, explanation
    quality, assumptions with their sources, data and figures. Every value is escaped and
    formatted ($1,234.56, 14,196%)."""
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
    esc = html.escape
    verdict_html = ""
    if verdict:
        verdict_html = (
            f'<div class="verdict"><h2>Verdict</h2><p class="big">{esc(verdict["headline"])}</p>'
            f"<p>{esc(verdict['sentence'])}</p>"
            + _table(
                {
                    k: verdict.get(k)
                    for k in (
                        "label",
                        "champion",
                        "challenger_threshold",
                        "champion_threshold",
                        "rows",
                        "positives",
                        "extra_value_per_month",
                        "ci_low",
                        "ci_high",
                        "extra_cost_per_month",
                        "net_per_month",
                        "payback_months",
                        "break_even_monthly_volume",
                    )
                }
            )
            + "<p class='muted'>Interval: 95% paired bootstrap "
            f"({verdict.get('n_boot', 0):,} resamples of the same evaluation rows for both "
            "models, each at its own operating threshold). Label: pays when the low end exceeds "
            "the extra cost, does not pay when the high end is below it.</p></div>"
        )
    warn_html = "".join(f'<p class="warn">⚠ {esc(w)}</p>' for w in warnings or [])
    cost_html = ""
    if costs:
        frame = pd.DataFrame(costs).rename_axis("cost $ per month").reset_index()
        cost_html = f"<h2>Costs ($ per month)</h2>{_frame_table(frame)}"
    payoff_html = (
        f"<h2>Payoff matrix</h2>{_table({f'payoff.{k}': v for k, v in payoff.items()})}"
        if payoff
        else ""
    )
    threshold_html = f"<h2>Operating threshold</h2>{_table(threshold)}" if threshold else ""
    models_html = (
        f"<h2>Models on the same rows</h2>{_frame_table(models)}"
        if models is not None and not models.empty
        else ""
    )
    explanation_html = f"<h2>Explanation quality</h2>{_table(explanation)}" if explanation else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Payoff report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2rem auto;color:#222}}
table{{border-collapse:collapse;margin:0.5rem 0 1.5rem;font-size:0.85rem}}th,td{{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}}
th{{background:#f5f5f5;font-weight:600}}h1{{margin-bottom:0}}.muted{{color:#666}}
.verdict{{border:2px solid #1f77b4;padding:0 1rem;margin:1rem 0}}.big{{font-size:1.15rem;font-weight:600}}
.warn{{color:#8a5300}}svg{{display:block;margin:0.5rem 0 1rem}}</style></head><body>
<h1>Payoff report</h1><p class="muted">Generated {datetime.now():%Y-%m-%d %H:%M}</p>
{verdict_html}{warn_html}
<h2>Data</h2>{_table(dataset)}
<h2>Model</h2>{_table(run)}
{threshold_html}
<h2>Metrics (held-out test part)</h2>{_table(metrics)}
{models_html}
<h2>ROI and cost</h2>{_table(results)}
{payoff_html}{cost_html}
<h2>Explanation summary (mean |SHAP value|)</h2>{importance_html}
{explanation_html}
<h2>Assumptions</h2>{_table(flat_assumptions, sources if sources is not None else None)}
{"".join(figures_html or [])}
</body></html>"""
