"""Background workers: real subprocesses, dead workers detected, a kill -9 leaves no damage.

The worker tests run on a SQLite file and on a real PostgreSQL database.

These tests start ``python -m core.cli`` processes. Polls use generous timeouts (the machine
is shared and slow) and never assert on timing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from core import runs as runs_module
from core import training as training_module
from core.db import get_engine, session_factory
from core.jobs import (
    get_job,
    launch_worker_for,
    list_jobs,
    mark_dead_runs_interrupted,
    reap_dead_jobs,
    submit_training,
    work,
)
from core.records import TrainingRunRecord, utcnow
from core.runs import get_run
from core.settings import REPO_ROOT, load_settings
from core.startup import start
from core.training import create_run, load_run_model, predict_frame
from models.artifacts import write_artifact
from tests.fixtures import make_tabular_frame, payoff_home, register_frame, write_csv

POLL_TIMEOUT_S = 120.0


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = POLL_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.05)


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _set_row(run_id: int, **fields: object) -> None:
    with session_factory().begin() as session:
        record = session.get(TrainingRunRecord, run_id)
        for key, value in fields.items():
            setattr(record, key, value)


def _row_pid(run_id: int) -> int | None:
    with session_factory().begin() as session:
        return session.get(TrainingRunRecord, run_id).pid


def _reap(pid: int) -> None:
    """Collect an exited child so it does not linger as a zombie (it may be reaped already)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _temp_artifacts() -> list[Path]:
    folder = load_settings().artifacts_dir
    return [p for p in folder.iterdir() if p.name.startswith(".")] if folder.exists() else []


@pytest.fixture
def dataset():
    return register_frame(make_tabular_frame(150, seed=5), money_column="amount")


@pytest.fixture
def sleeper():
    """Live processes for pid checks: one whose command line names core.cli, one that does not."""
    worker_like = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "core.cli"]
    )
    other = subprocess.Popen(["sleep", "60"])
    yield worker_like.pid, other.pid
    for process in (worker_like, other):
        process.kill()
        process.wait()


# ---- dead workers -----------------------------------------------------------------------------


def test_running_run_with_a_dead_pid_is_marked_interrupted(dataset) -> None:
    run_id = create_run(dataset.id, "logreg")
    _set_row(run_id, status="running", pid=_dead_pid())
    assert mark_dead_runs_interrupted() == [run_id]
    run = get_run(run_id)
    assert run.status == "interrupted" and run.finished_at is not None
    assert "stopped" in run.error
    assert mark_dead_runs_interrupted() == []  # terminal runs are left alone


def test_startup_marks_dead_runs_interrupted(dataset) -> None:
    run_id = create_run(dataset.id, "logreg")
    _set_row(run_id, status="running", pid=_dead_pid())
    start()
    assert get_run(run_id).status == "interrupted"


def test_live_worker_is_kept_and_a_recycled_pid_is_not(dataset, sleeper) -> None:
    worker_like, other = sleeper
    kept = create_run(dataset.id, "logreg")
    recycled = create_run(dataset.id, "logreg")
    _set_row(kept, status="running", pid=worker_like)
    _set_row(recycled, status="running", pid=other)  # alive, but not one of our workers
    assert mark_dead_runs_interrupted() == [recycled]
    assert get_run(kept).status == "running"


def test_queued_run_without_pid_gets_a_grace_period(dataset) -> None:
    fresh = create_run(dataset.id, "logreg")
    stale = create_run(dataset.id, "logreg")
    _set_row(stale, created_at=utcnow() - timedelta(minutes=5))
    assert mark_dead_runs_interrupted() == [stale]
    assert get_run(fresh).status == "queued"


def test_temp_artifact_of_a_dead_writer_is_removed(sleeper) -> None:
    worker_like, _ = sleeper
    artifacts = load_settings().artifacts_dir
    dead = artifacts / f".run-3-abc123.tmp-pid{_dead_pid()}-0f0f"
    alive = artifacts / f".run-4-def456.tmp-pid{worker_like}-1e1e"
    finished = artifacts / "run-5-0123abcd"
    for folder in (dead, alive, finished):
        folder.mkdir(parents=True)
        (folder / "weights.safetensors").write_bytes(b"partial")
    mark_dead_runs_interrupted()
    assert not dead.exists()
    assert alive.is_dir() and finished.is_dir()


def test_artifact_temp_folder_names_its_writer(monkeypatch, tmp_path: Path) -> None:
    from core.jobs import _pid_from_temp_name
    from models import artifacts

    seen = []
    real_rename = artifacts.os.rename

    def spy(source, dest):
        seen.append(Path(source).name)
        return real_rename(source, dest)

    monkeypatch.setattr(artifacts.os, "rename", spy)
    write_artifact(tmp_path / "run-1-abcdef12", {"a.json": b"{}"}, {})
    assert seen and seen[0].startswith(".")
    assert _pid_from_temp_name(seen[0]) == os.getpid()


# ---- real worker processes --------------------------------------------------------------------


HEARTBEAT_S = 1
TIMEOUT_S = 3
FAST_HEARTBEATS = {
    "PAYOFF_JOB_HEARTBEAT_S": str(HEARTBEAT_S),
    "PAYOFF_JOB_TIMEOUT_S": str(TIMEOUT_S),
}


@contextmanager
def _environment(**values: str):
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _kill_when_training(run_id: int, pid: int) -> None:
    def training() -> bool:
        run = get_run(run_id)
        assert run.status in ("queued", "running"), f"run ended {run.status}: {run.error}"
        return run.status == "running" and bool(run.progress.get("history"))

    try:
        _wait_for(training, "the FT-Transformer's first epoch")
    finally:
        os.kill(pid, signal.SIGKILL)
        _reap(pid)


def _worker(*arguments: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "core.cli", "worker", *arguments],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def killed_worker(tmp_path_factory: pytest.TempPathFactory, module_ledger) -> SimpleNamespace:
    """Real workers on one ledger (SQLite and PostgreSQL): a logreg (left to succeed), then an
    FT-Transformer whose worker is killed with SIGKILL once its first epoch is recorded; the
    job is re-queued, claimed by a second worker, killed again, and then given up. A third
    run queued behind it must survive all this. Heartbeats every second, dead after 3 s."""
    home = tmp_path_factory.mktemp("worker_home")
    with payoff_home(home, module_ledger), _environment(**FAST_HEARTBEATS):
        info = register_frame(make_tabular_frame(5_000, seed=6), money_column="amount")
        logreg = create_run(info.id, "logreg")
        ft = create_run(info.id, "ft-transformer", size="tiny", time_budget_s=60)
        pid = launch_worker_for([logreg, ft])
        _kill_when_training(ft, pid)
        pids = {"logreg": _row_pid(logreg), "ft": _row_pid(ft)}
        later = create_run(info.id, "logreg", seed=1)
        [later_job] = submit_training([later])
        time.sleep(TIMEOUT_S + 1)
        first_reap = reap_dead_jobs()
        requeued = get_job(_train_job(ft))
        run_after_first = get_run(ft)
        # A second worker takes the job again (the FT job is older, so it comes first).
        second = _worker("--max-jobs", "1")
        _kill_when_training(ft, second.pid)
        second.wait()
        time.sleep(TIMEOUT_S + 1)
        second_reap = reap_dead_jobs()
    return SimpleNamespace(
        home=home,
        db_url=module_ledger,
        dataset=info,
        logreg=logreg,
        ft=ft,
        later=later,
        later_job=later_job,
        pid=pid,
        pids=pids,
        first_reap=first_reap,
        requeued=requeued,
        run_after_first=run_after_first,
        second_reap=second_reap,
    )


def _train_job(run_id: int) -> int:
    [job] = [j for j in list_jobs("train", run_id=run_id)]
    return job.id


@pytest.fixture
def after_kill(killed_worker, monkeypatch: pytest.MonkeyPatch, _isolated_home: Path):
    monkeypatch.setenv("PAYOFF_HOME", str(killed_worker.home))
    if killed_worker.db_url:
        monkeypatch.setenv("PAYOFF_DB_URL", killed_worker.db_url)
    return killed_worker


def test_launched_worker_trains_the_queued_runs_in_order(after_kill) -> None:
    run = get_run(after_kill.logreg)
    assert run.status == "succeeded", run.error
    assert after_kill.pids["logreg"] == after_kill.pids["ft"] == after_kill.pid
    assert (load_settings().home / "logs" / f"run-{after_kill.logreg}.log").is_file()
    scores = predict_frame(load_run_model(run.id), training_module.holdout_frame(run.id))
    assert scores.shape == (1000,)
    job = get_job(_train_job(after_kill.logreg))
    assert job.status == "succeeded" and job.attempts == 1
    assert job.result == {"run_id": after_kill.logreg, "run_status": "succeeded"}


def test_a_killed_worker_s_job_is_requeued_once_then_interrupted(after_kill) -> None:
    """kill -9 mid-epoch, twice: the stale heartbeat (not a pid) gives the job back to the
    queue once, then marks it interrupted with the reason; nothing else is harmed."""
    ft_job = _train_job(after_kill.ft)
    assert after_kill.first_reap == [ft_job]
    assert after_kill.requeued.status == "queued" and after_kill.requeued.attempts == 1
    assert after_kill.run_after_first.status == "queued"
    assert after_kill.second_reap == [ft_job]
    job = get_job(ft_job)
    assert job.status == "interrupted" and job.attempts == 2
    assert "stopped sending heartbeats" in job.error
    run = get_run(after_kill.ft)
    assert run.status == "interrupted" and run.artifact_path is None
    assert "heartbeats" in run.error
    start()  # a later start changes nothing
    assert get_job(ft_job).status == "interrupted"


def test_after_the_kills_the_ledger_is_healthy_and_work_goes_on(after_kill) -> None:
    if after_kill.db_url is None:
        with get_engine().connect() as connection:
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    earlier = get_run(after_kill.logreg)
    assert earlier.status == "succeeded"
    stored = runs_module.holdout_predictions(earlier.id).proba
    reloaded = predict_frame(load_run_model(earlier.id), training_module.holdout_frame(earlier.id))
    np.testing.assert_allclose(reloaded, stored, rtol=0, atol=1e-12)
    start()
    assert _temp_artifacts() == []
    # The run queued behind the killed one was never lost: a worker now trains it.
    assert get_job(after_kill.later_job).status == "queued"
    [done] = work(max_jobs=1, idle_exit_s=0)
    assert done.id == after_kill.later_job and done.status == "succeeded", done.error
    assert get_run(after_kill.later).status == "succeeded"


def test_launch_refuses_an_empty_batch() -> None:
    with pytest.raises(ValueError, match="No runs"):
        launch_worker_for([])


def test_cli_training_in_progress_is_not_marked_interrupted(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "loans.csv", make_tabular_frame(3_000, seed=7))
    command = [
        sys.executable, "-m", "core.cli", "train", "--csv", str(csv), "--target", "outcome",
        "--model", "ft-transformer", "--size", "tiny", "--time-budget", "30",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def running_run() -> bool:
            assert process.poll() is None, "the CLI ended before training was seen"
            with session_factory().begin() as session:
                record = session.query(TrainingRunRecord).filter_by(status="running").first()
                return record is not None

        _wait_for(running_run, "the CLI's run to start")
        # The training has now lasted longer than the grace period (as a 2-minute run would).
        with session_factory().begin() as session:
            record = session.query(TrainingRunRecord).filter_by(status="running").one()
            record.created_at = utcnow() - timedelta(minutes=2)
            run_id = record.id
        assert mark_dead_runs_interrupted() == []
        assert get_run(run_id).status == "running"
    finally:
        process.kill()
        process.wait()
