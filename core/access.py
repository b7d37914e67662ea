"""Who may do what: the acting user (an ``Actor``), roles, and the checks core runs itself.

Three roles, each including the one before it:

- ``viewer``: read results (datasets, runs, scores, explanations, ROI);
- ``analyst``: upload, train, score, explain, export, save scenarios;
- ``admin``: delete (with erasure), settings, the audit trail.

Roles come from settings (environment variables; Streamlit exports root-level keys of
``.streamlit/secrets.toml`` as such, so core never imports streamlit):
``PAYOFF_ADMINS``, ``PAYOFF_ANALYSTS``, ``PAYOFF_VIEWERS`` are comma-separated e-mail addresses
or ``@domain`` entries; ``PAYOFF_UNKNOWN_USERS`` is ``viewer`` (default) or ``refuse``.
Without sign-in (``PAYOFF_SIGN_IN`` unset, no role lists) the one local user is admin. Pages
hide controls a role cannot use, but the check that counts is ``require`` in core.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

ROLES = ("viewer", "analyst", "admin")
RANK = {role: rank for rank, role in enumerate(ROLES)}

# action -> the least role allowed to do it.
ACTIONS: dict[str, str] = {
    "read": "viewer",
    "upload": "analyst",
    "edit": "analyst",
    "train": "analyst",
    "score": "analyst",
    "explain": "analyst",
    "export": "analyst",
    "scenario_save": "analyst",
    "delete": "admin",
    "settings": "admin",
    "audit": "admin",
}

# Keys [auth] needs for Streamlit's OpenID Connect sign-in (one provider, or named ones).
AUTH_KEYS = ("redirect_uri", "cookie_secret")
PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")
MASK = "***"


class AccessDenied(PermissionError):
    """The acting user's role does not allow the action (the message says which and why)."""


@dataclass(frozen=True)
class Actor:
    """The user a core function acts for. ``name`` is the e-mail address when signed in."""

    name: str
    role: str
    email: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"Unknown role {self.role!r}; roles are {', '.join(ROLES)}.")

    def may(self, action: str) -> bool:
        return RANK[self.role] >= RANK[_least_role(action)]


SYSTEM = Actor("payoff (system)", "admin")


def _least_role(action: str) -> str:
    try:
        return ACTIONS[action]
    except KeyError:
        raise ValueError(f"Unknown action {action!r}.") from None


def _entries(name: str) -> list[str]:
    raw = os.environ.get(name) or ""
    return [e.strip().lower() for e in raw.replace(";", ",").split(",") if e.strip()]


def _matches(email: str, entries: Iterable[str]) -> bool:
    email = email.strip().lower()
    domain = "@" + email.rsplit("@", 1)[-1] if "@" in email else None
    return any(e == email or (e.startswith("@") and e == domain) for e in entries)


def sign_in_configured() -> bool:
    """True when the app requires sign-in (app.py sets PAYOFF_SIGN_IN when [auth] is there)."""
    return (os.environ.get("PAYOFF_SIGN_IN") or "").strip().lower() in ("1", "true", "yes")


def roles_configured() -> bool:
    return any(_entries(n) for n in ("PAYOFF_ADMINS", "PAYOFF_ANALYSTS", "PAYOFF_VIEWERS"))


def unknown_user_policy() -> str:
    policy = (os.environ.get("PAYOFF_UNKNOWN_USERS") or "viewer").strip().lower()
    if policy not in ("viewer", "refuse"):
        raise ValueError(f"PAYOFF_UNKNOWN_USERS must be 'viewer' or 'refuse', got {policy!r}.")
    return policy


def role_for(email: str) -> str:
    """The role mapped to ``email`` (the highest list it is in), or the unknown-user policy.

    Raises AccessDenied for an unknown user when PAYOFF_UNKNOWN_USERS=refuse.
    """
    for role in reversed(ROLES):
        if _matches(email, _entries(f"PAYOFF_{role.upper()}S")):
            return role
    if unknown_user_policy() == "refuse":
        raise AccessDenied(f"{email} is not allowed to use Payoff; ask an admin for a role.")
    return "viewer"


def actor_for_login(
    email: str | None, name: str | None = None, verified: bool | None = None
) -> Actor:
    """The Actor of a signed-in user (st.user.email): mapped role, viewer at most if unknown.

    ``verified`` is the ID token's email_verified claim: an address the provider says it has
    not verified could be anyone's, so it is refused (a missing claim is taken as verified).
    """
    if not email:
        raise AccessDenied("The sign-in provider gave no e-mail address; Payoff needs one.")
    if verified is False:
        raise AccessDenied(f"{email} is not verified by the sign-in provider; Payoff needs it.")
    email = email.strip().lower()
    return Actor(name=email, role=role_for(email), email=email)


def local_actor() -> Actor:
    """The acting user of the CLI and of calls that pass no actor.

    Its name is PAYOFF_USER, else the OS user. Local use (no sign-in, no role lists): admin.
    Otherwise the name is mapped like a signed-in user (unknown: viewer at most), so a
    forgotten ``actor=`` under sign-in fails closed.
    """
    name = (os.environ.get("PAYOFF_USER") or "").strip() or _os_user()
    if not sign_in_configured() and not roles_configured():
        return Actor(name=name, role="admin", email=name if "@" in name else None)
    return Actor(name=name, role=role_for(name), email=name if "@" in name else None)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def resolve(actor: Actor | None) -> Actor:
    return actor if actor is not None else local_actor()


def require(actor: Actor | None, action: str) -> Actor:
    """The actor (resolved), or AccessDenied naming the role that is needed."""
    actor = resolve(actor)
    needed = _least_role(action)
    if not actor.may(action):
        raise AccessDenied(
            f"{actor.name} is a {actor.role}; '{action}' needs the {needed} role "
            f"({', '.join(r for r in ROLES if RANK[r] >= RANK[needed])})."
        )
    return actor


# ---- personal data --------------------------------------------------------------------------


def pii_roles() -> tuple[str, ...]:
    """Roles that see personal-data (PII) columns unmasked in exports (PAYOFF_PII_ROLES)."""
    roles = tuple(_entries("PAYOFF_PII_ROLES")) or ("admin",)
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"PAYOFF_PII_ROLES has unknown role(s): {', '.join(unknown)}.")
    return roles


def may_see_pii(actor: Actor | None) -> bool:
    actor = resolve(actor)
    return actor.role in pii_roles()


def mask_pii(frame: pd.DataFrame, pii_columns: Iterable[str], actor: Actor | None) -> pd.DataFrame:
    """``frame`` with its PII columns replaced by ``***`` unless the actor may see them."""
    columns = [c for c in pii_columns if c in frame.columns]
    if not columns or may_see_pii(actor):
        return frame
    out = frame.copy()
    for column in columns:
        out[column] = pd.Series(MASK, index=out.index, dtype="string").where(
            out[column].notna(), pd.NA
        )
    return out


# ---- the [auth] section ---------------------------------------------------------------------


def auth_problem(auth: Mapping | None) -> str | None:
    """One line naming what a configured ``[auth]`` section lacks, or None when it is usable.

    Mirrors what Streamlit's st.login checks, but up front: a broken section must stop the app
    (fail closed), not open it or fail at the first sign-in.
    """
    if auth is None:
        return None
    if not isinstance(auth, Mapping):
        return "[auth] in secrets.toml must be a table."
    for key in AUTH_KEYS:
        if not str(auth.get(key) or "").strip():
            return f"[auth] in secrets.toml is missing the key '{key}'."
    if not str(auth["redirect_uri"]).rstrip("/").endswith("/oauth2callback"):
        return "[auth] redirect_uri must end with /oauth2callback."
    providers = {k: v for k, v in auth.items() if isinstance(v, Mapping) and k != "client_kwargs"}
    if not providers:
        for key in PROVIDER_KEYS:
            if not str(auth.get(key) or "").strip():
                return f"[auth] in secrets.toml is missing the key '{key}'."
        return None
    for name, section in providers.items():
        for key in PROVIDER_KEYS:
            if not str(section.get(key) or "").strip():
                return f"[auth.{name}] in secrets.toml is missing the key '{key}'."
    return None
