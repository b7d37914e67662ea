"""Background jobs: a training run is worked on by its own process, never by a page script.

A job is a plain function of ids (``python -m core.cli worker --run ID``), so it could run on
any worker that reaches the same database. The process reports through the run's row: status,
progress, metrics. Leaving or reloading the page does not stop it; a run whose process died is
marked ``interrupted`` at the next start of the app or CLI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, select

from core import audit
from core.access import Actor
from core.db import session_factory
from core.records import TrainingRunRecord, utcnow
from core.settings import REPO_ROOT, load_settings

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
    """Mark active runs whose worker process is gone as interrupted; remove temp artifacts."""
    interrupted = []
    now = utcnow()
    with session_factory().begin() as session:
        runs = session.scalars(
            select(TrainingRunRecord).where(TrainingRunRecord.status.in_(ACTIVE_STATUSES))
        ).all()
        for run in runs:
            if pid_alive(run.pid):
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


def launch_worker_for(run_ids: list[int]) -> int:
    """Start one worker process that trains the queued runs in order; returns its pid.

    One process for a batch, not one per run: on a 2-core machine parallel trainings only
    slow each other down (shared/STACK.md).
    """
    if not run_ids:
        raise ValueError("No runs to start.")
    settings = load_settings()
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = open(logs / f"run-{run_ids[0]}.log", "ab")  # noqa: SIM115 - handed to the child
    env = dict(os.environ)
    env.setdefault("PAYOFF_HOME", str(settings.home))
    arguments = [arg for run_id in run_ids for arg in ("--run", str(run_id))]
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "worker", *arguments],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # survives the page script and a Streamlit rerun
    )
    log.close()
    with session_factory().begin() as session:
        for run_id in run_ids:
            run = session.get(TrainingRunRecord, run_id)
            if run is not None and run.pid is None:
                run.pid = process.pid
    return process.pid


def request_cancel(run_id: int, *, actor: Actor | None = None) -> None:
    actor = audit.authorize(actor, "train", "run", run_id)
    with session_factory().begin() as session:
        run = session.get(TrainingRunRecord, run_id)
        if run is None:
            raise ValueError(f"There is no training run with id {run_id}.")
        if run.status in ACTIVE_STATUSES:
            run.cancel_requested = True
            audit.record(session, actor, "train", "run", run_id, "ok", "cancel")


def cancel_requested(run_id: int) -> bool:
    with session_factory().begin() as session:
        run = session.get(TrainingRunRecord, run_id)
        return bool(run is None or run.cancel_requested)


def remove_stale_writes(parent, *child_keys) -> int:
    """Delete ``parent`` rows left unfinished (status != "complete") by a writer process that
    is gone, with the rows of each child table (given by its key column). Score batches and
    explanations are written this way: invisible until complete, cleaned at the next start."""
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
