"""ROI & what-if: does the model pay once compute is counted? Per use case, editable."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core import economics as eco
from core.datasets import get_dataset
from core.explanations import get_explanation, list_explanations
from core.jobs import launch_worker_for
from core.scenarios import (
    compare_table,
    delete_scenario,
    html_report,
    list_scenarios,
    save_scenario,
)
from core.training import create_run, list_runs
from core.usecases import USE_CASES
from core.valuation import (
    compare_runs,
    learning_curve_points,
    monte_carlo_for,
    profit_curve_for,
    run_outcomes,
    sensitivity_for,
    value_of_twice_the_data,
    value_run,
)
from pages._shared.auth import current_actor, on_download
from pages._shared.frame import use_app_navigation
from pages._shared.pickers import pick_run
from pages._shared.widgets import user_errors

use_app_navigation()

st.title("ROI & what-if")
st.caption(
    "Value of better decisions minus what the model costs to train, run and explain, against "
    "today's policy. Every assumption is editable; hover the ? icons for where a default comes from."
)

runs = [
    r
    for r in list_runs()
    if r.status == "succeeded" and r.task == "binary" and r.train_fraction == 1.0
]
run = pick_run(
    runs, key="roi_run", empty_message="ROI needs a finished binary model (flag or not)."
)
dataset = get_dataset(run.dataset_id)
keys = list(USE_CASES)
default_key = dataset.use_case if dataset.use_case in keys else keys[0]
use_case_key = st.selectbox(
    "Use case",
    keys,
    index=keys.index(default_key),
    format_func=lambda k: USE_CASES[k].title,
    key=f"roi_uc_{run.id}",
)
template = USE_CASES[use_case_key]
outcomes = run_outcomes(run)
sources = template.sources


def number(
    label: str, path: str, value: float, step: float | None = None, key_suffix: str = ""
) -> float:
    # Payoff cells may be negative (losses); volumes and costs may not.
    floor = None if path.startswith(("payoff.", "money_multipliers.")) else 0.0
    return st.number_input(
        label,
        value=float(value),
        step=step,
        min_value=floor,
        help=sources.get(path, ""),
        key=f"roi_{use_case_key}_{path}{key_suffix}",
        format="%g",
    )


@st.fragment
def what_if() -> None:
    with st.sidebar:
        st.subheader("What-if controls")
        has_money = template.money_multipliers is not None and outcomes.money is not None
        use_money = st.toggle(
            f"Weight by the money column ({dataset.roles.money_column})"
            if has_money
            else "Weight by a money column",
            value=has_money,
            disabled=not has_money,
            key=f"roi_money_{use_case_key}",
            help="Per-row values scale with the amount (e.g. loss = amount × LGD). Needs a money column role on the dataset.",
        )
        st.markdown(f"**Payoff per decision** (positive = {template.positive_decision})")
        matrix = template.money_multipliers if use_money else template.payoff
        prefix = "money_multipliers" if use_money else "payoff"
        cells = {}
        grid = st.columns(2)
        for i, (cell, label) in enumerate((("tp", "TP"), ("fp", "FP"), ("tn", "TN"), ("fn", "FN"))):
            with grid[i % 2]:
                cells[cell] = number(
                    label + (" × amount" if use_money else " $"),
                    f"{prefix}.{cell}",
                    getattr(matrix, cell),
                    key_suffix=str(use_money),
                )
        volume = number(
            "Decisions per month", "monthly_volume", template.monthly_volume, step=100.0
        )
        capacity = st.number_input(
            "Review capacity per month (0 = unlimited)",
            0,
            10_000_000,
            int(template.review_capacity or 0),
            step=100,
            help=sources.get("review_capacity", ""),
            key=f"roi_cap_{use_case_key}",
        )
        integration = number(
            "One-off integration $",
            "one_off_costs.integration",
            template.one_off_costs.integration,
            step=1000.0,
        )
        maintenance = number(
            "Maintenance $ per year",
            "running_costs.maintenance_per_year",
            template.running_costs.maintenance_per_year,
            step=1000.0,
        )
        retrains = number(
            "Retrains per year",
            "running_costs.retrains_per_year",
            template.running_costs.retrains_per_year,
            step=1.0,
        )
        device_name = st.selectbox(
            "Price compute on",
            list(eco.DEVICE_CATALOG),
            key="roi_device",
            help="Time on another device is estimated from measured FLOPs and the efficiency of the measured run.",
        )
        catalog = eco.DEVICE_CATALOG[device_name]
        price = st.number_input(
            "$ per hour",
            value=float(catalog.dollars_per_hour),
            step=0.05,
            help=catalog.source,
            key=f"roi_price_{device_name}",
            format="%g",
        )
        explain_share = st.slider(
            "Share of decisions explained (reason codes)",
            0.0,
            1.0,
            0.0,
            0.05,
            key="roi_explain_share",
        )
    with user_errors():
        use_case = template.with_overrides(
            **{f"{prefix}.{k}": v for k, v in cells.items()},
            monthly_volume=volume,
            review_capacity=capacity or None,
            **{
                "one_off_costs.integration": integration,
                "running_costs.maintenance_per_year": maintenance,
                "running_costs.retrains_per_year": retrains,
            },
        )
        device = replace(catalog, dollars_per_hour=price)
        explained = list_explanations(run.id)
        explain_ms = explained[0]["ms_per_row"] if explained else None
        valuation = value_run(
            run,
            use_case,
            outcomes,
            device=device,
            use_money=use_money,
            explain_share=explain_share,
            explain_ms_per_row=explain_ms,
        )
        render_results(use_case, valuation, device, use_money)


def render_results(use_case, valuation, device, use_money) -> None:
    cols = st.columns(4)
    cols[0].metric(
        "Best threshold",
        f"{valuation.best_threshold:.3f}",
        help=f"Flags {valuation.flagged_share:.1%} of cases"
        + (" (capacity-limited)" if valuation.capacity_limited else ""),
    )
    cols[1].metric(
        "Value per decision",
        f"${valuation.value_per_decision:,.2f}",
        delta=f"{valuation.value_per_decision - valuation.status_quo_value_per_decision:+,.2f} vs today",
    )
    cols[2].metric("Monthly value vs today", f"${valuation.monthly_value:,.0f}")
    cols[3].metric(
        "Monthly cost",
        f"${valuation.monthly_cost:,.0f}",
        help=f"compute ${valuation.monthly_compute_cost:,.2f} on {valuation.device} + people ${valuation.monthly_people_cost:,.0f}",
    )
    cols = st.columns(4)
    cols[0].metric(
        "ROI over the horizon", "n/a" if valuation.roi is None else f"{valuation.roi:.0%}"
    )
    cols[1].metric(
        "Payback",
        "never" if valuation.payback_months is None else f"{valuation.payback_months:.1f} months",
    )
    cols[2].metric(f"NPV ({use_case.horizon_months} months)", f"${valuation.npv:,.0f}")
    cols[3].metric("One-off cost", f"${valuation.one_off_cost:,.0f}")
    st.caption(
        f"Status quo: {use_case.status_quo.policy.replace('_', ' ')} (${valuation.status_quo_value_per_decision:,.2f} per decision). Outcomes: {valuation.outcomes_source}, {len(outcomes.y):,} rows."
    )

    left, right = st.columns(2)
    curve = profit_curve_for(use_case, outcomes, use_money)
    figure = px.line(
        curve,
        x="threshold",
        y="value_per_decision",
        title="Profit curve: value per decision by threshold",
        height=340,
    )
    figure.add_vline(x=valuation.best_threshold, line_dash="dash", annotation_text="best")
    figure.add_hline(
        y=valuation.status_quo_value_per_decision, line_dash="dot", annotation_text="today"
    )
    left.plotly_chart(figure, width="stretch")
    payback = pd.DataFrame(
        {
            "month": range(len(valuation.cumulative_net)),
            "cumulative net $ (discounted)": valuation.cumulative_net,
        }
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
    cost = valuation.cost
    breakdown = pd.DataFrame(
        {
            "part": ["training (amortised)", "scoring", "explaining", "people"],
            "$ per month": [
                cost["training_per_month"],
                cost["scoring_per_month"],
                cost["explaining_per_month"],
                valuation.monthly_people_cost,
            ],
        }
    )
    st.plotly_chart(
        px.bar(
            breakdown,
            x="$ per month",
            y="part",
            orientation="h",
            title=f"Monthly cost on {cost['device']}",
            height=260,
        ),
        width="stretch",
    )

    st.subheader("Cost vs accuracy across this dataset's models")
    frame = compare_runs(
        run.dataset_id, use_case, target=run.target, device=device, use_money=use_money
    )
    if len(frame) > 1:
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
                    "Total $ per month vs net value per month",
                ),
            ),
            strict=True,
        ):
            shown = frame.assign(front=frame[flag].map({True: "Pareto front", False: "dominated"}))
            column.plotly_chart(
                px.scatter(shown, x=x, y=y, color="front", text="run", title=title, height=360),
                width="stretch",
            )
        st.dataframe(
            frame[
                [
                    "run",
                    "metric",
                    "monthly_compute_cost",
                    "monthly_value",
                    "monthly_net",
                    "roi",
                    "npv",
                    "incremental_roi_vs_baseline",
                ]
            ],
            hide_index=True,
            width="stretch",
        )
        st.caption(
            "Incremental ROI: extra NPV per extra $ over the cheapest baseline (blank when the model is not dearer)."
        )
    else:
        st.info("Train a baseline (LightGBM, logistic regression) on the same dataset to compare.")

    st.session_state["roi_last"] = {
        "use_case": use_case.to_dict(),
        "device": device.name,
        "dollars_per_hour": device.dollars_per_hour,
        "use_money_column": use_money,
        "results": {k: v for k, v in valuation.to_dict().items() if k != "cumulative_net"},
    }
    uncertainty(use_case, device, use_money)


def uncertainty(use_case, device, use_money) -> None:
    st.subheader("How sure is this?")
    left, right = st.columns(2)
    if left.button("Sensitivity (±20% on each assumption)", key="roi_sens"):
        with user_errors():
            tornado = sensitivity_for(run, use_case, outcomes, device, use_money)
            figure = go.Figure()
            figure.add_bar(
                y=tornado["assumption"],
                x=tornado["low_output"] - tornado["base_output"],
                orientation="h",
                name="-20%",
            )
            figure.add_bar(
                y=tornado["assumption"],
                x=tornado["high_output"] - tornado["base_output"],
                orientation="h",
                name="+20%",
            )
            figure.update_layout(
                barmode="overlay",
                title="Change in NPV (tornado)",
                height=360,
                yaxis={"autorange": "reversed"},
            )
            st.plotly_chart(figure, width="stretch")
    if right.button("Monte Carlo (±30% ranges, 300 draws)", key="roi_mc"):
        with user_errors():
            result = monte_carlo_for(run, use_case, outcomes, device, use_money)
            st.metric("Probability that ROI > 0", f"{result['prob_positive']:.0%}")
            st.plotly_chart(
                px.histogram(
                    x=result["samples"],
                    nbins=40,
                    labels={"x": "NPV $"},
                    title="NPV over the draws",
                    height=300,
                ),
                width="stretch",
            )


what_if()

st.subheader("Learning curve: what would more data be worth?")
points = learning_curve_points(run)
st.caption(
    "Trains the same model on 25% and 50% of the training rows (same validation and test rows), fits a power law, and prices twice the data."
)
if len(points) < 3:
    missing = [f for f in (0.25, 0.5) if f not in set(points["fraction"])]
    if st.button(
        f"Train on {', '.join(f'{f:.0%}' for f in missing)} of the rows",
        key="roi_lc",
        disabled=not missing,
    ):
        with user_errors():
            ids = [
                create_run(
                    run.dataset_id,
                    run.model,
                    target=run.target,
                    features=list(run.features),
                    size=run.size,
                    seed=run.seed,
                    time_budget_s=run.time_budget_s,
                    train_fraction=f,
                    allow_pii=bool(run.options.get("allow_pii")),
                    actor=current_actor(),
                )
                for f in missing
            ]
            launch_worker_for(ids)
            st.info("Training in the background; come back when the runs finish (see Train).")
else:
    with user_errors():
        last = st.session_state.get("roi_last", {})
        monthly_now = float(last.get("results", {}).get("monthly_value", 0.0))
        train_rows = int(round(dataset.n_rows * 0.6))
        more = value_of_twice_the_data(run, points, train_rows, monthly_now)
        st.plotly_chart(
            px.line(
                points.assign(rows=points["fraction"] * train_rows),
                x="rows",
                y="metric",
                markers=True,
                title="Test metric by training rows",
                height=300,
            ),
            width="stretch",
        )
        st.metric(
            "Value of twice the data",
            f"${more['delta_monthly_value']:,.0f} per month",
            delta=f"{more['delta_auc']:+.4f} AUC",
        )
        if not more["fitted"]:
            st.caption(f"No power law fitted: {more['reason']}")

st.subheader("Scenarios")
name = st.text_input(
    "Scenario name", value=f"{USE_CASES[use_case_key].title} · run #{run.id}", key="roi_scn_name"
)
last = st.session_state.get("roi_last")
cols = st.columns(2)
if cols[0].button("Save scenario", disabled=last is None, key="roi_save"):
    with user_errors():
        save_scenario(
            name,
            run.id,
            use_case_key,
            {k: v for k, v in last.items() if k != "results"},
            last["results"],
            actor=current_actor(),
        )
        st.toast("Scenario saved.")
if last:
    importance = None
    explanations = list_explanations(run.id)
    if explanations:
        importance = get_explanation(explanations[0]["explanation_id"]).importance()
    report = html_report(
        dataset={
            "name": dataset.name,
            "rows": dataset.n_rows,
            "columns": dataset.n_columns,
            "target": run.target,
        },
        run={
            "run": run.label,
            "device": run.device_name,
            "train seconds": run.train_seconds,
            "parameters": run.params,
            "FLOPs per row": run.flops_per_row,
            "inference rows/s": run.infer_rows_per_s,
        },
        metrics={k: v for k, v in run.metrics.items() if isinstance(v, (int, float))},
        importance=importance,
        assumptions={k: v for k, v in last.items() if k != "results"},
        results=last["results"],
    )
    cols[1].download_button(
        "Download HTML report",
        report.encode(),
        f"payoff-report-run{run.id}.html",
        "text/html",
        key="roi_report",
        on_click=on_download("run", run.id, "ROI report (HTML)"),
        disabled=not current_actor().may("export"),
    )
scenarios = list_scenarios()
if scenarios:
    st.dataframe(compare_table(scenarios[:6]), width="stretch")
    with st.popover("Delete a scenario"):
        pick = st.selectbox(
            "Scenario",
            [s["scenario_id"] for s in scenarios],
            format_func=lambda i: next(s["name"] for s in scenarios if s["scenario_id"] == i),
        )
        if st.button("Delete", key="roi_del"):
            with user_errors():
                delete_scenario(pick, actor=current_actor())
                st.rerun()
else:
    st.caption("No saved scenarios yet.")
