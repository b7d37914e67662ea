"""Fairness & segments page widgets: the group table, its chart and the segment chart."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.fairness import FOUR_FIFTHS, FairnessReport

EXPLAINER = """
- **Selection rate**: the share of the group the model flags (P ≥ the threshold).
- **True positive rate (TPR)**: of the group's actual positives, the share flagged.
- **False positive rate (FPR)**: of the group's actual negatives, the share flagged anyway.
- **Positive rate**: the share of the group that is actually positive (the base rate).
- **ROC-AUC**: how well the scores rank positives above negatives inside the group
  (0.5 = chance, 1 = perfect); empty when the group holds only one class.
- **Demographic parity ratio**: lowest selection rate / highest. The *four-fifths rule* (US
  employment guidance, often borrowed for credit) asks for at least 0.8.
- **Equalized-odds difference**: the largest gap between groups in TPR or in FPR (0 = the
  same error rates for everyone).
Computed with fairlearn (`MetricFrame`, `demographic_parity_ratio`,
`equalized_odds_difference`). Numeric columns with many values are cut into quantile bands;
missing values form the group "(missing)".
"""

PERCENT_COLUMNS = ("selection_rate", "tpr", "fpr", "positive_rate")
NAMES = {
    "group": "group",
    "n": "rows",
    "selection_rate": "selection rate",
    "tpr": "true positive rate",
    "fpr": "false positive rate",
    "positive_rate": "positive rate",
    "roc_auc": "ROC-AUC",
    "value_per_decision": "value per decision",
    "status_quo_per_decision": "today's value per decision",
    "monthly_value": "value vs today per month",
}


def money(value: float) -> str:
    """-$68,571 rather than $-68,571."""
    return f"-${-value:,.0f}" if value < 0 else f"${value:,.0f}"


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """Rates as percentages, AUC with 3 decimals, money rounded, plain column names."""
    out = table.copy()
    for column in PERCENT_COLUMNS:
        if column in out:
            out[column] = out[column].map(lambda v: "–" if pd.isna(v) else f"{v:.1%}")
    if "roc_auc" in out:
        out["roc_auc"] = out["roc_auc"].map(lambda v: "–" if pd.isna(v) else f"{v:.3f}")
    for column in ("value_per_decision", "status_quo_per_decision", "monthly_value"):
        if column in out:
            out[column] = out[column].map(lambda v: f"${v:,.2f}")
    return out.rename(columns=NAMES)


def selection_chart(report: FairnessReport) -> go.Figure:
    table = report.table()
    top = float(table["selection_rate"].max())
    figure = go.Figure(
        go.Bar(
            x=table["group"].astype(str),
            y=table["selection_rate"],
            text=[f"{v:.1%}" for v in table["selection_rate"]],
            textposition="inside",
            insidetextanchor="middle",
            marker_color=[
                "#d62728" if top > 0 and v / top < FOUR_FIFTHS else "#1f77b4"
                for v in table["selection_rate"]
            ],
            name="selection rate",
        )
    )
    figure.add_hline(
        y=FOUR_FIFTHS * top,
        line_dash="dash",
        annotation_text="four-fifths of the highest rate",
        annotation_position="bottom right",
        annotation_bgcolor="rgba(255,255,255,0.8)",
    )
    figure.update_layout(
        title=f"Share flagged per group of {report.group_column} (red: below four-fifths)",
        yaxis_tickformat=".0%",
        yaxis_range=[0, min(1.15, top * 1.25 + 0.02)],
        height=360,
        margin={"t": 60},
    )
    return figure


def segment_chart(table: pd.DataFrame, column: str) -> go.Figure:
    figure = go.Figure(
        go.Bar(
            x=table["monthly_value"],
            y=table["group"].astype(str),
            orientation="h",
            marker_color=["#d62728" if v < 0 else "#2ca02c" for v in table["monthly_value"]],
            text=[f"${v:,.0f}" for v in table["monthly_value"]],
            textposition="outside",
            cliponaxis=False,
        )
    )
    figure.update_layout(
        title=f"Value against today's policy per month, by {column} (red: the model loses money)",
        xaxis_title="$ per month",
        yaxis={"autorange": "reversed"},
        height=max(300, 36 * len(table) + 100),
        margin={"r": 60},
    )
    return figure
