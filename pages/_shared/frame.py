"""Make sure every page runs inside app.py's frame (navigation, page config, sidebar status).

A folder named pages/ next to app.py switches Streamlit into its legacy multipage mode until
app.py calls st.navigation. So when a fresh server's first visitor opens a page URL directly
(e.g. /train), Streamlit runs pages/train.py on its own: no frame, the legacy file list as
navigation. Turning the legacy flag off and rerunning sends that request through app.py.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def use_app_navigation() -> None:
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
