"""Widgets of the ROI page: assumption controls with their sources, the verdict card, the
valuation figures, the threshold control, comparison, uncertainty and learning-curve blocks.
They only draw what core/verdict.py and core/valuation.py compute."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core import economics as eco
from core.scenarios import format_value, money, percent
from core.thresholds import reset_operating_threshold, set_operating_threshold
from core.usecases import UseCase
from core.verdict import LABELS, Evaluated, Setting, Verdict, cost_lines
from pages._shared.auth import current_actor
from pages._shared.widgets import user_errors

POLICIES = {
    "approve_all": "Flag nobody (approve / pass everyone)",
    "flag_all": "Flag everyone",
    "manual_review": "Manual review of every case (assumed perfect, at a cost)",
    "column": "A column of the data holding today's decision",
}


def _number(label: str, key: str, value: float, help: str, *, floor=0.0, step=None) -> float:
    return st.number_input(
        label, value=float(value), min_value=floor, step=step, help=help, key=key, format="%g"
    )


def assumption_controls(
    template: UseCase, columns: list[str], has_money: bool, money_column: str | None
) -> Setting:
    """Every assumption in the sidebar, each with its source as help; returns the Setting."""
    sources = template.sources
    k = f"roi_{template.key}_"
    with st.sidebar:
        st.subheader("Assumptions")
        use_money = st.toggle(
            f"Weight by the money column ({money_column})"
            if has_money
            else "Weight by a money column",
            value=has_money,
            disabled=not has_money,
            key=f"{k}money",
            help="Per-row values scale with the amount (e.g. loss = amount × LGD); needs a money "
            "column role on the dataset and money multipliers in the use case.",
        )
        st.markdown(f"**Payoff per decision** (positive = {template.positive_decision})")
        matrix = template.money_multipliers if use_money else template.payoff
        prefix = "money_multipliers" if use_money else "payoff"
        cells, grid = {}, st.columns(2)
        for i, cell in enumerate(("tp", "fp", "tn", "fn")):
            with grid[i % 2]:
                cells[f"{prefix}.{cell}"] = _number(
                    cell.upper() + (" × amount" if use_money else " $"),
                    f"{k}{prefix}.{cell}{use_money}",
                    getattr(matrix, cell),
                    sources.get(f"{prefix}.{cell}", ""),
                    floor=None,
                )
        edits = dict(cells)
        edits["monthly_volume"] = _number(
            "Decisions per month",
            f"{k}monthly_volume",
            template.monthly_volume,
            sources.get("monthly_volume", ""),
            step=100.0,
        )
        capacity = st.number_input(
            "Review capacity per month (0 = unlimited)",
            0,
            100_000_000,
            int(template.review_capacity or 0),
            step=100,
            help=sources.get("review_capacity", ""),
            key=f"{k}cap",
        )
        edits["review_capacity"] = capacity or None
        st.markdown("**Today's policy (status quo)**")
        policies = list(POLICIES)
        policy = st.selectbox(
            "Status quo",
            policies,
            index=policies.index(template.status_quo.policy)
            if template.status_quo.policy in policies
            else 0,
            format_func=POLICIES.get,
            help=sources.get("status_quo.policy", ""),
            key=f"{k}sq",
        )
        column = flag_value = None
        if policy == "column":
            column = st.selectbox("Column with today's decision", columns, key=f"{k}sq_col")
            flag_value = (
                st.text_input(
                    "Value meaning flagged (blank: 1/yes/flag/decline…)", key=f"{k}sq_val"
                )
                or None
            )
            edits["status_quo.policy"] = "rule"
        else:
            edits["status_quo.policy"] = policy
        if policy == "manual_review":
            edits["status_quo.cost_per_decision"] = _number(
                "Review cost $ per decision",
                f"{k}sq_cost",
                template.status_quo.cost_per_decision,
                sources.get("status_quo.cost_per_decision", ""),
            )
        st.markdown("**Costs**")
        for path, label, step in (
            ("one_off_costs.integration", "One-off integration $", 1000.0),
            ("one_off_costs.labelling", "One-off labelling $", 1000.0),
            ("running_costs.maintenance_per_year", "Maintenance $ per year", 1000.0),
            ("running_costs.retrains_per_year", "Retrains per year", 1.0),
            ("running_costs.cost_per_retrain", "Sign-off $ per retrain", 500.0),
        ):
            group, _, field = path.partition(".")
            current = getattr(getattr(template, group), field)
            edits[path] = _number(label, f"{k}{path}", current, sources.get(path, ""), step=step)
        edits["discount_rate_per_year"] = st.number_input(
            "Discount rate per year",
            0.0,
            0.99,
            float(template.discount_rate_per_year),
            0.01,
            help=sources.get("discount_rate_per_year", ""),
            key=f"{k}rate",
        )
        edits["horizon_months"] = st.number_input(
            "Horizon (months)",
            1,
            240,
            int(template.horizon_months),
            help=sources.get("horizon_months", ""),
            key=f"{k}horizon",
        )
        device_name = st.selectbox(
            "Price compute on",
            list(eco.DEVICE_CATALOG),
            key="roi_device",
            help="Time on another device is estimated from measured FLOPs and the measured "
            "run's share of its peak.",
        )
        catalog = eco.DEVICE_CATALOG[device_name]
        price = _number(
            "$ per hour",
            f"roi_price_{device_name}",
            catalog.dollars_per_hour,
            catalog.source,
            step=0.05,
        )
        explained = _number(
            "Explanations per month",
            f"{k}explained",
            edits["monthly_volume"] * 0.1,
            "Reason codes produced a month; default 10% of decisions — assumption, edit. "
            "Priced from the run's measured explanation ms per row.",
            step=100.0,
        )
        st.markdown("**Challenger's own extra costs**")
        extra_one_off = _number(
            "Extra integration $ (challenger)",
            f"{k}x_int",
            0.0,
            "0: same pipeline for both — assumption; add GPU serving set-up if needed.",
            step=1000.0,
        )
        extra_maintenance = _number(
            "Extra maintenance $ per year (challenger)",
            f"{k}x_maint",
            0.0,
            "0: same team for both — assumption; add MLOps for a transformer if needed.",
            step=1000.0,
        )
    with user_errors():
        use_case = template.with_overrides(**edits)
        return Setting(
            use_case=use_case,
            device=replace(catalog, dollars_per_hour=price),
            use_money=use_money,
            explanations_per_month=explained,
            status_quo_column=column,
            status_quo_flag_value=flag_value,
            challenger_extra_integration=extra_one_off,
            challenger_extra_maintenance_per_year=extra_maintenance,
        )
    st.stop()


def verdict_card(verdict: Verdict) -> None:
    """The headline: label, money per month with its interval, cost, net, payback."""
    if verdict.label is None:
        st.info(verdict.sentence)
        return
    box = {"pays": st.success, "does_not_pay": st.error}.get(verdict.label, st.warning)
    box(f"**Verdict: {LABELS[verdict.label]}.** {verdict.headline}")
    cols = st.columns([1, 2, 1])
    cols[0].metric(
        "Extra value per month",
        money(verdict.extra_value_per_month, 0),
        help=f"95% paired bootstrap interval ({verdict.n_boot:,} resamples of the same "
        f"{verdict.rows:,} rows, {verdict.positives:,} positive, {verdict.rows_source}; each "
        "model at its own operating threshold)",
    )
    cols[1].metric("95% interval", f"{money(verdict.ci_low, 0)} to {money(verdict.ci_high, 0)}")
    cols[2].metric("Net per month", money(verdict.net_per_month, 0))
    cols = st.columns(3)
    cols[0].metric("Extra cost per month", money(verdict.extra_cost_per_month))
    cols[1].metric(
        "Payback",
        "never" if verdict.payback_months is None else f"{verdict.payback_months:,.1f} months",
    )
    cols[2].metric(
        "Break-even volume",
        "none"
        if verdict.break_even_monthly_volume is None
        else f"{verdict.break_even_monthly_volume:,.0f} a month",
        help="Decisions a month at which the extra value (point estimate) covers the extra "
        "cost; none when the challenger is not better per decision.",
    )
    st.markdown(verdict.sentence)
    for warning in verdict.warnings:
        st.warning(warning)
    with st.expander("Costs behind the verdict ($ per month)"):
        frame = pd.DataFrame(verdict.costs).rename_axis("part").reset_index()
        st.dataframe(
            frame.assign(**{c: frame[c].map(money) for c in verdict.costs}),
            hide_index=True,
            width="stretch",
        )


def threshold_controls(ev: Evaluated) -> None:
    """Where the operating threshold came from, and a control to set or reset it."""
    t = ev.threshold
    left, mid, right = st.columns([2, 1, 1])
    chosen = left.number_input(
        "Operating threshold (flag when P(positive) ≥ this)",
        0.0,
        1.0,
        float(t.threshold),
        0.01,
        format="%.3f",
        key=f"roi_thr_{ev.run.id}",
        help=f"Now {t.describe()}. Runs, Score and reasons read the same threshold.",
    )
    if mid.button("Use this threshold", key=f"roi_thr_set_{ev.run.id}"):
        with user_errors():
            set_operating_threshold(ev.run.id, chosen, actor=current_actor())
            st.rerun()
    if right.button(
        "Choose on validation rows",
        key=f"roi_thr_reset_{ev.run.id}",
        disabled=t.chosen_on != "user",
    ):
        with user_errors():
            reset_operating_threshold(ev.run.id, actor=current_actor())
            st.rerun()
    st.caption(f"Operating threshold {t.describe()}.")


def valuation_block(ev: Evaluated, setting: Setting, curve: pd.DataFrame) -> None:
    v, use_case = ev.valuation, setting.use_case
    cols = st.columns(4)
    cols[0].metric(
        "Operating threshold",
        f"{v.threshold:.3f}",
        help=f"{ev.threshold.describe()}; flags {v.flagged_share:.1%} of cases",
    )
    cols[1].metric(
        "Value per decision",
        money(v.value_per_decision),
        delta=f"{v.value_per_decision - v.status_quo_value_per_decision:+,.2f} vs today",
    )
    cols[2].metric("Monthly value vs today", f"${v.monthly_value:,.0f}")
    cols[3].metric(
        "Monthly cost",
        f"${v.monthly_cost:,.0f}",
        help=f"compute {money(v.monthly_compute_cost)} on {v.device} + people {money(v.monthly_people_cost)}",
    )
    cols = st.columns(4)
    cols[0].metric("ROI over the horizon", percent(v.roi))
    cols[1].metric(
        "Payback", "never" if v.payback_months is None else f"{v.payback_months:.1f} months"
    )
    cols[2].metric(f"NPV ({use_case.horizon_months} months)", money(v.npv, 0))
    cols[3].metric("One-off cost", money(v.one_off_cost, 0))
    st.caption(
        f"Hindsight (in-sample best on these same rows, not used): threshold "
        f"{v.hindsight_best_threshold:.3f}, {money(v.hindsight_value_per_decision)} per decision. "
        f"Status quo {money(v.status_quo_value_per_decision)} per decision. Rows: {v.outcomes_source}, "
        f"{v.rows:,} ({v.positives:,} positive). Explanations priced at {v.explain_ms_per_row:,.1f} ms "
        f"per row, {ev.explain_source}."
    )
    for warning in v.warnings:
        st.warning(warning)
    left, right = st.columns(2)
    figure = px.line(
        curve,
        x="threshold",
        y="value_per_decision",
        title="Value per decision by threshold",
        height=340,
    )
    figure.add_vline(x=v.threshold, line_dash="dash", annotation_text="operating")
    figure.add_vline(
        x=v.hindsight_best_threshold,
        line_dash="dot",
        line_color="#999",
        annotation_text="hindsight",
    )
    figure.add_hline(y=v.status_quo_value_per_decision, line_dash="dot", annotation_text="today")
    left.plotly_chart(figure, width="stretch")
    payback = pd.DataFrame(
        {"month": range(len(v.cumulative_net)), "cumulative net $ (discounted)": v.cumulative_net}
    )
    figure = px.area(
        payback,
        x="month",
        y="cumulative net $ (discounted)",
        title="Cumulative net value (payback)",
        height=340,
    )
    figure.add_hline(y=0, line_color="#888")
    right.plotly_chart(figure, width="stretch")
    lines = cost_lines(v, use_case.horizon_months)
    breakdown = pd.DataFrame({"part": list(lines), "$ per month": list(lines.values())})
    st.plotly_chart(
        px.bar(
            breakdown,
            x="$ per month",
            y="part",
            orientation="h",
            title=f"Monthly cost on {v.device}",
            height=280,
        ),
        width="stretch",
    )


def comparison_block(frame: pd.DataFrame) -> None:
    if len(frame) < 2:
        st.info("Train a baseline (LightGBM, logistic regression) on the same split to compare.")
        return
    left, right = st.columns(2)
    for column, (flag, x, y, title) in zip(
        (left, right),
        (
            (
                "pareto_accuracy",
                "monthly_compute_cost",
                "metric",
                "Compute $ per month vs test metric",
            ),
            (
                "pareto_profit",
                "monthly_cost",
                "monthly_net",
                "All-in $ per month vs net value per month",
            ),
        ),
        strict=True,
    ):
        shown = frame.assign(front=frame[flag].map({True: "Pareto front", False: "dominated"}))
        column.plotly_chart(
            px.scatter(shown, x=x, y=y, color="front", text="run", title=title, height=360),
            width="stretch",
        )
    keep = [
        c
        for c in (
            "run",
            "metric",
            "threshold",
            "threshold_chosen_on",
            "value_per_decision",
            "monthly_value",
            "monthly_cost",
            "monthly_net",
            "net_vs_champion",
        )
        if c in frame
    ]
    shown = frame[keep].copy()
    for c in keep[2:]:
        if c != "threshold_chosen_on":
            shown[c] = shown[c].map(lambda x, c=c: format_value(c, x))
    st.dataframe(shown, hide_index=True, width="stretch")
    st.caption(
        "Each run at its own operating threshold on the same test rows. Monthly cost includes "
        "one-off costs spread over the horizon; differences are in dollars, never a ratio."
    )


def tornado(frame: pd.DataFrame) -> go.Figure:
    figure = go.Figure()
    for name, column in (("-20%", "low_output"), ("+20%", "high_output")):
        figure.add_bar(
            y=frame["assumption"],
            x=frame[column] - frame["base_output"],
            orientation="h",
            name=name,
        )
    figure.update_layout(
        barmode="overlay",
        title="Change in NPV (tornado)",
        height=380,
        yaxis={"autorange": "reversed"},
    )
    return figure


def learning_block(points: pd.DataFrame, more: dict | None, train_rows: int, message: str) -> None:
    if points["fraction"].nunique() > 1:
        st.plotly_chart(
            px.scatter(
                points.assign(rows=points["fraction"] * train_rows),
                x="rows",
                y="metric",
                title="Test metric by training rows (each dot a run)",
                height=300,
            ),
            width="stretch",
        )
    if more is None:
        st.info(message)
        return
    interval = (
        f"95% interval {money(more['ci_low'], 0)} to {money(more['ci_high'], 0)}"
        if more.get("ci_low") is not None
        else more["interval_note"]
    )
    st.metric(
        "Value of twice the data",
        f"{money(more['delta_monthly_value'], 0)} per month",
        delta=f"{more['delta_auc']:+.4f} AUC",
        help=interval,
    )
    st.caption(
        f"{interval}. Fitted on {more['sizes']} sizes, {more['runs']} runs; rough rule: value linear in AUC - 0.5."
    )
