"""Payoff: where does a transformer model pay for itself?

The frame and router only: page config, the sign-in gate, navigation over pages/, sidebar
status. Run with ``streamlit run app.py`` (it listens on 127.0.0.1 unless told otherwise, see
.streamlit/config.toml).
"""

from __future__ import annotations

import streamlit as st

from pages._shared.auth import gate, render_user
from pages._shared.resources import ensure_started

st.set_page_config(page_title="Payoff", page_icon=":material/paid:", layout="wide")

# Sign-in first: with [auth] configured nothing below runs (no ledger, no data) until the
# user is signed in; a broken [auth] section stops here with one line.
actor = gate()

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/table:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/leaderboard:"),
    st.Page("pages/score.py", title="Score", icon=":material/rule:"),
    st.Page("pages/explain.py", title="Explain", icon=":material/insights:"),
    st.Page("pages/roi.py", title="ROI & what-if", icon=":material/paid:"),
    st.Page("pages/fairness.py", title="Fairness & segments", icon=":material/balance:"),
]
if actor.may("audit"):
    PAGES.append(st.Page("pages/audit.py", title="Audit", icon=":material/policy:"))

try:
    ensure_started()
except Exception as exc:  # noqa: BLE001 - a broken ledger must be a message, not a traceback
    st.error(f"Payoff could not open its database: {exc}")
    st.stop()

page = st.navigation(PAGES)

with st.sidebar:
    from pages._shared.sidebar import render_status

    render_user()
    render_status()

page.run()
