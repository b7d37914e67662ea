"""Fairness & segments: how the model treats groups, what equal treatment costs, where it
loses money. Figures come from core/fairness.py; this page only renders them."""

from __future__ import annotations

import streamlit as st

from core.counterfactuals import suggest_immutable
from core.fairness import (
    DEFAULT_BANDS,
    FOUR_FIFTHS,
    fairness_report,
    price_of_fairness,
    segment_table,
)
from core.runs import list_runs
from core.thresholds import operating_threshold
from core.valuation import default_use_case_for
from pages._shared import fairness_views as views
from pages._shared.frame import use_app_navigation
from pages._shared.pickers import pick_run
from pages._shared.resources import labelled_rows, validation_rows
from pages._shared.widgets import user_errors

use_app_navigation()

st.title("Fairness & segments")
st.caption(
    "Does the model treat groups alike, what would equal treatment cost per month, and in "
    "which segments does it lose money? A model that pays for itself but treats a group "
    "unfairly cannot be used in credit or healthcare triage."
)

runs = [r for r in list_runs() if r.status == "succeeded" and r.task == "binary"]
run = pick_run(
    runs,
    key="fairness_run",
    empty_message="Fairness needs a finished binary model (flag or not): train one first.",
)

source = st.radio(
    "Labelled rows",
    ["Test part of the training data", "Upload a labelled CSV"],
    horizontal=True,
    key="fairness_source",
    help="Rows with the true outcome: the model's flags are compared with what happened.",
)
data = None
with user_errors():
    if source == "Upload a labelled CSV":
        upload = st.file_uploader(
            f"CSV with the model's columns and {run.target!r}",
            type=["csv", "txt", "tsv"],
            key="fairness_upload",
        )
        if upload is None:
            st.info("Upload a CSV with the true outcome to see figures for it.")
            st.stop()
        data = labelled_rows(run.id, str(run.artifact_path), upload.getvalue(), upload.name)
    else:
        data = labelled_rows(run.id, str(run.artifact_path), None, "test part")
if data is None:
    st.stop()

threshold = operating_threshold(run.id)
st.caption(
    f"{data.outcomes.y.size:,} labelled rows ({data.source}). Flagged = P({run.positive_class}) "
    f"≥ the run's threshold {threshold.describe()}."
)
columns = [c for c in data.rows.columns if c != run.target]
suggested = suggest_immutable(columns)
left, right = st.columns([3, 1])
column = left.selectbox(
    "Group by",
    columns,
    index=columns.index(suggested[0]) if suggested else 0,
    key="fairness_column",
    help="Any column; numeric columns with many values are cut into bands of equal size.",
)
bands = right.number_input(
    "Bands for numbers", 0, 10, DEFAULT_BANDS, key="fairness_bands", help="0: no bands"
)
use_case = default_use_case_for(run)
values = data.rows[column]

fair_tab, price_tab, segment_tab = st.tabs(
    ["Fairness by group", "Price of fairness", "Segments: where the model loses money"]
)

with fair_tab, user_errors():
    report = fairness_report(
        data.outcomes.y, data.outcomes.score, values, column, threshold.threshold, int(bands)
    )
    a, b = st.columns(2)
    ratio = report.demographic_parity_ratio
    a.metric(
        "Demographic parity ratio",
        "–" if ratio is None else f"{ratio:.2f}",
        help="Lowest selection rate / highest; the four-fifths rule asks for at least 0.8.",
    )
    gap = report.equalized_odds_difference
    b.metric(
        "Equalized-odds difference",
        "–" if gap is None else f"{gap:.2f}",
        help="The largest gap between groups in true or false positive rate.",
    )
    if ratio is not None:
        if report.four_fifths_ok:
            st.success(f"Meets the four-fifths rule: the ratio {ratio:.2f} is at least 0.8.")
        else:
            st.warning(
                f"Fails the four-fifths rule: the group flagged least is flagged at {ratio:.0%} "
                "of the rate of the group flagged most (0.8 is the usual floor)."
            )
    st.plotly_chart(views.selection_chart(report), width="stretch")
    st.dataframe(views.readable(report.table()), hide_index=True, width="stretch")
    with st.expander("What these figures mean"):
        st.markdown(views.EXPLAINER)

with price_tab, user_errors():
    st.caption(
        "The best value with one threshold per group such that every group is flagged at "
        "least this share of the most-flagged group's rate. Group thresholds are chosen on "
        "the run's validation rows, then valued on the rows above. Check with counsel: "
        "group-specific thresholds are themselves regulated in some uses."
    )
    target = st.slider(
        "Parity target: lowest / highest selection rate at least",
        0.5,
        1.0,
        FOUR_FIFTHS,
        0.05,
        key="fairness_target",
    )
    val = validation_rows(run.id, str(run.artifact_path))
    searchable = column in val.rows.columns
    if not searchable:
        st.info(
            f"The validation rows have no {column!r} column: the thresholds are chosen on these "
            "same rows, so the figures are optimistic."
        )
    price = price_of_fairness(
        use_case,
        data.outcomes,
        values,
        column,
        threshold.threshold,
        target,
        search=val.outcomes if searchable else None,
        search_values=val.rows[column] if searchable else None,
        bands=int(bands),
    )
    one, fair, free = price["unconstrained"], price["constrained"], price["group_best"]
    a, b, c = st.columns(3)
    a.metric("Value per month, one threshold", views.money(one["monthly_value"]))
    b.metric(
        f"With group thresholds (parity ≥ {target:.2f})",
        views.money(fair["monthly_value"]),
        delta=f"{views.money(-price['price_per_month'])} a month",
    )
    c.metric("Price of fairness per month", views.money(price["price_per_month"]))
    if price["price_per_month"] < 0:
        st.info(
            "No price here: group thresholds have more freedom than one threshold, so they "
            f"gain {views.money(-price['price_per_month'])} a month even with the target."
        )
    target_cost = price["price_of_target_per_month"]
    st.caption(
        f"Each group's own best threshold, with no target, would give "
        f"{views.money(free['monthly_value'])} a month (parity ratio "
        f"{free['parity_ratio'] or 0:.2f}); "
        + (
            f"the target itself costs {views.money(target_cost)} a month against that."
            if target_cost >= 0
            else f"on these rows the thresholds under the target even do "
            f"{views.money(-target_cost)} a month better (both were chosen on other rows)."
        )
    )
    achieved = fair["parity_ratio"]
    st.caption(
        f"Value against today's policy ({use_case.status_quo.policy.replace('_', ' ')}), "
        f"{use_case.monthly_volume:,.0f} decisions a month ({use_case.title}). Parity ratio "
        f"on these rows: {one['parity_ratio'] or 0:.2f} with one threshold, "
        f"{achieved or 0:.2f} with group thresholds "
        f"({price['search_parity_ratio'] or 0:.2f} on the {price['search_rows']:,} "
        f"{price['searched_on']} they were chosen on)."
    )
    st.dataframe(
        [{"group": g, "threshold": round(t, 4)} for g, t in price["group_thresholds"].items()],
        hide_index=True,
    )

with segment_tab, user_errors():
    table = segment_table(use_case, data.outcomes, values, column, threshold.threshold, int(bands))
    losing = table[table["monthly_value"] < 0]
    if len(losing):
        st.warning(
            f"The model loses money against today's policy in {len(losing)} segment(s) of "
            f"{column}: {', '.join(map(str, losing['group']))}."
        )
    else:
        st.success(f"The model beats today's policy in every segment of {column}.")
    st.plotly_chart(views.segment_chart(table, column), width="stretch")
    st.dataframe(views.readable(table), hide_index=True, width="stretch")
    st.caption(
        "Value per month = (the segment's value with the model - with today's policy) / all "
        "rows x monthly volume: the segments add up to the run's monthly value."
    )
