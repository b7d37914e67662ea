"""Home: what Payoff does, the datasets and the latest activity."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.datasets import SAMPLES, list_datasets
from core.runs import list_runs
from pages._shared.frame import use_app_navigation
from pages._shared.widgets import empty_state, fmt_seconds

use_app_navigation()

st.title("Payoff")
st.markdown(
    "Payoff tells you **where a transformer model pays for itself**. Upload a CSV, train an "
    "FT-Transformer (or fine-tune a text encoder) next to cheap baselines on the same split, "
    "and read why each decision was made. Then price the measured compute against the value "
    "of better decisions for your use case: ROI, payback and the best threshold."
)

steps = st.columns(4)
for column, (page, title, text) in zip(
    steps,
    [
        ("pages/data.py", "1 · Data", "Upload a CSV or use a built-in sample."),
        ("pages/train.py", "2 · Train", "FT-Transformer vs LightGBM vs logistic regression."),
        ("pages/explain.py", "3 · Explain", "SHAP values with their quality figures."),
        ("pages/roi.py", "4 · ROI", "Cost vs accuracy, profit curve, payback."),
    ],
    strict=True,
):
    with column.container(border=True):
        st.markdown(f"**{title}**  \n{text}")
        st.page_link(page, label="Open", icon=":material/arrow_forward:")

datasets = list_datasets()
st.subheader("Datasets")
if not datasets:
    empty_state(
        "No datasets yet. The built-in samples (credit scoring, food reviews) appear here on "
        "first start; or upload your own CSV.",
        "pages/data.py",
        "Add data",
    )
else:
    st.dataframe(
        pd.DataFrame(
            {
                "id": [d.id for d in datasets],
                "name": [d.name for d in datasets],
                "rows": [d.n_rows for d in datasets],
                "columns": [d.n_columns for d in datasets],
                "target": [d.roles.target or "–" for d in datasets],
                "use case": [d.use_case or "–" for d in datasets],
                "runs": [d.n_runs for d in datasets],
                "sample": ["real sample" if d.is_sample else "" for d in datasets],
            }
        ),
        hide_index=True,
        width="stretch",
    )
    with st.expander("About the built-in samples"):
        for sample in SAMPLES:
            st.markdown(f"- **{sample.name}**: {sample.note}")
        st.caption(
            "Both samples are real public data (see samples/ATTRIBUTION.md). Payoff ships no "
            "real fraud, churn, healthcare or manufacturing data; tests generate such data."
        )

st.subheader("Recent activity")
runs = list_runs()[:8]
names = {d.id: d.name for d in datasets}
if not runs:
    empty_state("No models trained yet.", "pages/train.py", "Train a model")
else:
    rows = []
    for run in runs:
        name, value, _ = run.headline
        rows.append(
            {
                "run": run.label,
                "dataset": names.get(run.dataset_id, f"#{run.dataset_id}"),
                "status": run.status,
                "metric": f"{name} {value:.3f}" if value is not None else "–",
                "train time": fmt_seconds(run.train_seconds),
                "created": run.created_at.strftime("%Y-%m-%d %H:%M"),
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
