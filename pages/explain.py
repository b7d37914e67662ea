"""Explain: SHAP values per original column, with the figures that say how far to trust them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from core.explanations import (
    BACKGROUND_ROWS,
    SAMPLED_MODELS,
    get_explanation,
    list_explanations,
    pairs_for,
    plan,
)
from core.jobs import store_input, submit_and_start
from core.scoring import to_safe_csv
from core.training import list_runs, part_frame
from pages._shared import state
from pages._shared.charts import token_highlights, waterfall
from pages._shared.frame import use_app_navigation
from pages._shared.jobs import pending_job, show_outcome
from pages._shared.pickers import pick_run
from pages._shared.resources import parse_upload
from pages._shared.widgets import fmt_seconds, user_errors

use_app_navigation()
_PICK_KEY = "explain_pick"
EXPLAIN_JOB = "explain_job"

st.title("Explain")

# Ensembles are explained through their members (one set of SHAP values per model).
runs = [r for r in list_runs() if r.status == "succeeded" and r.model != "ensemble"]
run = pick_run(runs, key="explain_run", empty_message="Train a model first.")

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
            # A fine-tuned encoder costs ~0.2 s per text on a CPU: start smaller there.
            int(min(len(frame), 20 if run.model == "text-transformer" else 100)),
            key="explain_rows",
        )
        n_pairs = None
        if run.model in SAMPLED_MODELS:
            default = pairs_for(run)
            n_pairs = st.select_slider(
                "Sampling effort (antithetic permutation pairs per game)",
                sorted({1, 2, 4, 8, 32, default}),
                value=default,
                key="explain_pairs",
                help="More pairs cost proportionally more model evaluations and come closer "
                "to exact Shapley values; the quality badge below shows how close.",
            )
        background_rows = BACKGROUND_ROWS
        if run.model == "ft-transformer":
            background_rows = st.select_slider(
                "Background rows (a k-medoid summary of the training rows)",
                [8, 16, 32, 64, 128],
                value=BACKGROUND_ROWS,
                key="explain_background",
                help="Values are measured against these rows. More rows stand for the training "
                "data better and cost proportionally more model evaluations.",
            )
        estimate = plan(
            run, n_rows, len(run.features), n_pairs=n_pairs, background_rows=background_rows
        )
        st.caption(
            f"Plan: about {estimate['evaluations']:,} model evaluations, ~{fmt_seconds(estimate['seconds'])} "
            f"at this model's measured {run.infer_rows_per_s or 0:,.0f} rows/s "
            f"(${estimate['dollars']:,.4f} on {estimate['device']}), plus at most "
            f"~{fmt_seconds(estimate['check_seconds'])} for the quality check against a reference "
            "(usually much less: values the rows share with the background cost nothing)."
        )
        if st.button("Explain", type="primary"):
            with user_errors():
                params = {
                    "run_id": run.id,
                    "n_rows": int(n_rows),
                    "n_pairs": n_pairs,
                    "background_rows": int(background_rows),
                    "source_name": name,
                }
                if upload_bytes is not None:
                    params["input"] = store_input(upload_bytes)
                else:
                    params["part"] = "test"
                st.session_state[EXPLAIN_JOB] = submit_and_start("explain", params, run_id=run.id)

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
fidelity = quality.get("fidelity") or {}
trusted = exp.additivity_error < 1e-4 and (
    not fidelity
    or (fidelity.get("spearman", 0) >= 0.95 and fidelity.get("max_abs_error", 1) <= 0.05)
)
badge = st.success if trusted else st.warning
details = f"additivity error {exp.additivity_error:.1e}"
if fidelity:
    details += (
        f" · Spearman {fidelity['spearman']:.3f} and max error {fidelity['max_abs_error']:.1%} of the total "
        f"attribution on {fidelity['rows']} rows vs {fidelity.get('reference', 'a reference')}"
    )
elif exp.kind == "text":
    details += " · no text had two or more spans to compare with a reference"
badge(("Trustworthy: " if trusted else "Check before relying on it: ") + details)
cols = st.columns(4)
cols[0].metric("Rows", len(exp.output))
cols[1].metric("ms per row", f"{exp.ms_per_row:.1f}")
cols[2].metric("Base value", f"{exp.base_value:.3f}")
cols[3].metric("Output", exp.output_space.split(" of ")[0])
st.caption(f"Values explain the **{exp.output_space}**. Method: {exp.method}.")

if exp.kind == "text":
    row = st.number_input("Row", 1, len(exp.output), 1, key="text_row") - 1
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
        ),
        width="stretch",
    )
    st.stop()

importance = exp.importance()
figure = px.bar(
    importance.iloc[::-1],
    x="mean_abs",
    y="column",
    orientation="h",
    title="Global importance: mean |SHAP value|",
    height=max(320, 30 * len(importance)),
    labels={"mean_abs": f"mean |SHAP value| ({exp.output_space.split(' of ')[0]})", "column": ""},
)
figure.update_yaxes(type="category", dtick=1)
st.plotly_chart(figure, width="stretch")

values = pd.DataFrame(exp.values, columns=exp.columns)
features = exp.rows[exp.columns]


def colour_scale(series: pd.Series) -> np.ndarray:
    """Feature values as 0..1 ranks for colouring (categoricals by their order of codes)."""
    ranked = pd.to_numeric(series, errors="coerce")
    if ranked.isna().all():
        ranked = series.astype("string").rank(method="dense")
    return (ranked.rank(pct=True)).fillna(0.5).to_numpy()


swarm = []
rng = np.random.default_rng(0)
for column in importance["column"].head(15):
    swarm.append(
        pd.DataFrame(
            {
                "column": column,
                "SHAP value": values[column],
                "feature value (rank)": colour_scale(features[column]),
                "value": features[column].astype("string"),
                "jitter": rng.uniform(-0.3, 0.3, len(values)),
            }
        )
    )
swarm = pd.concat(swarm, ignore_index=True)
order = list(importance["column"].head(15))
swarm["y"] = swarm["column"].map({c: i for i, c in enumerate(order)}) + swarm["jitter"]
figure = px.scatter(
    swarm,
    x="SHAP value",
    y="y",
    color="feature value (rank)",
    hover_data=["column", "value"],
    color_continuous_scale="RdBu_r",
    title="Every row, every column (beeswarm)",
    height=max(320, 32 * len(order)),
)
figure.update_yaxes(
    tickvals=list(range(len(order))), ticktext=order, autorange="reversed", title=""
)
st.plotly_chart(figure, width="stretch")

left, right = st.columns(2)
column = left.selectbox("Dependence of", importance["column"].tolist(), key="dep_col")
others = [c for c in exp.columns if c != column]
colour = right.selectbox("Colour by", others or [column], key="dep_colour")
dependence = pd.DataFrame(
    {
        column: features[column],
        "SHAP value": values[column],
        colour: features[colour].astype("string"),
    }
)
st.plotly_chart(
    px.scatter(
        dependence,
        x=column,
        y="SHAP value",
        color=colour,
        title=f"Dependence: {column}",
        height=360,
    ),
    width="stretch",
)

row = st.number_input("Row for the waterfall", 1, len(exp.output), 1, key="waterfall_row") - 1
shown = features.iloc[row].astype("string").fillna("missing").tolist()
st.plotly_chart(
    waterfall(
        exp.columns,
        exp.values[row],
        exp.base_value,
        shown,
        title=f"Row {row + 1}: output {exp.output[row]:.3f}",
    ),
    width="stretch",
)
st.download_button(
    "Download SHAP values (CSV)",
    to_safe_csv(values.assign(base_value=exp.base_value, output=exp.output)),
    f"payoff-shap-{exp.explanation_id}.csv",
    "text/csv",
)
