"""The Runs page's binary diagnostics: metrics at a cutoff (the run's operating threshold by
default, savable), and the credit-risk views by rank (gains, lift, KS, Gini, deciles)."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.diagnostics import at_cutoff, deciles, gains, rank_metrics
from core.exports import to_safe_csv
from core.runs import RunInfo
from core.thresholds import operating_threshold, reset_operating_threshold, set_operating_threshold
from pages._shared.auth import current_actor
from pages._shared.widgets import user_errors


def cutoff_key(run_id: int) -> str:
    return f"cutoff_{run_id}"


def _save(run_id: int) -> None:
    with user_errors():
        set_operating_threshold(
            run_id, float(st.session_state[cutoff_key(run_id)]), actor=current_actor()
        )
        st.toast("Saved as this run's operating threshold.")


def _reset(run_id: int) -> None:
    with user_errors():
        chosen = reset_operating_threshold(run_id, actor=current_actor())
        st.session_state[cutoff_key(run_id)] = chosen.threshold


def cutoff_panel(run: RunInfo) -> float:
    """Slider (starts at the operating threshold), save/reset buttons, the metrics and the
    confusion matrix at the slider's cutoff; returns the cutoff."""
    chosen = operating_threshold(run.id)
    key = cutoff_key(run.id)
    st.subheader("At a cutoff")
    st.caption(
        f"Operating threshold: **{chosen.describe()}**. Score, reasons and ROI use it; move the "
        "slider to see another cutoff, and save it to make it the run's."
    )
    if key not in st.session_state:  # starts at the operating threshold
        st.session_state[key] = float(chosen.threshold)
    cutoff = st.slider(
        f"Cutoff: flag when P({run.positive_class}) ≥",
        0.0,
        1.0,
        step=0.001,
        format="%.3f",
        key=key,
    )
    left, right = st.columns(2)
    left.button(
        "Save as operating threshold",
        key=f"save_cutoff_{run.id}",
        on_click=_save,
        args=(run.id,),
        disabled=chosen.source == "user" and abs(cutoff - chosen.threshold) < 1e-9,
    )
    right.button(
        "Reset to the validation choice",
        key=f"reset_cutoff_{run.id}",
        on_click=_reset,
        args=(run.id,),
        disabled=chosen.source == "validation",
    )
    view = at_cutoff(run, cutoff)
    left, right = st.columns(2)
    left.dataframe(
        view.table,
        hide_index=True,
        width="stretch",
        height=35 * (len(view.table) + 1) + 3,  # every row, no inner scrolling
        column_config={
            "metric": st.column_config.TextColumn(width="small"),
            "value": st.column_config.NumberColumn(format="%.4f", width="small"),
            "computed at": st.column_config.TextColumn(width="small"),
        },
    )
    right.plotly_chart(
        px.imshow(
            view.metrics["confusion"],
            x=[f"predicted {c}" for c in run.classes],
            y=[f"actual {c}" for c in run.classes],
            text_auto=True,
            color_continuous_scale="Blues",
            title=f"Confusion matrix at cutoff {cutoff:.3f} ({view.rows:,} test rows)",
            height=340,
        ),
        width="stretch",
    )
    return cutoff


def ranking_panel(run: RunInfo) -> None:
    """Cumulative gains and lift, KS and Gini, deciles as a table, a chart and a CSV."""
    st.subheader("Ranking: gains, lift, KS, Gini, deciles")
    st.caption("These need no cutoff: rows are ordered by score, riskiest first, on the test part.")
    ranks = rank_metrics(run)
    cols = st.columns(3)
    cols[0].metric("KS", f"{ranks['ks']:.3f}", help=f"Largest at score {ranks['ks_at']:.3f}")
    cols[1].metric("Gini", f"{ranks['gini']:.3f}", help="2 × ROC-AUC − 1")
    cols[2].metric("ROC-AUC", f"{ranks['roc_auc']:.3f}")
    curve = gains(run)
    left, right = st.columns(2)
    left.plotly_chart(
        go.Figure(
            [
                go.Scatter(x=curve["targeted"], y=curve["gain"], name="model"),
                go.Scatter(x=[0, 1], y=[0, 1], name="random", line={"dash": "dot"}),
            ],
            layout={
                "title": "Cumulative gains",
                "xaxis_title": "share of rows targeted (highest scores first)",
                "yaxis_title": f"share of {run.positive_class} found",
                "height": 340,
            },
        ),
        width="stretch",
    )
    right.plotly_chart(
        go.Figure(
            [
                go.Scatter(x=curve["targeted"], y=curve["lift"], name="model"),
                go.Scatter(x=[0, 1], y=[1, 1], name="random", line={"dash": "dot"}),
            ],
            layout={
                "title": "Lift",
                "xaxis_title": "share of rows targeted",
                "yaxis_title": "lift (found ÷ targeted)",
                "height": 340,
            },
        ),
        width="stretch",
    )
    bands = deciles(run)
    figure = go.Figure(
        [
            go.Bar(x=bands["band"], y=bands["positive_rate"], name=f"{run.positive_class} rate"),
            go.Scatter(x=bands["band"], y=bands["capture"], name="cumulative capture", yaxis="y2"),
        ],
        layout={
            "title": "Score deciles (1 = highest scores)",
            "xaxis": {"title": "decile", "dtick": 1},
            "yaxis": {"title": f"{run.positive_class} rate", "tickformat": ".0%"},
            "yaxis2": {
                "overlaying": "y",
                "side": "right",
                "range": [0, 1.05],
                "tickformat": ".0%",
                "title": "cumulative capture",
            },
            "legend": {"orientation": "h", "y": -0.25},
            "height": 360,
        },
    )
    st.plotly_chart(figure, width="stretch")
    st.dataframe(
        bands,
        hide_index=True,
        width="stretch",
        column_config={
            c: st.column_config.NumberColumn(format="%.3f")
            for c in (
                "min_score",
                "max_score",
                "positive_rate",
                "lift",
                "cum_rows_share",
                "capture",
                "cum_lift",
            )
        },
    )
    st.download_button(
        "Download deciles (CSV)",
        to_safe_csv(bands),
        f"payoff-deciles-run{run.id}.csv",
        "text/csv",
        key="deciles_csv",
    )
