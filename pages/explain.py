"""Explain: SHAP values per original column, with the figures that say how far to trust them."""

from __future__ import annotations

import math

import pandas as pd
import plotly.express as px
import streamlit as st

from core.engines import check_engine
from core.explanations import (
    BACKGROUND_ROWS,
    get_explanation,
    list_explanations,
    pairs_for,
    plan,
    shap_table,
)
from core.exports import to_safe_csv
from core.jobs import store_input, submit_and_start
from core.kinds.registry import get_kind
from core.runs import list_runs
from core.training import part_frame
from pages._shared import explain_views as views
from pages._shared import state
from pages._shared.auth import current_actor, on_download
from pages._shared.charts import token_highlights, waterfall
from pages._shared.frame import use_app_navigation
from pages._shared.jobs import pending_job, show_outcome
from pages._shared.pickers import pick_run
from pages._shared.resources import parse_upload
from pages._shared.widgets import engine_choice, fmt_seconds, user_errors

use_app_navigation()
_PICK_KEY = "explain_pick"
EXPLAIN_JOB = "explain_job"

st.title("Explain")
st.caption(
    "Why the model scores a row the way it does: how much each column pushed the score up or "
    "down compared with an average case. Technical terms are explained at the bottom."
)

# Ensembles are explained through their members (one set of SHAP values per model).
runs = [r for r in list_runs() if r.status == "succeeded" and get_kind(r.model).explainable]
run = pick_run(runs, key="explain_run", empty_message="Train a model first.")
kind = get_kind(run.model)

with st.expander("New explanation", expanded=not list_explanations(run.id)):
    source = st.radio(
        "Rows",
        ["Test part of the training data", "Upload a CSV"],
        horizontal=True,
        key="explain_source",
    )
    frame = None
    upload_bytes = None
    name = "test part"
    with user_errors():
        if source == "Upload a CSV":
            upload = st.file_uploader("CSV", type=["csv", "txt", "tsv"], key="explain_upload")
            if upload is not None:
                upload_bytes, name = upload.getvalue(), upload.name
                frame = parse_upload(upload_bytes, name).frame
        else:
            frame = part_frame(run.id, "test")
    if frame is not None:
        n_rows = st.slider(
            "Rows to explain",
            1,
            int(min(len(frame), 2000)),
            # A fine-tuned encoder costs ~0.2 s per text on a CPU: it starts smaller.
            int(min(len(frame), kind.explain_rows)),
            key="explain_rows",
        )
        n_pairs = None
        if kind.sampled:
            default = pairs_for(run)
            n_pairs = st.select_slider(
                "Accuracy vs time (higher is slower and closer to exact)",
                sorted({1, 2, 4, 8, 32, default}),
                value=default,
                key="explain_pairs",
                help="Each step up costs proportionally more model evaluations; the quality "
                "badge below shows how close the values came. (Technical: antithetic "
                "permutation pairs per game; see the notes at the bottom.)",
            )
        background_rows = BACKGROUND_ROWS
        if kind.background == "summary":
            background_rows = st.select_slider(
                "Typical training rows to compare against",
                [8, 16, 32, 64, 128],
                value=BACKGROUND_ROWS,
                key="explain_background",
                help="Values are measured against these rows. More rows stand for the training "
                "data better and cost proportionally more model evaluations. (Technical: a "
                "k-medoid background; see the notes at the bottom.)",
            )
        estimate = plan(
            run, n_rows, len(run.features), n_pairs=n_pairs, background_rows=background_rows
        )
        st.caption(
            f"Plan: about {estimate['evaluations']:,} model evaluations, ~{fmt_seconds(estimate['seconds'])} "
            f"at this model's measured {run.infer_rows_per_s or 0:,.0f} rows/s "
            f"(${estimate['dollars']:,.4f} on {estimate['device']}), plus at most "
            f"~{fmt_seconds(estimate['check_seconds'])} for the quality checks against references "
            "(the same background and, for the FT-Transformer, 256 random training rows; usually "
            "much less: values the rows share with a background row cost nothing)."
        )
        engine = engine_choice(run, key="explain_engine")
        if st.button("Explain", type="primary"):
            with user_errors():
                check_engine(engine)  # an unreachable cluster is named now; nothing queued
                params = {
                    "run_id": run.id,
                    "n_rows": int(n_rows),
                    "n_pairs": n_pairs,
                    "background_rows": int(background_rows),
                    "source_name": name,
                    "engine": engine,
                }
                if upload_bytes is not None:
                    params["input"] = store_input(upload_bytes)
                else:
                    params["part"] = "test"
                st.session_state[EXPLAIN_JOB] = submit_and_start(
                    "explain", params, run_id=run.id, actor=current_actor()
                )

finished = pending_job(EXPLAIN_JOB, "explain", run.id, "Explaining")
if finished is not None:
    if finished.status == "succeeded":
        st.session_state[state.EXPLANATION_ID] = finished.result["explanation_id"]
        # The picker below is a keyed widget: it keeps its own value over a changed `index`,
        # so the new explanation is selected through its key.
        st.session_state[_PICK_KEY] = finished.result["explanation_id"]
    else:
        show_outcome(finished, "The explanation")

stored = list_explanations(run.id)
if not stored:
    st.info("No explanations for this model yet: open “New explanation” above.")
    st.stop()
ids = [e["explanation_id"] for e in stored]
if st.session_state.get(_PICK_KEY) not in ids:  # first visit, or another model's explanation
    chosen = st.session_state.get(state.EXPLANATION_ID)
    st.session_state[_PICK_KEY] = chosen if chosen in ids else ids[0]
explanation_id = st.selectbox(
    "Explanation",
    ids,
    format_func=lambda i: next(
        f"#{e['explanation_id']} · {e['source_name']} · {e['rows']} rows · {e['method']}"
        for e in stored
        if e["explanation_id"] == i
    ),
    key=_PICK_KEY,
)
st.session_state[state.EXPLANATION_ID] = explanation_id
exp = get_explanation(explanation_id)

quality = exp.quality
views.quality_badge(exp)
cols = st.columns(3)
cols[0].metric("Rows explained", len(exp.output))
cols[1].metric("ms per row", f"{exp.ms_per_row:.1f}")
if run.task == "binary":
    cols[2].metric(
        f"Average case: P({run.positive_class})",
        f"{1 / (1 + math.exp(-exp.base_value)):.1%}",
        help=f"The start of every waterfall (base value {exp.base_value:.3f} in log-odds).",
    )
else:
    cols[2].metric("Average case", f"{exp.base_value:.3f}")
st.caption(f"Values explain the **{exp.output_space}**. Method: {exp.method}.")
probability = run.task == "binary" and (
    st.segmented_control(
        "Waterfall scale",
        ["probability", "log-odds (exact)"],
        default="probability",
        key="explain_scale",
        help="Contributions add up exactly in log-odds; the probability view shows the same "
        "path as changes in probability (largest contributions first).",
    )
    != "log-odds (exact)"
)

if exp.kind == "text":
    row = views.pick_row(exp, "text_row")
    spans = exp.spans[row]
    values = exp.values[row, : len(spans)]
    st.markdown(token_highlights(spans, values), unsafe_allow_html=True)
    note = f" Spans: {quality['spans']}." if quality.get("spans") else ""
    st.caption(
        "Red spans push toward the flagged class, blue spans away; hover for the value." + note
    )
    st.plotly_chart(
        waterfall(
            spans,
            values,
            float(exp.rows["base_value"].iloc[row]),
            title="Span contributions",
            unit="spans",
            probability=probability,
            target=f"P({run.positive_class})",
        ),
        width="stretch",
    )
    st.download_button(
        "Download span values (CSV)",
        to_safe_csv(shap_table(exp)),
        f"payoff-shap-{exp.explanation_id}.csv",
        "text/csv",
    )
    st.stop()

importance = exp.importance()
figure = px.bar(
    importance.iloc[::-1],
    x="mean_abs",
    y="column",
    orientation="h",
    title="Which columns matter most: the average size of their push (mean |SHAP value|)",
    height=max(320, 30 * len(importance)),
    labels={"mean_abs": f"mean |SHAP value| ({exp.output_space.split(' of ')[0]})", "column": ""},
)
figure.update_yaxes(type="category", dtick=1)
st.plotly_chart(figure, width="stretch")

values = pd.DataFrame(exp.values, columns=exp.columns)
features = exp.rows[exp.columns]
st.plotly_chart(
    views.beeswarm(values, features, list(importance["column"].head(15))), width="stretch"
)

left, right = st.columns(2)
column = left.selectbox("Dependence of", importance["column"].tolist(), key="dep_col")
others = [c for c in exp.columns if c != column]
colour = right.selectbox("Colour by", others or [column], key="dep_colour")
st.plotly_chart(views.dependence_chart(values, features, column, colour), width="stretch")

with st.expander("What if every row had another value? (partial dependence)"):
    pdp_column = st.selectbox("Column", importance["column"].tolist(), key="pdp_col")
    with user_errors():
        st.plotly_chart(views.pdp_chart(run, exp, pdp_column), width="stretch")

st.subheader("One row")
row = views.pick_row(exp, "waterfall_row")
shown = features.iloc[row].astype("string").fillna("missing").tolist()
compare = [
    r
    for r in runs
    if r.id != run.id and r.dataset_id == run.dataset_id and set(r.features) <= set(exp.rows)
]
other_id = st.selectbox(
    "Side by side with another model (the same row)",
    [None, *[r.id for r in compare]],
    format_func=lambda i: "none" if i is None else next(r.label for r in compare if r.id == i),
    key="explain_compare",
)
panes = st.columns(2) if other_id else [st.container()]
panes[0].plotly_chart(
    views.row_waterfall(
        run,
        exp.columns,
        exp.values[row],
        exp.base_value,
        shown,
        views.row_title(run, f"{run.label}, row {row + 1}", exp.output[row], probability),
        probability,
    ),
    width="stretch",
)
if other_id:
    with panes[1], user_errors():
        other = next(r for r in compare if r.id == other_id)
        st.plotly_chart(views.other_run_waterfall(other, exp, row, probability), width="stretch")
st.download_button(
    "Download SHAP values (CSV: row number, id, feature values, shap_<column>)",
    to_safe_csv(shap_table(exp)),
    f"payoff-shap-{exp.explanation_id}.csv",
    "text/csv",
    on_click=on_download("explanation", exp.explanation_id, "SHAP values (CSV)"),
    disabled=not current_actor().may("export"),
)
with st.expander("Technical terms"):
    st.markdown(views.TECHNICAL_NOTES)
