"""Explain page widgets: the quality badge, beeswarm, dependence, partial dependence, the row
picker and the side-by-side waterfall. Plain words first; technical terms in an expander."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.explanations import (
    Explanation,
    default_choice_note,
    explain_row,
    id_column_of,
    next_step,
    partial_dependence,
    trustworthy,
)
from core.runs import RunInfo
from pages._shared.charts import waterfall
from pages._shared.resources import run_model

MAX_COLOUR_CATEGORIES = 10

TECHNICAL_NOTES = """
- **SHAP values** (Shapley values): each column's share of the difference between this row's
  score and the average case; they add up exactly to that difference.
- **Log-odds**: the model's raw output, log(P / (1 - P)). SHAP values add up exactly in
  log-odds; the probability view turns the same path into changes of probability, which
  depend on the order the columns are added in (largest first here).
- **Accuracy vs time** is the number of *antithetic permutation pairs per game*: the sampling
  estimator walks each row's columns in random orders (and their reverses); more pairs come
  closer to the exact values and cost proportionally more model evaluations. The text
  transformer's default is instead each span's *main + total effect* (its effect alone and its
  effect when removed from the whole text), exact for texts of up to 3 spans and blended with
  its 2 pairs for texts of 12 spans or more; its other settings walk that many pairs.
- **Typical rows to compare against** is the *background*: a *k-medoid* summary of the
  training rows (real rows that stand for clusters of similar rows). Values are measured
  against them.
- **Quality badge**: *additivity error* = how far the values miss adding up to the model's
  output; *Spearman* = rank agreement of the columns with a reference (exact Shapley values
  on a few rows, or many more pairs), for the FT-Transformer both on the same background and
  against 256 random training rows (does the small background stand for the data?);
  *max error* = the largest difference, as a share of the row's total attribution.
- **Partial dependence / ICE**: every row gets the same value of one column and is scored
  again; the thin lines are single rows (ICE), the thick line their average.
"""


def quality_badge(exp: Explanation) -> None:
    """Trustworthy or not, with how many rows were checked against what."""
    fidelity = exp.quality.get("fidelity") or {}
    broad = exp.quality.get("fidelity_broad") or {}
    trusted = trustworthy(exp.quality, exp.additivity_error)
    total = len(exp.output)
    if fidelity:
        words = _checked(fidelity, total, "", "spans" if exp.kind == "text" else "columns")
        if broad:  # does the small background stand for the training data?
            words += " " + _checked(broad, total, "also ")
    elif exp.kind == "text":
        words = "No text had two or more spans to compare with a reference."
    else:
        words = f"The values are exact for this model kind ({exp.method})."
    words += f" Values add up to the model's output within {exp.additivity_error:.1e}."
    badge = st.success if trusted else st.warning
    badge(("Trustworthy. " if trusted else "Check before relying on it. ") + words)
    hint = next_step(exp.quality, exp.additivity_error, exp.kind)
    if hint:
        st.info(hint)
    chosen = default_choice_note(exp.quality)
    if chosen:
        st.caption(chosen)


def _checked(figures: dict, total: int, also: str, parts: str = "columns") -> str:
    """ "N of M rows were checked against <reference>", with its two figures; `parts` names
    what is ranked (columns, or a text's spans)."""
    return (
        f"{int(figures.get('rows') or 0)} of {total} rows were {also}checked against "
        f"{figures.get('reference', 'a reference')}: the {parts} rank in the same order at "
        f"Spearman {figures['spearman']:.3f} (1 = exactly) and the largest difference is "
        f"{figures['max_abs_error']:.1%} of a row's total."
    )


def _numeric(series: pd.Series) -> pd.Series | None:
    numbers = pd.to_numeric(series, errors="coerce")
    present = series.notna() & series.astype("string").str.strip().ne("")
    return numbers if numbers[present].notna().all() and present.any() else None


def beeswarm(values: pd.DataFrame, features: pd.DataFrame, order: list[str]) -> go.Figure:
    """Every row, every column: numeric columns coloured from low (blue) to high (red) value
    within the column; categorical columns in grey (their value on hover)."""
    rng = np.random.default_rng(0)
    parts = []
    for i, column in enumerate(order):
        numbers = _numeric(features[column])
        level = numbers.rank(pct=True) if numbers is not None else pd.Series(np.nan, values.index)
        parts.append(
            pd.DataFrame(
                {
                    "column": column,
                    "SHAP value": values[column],
                    "level": level.to_numpy(),
                    "value": features[column].astype("string").fillna("missing"),
                    "y": i + rng.uniform(-0.3, 0.3, len(values)),
                }
            )
        )
    swarm = pd.concat(parts, ignore_index=True)
    numeric = swarm[swarm["level"].notna()]
    categorical = swarm[swarm["level"].isna()]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=numeric["SHAP value"],
            y=numeric["y"],
            mode="markers",
            name="numeric columns",
            marker={
                "color": numeric["level"],
                "colorscale": "RdBu_r",
                "cmin": 0,
                "cmax": 1,
                "size": 6,
                "colorbar": {
                    "title": "value within<br>its column",
                    "tickvals": [0, 1],
                    "ticktext": ["low", "high"],
                },
            },
            customdata=numeric[["column", "value"]].to_numpy(),
            hovertemplate="%{customdata[0]} = %{customdata[1]}<br>SHAP %{x:.3f}<extra></extra>",
        )
    )
    if len(categorical):
        figure.add_trace(
            go.Scatter(
                x=categorical["SHAP value"],
                y=categorical["y"],
                mode="markers",
                name="categorical columns (value on hover)",
                marker={"color": "#888", "size": 6},
                customdata=categorical[["column", "value"]].to_numpy(),
                hovertemplate="%{customdata[0]} = %{customdata[1]}<br>SHAP %{x:.3f}<extra></extra>",
            )
        )
    figure.update_yaxes(
        tickvals=list(range(len(order))), ticktext=order, autorange="reversed", title=""
    )
    figure.update_layout(
        title="Every row, every column: right of 0 raises the score, left lowers it",
        height=max(340, 32 * len(order)),
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
        xaxis_title="contribution (log-odds)",
    )
    return figure


def dependence_chart(
    values: pd.DataFrame, features: pd.DataFrame, column: str, colour: str
) -> go.Figure:
    """Contribution of ``column`` against its value; a numeric colour column on a continuous
    scale, a categorical one by its most common values (the rest as "other")."""
    frame = pd.DataFrame({column: features[column], "contribution": values[column]})
    numbers = _numeric(features[colour])
    if numbers is not None:
        frame[colour] = numbers
        return px.scatter(
            frame,
            x=column,
            y="contribution",
            color=colour,
            color_continuous_scale="Viridis",
            title=f"How {column} moves the score (colour: {colour})",
            height=380,
        )
    labels = features[colour].astype("string").fillna("missing")
    common = labels.value_counts().index[:MAX_COLOUR_CATEGORIES]
    frame[colour] = labels.where(labels.isin(common), "other")
    return px.scatter(
        frame,
        x=column,
        y="contribution",
        color=colour,
        title=f"How {column} moves the score (colour: {colour})",
        height=380,
    )


def pdp_chart(run: RunInfo, exp: Explanation, column: str) -> go.Figure:
    model = run_model(run.id, str(run.artifact_path))
    pd_result = partial_dependence(run, model, exp.rows[exp.columns], column)
    grid = pd_result["grid"]
    x = grid if pd_result["numeric"] else [str(g) for g in grid]
    figure = go.Figure()
    for curve in pd_result["ice"]:
        figure.add_trace(
            go.Scatter(
                x=x,
                y=curve,
                mode="lines",
                line={"color": "rgba(120,120,120,0.25)", "width": 1},
                showlegend=False,
                hoverinfo="skip",
            )
        )
    figure.add_trace(
        go.Scatter(
            x=x,
            y=pd_result["mean"],
            mode="lines+markers",
            name="average over the rows",
            line={"color": "#d62728", "width": 3},
        )
    )
    figure.update_layout(
        title=f"If every row had this {column}: the score (thin lines: single rows)",
        xaxis_title=column,
        yaxis_title=pd_result["output"],
        yaxis_tickformat=".0%" if pd_result["output"] == "probability" else None,
        height=380,
    )
    return figure


def pick_row(exp: Explanation, key: str) -> int:
    """A row of the explanation by its number, or by its id when the data has an id column."""
    id_column = id_column_of(exp)
    if id_column:
        ids = exp.rows[id_column].astype("string").fillna("").tolist()
        wanted = st.text_input(f"Find a row by {id_column}", key=f"{key}_id").strip()
        if wanted:
            if wanted in ids:
                return ids.index(wanted)
            st.warning(f"No explained row has {id_column} = {wanted!r}; showing row 1.")
            return 0
    return int(st.number_input("Row number", 1, len(exp.output), 1, key=f"{key}_number")) - 1


def row_title(run: RunInfo, label: str, output: float, probability: bool) -> str:
    if probability and run.task == "binary":
        return f"{label}: P({run.positive_class}) = {1 / (1 + np.exp(-output)):.1%}"
    return f"{label}: output {output:.3f} ({'log-odds' if run.task == 'binary' else 'value'})"


def row_waterfall(
    run: RunInfo, columns, values, base, shown, title: str, probability: bool
) -> go.Figure:
    return waterfall(
        columns,
        values,
        base,
        shown,
        title=title,
        probability=probability and run.task == "binary",
        target=f"P({run.positive_class})" if run.task == "binary" else "the output",
    )


def other_run_waterfall(other: RunInfo, exp: Explanation, row: int, probability: bool):
    """The same row explained live by another run (its default background)."""
    model = run_model(other.id, str(other.artifact_path))
    record = exp.rows.iloc[[row]][list(other.features)].reset_index(drop=True)
    result = explain_row(other, model, record)
    return row_waterfall(
        other,
        result.columns,
        result.values,
        result.base_value,
        result.shown,
        row_title(other, other.label, result.output, probability),
        probability,
    )
