"""Runs: the leaderboard of a dataset and the diagnostics of one run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st
from sklearn.metrics import confusion_matrix

from core.datasets import list_datasets
from core.diagnostics import headline_higher_is_better
from core.runs import delete_run, holdout_predictions, list_runs
from core.training import budget_summary, confidently_wrong
from pages._shared import state
from pages._shared.auth import current_actor
from pages._shared.charts import curve_figures
from pages._shared.comparison_views import comparison_panel
from pages._shared.diagnostics import cutoff_panel, ranking_panel
from pages._shared.frame import use_app_navigation
from pages._shared.pickers import pick_dataset, pick_run
from pages._shared.widgets import fmt_count, fmt_seconds, user_errors

use_app_navigation()

st.title("Runs")

datasets = [d for d in list_datasets() if d.n_runs]
dataset_id = pick_dataset(
    datasets,
    key="runs_dataset",
    empty_message="No training runs yet.",
    empty_page="pages/train.py",
    empty_label="Train a model",
).id
runs = list_runs(dataset_id)
done = [r for r in runs if r.status == "succeeded"]

rows = []
for run in runs:
    name, value, interval = run.headline
    spent = budget_summary(run)
    rows.append(
        {
            "run": run.label,
            "status": run.status,
            "target": run.target,
            "metric": name or "–",
            "value": value,
            "95% CI": f"{interval[0]:.3f}–{interval[1]:.3f}" if interval else "–",
            "train time": fmt_seconds(run.train_seconds),
            "budget": fmt_seconds(spent["budget_s"]),
            "trials": spent["trials"],
            "train rows/s": fmt_count(run.train_rows_per_s),
            "inference rows/s": fmt_count(run.infer_rows_per_s),
            "params": fmt_count(run.params),
            "FLOPs/row": fmt_count(run.flops_per_row),
            "device": run.device_name or run.device or "–",
        }
    )
board = pd.DataFrame(rows)
if done:
    higher = headline_higher_is_better(done)
    board = board.sort_values("value", ascending=not higher, na_position="last")
st.subheader("Leaderboard")
st.caption(
    "Metrics are on the held-out test part of the same stored split; the interval is a 95% bootstrap."
)
st.dataframe(
    board,
    hide_index=True,
    width="stretch",
    column_config={"value": st.column_config.NumberColumn(format="%.4f")},
)
comparison_panel(dataset_id, sorted({r.target for r in done}))

if done:
    scatter = pd.DataFrame(
        {
            "run": [r.label for r in done],
            "train seconds": [r.train_seconds or 0 for r in done],
            "metric": [r.headline[1] for r in done],
            "params": [r.params or 1 for r in done],
        }
    )
    figure = px.scatter(
        scatter,
        x="train seconds",
        y="metric",
        text="run",
        size="params",
        size_max=30,
        log_x=True,
        title="Accuracy vs training time (log scale)",
        height=340,
    )
    figure.update_traces(textposition="top center")
    st.plotly_chart(figure, width="stretch")

if not done:
    st.info("No finished runs yet; the diagnostics appear when a run succeeds.")
    st.stop()

run = pick_run(
    done, key="runs_run", empty_message="", describe=lambda r: r.label, label="Diagnostics for"
)
stored = holdout_predictions(run.id)

if run.task == "binary":
    curves = run.metrics.curves or {}
    if curves:
        nan = float("nan")
        figures = curve_figures(
            curves, run.metrics.values.get("roc_auc", nan), run.metrics.values.get("pr_auc", nan)
        )
        for column, figure in zip(st.columns(len(figures)), figures, strict=True):
            column.plotly_chart(figure, width="stretch")
    with user_errors():
        cutoff_panel(run)
elif run.task == "regression":
    truth = np.asarray(stored.y, dtype=float)
    predicted = np.asarray(stored.prediction, dtype=float)
    left, right = st.columns(2)
    left.plotly_chart(
        px.scatter(
            x=truth,
            y=predicted,
            labels={"x": "actual", "y": "predicted"},
            title="Predicted vs actual",
            height=340,
        ),
        width="stretch",
    )
    right.plotly_chart(
        px.histogram(
            x=predicted - truth, nbins=40, labels={"x": "residual"}, title="Residuals", height=340
        ),
        width="stretch",
    )
else:
    y = np.asarray(stored.y)
    predicted = np.asarray(stored.proba).argmax(axis=1)
    st.plotly_chart(
        px.imshow(
            confusion_matrix(y, predicted),
            x=list(run.classes),
            y=list(run.classes),
            text_auto=True,
            title="Confusion matrix (rows actual, columns predicted)",
            height=400,
        ),
        width="stretch",
    )

if run.task == "binary":
    with user_errors():
        ranking_panel(run)
else:
    metrics = run.metrics.figures()
    st.dataframe(
        pd.DataFrame({"metric": list(metrics), "value": list(metrics.values())}), hide_index=True
    )

if run.task in ("binary", "multiclass"):
    with st.expander("Most confidently wrong test rows"):
        with user_errors():
            st.dataframe(confidently_wrong(run.id), hide_index=True, width="stretch")

with st.popover("Delete this run", disabled=not current_actor().may("delete")):
    st.write(f"Deletes {run.label}, its model files, scores and explanations.")
    if st.button("Delete run", key="delete_run"):
        with user_errors():
            delete_run(run.id, actor=current_actor())
            st.session_state.pop(state.RUN_ID, None)
            st.rerun()
