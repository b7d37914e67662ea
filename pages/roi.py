"""ROI & what-if: does the transformer pay for itself against the best cheap model?"""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from core.datasets import get_dataset
from core.runs import get_run, list_runs
from core.scenarios import compare_table as compare_scenarios
from core.scenarios import delete_scenario, list_scenarios, save_scenario
from core.usecases import USE_CASES
from core.valuation import (
    launch_learning_curve,
    learning_curve_points,
    learning_curve_possible,
    monte_carlo_for,
    profit_curve_for,
    sensitivity_for,
    train_rows_of,
    value_of_twice_the_data,
)
from core.verdict import (
    STATUS_QUO,
    comparable_runs,
    compare_table,
    default_pair,
    evaluate,
    report_html,
    status_quo_name,
    verdict_for,
)
from pages._shared.auth import current_actor, on_download
from pages._shared.frame import use_app_navigation
from pages._shared.pickers import pick_run
from pages._shared.roi_widgets import (
    assumption_controls,
    comparison_block,
    learning_block,
    threshold_controls,
    tornado,
    valuation_block,
    verdict_card,
)
from pages._shared.widgets import user_errors

use_app_navigation()

st.title("ROI & what-if")
st.caption(
    "Does the model pay for itself once every cost is counted, against the best cheap model "
    "on the same rows? Every assumption is editable in the sidebar; hover the ? icons for "
    "where a default comes from."
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
has_money = template.money_multipliers is not None and bool(dataset.roles.money_column)
setting = assumption_controls(
    template, list(dataset.schema.names), has_money, dataset.roles.money_column
)
ev = verdict = champion = None
with user_errors():
    ev = evaluate(run, setting)
if ev is None:
    st.stop()
challenger = ev

# ---- the verdict ---------------------------------------------------------------------------
st.subheader("Verdict: does the challenger pay for itself?")
pool = {r.id: r for r in comparable_runs(run)}
with user_errors():
    best_transformer, best_baseline = default_pair(run, setting)
    ids = list(pool)
    start = best_transformer.id if best_transformer else run.id
    left, right = st.columns(2)
    challenger_id = left.selectbox(
        "Challenger",
        ids,
        index=ids.index(start) if start in ids else 0,
        format_func=lambda i: pool[i].label,
        key=f"roi_challenger_{run.id}",
        help="Default: the best transformer run of this split (by value on validation rows).",
    )
    options = [i for i in ids if i != challenger_id] + [STATUS_QUO]
    first = best_baseline.id if best_baseline and best_baseline.id in options else STATUS_QUO
    champion_choice = right.selectbox(
        "Champion",
        options,
        index=options.index(first),
        format_func=lambda i: status_quo_name(setting) if i == STATUS_QUO else pool[i].label,
        key=f"roi_champion_{run.id}",
        help="Default: the best baseline run of this split (by value on validation rows).",
    )
    challenger = ev if challenger_id == run.id else evaluate(get_run(challenger_id), setting)
    verdict, champion = verdict_for(challenger, setting, champion_choice)
    verdict_card(verdict)
if verdict is None:
    st.stop()

# ---- this model ----------------------------------------------------------------------------
st.subheader(f"{run.label}: value at its operating threshold")
threshold_controls(ev)
with user_errors():
    valuation_block(ev, setting, profit_curve_for(setting.use_case, ev.outcomes, setting.use_money))

st.subheader("Cost vs value across this split's models")
table = None
with user_errors():
    table = compare_table(run, setting, champion)
    comparison_block(table)

st.subheader("How sure is this?")
st.caption(
    "Both at the run's operating threshold, explanation cost included. The verdict's interval "
    "above is the sampling uncertainty; these move the assumptions."
)
left, right = st.columns(2)
common = dict(
    threshold=ev.valuation.threshold,
    explanations_per_month=setting.explanations,
    explain_ms_per_row=ev.valuation.explain_ms_per_row,
)
if left.button("Sensitivity (±20% on each assumption)", key="roi_sens"):
    with user_errors():
        frame = sensitivity_for(
            run, setting.use_case, ev.outcomes, setting.device, setting.use_money, **common
        )
        st.plotly_chart(tornado(frame), width="stretch")
if right.button("Monte Carlo (±30% ranges, 300 draws)", key="roi_mc"):
    with user_errors():
        result = monte_carlo_for(
            run, setting.use_case, ev.outcomes, setting.device, setting.use_money, **common
        )
        st.metric("Probability that NPV > 0", f"{result['prob_positive']:.0%}")
        st.plotly_chart(
            px.histogram(x=result["samples"], nbins=40, labels={"x": "NPV $"}, height=300),
            width="stretch",
        )

# ---- learning curve ------------------------------------------------------------------------
st.subheader("Learning curve: what would more data be worth?")
st.caption(
    "Trains the same model on 10%–75% of the training rows, two subsamples each (same "
    "validation and test rows), fits a power law to the mean per size and prices twice the "
    "data with an interval from the repeats."
)
with user_errors():
    points = learning_curve_points(run)
    train_rows = train_rows_of(run)
    more, message = None, ""
    try:
        more = value_of_twice_the_data(run, points, train_rows, ev.valuation.monthly_value)
    except ValueError as exc:
        message = str(exc)
    learning_block(points, more, train_rows, message)
    possible = learning_curve_possible(run)
    if st.button("Train the learning-curve runs", key="roi_lc", disabled=not possible):
        started = launch_learning_curve(run, actor=current_actor())
        st.info(
            f"Training {len(started)} run(s) in the background; come back when they finish."
            if started
            else "Every learning-curve run exists already."
        )

# ---- scenarios and report ------------------------------------------------------------------
st.subheader("Scenarios and report")
results = {k: v for k, v in ev.valuation.to_dict().items() if k != "cumulative_net"}
results.update(
    verdict_label=verdict.label,
    verdict_net_per_month=verdict.net_per_month,
    verdict_champion=verdict.champion,
)
assumptions = {
    "use_case": setting.use_case.to_dict(),
    "device": setting.device.name,
    "dollars_per_hour": setting.device.dollars_per_hour,
    "use_money_column": setting.use_money,
    "explanations_per_month": setting.explanations,
}
name = st.text_input("Scenario name", value=f"{template.title} · run #{run.id}", key="roi_scn_name")
cols = st.columns(2)
if cols[0].button("Save scenario", key="roi_save"):
    with user_errors():
        save_scenario(name, run.id, use_case_key, assumptions, results, actor=current_actor())
        st.toast("Scenario saved.")
with user_errors():
    report = report_html(challenger, setting, verdict, champion, table)
    cols[1].download_button(
        "Download HTML report",
        report.encode(),
        f"payoff-report-run{challenger.run.id}.html",
        "text/html",
        key="roi_report",
        on_click=on_download("run", run.id, "ROI report (HTML)"),
        disabled=not current_actor().may("export"),
    )
scenarios = list_scenarios()
if scenarios:
    st.dataframe(compare_scenarios(scenarios[:6]), width="stretch")
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
