"""Sidebar status: where data lives, which device trains, what is running."""

from __future__ import annotations

import streamlit as st

from core.status import app_status


def render_status() -> None:
    status = app_status()
    st.caption("Status")
    st.markdown(
        f"**Device:** {status.device}  \n"
        f"**Datasets:** {status.n_datasets} · **Runs:** {status.n_runs}"
        + (f"  \n**Training now:** {status.n_active}" if status.n_active else "")
    )
    st.caption(f"Ledger: `{status.db_label}`")
