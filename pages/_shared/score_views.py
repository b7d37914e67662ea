"""Score page views: the decision threshold and a batch's summary."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from core.runs import RunInfo
from core.thresholds import OperatingThreshold, operating_threshold
from pages._shared.widgets import fmt_count, fmt_seconds, user_errors

THRESHOLD_SOURCES = {
    "validation": ", the run's operating threshold chosen on validation rows",
    "user": ", the run's operating threshold set by the user",
    "given": ", chosen on this page",
}


def threshold_slider(run: RunInfo, key: str) -> tuple[float | None, OperatingThreshold | None]:
    """(threshold, the run's operating threshold) for a binary run, the slider starting at
    the operating threshold; (None, None) for other tasks."""
    if run.task != "binary":
        return None, None
    operating = None
    with user_errors():
        operating = operating_threshold(run.id)
    if operating is None:
        st.stop()
    if key not in st.session_state:  # starts at the run's operating threshold
        st.session_state[key] = operating.threshold
    threshold = st.slider(
        f"Decision threshold: flag as {run.positive_class} when P ≥",
        0.0,
        1.0,
        step=0.001,
        format="%.3f",
        key=key,
        help=f"Starts at this run's operating threshold ({operating.describe()}); "
        "save another one on the Runs page.",
    )
    return threshold, operating


def batch_summary(run: RunInfo, batch: dict, predictions: pd.DataFrame) -> None:
    """Rows, time, speed, warnings, the score distribution with its threshold, and drift."""
    report = batch["report"]
    st.subheader(f"Batch #{batch['batch_id']}: {batch['source_name']}")
    cols = st.columns(4)
    cols[0].metric("Rows", f"{batch['rows']:,}")
    cols[1].metric("Time", fmt_seconds(batch["seconds"]))
    cols[2].metric("Rows/s", fmt_count(report.get("rows_per_second")))
    for warning in report.get("warnings", []):
        st.warning(warning)
    if run.task == "binary":
        cols[3].metric(
            "Flagged",
            f"{int(predictions['decision'].sum()):,} ({predictions['decision'].mean():.1%})",
        )
        figure = px.histogram(
            predictions,
            x="probability",
            nbins=50,
            title=f"Score distribution: P({run.positive_class})",
            height=300,
        )
        if batch["threshold"] is not None:
            figure.add_vline(x=batch["threshold"], line_dash="dash", annotation_text="threshold")
            source = THRESHOLD_SOURCES.get(report.get("threshold_source"), "")
            st.caption(f"Decisions and reasons at threshold {batch['threshold']:.3f}{source}.")
        st.plotly_chart(figure, width="stretch")
    else:
        counts = predictions["prediction"].value_counts().reset_index()
        counts.columns = ["prediction", "rows"]
        st.plotly_chart(px.bar(counts, x="prediction", y="rows", height=300), width="stretch")

    drift = report.get("drift", {})
    if drift:
        with st.expander("Drift against the training data (PSI per feature)"):
            frame = pd.DataFrame(
                [{"feature": k, "PSI": v["psi"], "level": v["level"]} for k, v in drift.items()]
            ).sort_values("PSI", ascending=False)
            st.caption("PSI < 0.1 stable, 0.1–0.25 some shift, > 0.25 major shift.")
            st.plotly_chart(
                px.bar(frame, x="feature", y="PSI", color="level", height=280), width="stretch"
            )
