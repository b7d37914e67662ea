"""Plotly figures shared by several pages."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def waterfall(
    columns: list[str],
    values: np.ndarray,
    base_value: float,
    shown: list[str] | None = None,
    title: str = "",
    top: int = 12,
    unit: str = "columns",
) -> go.Figure:
    """SHAP waterfall: base value, the largest contributions, the rest summed, the output."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(-np.abs(values))
    keep, rest = order[:top], order[top:]
    labels = [f"{columns[i]} = {shown[i]}" if shown else columns[i] for i in keep]
    deltas = [float(values[i]) for i in keep]
    if len(rest):
        labels.append(f"{len(rest)} other {unit}")
        deltas.append(float(values[rest].sum()))
    figure = go.Figure(
        go.Waterfall(
            orientation="h",
            measure=["absolute", *(["relative"] * len(deltas)), "total"],
            y=["base value", *labels, "model output"],
            x=[base_value, *deltas, base_value + float(values.sum())],
            connector={"line": {"color": "#bbb"}},
            increasing={"marker": {"color": "#d62728"}},
            decreasing={"marker": {"color": "#1f77b4"}},
        )
    )
    figure.update_layout(
        title=title,
        height=max(300, 28 * (len(labels) + 2)),
        yaxis={"autorange": "reversed"},
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
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
