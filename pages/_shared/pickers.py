"""The dataset and model pickers every page starts with; the choice follows the user from page
to page through the session state."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st

from core.datasets import DatasetInfo
from core.runs import RunInfo
from pages._shared import state
from pages._shared.widgets import empty_state


def _pick(items: Sequence, state_key: str, widget_key: str, label: str, describe: Callable):
    ids = [item.id for item in items]
    current = st.session_state.get(state_key)
    chosen = st.selectbox(
        label,
        ids,
        index=ids.index(current) if current in ids else 0,
        format_func=lambda i: describe(next(item for item in items if item.id == i)),
        key=widget_key,
    )
    st.session_state[state_key] = chosen
    return next(item for item in items if item.id == chosen)


def pick_run(
    runs: Sequence[RunInfo],
    *,
    key: str,
    empty_message: str,
    describe: Callable[[RunInfo], str] | None = None,
    label: str = "Model",
) -> RunInfo:
    """A model selectbox, or an empty state pointing to Train (and the page stops)."""
    if not runs:
        empty_state(empty_message, "pages/train.py", "Train")
        st.stop()
    return _pick(
        runs,
        state.RUN_ID,
        key,
        label,
        describe or (lambda r: f"{r.label} · dataset #{r.dataset_id}"),
    )


def pick_dataset(
    datasets: Sequence[DatasetInfo],
    *,
    key: str,
    empty_message: str,
    empty_page: str = "pages/data.py",
    empty_label: str = "Data",
    describe: Callable[[DatasetInfo], str] | None = None,
) -> DatasetInfo:
    """A dataset selectbox, or an empty state (and the page stops)."""
    if not datasets:
        empty_state(empty_message, empty_page, empty_label)
        st.stop()
    return _pick(
        datasets, state.DATASET_ID, key, "Dataset", describe or (lambda d: f"#{d.id} {d.name}")
    )
