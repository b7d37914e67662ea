"""The audit trail: every write and every download, who did it, on what, and how it ended.

``record`` writes an event in the caller's session, so it commits or rolls back with the change
it describes (one user action, one transaction). Refusals and failures have no change to ride
with: ``record_separately`` writes them in a transaction of their own. Events hold ids and
action names only, never data, so an erasure leaves the fact behind, not the content.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access import AccessDenied, Actor, require, resolve
from core.db import session_factory
from core.records import AuditEventRecord

OUTCOMES = ("ok", "refused", "failed")


@dataclass(frozen=True)
class AuditEvent:
    time: datetime
    user: str
    role: str | None
    action: str
    object_type: str
    object_id: str | None
    outcome: str
    detail: str | None

    def to_dict(self) -> dict:
        return {
            "time": self.time.isoformat(timespec="seconds") + "Z",
            "user": self.user,
            "role": self.role,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "outcome": self.outcome,
            "detail": self.detail,
        }


def record(
    session: Session,
    actor: Actor | None,
    action: str,
    object_type: str,
    object_id: int | str | None = None,
    outcome: str = "ok",
    detail: str | None = None,
) -> None:
    """Add an event to ``session`` (committed with the change it describes)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"Unknown audit outcome {outcome!r}.")
    actor = resolve(actor)
    session.add(
        AuditEventRecord(
            user=actor.name[:320],
            role=actor.role,
            action=action[:40],
            object_type=object_type[:40],
            object_id=None if object_id is None else str(object_id)[:64],
            outcome=outcome,
            detail=None if detail is None else str(detail)[:500],
        )
    )


def record_separately(
    actor: Actor | None,
    action: str,
    object_type: str,
    object_id: int | str | None = None,
    outcome: str = "ok",
    detail: str | None = None,
) -> None:
    """An event in its own transaction: refusals, failures, downloads, sign-ins."""
    with session_factory().begin() as session:
        record(session, actor, action, object_type, object_id, outcome, detail)


def authorize(
    actor: Actor | None, action: str, object_type: str, object_id: int | str | None = None
) -> Actor:
    """``require`` plus a ``refused`` event when it says no; returns the resolved actor."""
    try:
        return require(actor, action)
    except AccessDenied as exc:
        record_separately(resolve(actor), action, object_type, object_id, "refused", str(exc))
        raise


@contextlib.contextmanager
def failures_recorded(
    actor: Actor | None, action: str, object_type: str, object_id: int | str | None = None
) -> Iterator[None]:
    """Record a ``failed`` event (the error's type only: messages may quote data) and re-raise."""
    try:
        yield
    except AccessDenied:
        raise
    except BaseException as exc:
        with contextlib.suppress(Exception):  # the original error matters more
            record_separately(actor, action, object_type, object_id, "failed", type(exc).__name__)
        raise


def record_download(
    actor: Actor | None, object_type: str, object_id: int | str | None, what: str
) -> None:
    """A download (export) happened: checked against the role, then written to the trail."""
    actor = authorize(actor, "export", object_type, object_id)
    record_separately(actor, "export", object_type, object_id, "ok", what)


def sign_in(actor: Actor) -> None:
    """A signed-in session started: a ``sign_in`` event, and ``role_change`` when the user's
    mapped role differs from the role they had at their last recorded sign-in."""
    with session_factory().begin() as session:
        last = session.scalar(
            select(AuditEventRecord.role)
            .where(AuditEventRecord.user == actor.name, AuditEventRecord.action == "sign_in")
            .order_by(AuditEventRecord.id.desc())
            .limit(1)
        )
        if last is not None and last != actor.role:
            record(
                session, actor, "role_change", "user", actor.name, "ok", f"{last} -> {actor.role}"
            )
        record(session, actor, "sign_in", "user", actor.name)


def list_events(
    *,
    user: str | None = None,
    since: datetime | str | None = None,
    limit: int | None = None,
    actor: Actor | None = None,
) -> list[AuditEvent]:
    """Events oldest first, for admins (``audit`` action), filtered by user and start time."""
    authorize(actor, "audit", "audit")
    if isinstance(since, str):
        try:
            since = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"--since must be an ISO date or time, got {since!r}.") from None
    if since is not None and since.tzinfo is not None:
        since = since.astimezone(UTC).replace(tzinfo=None)  # stored as naive UTC
    with session_factory().begin() as session:
        query = select(AuditEventRecord).order_by(AuditEventRecord.id)
        if user:
            query = query.where(AuditEventRecord.user == user)
        if since is not None:
            query = query.where(AuditEventRecord.time >= since)
        if limit is not None:
            query = query.order_by(None).order_by(AuditEventRecord.id.desc()).limit(limit)
        rows = session.scalars(query).all()
        events = [
            AuditEvent(
                r.time, r.user, r.role, r.action, r.object_type, r.object_id, r.outcome, r.detail
            )
            for r in rows
        ]
    if limit is not None:
        events.reverse()
    return events
