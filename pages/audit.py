"""Audit: who uploaded, trained, scored, explained, exported or deleted what, and when."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from core.audit import list_events
from pages._shared.auth import current_actor
from pages._shared.frame import use_app_navigation
from pages._shared.widgets import user_errors

use_app_navigation()

st.title("Audit")
st.caption(
    "Every write and download, refusals and failures included. Events keep ids, never data: "
    "an erased dataset leaves the fact that it was deleted, not its content."
)
left, right = st.columns(2)
user = left.text_input("User (exact e-mail or name; empty for everyone)", key="audit_user")
since = right.date_input("Since", value=dt.date.today() - dt.timedelta(days=30), key="audit_since")
events = None
with user_errors():
    events = list_events(
        user=user.strip() or None,
        since=dt.datetime.combine(since, dt.time()),
        actor=current_actor(),
    )
if events is not None:
    if not events:
        st.info("No events in this window.")
    else:
        table = pd.DataFrame([e.to_dict() for e in events]).iloc[::-1]
        st.dataframe(table, hide_index=True, width="stretch")
        st.caption(f"{len(events):,} event(s), newest first.")
