"""Score: run a trained model over a file (as a background job), read decisions and reasons,
try what-ifs."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pandas as pd
import streamlit as st

from core.access import mask_pii
from core.counterfactuals import whatif_record
from core.datasets import list_datasets, pii_columns
from core.engines import check_engine
from core.explanations import explain_row
from core.exports import to_safe_csv
from core.jobs import store_input, submit_and_start
from core.kinds.registry import get_kind
from core.runs import list_runs
from core.scoring import batch_predictions, list_batches, reasons_plan
from core.settings import load_settings
from pages._shared import state
from pages._shared import whatif_views as whatif
from pages._shared.auth import current_actor, on_download
from pages._shared.charts import waterfall
from pages._shared.frame import use_app_navigation
from pages._shared.jobs import pending_job, show_outcome
from pages._shared.pickers import pick_run
from pages._shared.resources import run_model
from pages._shared.score_views import batch_summary, threshold_slider
from pages._shared.widgets import engine_choice, fmt_seconds, user_errors

REASON_ROWS_DEFAULT = 200
SCORE_JOB = "score_job"

use_app_navigation()

st.title("Score")

runs = [r for r in list_runs() if r.status == "succeeded"]
run = pick_run(
    runs,
    key="score_run",
    empty_message="Train a model first; scoring uses a finished run.",
    describe=lambda r: (
        f"{r.label} · dataset #{r.dataset_id}"
        + (f" · {r.headline[0]} {r.headline[1]:.3f}" if r.headline[1] is not None else "")
    ),
)
model = None
with user_errors("Could not load the model: "):
    model = run_model(run.id, str(run.artifact_path))
if model is None:
    st.stop()
st.caption(f"Needs columns: {', '.join(run.features)}. Extra columns are ignored and listed.")

source = st.radio(
    "Rows to score", ["Upload a CSV", "A dataset in Payoff"], horizontal=True, key="score_source"
)
data: bytes | None = None
dataset_path = None
name = ""
if source == "Upload a CSV":
    upload = st.file_uploader("CSV to score", type=["csv", "txt", "tsv"], key="score_upload")
    if upload is not None:
        data, name = upload.getvalue(), upload.name
else:
    datasets = list_datasets()
    chosen = st.selectbox(
        "Dataset",
        [d.id for d in datasets],
        format_func=lambda i: next(f"#{d.id} {d.name}" for d in datasets if d.id == i),
        key="score_dataset",
    )
    info = next(d for d in datasets if d.id == chosen)
    data, name, dataset_path = info.stored_path.read_bytes(), info.name, info.stored_path

threshold, operating = threshold_slider(run, key=f"score_threshold_{run.id}")
reason_rows = st.number_input(
    "Add the top three reasons to the first N rows (SHAP; 0 for none)",
    0,
    5000,
    REASON_ROWS_DEFAULT,
    step=50,
    key="reason_rows",
)
if reason_rows and get_kind(run.model).explainable:
    with user_errors("Reasons: "), st.spinner("Timing reasons on a few rows..."):
        estimate = reasons_plan(run, int(reason_rows), model)
        st.caption(
            f"Reasons: ~{fmt_seconds(estimate['seconds'])} for {int(reason_rows):,} rows "
            f"({estimate['ms_per_row']:.1f} ms per row, {estimate['basis']}). Each row lists "
            "what pushes it toward its own decision at the threshold above."
        )

engine = engine_choice(run, key="score_engine")

if st.button("Score", type="primary", disabled=data is None or not current_actor().may("score")):
    with user_errors(f"{name}: "):
        check_engine(engine)  # an unreachable cluster is named now, and nothing is queued
        digest = hashlib.sha256(data).hexdigest()[:12]
        home = load_settings().home.resolve()
        stored = dataset_path.resolve() if dataset_path is not None else None
        st.session_state[SCORE_JOB] = submit_and_start(
            "score",
            {
                "run_id": run.id,
                # A dataset's stored file is read where it lies; an upload is kept for the job.
                "input": str(stored.relative_to(home))
                if stored is not None and stored.is_relative_to(home)
                else store_input(data),
                "source_name": name,
                # Unchanged: the operating threshold, so the batch records where it came from.
                "threshold": None
                if operating and abs(threshold - operating.threshold) < 1e-12
                else threshold,
                "chunk_rows": 20_000,
                "reasons_for_rows": int(reason_rows),
                "export": f"score-run{run.id}-{digest}.csv",
                "total_rows": max(1, data.count(b"\n") - 1),
                "engine": engine,
            },
            run_id=run.id,
            actor=current_actor(),
        )

finished = pending_job(SCORE_JOB, "score", run.id, "Scoring")
if finished is not None:
    if finished.status == "succeeded":
        st.session_state[state.SCORE_BATCH_ID] = finished.result["batch_id"]
        st.session_state["score_export"] = finished.result["export"]
    else:
        show_outcome(finished, f"Scoring {finished.params.get('source_name', '')}")

batch_id = st.session_state.get(state.SCORE_BATCH_ID)
batches = {b["batch_id"]: b for b in list_batches(run.id)}
if batch_id not in batches:
    if batches:
        batch_id = next(iter(batches))
    else:
        st.info("No scores for this model yet: choose rows and press Score.")
        st.stop()
batch = batches[batch_id]
predictions = batch_predictions(batch_id)
batch_summary(run, batch, predictions)

export_path = st.session_state.get("score_export")
table = predictions
if export_path and batch_id == st.session_state.get(state.SCORE_BATCH_ID):
    try:
        table = pd.read_csv(export_path)
    except OSError:
        table = predictions
if run.task == "binary":
    show = st.segmented_control(
        "Show", ["all rows", "flagged", "not flagged"], default="all rows", key="score_filter"
    )
    if show == "flagged":
        table = table[table["decision"] == 1]
    elif show == "not flagged":
        table = table[table["decision"] == 0]
table = mask_pii(table, pii_columns(run.dataset_id), current_actor())
st.dataframe(table.head(5000), width="stretch", hide_index=True)
left, right = st.columns(2)
may_export = current_actor().may("export")
left.download_button(
    "Download CSV",
    to_safe_csv(table),
    f"payoff-scores-{batch_id}.csv",
    "text/csv",
    on_click=on_download("score_batch", batch_id, "CSV"),
    disabled=not may_export,
)
parquet = io.BytesIO()
table.to_parquet(parquet, index=False)
right.download_button(
    "Download Parquet",
    parquet.getvalue(),
    f"payoff-scores-{batch_id}.parquet",
    "application/octet-stream",
    on_click=on_download("score_batch", batch_id, "Parquet"),
    disabled=not may_export,
)
st.caption(
    "Exported text cells that a spreadsheet would run as formulas start with ' (CSV injection guard)."
)


@st.fragment
def what_if_editor() -> None:
    st.subheader("What if? Edit one record")
    kind = get_kind(run.model)
    if not kind.explainable:
        st.info(
            "The what-if editor works on single models: pick one of this ensemble's members above."
        )
        return
    text_model = kind.input == "text"
    if text_model:
        text = st.text_area(
            "Text", value="The product arrived late and the box was damaged.", key="whatif_text"
        )
        row = pd.DataFrame({c: [text] for c in run.features})
    else:
        choices = ["typical profile", *[f"row {i + 1}" for i in range(min(len(table), 100))]]
        start_from = st.selectbox("Start from", choices, key="whatif_start")
        picked = None
        if start_from != "typical profile":
            picked = table.iloc[int(start_from.split()[1]) - 1]
        record = whatif_record(model, picked)
        typical, vocab = record.start, record.choices
        start_values = dict(typical)
        with st.form("whatif"):
            values = {}
            grid = st.columns(3)
            for i, column in enumerate(record.columns):
                box = grid[i % 3]
                if column in vocab:
                    options = vocab[column]
                    start = typical[column] if typical[column] in options else options[0]
                    values[column] = box.selectbox(
                        column, options, index=options.index(start), key=f"wi_{column}_{start_from}"
                    )
                else:
                    values[column] = box.number_input(
                        column,
                        value=float(typical[column]),
                        key=f"wi_{column}_{start_from}",
                        format="%g",
                    )
            st.form_submit_button("Score this record", type="primary")
        row = pd.DataFrame({c: [v] for c, v in values.items()})
    score = None
    with user_errors():
        score = model.predict_frame(row)
        if not text_model:
            whatif.edited_fields(start_values, values, start_from)
        if run.task == "binary":
            decision = run.positive_class if score[0] >= (threshold or 0.5) else run.classes[0]
            st.metric(
                f"P({run.positive_class})",
                f"{score[0]:.3f}",
                help=f"Decision at the threshold: {decision}",
            )
            whatif.decision(run, float(score[0]), threshold or 0.5)
        else:
            st.metric(
                "Prediction",
                str(score[0]) if np.ndim(score[0]) == 0 else run.classes[int(np.argmax(score[0]))],
            )
    with user_errors("Explanation: "):
        explanation = explain_row(run, model, row)
        st.plotly_chart(
            waterfall(
                explanation.columns,
                explanation.values,
                explanation.base_value,
                explanation.shown,
                title=f"Why: contributions to the {explanation.output_space}"
                + (" (shown as probability)" if run.task == "binary" else ""),
                probability=run.task == "binary",
                target=f"P({run.positive_class})" if run.task == "binary" else "the output",
            ),
            width="stretch",
        )
    if run.task == "binary" and score is not None:
        whatif.counterfactual_panel(run, model, row, float(score[0]), threshold or 0.5, text_model)


st.divider()
what_if_editor()
