"""Small widgets and the rule that turns errors into messages, never tracebacks."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import streamlit as st

from core.ingest import IngestError

log = logging.getLogger("payoff.pages")


@contextlib.contextmanager
def user_errors(prefix: str = "") -> Iterator[None]:
    """Show ValueError / IngestError text as st.error; anything else as a short message.

    Validation errors from core/ and models/ are written for analysts, so their text is shown
    as is. Unexpected errors are logged with their traceback for the developer and the user
    gets one line.
    """
    try:
        yield
    except (IngestError, ValueError) as exc:
        st.error(f"{prefix}{exc}")
    except PermissionError as exc:  # core.access refused the acting user's role
        st.error(f"{prefix}{exc}")
    except Exception as exc:  # noqa: BLE001
        log.exception("unexpected error in a page")
        st.error(f"{prefix}Something went wrong: {type(exc).__name__}: {exc}")


def empty_state(message: str, page: str | None = None, label: str | None = None) -> None:
    st.info(message)
    if page:
        st.page_link(page, label=label or "Go there", icon=":material/arrow_forward:")


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 90:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def fmt_count(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}{unit}"
    return f"{value:.0f}{unit}"


def engine_choice(run, key: str) -> str:
    """ "local", or "ray" when PAYOFF_RAY_ADDRESS names a cluster and the user picks it (text
    models are explained locally only)."""
    from core.engines import cluster_configured, ray_explains

    if not cluster_configured() or (key.startswith("explain") and not ray_explains(run.model)):
        return "local"
    return st.radio(
        "Run on",
        ["local", "ray"],
        format_func={"local": "this server", "ray": "the Ray cluster"}.get,
        horizontal=True,
        key=key,
        help="PAYOFF_RAY_ADDRESS names a Ray cluster: its workers take blocks of the rows.",
    )
