"""Plotly figures shared by several pages."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

RAISES, LOWERS = "#d62728", "#1f77b4"


def waterfall(
    columns: list[str],
    values: np.ndarray,
    base_value: float,
    shown: list[str] | None = None,
    title: str = "",
    top: int = 12,
    unit: str = "columns",
    probability: bool = False,
    target: str = "the output",
) -> go.Figure:
    """SHAP waterfall: base value, the largest contributions, the rest summed, the output.

    Every bar carries its value; a legend says what the colours mean. ``probability``: the
    values are log-odds and the bars show the change in probability as each column is added
    (top to bottom), which adds up to the output's probability. The x axis spans the path of
    the contributions, so base and output bars do not dwarf them."""
    from core.explanations import probability_path

    values = np.asarray(values, dtype=float)
    order = np.argsort(-np.abs(values))
    keep, rest = order[:top], order[top:]
    labels = [f"{columns[i]} = {shown[i]}" if shown else columns[i] for i in keep]
    deltas = [float(values[i]) for i in keep]
    if len(rest):
        labels.append(f"{len(rest)} other {unit}" if len(rest) > 1 else f"1 other {unit[:-1]}")
        deltas.append(float(values[rest].sum()))
    start, end = base_value, base_value + float(values.sum())
    if probability:
        grouped = np.asarray(deltas)
        start, steps, end = probability_path(base_value, grouped, np.arange(grouped.size))
        deltas = [float(d) for d in steps]

    def fmt(v: float) -> str:
        if not probability:
            return f"{v:+.3f}"
        return f"{v:+.1%}" if abs(v) >= 0.001 else f"{v:+.2%}"

    total_fmt = (lambda v: f"{v:.1%}") if probability else (lambda v: f"{v:.3f}")
    figure = go.Figure(
        go.Waterfall(
            orientation="h",
            measure=["absolute", *(["relative"] * len(deltas)), "total"],
            y=["start (average case)", *labels, "this row"],
            x=[start, *deltas, end],
            text=[total_fmt(start), *(fmt(d) for d in deltas), total_fmt(end)],
            textposition="outside",
            cliponaxis=False,
            connector={"line": {"color": "#bbb"}},
            increasing={"marker": {"color": RAISES}},
            decreasing={"marker": {"color": LOWERS}},
            totals={"marker": {"color": "#999"}},
        )
    )
    path = start + np.concatenate(([0.0], np.cumsum(deltas)))
    low, high = float(path.min()), float(path.max())
    pad = max(0.25 * (high - low), 1e-3)
    figure.update_xaxes(
        range=[low - pad, high + pad],
        tickformat=(".0%" if high - low >= 0.05 else ".1%") if probability else None,
        title="probability" if probability else "log-odds",
    )
    legend = (
        f"<span style='color:{RAISES}'>■ raises {target}</span>   "
        f"<span style='color:{LOWERS}'>■ lowers it</span>   "
        "<span style='color:#999'>■ start and result</span>"
    )
    figure.update_layout(
        title={"text": f"{title}<br><sup>{legend}</sup>" if title else legend},
        height=max(320, 30 * (len(labels) + 2) + 60),
        yaxis={"autorange": "reversed"},
        margin={"l": 10, "r": 40, "t": 70, "b": 10},
    )
    return figure


def token_highlights(spans: list[str], values: np.ndarray) -> str:
    """Text spans coloured by attribution (red pushes toward the flagged class, blue away)."""
    import html

    values = np.asarray(values, dtype=float)
    scale = float(np.nanmax(np.abs(values))) if len(values) and np.isfinite(values).any() else 1.0
    scale = scale or 1.0
    parts = []
    for span, value in zip(spans, values, strict=False):
        alpha = min(1.0, abs(value) / scale) * 0.6
        colour = f"rgba(214,39,40,{alpha:.2f})" if value > 0 else f"rgba(31,119,180,{alpha:.2f})"
        parts.append(
            f'<span title="{value:+.3f}" style="background:{colour};padding:1px 2px;border-radius:3px">'
            f"{html.escape(span)}</span>"
        )
    return " ".join(parts)


def curve_figures(curves: dict, roc_auc: float, pr_auc: float) -> list[go.Figure]:
    """ROC, precision-recall and calibration charts of a binary run's stored curves."""
    roc, pr = curves["roc"], curves["pr"]
    figures = [
        go.Figure(
            [
                go.Scatter(x=roc["fpr"], y=roc["tpr"], name="model"),
                go.Scatter(x=[0, 1], y=[0, 1], name="chance", line={"dash": "dot"}),
            ],
            layout={
                "title": f"ROC (AUC {roc_auc:.3f})",
                "xaxis_title": "false positive rate",
                "yaxis_title": "true positive rate",
            },
        ),
        go.Figure(
            [go.Scatter(x=pr["recall"], y=pr["precision"], name="model")],
            layout={
                "title": f"Precision–recall (AP {pr_auc:.3f})",
                "xaxis_title": "recall",
                "yaxis_title": "precision",
            },
        ),
    ]
    if curves.get("calibration"):
        cal = curves["calibration"]
        figures.append(
            go.Figure(
                [
                    go.Scatter(
                        x=cal["mean_predicted"],
                        y=cal["observed_rate"],
                        mode="lines+markers",
                        name="model",
                    ),
                    go.Scatter(x=[0, 1], y=[0, 1], name="perfect", line={"dash": "dot"}),
                ],
                layout={
                    "title": "Calibration",
                    "xaxis_title": "mean predicted",
                    "yaxis_title": "observed rate",
                },
            )
        )
    for figure in figures:
        figure.update_layout(height=340, showlegend=False)
    return figures
