"""Jobs: every long task (train, score, explain) is a row in the ledger that a worker claims.

A job is a kind plus plain parameters (ids, numbers, paths under PAYOFF_HOME), so any worker
that reaches the same database and sees the same PAYOFF_HOME can run it:
``python -m core.cli worker`` claims queued jobs in a loop (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; on SQLite a guarded UPDATE under the file's write lock), heartbeats the one it
runs, and writes progress, the result or the error back to the row. Pages submit jobs and
watch them; leaving or reloading a page stops nothing.

A job whose heartbeat is older than ``PAYOFF_JOB_TIMEOUT_S`` lost its worker (killed, machine
gone): it is re-queued once, then marked ``interrupted`` with the reason. Any worker, the app
and the CLI look for such jobs when they start and between jobs.

Runs trained before jobs existed (or by ``core.cli train`` in its own process without a job)
are still judged by their pid: a run whose process died is marked ``interrupted``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from core import audit
from core.access import Actor
from core.access import resolve as resolve_actor
from core.db import affected, get_or_raise, session_factory, unit_of_work
from core.records import JobRecord, TrainingRunRecord, utcnow
from core.runs import RunOptions
from core.settings import REPO_ROOT, _int_env, load_settings

ACTIVE_STATUSES = ("queued", "running")
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled", "interrupted")
# A queued run gets its pid within a second of being created; older ones without a pid had
# their launcher die before the worker started.
QUEUED_GRACE = timedelta(seconds=60)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) or a recycled pid is not our worker.
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        if status == "Z":
            return False
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        return b"python" in cmdline or b"streamlit" in cmdline
    except OSError:
        return True  # no /proc (not Linux): trust os.kill


def mark_dead_runs_interrupted() -> list[int]:
    """Mark active runs whose worker process is gone as interrupted; remove temp artifacts.

    Runs with an active job are the job's business (heartbeats, ``reap_dead_jobs``): their
    worker may be on another machine, where a local pid says nothing."""
    interrupted = []
    now = utcnow()
    with session_factory().begin() as session:
        runs = session.scalars(
            select(TrainingRunRecord).where(TrainingRunRecord.status.in_(ACTIVE_STATUSES))
        ).all()
        with_jobs = set(
            session.scalars(
                select(JobRecord.run_id).where(
                    JobRecord.kind == "train", JobRecord.status.in_(ACTIVE_STATUSES)
                )
            )
        )
        for run in runs:
            if run.id in with_jobs or pid_alive(run.pid):
                continue
            if run.pid is None and run.created_at and now - run.created_at < QUEUED_GRACE:
                continue
            run.status = "interrupted"
            run.error = "The worker process stopped before the run finished (it was killed or the machine restarted)."
            run.finished_at = now
            interrupted.append(run.id)
    _remove_temp_artifacts()
    return interrupted


def _remove_temp_artifacts() -> None:
    """Half-written artifact folders (names start with '.') belong to dead writers."""
    folder = load_settings().artifacts_dir
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        if child.name.startswith(".") and child.is_dir():
            pid = _pid_from_temp_name(child.name)
            if pid is None or not pid_alive(pid):
                shutil.rmtree(child, ignore_errors=True)


def _pid_from_temp_name(name: str) -> int | None:
    """models/artifacts.py names temp folders ".<name>.tmp-pid<PID>-<uuid>"."""
    match = re.search(r"\.tmp-pid(\d+)-", name)
    return int(match.group(1)) if match else None


def launch_worker_for(run_ids: list[int]) -> int | None:
    """Queue a training job for each run (in this order) and make sure a local worker runs;
    returns the pid of the worker process started for them (None with PAYOFF_LOCAL_WORKER=0:
    the jobs then wait for the team's workers).

    One local worker, not one per run: on a 2-core machine parallel trainings only slow each
    other down (docs/STACK.md). Workers on other machines may claim the jobs as well.
    """
    if not run_ids:
        raise ValueError("No runs to start.")
    submit_training(run_ids)
    if not local_workers_enabled():
        return None
    pid = start_local_worker(log_name=f"run-{run_ids[0]}.log")
    with session_factory().begin() as session:
        for run_id in run_ids:
            run = session.get(TrainingRunRecord, run_id)
            if run is not None and run.pid is None:
                run.pid = pid
    return pid


def request_cancel(run_id: int, *, actor: Actor | None = None) -> None:
    actor = audit.authorize(actor, "train", "run", run_id)
    """Cancel a training run (and its job): a queued one at once, a running one at its next
    epoch."""
    with session_factory().begin() as session:  # the run, its jobs and the event: one commit
        run = get_or_raise(session, TrainingRunRecord, run_id)
        jobs = session.scalars(
            select(JobRecord).where(
                JobRecord.run_id == run_id,
                JobRecord.kind == "train",
                JobRecord.status.in_(ACTIVE_STATUSES),
            )
        ).all()
        if run.status in ACTIVE_STATUSES:
            run.cancel_requested = True
            audit.record(session, actor, "train", "run", run_id, "ok", "cancel")
        for job in jobs:
            _cancel(session, job)


def cancel_requested(run_id: int) -> bool:
    with session_factory().begin() as session:
        run = session.get(TrainingRunRecord, run_id)
        return bool(run is None or run.cancel_requested)


def remove_stale_writes(parent, *child_keys) -> int:
    """Delete ``parent`` rows left unfinished (status != "complete") by a writer process that
    is gone, with the rows of each child table (given by its key column). Score batches and
    explanations are written this way: invisible until complete, cleaned at the next start.

    While a job on another machine is alive, nothing is removed: a pid from there says
    nothing here (cleaned at a later start)."""
    if _remote_job_alive():
        return 0
    with session_factory().begin() as session:
        stale = [
            row.id
            for row in session.scalars(select(parent).where(parent.status != "complete"))
            if not pid_alive(row.writer_pid)
        ]
        if stale:
            for key in child_keys:
                session.execute(delete(key.class_).where(key.in_(stale)))
            session.execute(delete(parent).where(parent.id.in_(stale)))
        return len(stale)


def remove_stale_exports() -> int:
    """Half-written exports (".<name>.<pid>.partial", see core/scoring.py) of dead writers."""
    folder = load_settings().exports_dir
    removed = 0
    if folder.is_dir():
        for path in folder.glob(".*.partial"):
            parts = path.name.split(".")
            pid = int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None
            if not pid_alive(pid):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


# ---- the job queue --------------------------------------------------------------------------

JOB_KINDS = ("train", "score", "explain")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
# A job is claimed at most this many times: one re-queue after its worker died, then it is
# marked interrupted (a job that kills its worker every time must not loop forever).
MAX_ATTEMPTS = 2
# The handler of each kind: a function of (params, JobContext) returning the result dict.
HANDLERS = {
    "train": "core.training:train_job",
    "score": "core.engines.jobs:score_job",
    "explain": "core.engines.jobs:explain_job",
}
LOCAL_WORKER_IDLE_S = 120
PROGRESS_EVERY_S = 0.5


def heartbeat_seconds() -> int:
    """How often a worker refreshes its job's heartbeat (PAYOFF_JOB_HEARTBEAT_S, default 5)."""
    return _int_env("PAYOFF_JOB_HEARTBEAT_S", 5)


def job_timeout_seconds() -> int:
    """A heartbeat older than this (PAYOFF_JOB_TIMEOUT_S, default 60) means the worker died."""
    return max(_int_env("PAYOFF_JOB_TIMEOUT_S", 60), 2 * heartbeat_seconds())


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class JobCancelled(Exception):
    """Raised inside a job when cancelling was requested (or the job was taken away)."""


@dataclass(frozen=True)
class JobInfo:
    id: int
    kind: str
    status: str
    run_id: int | None
    params: dict
    progress: dict
    result: dict | None
    error: str | None
    worker: str | None
    attempts: int
    cancel_requested: bool
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


def _job_info(r: JobRecord) -> JobInfo:
    return JobInfo(
        id=r.id,
        kind=r.kind,
        status=r.status,
        run_id=r.run_id,
        params=dict(r.params or {}),
        progress=dict(r.progress or {}),
        result=dict(r.result) if r.result is not None else None,
        error=r.error,
        worker=r.worker,
        attempts=r.attempts,
        cancel_requested=bool(r.cancel_requested),
        created_by=r.created_by,
        created_at=r.created_at,
        started_at=r.started_at,
        finished_at=r.finished_at,
        heartbeat_at=r.heartbeat_at,
    )


def _plain(params: dict) -> dict:
    """Parameters must survive JSON unchanged: plain ids and values, nothing live."""
    try:
        text = json.dumps(params, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Job parameters must be plain JSON values: {exc}") from None
    return json.loads(text)


def actor_params(actor: Actor | None) -> dict:
    """The acting user as plain job parameters: the worker acts for the user who queued the
    job (its role was checked when it was queued and is checked again by the work itself)."""
    resolved = resolve_actor(actor)
    return {"actor": {"name": resolved.name, "role": resolved.role, "email": resolved.email}}


def actor_from(params: dict) -> Actor | None:
    """The user a job acts for (None: the worker's local user, for older jobs)."""
    stored = params.get("actor")
    return Actor(**stored) if stored else None


def submit(
    kind: str,
    params: dict,
    *,
    run_id: int | None = None,
    after: list[int] | None = None,
    created_by: str | None = None,
    actor: Actor | None = None,
    session: Session | None = None,
) -> int:
    """Queue a job; returns its id. ``after``: job ids that must finish before it starts.
    ``actor``: the user the job acts for (recorded as ``created_by``, and passed to the work
    so its writes are checked and audited under that user). ``session``: the caller's
    transaction, when the job is one part of a larger action."""
    if kind not in JOB_KINDS:
        raise ValueError(f"Unknown job kind {kind!r}; choose one of {', '.join(JOB_KINDS)}.")
    if actor is not None or "actor" not in params:
        params = {**params, **actor_params(actor)}
    # Refused now, in the user's request, rather than later in a worker.
    audit.authorize(actor_from(params), kind, "job")
    created_by = created_by or params["actor"]["name"]
    params = _plain({**params, **({"after": list(after)} if after else {})})
    with unit_of_work(session) as session:
        record = JobRecord(
            kind=kind,
            status="queued",
            run_id=run_id,
            params=params,
            progress={"stage": "queued"},
            attempts=0,
            cancel_requested=False,
            created_by=created_by,
        )
        session.add(record)
        session.flush()
        return record.id


def submit_training(run_ids: list[int], created_by: str | None = None) -> list[int]:
    """A training job per queued run (an existing active job is reused); an ensemble waits
    for the jobs of its members. All of them are queued in one transaction, or none."""
    job_ids: list[int] = []
    by_run: dict[int, int] = {}
    # Checked before the transaction opens: a refusal is recorded in one of its own.
    audit.authorize(actor_from(actor_params(None)), "train", "job")
    with session_factory().begin() as session:
        for run_id in run_ids:
            run = get_or_raise(session, TrainingRunRecord, run_id)
            existing = session.scalar(
                select(JobRecord.id).where(
                    JobRecord.run_id == run_id,
                    JobRecord.kind == "train",
                    JobRecord.status.in_(ACTIVE_STATUSES),
                )
            )
            members = RunOptions.from_dict(run.options_json).members
            if members:
                member_jobs = session.scalars(
                    select(JobRecord.id).where(
                        JobRecord.run_id.in_(members),
                        JobRecord.kind == "train",
                        JobRecord.status.in_(ACTIVE_STATUSES),
                    )
                ).all()
            else:
                member_jobs = []
            after = sorted({*member_jobs, *(by_run[m] for m in members if m in by_run)})
            job_id = existing or submit(
                "train",
                {"run_id": run_id},
                run_id=run_id,
                after=after,
                created_by=created_by,
                session=session,
            )
            by_run[run_id] = job_id
            job_ids.append(job_id)
    return job_ids


def get_job(job_id: int) -> JobInfo:
    with session_factory().begin() as session:
        record = get_or_raise(session, JobRecord, job_id, "job")
        return _job_info(record)


def list_jobs(
    kind: str | None = None,
    *,
    run_id: int | None = None,
    active: bool | None = None,
    limit: int = 50,
) -> list[JobInfo]:
    """Newest first."""
    query = select(JobRecord).order_by(JobRecord.id.desc()).limit(limit)
    if kind is not None:
        query = query.where(JobRecord.kind == kind)
    if run_id is not None:
        query = query.where(JobRecord.run_id == run_id)
    if active is not None:
        wanted = JobRecord.status.in_(ACTIVE_STATUSES)
        query = query.where(wanted if active else ~wanted)
    with session_factory().begin() as session:
        return [_job_info(r) for r in session.scalars(query)]


def cancel_job(job_id: int, *, actor: Actor | None = None) -> JobInfo:
    """A queued job is cancelled at once; a running one stops at its next check (between
    chunks, rows or epochs) and removes what it had half written. Needs the right to start
    such a job; audited with the change."""
    kind = get_job(job_id).kind
    actor = audit.authorize(actor, kind, "job", job_id)
    with session_factory().begin() as session:
        record = get_or_raise(session, JobRecord, job_id, "job")
        if record.status in ACTIVE_STATUSES:
            audit.record(session, actor, kind, "job", job_id, "ok", "cancel")
        _cancel(session, record)
    return get_job(job_id)


def _cancel(session: Session, record: JobRecord) -> None:
    """Cancel ``record`` inside the caller's transaction (and its training run, if queued)."""
    if record.status == "queued":
        record.status = "cancelled"
        record.finished_at = utcnow()
        record.progress = {**(record.progress or {}), "stage": "cancelled"}
        if record.kind == "train" and record.run_id is not None:
            run = session.get(TrainingRunRecord, record.run_id)
            if run is not None and run.status == "queued":
                run.status = "cancelled"
                run.cancel_requested = True
                run.finished_at = utcnow()
    elif record.status == "running":
        record.cancel_requested = True
        if record.kind == "train" and record.run_id is not None:
            run = session.get(TrainingRunRecord, record.run_id)
            if run is not None:
                run.cancel_requested = True


# ---- claiming ---------------------------------------------------------------------------------


def _dependencies_done(session, params: dict) -> bool:
    after = params.get("after") or []
    if not after:
        return True
    open_jobs = session.scalar(
        select(JobRecord.id).where(JobRecord.id.in_(after), JobRecord.status.in_(ACTIVE_STATUSES))
    )
    return open_jobs is None


def claim_next(
    worker: str | None = None, *, job_ids: list[int] | None = None, kinds: list[str] | None = None
) -> JobInfo | None:
    """Take the oldest queued job (of ``job_ids`` / ``kinds`` when given) for ``worker``.

    PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` then the update, in one transaction, so
    concurrent workers never wait for or take the same row. SQLite: the same select (without
    row locks, which SQLite lacks) and an UPDATE guarded by ``status = 'queued'`` that the
    file's single write lock serialises; a worker that loses the race sees 0 rows updated and
    tries the next job. Either way a job is claimed by exactly one worker.
    """
    worker = worker or worker_name()
    now = utcnow()
    for _ in range(20):  # only lost races loop
        with session_factory().begin() as session:
            query = select(JobRecord).where(JobRecord.status == "queued").order_by(JobRecord.id)
            if job_ids is not None:
                query = query.where(JobRecord.id.in_(job_ids))
            if kinds is not None:
                query = query.where(JobRecord.kind.in_(kinds))
            candidates = session.scalars(query.limit(50).with_for_update(skip_locked=True)).all()
            if not candidates:
                return None
            lost = False
            for record in candidates:
                params = record.params or {}
                if params.get("inline") and job_ids is None:
                    continue  # a CLI process runs this one itself
                if not _dependencies_done(session, params):
                    continue
                claimed = affected(
                    session.execute(
                        update(JobRecord)
                        .where(JobRecord.id == record.id, JobRecord.status == "queued")
                        .values(
                            status="running",
                            worker=worker,
                            attempts=JobRecord.attempts + 1,
                            heartbeat_at=now,
                            started_at=now,
                            progress={"stage": "starting", "worker": worker},
                        )
                        .execution_options(synchronize_session=False)
                    )
                )
                if claimed == 1:
                    session.flush()
                    session.expire(record)
                    return _job_info(get_or_raise(session, JobRecord, record.id, "job"))
                lost = True
            if not lost:
                return None  # every queued job waits for another
    return None


# ---- dead workers -------------------------------------------------------------------------------


def reap_dead_jobs(timeout_s: float | None = None) -> list[int]:
    """Running jobs whose heartbeat is older than the timeout: re-queue those claimed once,
    mark the others interrupted with the reason. Returns the ids handled."""
    timeout_s = job_timeout_seconds() if timeout_s is None else timeout_s
    cutoff = utcnow() - timedelta(seconds=timeout_s)
    handled = []
    with session_factory().begin() as session:
        dead = session.scalars(
            select(JobRecord)
            .where(JobRecord.status == "running", JobRecord.heartbeat_at < cutoff)
            .with_for_update(skip_locked=True)
        ).all()
        for record in dead:
            reason = (
                f"Worker {record.worker} stopped sending heartbeats (none for {timeout_s:.0f} s):"
                " it was killed or its machine went away."
            )
            # A CLI command's own job (inline) has no one to take it over.
            again = record.attempts < MAX_ATTEMPTS and not (record.params or {}).get("inline")
            done = affected(
                session.execute(
                    update(JobRecord)
                    .where(
                        JobRecord.id == record.id,
                        JobRecord.status == "running",
                        JobRecord.heartbeat_at == record.heartbeat_at,
                    )
                    .values(
                        status="queued" if again else "interrupted",
                        worker=None,
                        error=reason if not again else None,
                        finished_at=None if again else utcnow(),
                        progress={
                            "stage": "queued again" if again else "interrupted",
                            "note": reason,
                        },
                    )
                    .execution_options(synchronize_session=False)
                )
            )
            if done != 1:
                continue  # its worker came back just now
            handled.append(record.id)
            if record.kind == "train" and record.run_id is not None:
                run = session.get(TrainingRunRecord, record.run_id)
                if run is not None and run.status in ACTIVE_STATUSES:
                    if again:
                        run.status, run.pid, run.started_at = "queued", None, None
                        run.progress_json = {"stage": "queued again"}
                    else:
                        run.status, run.error, run.finished_at = "interrupted", reason, utcnow()
    if handled:
        _clean_after_dead_workers()
    return handled


def _clean_after_dead_workers() -> None:
    from core.records import (
        ExplanationRecord,
        ExplanationValueRecord,
        PredictionReasonRecord,
        PredictionRecord,
        ScoreBatchRecord,
    )

    remove_stale_writes(
        ScoreBatchRecord, PredictionRecord.batch_id, PredictionReasonRecord.batch_id
    )
    remove_stale_writes(ExplanationRecord, ExplanationValueRecord.explanation_id)


def _remote_job_alive() -> bool:
    """A job with a fresh heartbeat from another machine: its half-written rows carry a pid
    of that machine, which says nothing here."""
    here = socket.gethostname()
    cutoff = utcnow() - timedelta(seconds=job_timeout_seconds())
    with session_factory().begin() as session:
        workers = session.scalars(
            select(JobRecord.worker).where(
                JobRecord.status == "running", JobRecord.heartbeat_at >= cutoff
            )
        ).all()
    return any(w and w.rsplit(":", 1)[0] != here for w in workers)


# ---- running --------------------------------------------------------------------------------


class JobContext:
    """What a job function gets besides its parameters: progress reports and cancel checks.

    A heartbeat thread refreshes the job's row every ``heartbeat_seconds()`` and reads its
    cancel flag; ``cancelled()`` is then a cheap local check. If the row no longer belongs to
    this worker (it was declared dead and re-queued), the job counts as cancelled here.
    """

    def __init__(self, job: JobInfo, worker: str) -> None:
        self.job = job
        self.worker = worker
        self._cancel = threading.Event()
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._last_report = 0.0
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job.id}", daemon=True)

    def __enter__(self) -> JobContext:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _beat(self) -> None:
        interval = heartbeat_seconds()
        while not self._stop.wait(interval):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - a missed beat is retried; the timeout is generous
                continue

    def beat(self) -> None:
        with session_factory().begin() as session:
            owned = affected(
                session.execute(
                    update(JobRecord)
                    .where(
                        JobRecord.id == self.job.id,
                        JobRecord.worker == self.worker,
                        JobRecord.status == "running",
                    )
                    .values(heartbeat_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
            )
            flag = session.scalar(
                select(JobRecord.cancel_requested).where(JobRecord.id == self.job.id)
            )
        if owned != 1:
            self._lost.set()
        if flag or owned != 1:
            self._cancel.set()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def check(self) -> None:
        """Raise JobCancelled when cancelling was requested."""
        if self._cancel.is_set():
            raise JobCancelled()

    def report(self, progress: dict, *, force: bool = False) -> None:
        """Store progress (at most every PROGRESS_EVERY_S unless forced) and check for cancel."""
        now = time.monotonic()
        if force or now - self._last_report >= PROGRESS_EVERY_S:
            self._last_report = now
            with session_factory().begin() as session:
                session.execute(
                    update(JobRecord)
                    .where(JobRecord.id == self.job.id, JobRecord.worker == self.worker)
                    .values(progress=_plain(progress))
                    .execution_options(synchronize_session=False)
                )
                flag = session.scalar(
                    select(JobRecord.cancel_requested).where(JobRecord.id == self.job.id)
                )
            if flag:
                self._cancel.set()
        self.check()


def _handler(kind: str) -> Callable[[dict, JobContext], dict]:
    import importlib

    module, name = HANDLERS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def _finish(job: JobInfo, worker: str, **values: Any) -> None:
    with session_factory().begin() as session:
        session.execute(
            update(JobRecord)
            .where(
                JobRecord.id == job.id, JobRecord.worker == worker, JobRecord.status == "running"
            )
            .values(finished_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )


def run_claimed(job: JobInfo, worker: str | None = None) -> JobInfo:
    """Run a job this worker has claimed, to a terminal status (never raises for job errors)."""
    worker = worker or job.worker or worker_name()
    with JobContext(job, worker) as context:
        try:
            result = _handler(job.kind)(job.params, context)
            status = (result or {}).pop("_status", "succeeded")
            _finish(
                job,
                worker,
                status=status,
                result=_plain(result or {}),
                error=(result or {}).get("error") if status != "succeeded" else None,
                progress={**get_job(job.id).progress, "stage": status},
            )
        except JobCancelled:
            _finish(job, worker, status="cancelled", progress={"stage": "cancelled"})
        except Exception as exc:  # noqa: BLE001 - recorded on the row, shown on the page
            message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            _finish(
                job,
                worker,
                status="failed",
                error=message,
                progress={"stage": "failed", "trace": traceback.format_exc()[-4000:]},
            )
    return get_job(job.id)


def work(
    *,
    max_jobs: int | None = None,
    idle_exit_s: float | None = None,
    job_ids: list[int] | None = None,
    kinds: list[str] | None = None,
    poll_s: float = 1.0,
    on_job: Callable[[JobInfo], None] | None = None,
) -> list[JobInfo]:
    """The worker loop: reap dead jobs, claim the next one, run it, repeat.

    Stops after ``max_jobs`` jobs, after ``idle_exit_s`` seconds without a job to claim, or,
    with ``job_ids``, once none of them is queued any more. Returns the finished jobs.
    """
    worker = worker_name()
    done: list[JobInfo] = []
    idle_since = time.monotonic()
    while max_jobs is None or len(done) < max_jobs:
        reap_dead_jobs()
        job = claim_next(worker, job_ids=job_ids, kinds=kinds)
        if job is None:
            if job_ids is not None and not any(get_job(j).status == "queued" for j in job_ids):
                break
            if idle_exit_s is not None and time.monotonic() - idle_since >= idle_exit_s:
                break
            time.sleep(poll_s)
            continue
        finished = run_claimed(job, worker)
        done.append(finished)
        if on_job is not None:
            on_job(finished)
        idle_since = time.monotonic()
    return done


def run_inline(
    kind: str, params: dict, *, run_id: int | None = None, actor: Actor | None = None
) -> JobInfo:
    """Submit a job and run it in this process at once (the CLI's own commands): the work is
    recorded, heartbeated and cancellable like any other job, but no other worker takes it
    (params "inline"; only such jobs may name files outside PAYOFF_HOME, e.g. the CLI's
    --out) and it is not re-queued when this process dies."""
    job_id = submit(kind, {**params, "inline": True}, run_id=run_id, actor=actor)
    job = claim_next(worker_name(), job_ids=[job_id])
    if job is None:  # another worker took it first: wait for its end
        while (job := get_job(job_id)).active:
            time.sleep(0.5)
        return job
    return run_claimed(job)


# ---- local workers ----------------------------------------------------------------------------


def _lock_path() -> Path:
    home = load_settings().home
    home.mkdir(parents=True, exist_ok=True)
    return home / "worker.lock"


@contextlib.contextmanager
def local_worker_lock() -> Any:
    """Held by the one local worker a page starts (per PAYOFF_HOME); yields False when another
    process holds it."""
    with open(_lock_path(), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def local_worker_running() -> bool:
    with local_worker_lock() as free:
        return not free


def local_workers_enabled() -> bool:
    """PAYOFF_LOCAL_WORKER=0: pages only queue jobs (dedicated workers run them)."""
    return (os.environ.get("PAYOFF_LOCAL_WORKER") or "1").strip().lower() not in (
        "0",
        "false",
        "no",
        "off",
    )


def start_local_worker(log_name: str = "worker.log", idle_exit_s: int = LOCAL_WORKER_IDLE_S) -> int:
    """Start ``python -m core.cli worker --local`` in its own session (it outlives the page
    script and a Streamlit rerun); it exits at once when another local worker holds the lock,
    and after ``idle_exit_s`` without work. Returns its pid."""
    settings = load_settings()
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = open(logs / log_name, "ab")  # noqa: SIM115 - handed to the child
    env = dict(os.environ)
    env.setdefault("PAYOFF_HOME", str(settings.home))
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "worker", "--local", "--idle-exit", str(idle_exit_s)],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    log.close()
    return process.pid


def ensure_worker() -> int | None:
    """When jobs wait and no local worker runs, start one (unless PAYOFF_LOCAL_WORKER=0).
    Returns the new worker's pid, or None when nothing was started."""
    if not local_workers_enabled() or local_worker_running():
        return None
    with session_factory().begin() as session:
        waiting = session.scalar(select(JobRecord.id).where(JobRecord.status == "queued").limit(1))
    if waiting is None:
        return None
    return start_local_worker()


def submit_and_start(
    kind: str,
    params: dict,
    *,
    run_id: int | None = None,
    created_by: str | None = None,
    actor: Actor | None = None,
) -> int:
    """What a page does: queue the job, make sure a worker will take it; returns the job id."""
    job_id = submit(kind, params, run_id=run_id, created_by=created_by, actor=actor)
    ensure_worker()
    return job_id


def store_input(data: bytes, suffix: str = ".csv") -> str:
    """Keep uploaded bytes for a job under PAYOFF_HOME/inputs (content-addressed, written to a
    temp name and renamed); returns the path relative to PAYOFF_HOME, what job params hold."""
    digest = hashlib.sha256(data).hexdigest()
    folder = load_settings().home / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}{suffix}"
    if not path.is_file():
        tmp = folder / f".{digest}.{os.getpid()}.partial"
        tmp.write_bytes(data)
        tmp.replace(path)
    return str(path.relative_to(load_settings().home))


def input_path(relative: str) -> Path:
    """A job's input file: must lie under PAYOFF_HOME (params never name arbitrary files)."""
    home = load_settings().home.resolve()
    path = (home / relative).resolve()
    if not path.is_relative_to(home):
        raise ValueError(f"A job's input must lie under PAYOFF_HOME, got {relative!r}.")
    if not path.is_file():
        raise ValueError(f"The job's input file is gone: {relative}.")
    return path
