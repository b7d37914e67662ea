"""Sign-in gate and the acting user of this browser session.

When ``[auth]`` is in ``.streamlit/secrets.toml``, every page needs sign-in through
Streamlit's OpenID Connect support (``st.login`` / ``st.user``): a broken section stops the app
with one line naming the missing key (fail closed), and until the user is signed in only the
sign-in page renders. The signed-in e-mail address is mapped to a role by ``core.access``;
pages pass ``current_actor()`` to every core write, and core checks the role itself.
Without ``[auth]`` the local user (PAYOFF_USER, else the OS user) is admin.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import streamlit as st

from core import audit
from core.access import ACTIONS, AccessDenied, Actor, actor_for_login, auth_problem, local_actor

log = logging.getLogger("payoff.auth")

ACTOR = "payoff.actor"


def auth_section() -> Mapping | None:
    """The [auth] table of the secrets, or None when there is none (or no secrets file)."""
    try:
        if "auth" not in st.secrets:
            return None
        return st.secrets["auth"].to_dict()
    except (FileNotFoundError, KeyError):
        return None
    except Exception as exc:  # noqa: BLE001 - a secrets file that does not parse: fail closed
        message = f"Payoff cannot read .streamlit/secrets.toml: {type(exc).__name__}."
        log.error(message)
        st.error(message)
        st.stop()


def _provider(auth: Mapping) -> str | None:
    """The provider name for st.login: a named [auth.NAME] section, else the default."""
    named = [k for k, v in auth.items() if isinstance(v, Mapping) and k != "client_kwargs"]
    return named[0] if named else None


def _only(render, title: str) -> None:
    """Show ``render`` as the one page there is (no navigation to the others), then stop.

    Without an st.navigation call, the pages/ folder would list every page in the sidebar.
    """
    st.navigation([st.Page(render, title=title, default=True)], position="hidden").run()
    st.stop()


def _sign_in() -> None:
    st.title("Payoff")
    st.write("Payoff holds customer data. Sign in to continue.")
    if st.button("Sign in", type="primary"):
        st.login(_provider(auth_section()))


def gate() -> Actor:
    """The signed-in (or local) user; renders the sign-in page and stops until there is one."""
    auth = auth_section()
    problem = auth_problem(auth)
    if problem:
        log.error("refusing to start: %s", problem)
        _only(lambda: st.error(f"Payoff refuses to start: {problem}"), "Payoff")
    if auth is None:
        actor = local_actor()
        st.session_state[ACTOR] = _as_state(actor)
        return actor
    os.environ["PAYOFF_SIGN_IN"] = "1"  # calls without an actor then fail closed (core.access)
    if not st.user.get("is_logged_in"):  # missing (AppTest, odd cookies) = signed out
        st.session_state.pop(ACTOR, None)
        _only(_sign_in, "Sign in")
    try:
        actor = actor_for_login(
            st.user.get("email"), st.user.get("name"), st.user.get("email_verified")
        )
    except AccessDenied as exc:
        message = str(exc)

        def refused() -> None:
            st.error(message)
            st.button("Log out", on_click=st.logout)

        _only(refused, "Payoff")
    if st.session_state.get(ACTOR) != _as_state(actor):
        audit.sign_in(actor)
        st.session_state[ACTOR] = _as_state(actor)
    return actor


def _as_state(actor: Actor) -> dict:
    # Plain values only: the session state must pickle (runner.enforceSerializableSessionState).
    return {"name": actor.name, "role": actor.role, "email": actor.email}


def current_actor() -> Actor:
    """The acting user of this session (set by ``gate`` in app.py)."""
    stored = st.session_state.get(ACTOR)
    if stored is None:
        return local_actor()
    return Actor(**stored)


def signed_in() -> bool:
    return auth_section() is not None


def render_user() -> None:
    """Sidebar: who is signed in, their role, and a log-out button."""
    actor = current_actor()
    st.caption("Signed in" if signed_in() else "Local user")
    st.markdown(f"**{actor.name}** · {actor.role}")
    if signed_in():
        st.button("Log out", on_click=st.logout, key="payoff_logout")


def read_only_note(action: str) -> bool:
    """True when the user may do ``action``; else an info line saying which role is needed."""
    actor = current_actor()
    if actor.may(action):
        return True
    st.info(f"You are signed in as a {actor.role}: {action} needs the {ACTIONS[action]} role.")
    return False


def on_download(object_type: str, object_id: int | str | None, what: str):
    """An ``on_click`` for st.download_button that writes the download to the audit trail."""

    def _record() -> None:
        try:
            audit.record_download(current_actor(), object_type, object_id, what)
        except PermissionError as exc:
            st.error(str(exc))

    return _record
