"""Many analysts at once against one ledger: a SQLite file, and a real PostgreSQL database.

The load test: eight sessions, each two real processes (``python -m core.cli train`` then
``score``) sharing one PAYOFF_HOME, so eight writers contend for the same database the way
eight browser sessions (or their training workers) do. On SQLite, WAL plus a busy timeout must
make them wait, not fail; on PostgreSQL they write side by side. Every command exits 0, nothing
says "database is locked", every run succeeds, every batch holds one prediction per input row
and the SQLite file passes its integrity check.

The race tests pin down check-then-insert races that only show up with several writers: the
first start of several processes (schema migration), the same file registered twice at once,
and two trainings creating the same stored split at once. Threads released by a barrier (or
processes released by a go-file) make the interleaving deterministic.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from tests.conftest import BACKENDS, database_url
from tests.e2e.conftest import REPO
from tests.fixtures import FEATURES, TARGET, csv_bytes, make_tabular_frame, write_csv

SESSIONS = 8
TRAIN_ROWS = 300
SCORE_ROWS = 250
# A hang guard only: on the shared 2-core machine at load ~14, eight concurrent `train`
# commands took 250 s each with the code before jobs existed, too.
COMMAND_TIMEOUT_S = 600
RACERS = 6
BARRIER_TIMEOUT_S = 60


@dataclass(frozen=True)
class Session:
    index: int
    train_csv: Path
    score_csv: Path
    out: Path


@dataclass(frozen=True)
class Outcome:
    session: Session
    commands: list[subprocess.CompletedProcess]

    @property
    def run_id(self) -> int | None:
        return _last_json(self.commands[0]).get("run_id")

    @property
    def score(self) -> dict:
        return _last_json(self.commands[1]) if len(self.commands) > 1 else {}


def _last_json(result: subprocess.CompletedProcess) -> dict:
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        return {}
    return json.loads(lines[-1])


def _env(home: Path, db_url: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PAYOFF_HOME": str(home), "PAYOFF_THREADS": "1"}
    env.pop("PAYOFF_DB_URL", None)
    if db_url:
        env["PAYOFF_DB_URL"] = db_url
    return env


def _cli(home: Path, *arguments: str, db_url: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *arguments],
        cwd=REPO,
        env=_env(home, db_url),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )


def _analyst(home: Path, session: Session, db_url: str | None = None) -> Outcome:
    """One analyst: train a logistic regression on their file, then score another file."""
    train = _cli(
        home,
        "train",
        "--csv",
        str(session.train_csv),
        "--target",
        TARGET,
        "--model",
        "logreg",
        "--seed",
        str(session.index),
        db_url=db_url,
    )
    outcome = Outcome(session, [train])
    if outcome.run_id is None:
        return outcome
    score = _cli(
        home,
        "score",
        "--run",
        str(outcome.run_id),
        "--csv",
        str(session.score_csv),
        "--out",
        str(session.out),
        db_url=db_url,
    )
    return Outcome(session, [train, score])


def _sessions(folder: Path) -> list[Session]:
    sessions = []
    for i in range(SESSIONS):
        train = write_csv(folder / f"train-{i}.csv", make_tabular_frame(TRAIN_ROWS, seed=i))
        score = write_csv(
            folder / f"score-{i}.csv",
            make_tabular_frame(SCORE_ROWS, seed=100 + i)[list(FEATURES)],
        )
        sessions.append(Session(i, train, score, folder / f"scores-{i}.csv"))
    return sessions


@pytest.mark.e2e
@pytest.mark.parametrize("backend", BACKENDS)
def test_eight_analysts_train_and_score_at_once(tmp_path, request, backend: str) -> None:
    home = tmp_path / "home"
    db_url = database_url(request, backend)
    # The ledger exists before the sessions start, as it does once the app has started
    # (a fresh ledger created by several processes at once is its own test below).
    assert _cli(home, "datasets", "list", db_url=db_url).returncode == 0
    sessions = _sessions(tmp_path)
    with ThreadPoolExecutor(max_workers=SESSIONS) as pool:
        outcomes = list(pool.map(lambda s: _analyst(home, s, db_url), sessions))

    for outcome in outcomes:
        for result in outcome.commands:
            assert "database is locked" not in result.stderr, result.stderr
            assert result.returncode == 0, (outcome.session.index, result.args, result.stderr)
        assert outcome.score["rows"] == SCORE_ROWS
        exported = outcome.session.out.read_text().strip().splitlines()
        assert len(exported) == SCORE_ROWS + 1
    listed = _last_json(_cli(home, "runs", "list", db_url=db_url))["runs"]
    assert sorted(r["run_id"] for r in listed) == sorted(o.run_id for o in outcomes)
    assert {r["status"] for r in listed} == {"succeeded"}
    engine = create_engine(db_url or f"sqlite:///{home / 'payoff.db'}")
    with engine.connect() as connection:
        counts = dict(
            connection.exec_driver_sql(
                "SELECT batch_id, count(*) FROM prediction GROUP BY batch_id"
            ).all()
        )
        statuses = [s for (s,) in connection.exec_driver_sql("SELECT status FROM score_batch")]
        n_datasets = connection.exec_driver_sql("SELECT count(*) FROM dataset").scalar()
        jobs = connection.exec_driver_sql("SELECT kind, status, attempts FROM job").all()
        if backend == "sqlite":
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    engine.dispose()
    assert counts == {o.score["batch_id"]: SCORE_ROWS for o in outcomes}
    assert statuses == ["complete"] * SESSIONS
    assert n_datasets == SESSIONS
    # Every command's work was a job of its own process, run once.
    assert sorted(tuple(j) for j in jobs) == sorted(
        [("train", "succeeded", 1)] * SESSIONS + [("score", "succeeded", 1)] * SESSIONS
    )


# ---- races -------------------------------------------------------------------------------------

_FIRST_START = """
import sys, time
from pathlib import Path
from core.db import get_engine
print("ready", flush=True)
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.001)
get_engine()
"""


@pytest.mark.e2e
@pytest.mark.parametrize("backend", BACKENDS)
def test_several_processes_open_a_new_ledger_at_once(tmp_path, request, backend: str) -> None:
    home, go = tmp_path / "home", tmp_path / "go"
    db_url = database_url(request, backend)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _FIRST_START, str(go)],
            cwd=REPO,
            env={**_env(home, db_url), "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(RACERS)
    ]
    try:
        for racer in racers:
            assert racer.stdout.readline().strip() == "ready"
        go.touch()
        results = [(r.wait(COMMAND_TIMEOUT_S), r.stderr.read()) for r in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()
            racer.stdout.close()
            racer.stderr.close()
    failures = [_error_line(err) for code, err in results if code != 0]
    assert not failures, failures


def _error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines() or [""]
    return next((line for line in lines if "Error" in line and "Background" not in line), lines[-1])


def _release_together(monkeypatch, module, name: str, parties: int) -> None:
    """Make ``module.name`` wait until ``parties`` threads have called it."""
    barrier = threading.Barrier(parties, timeout=BARRIER_TIMEOUT_S)
    original = getattr(module, name)

    def wait_then_call(*args, **kwargs):
        result = original(*args, **kwargs)
        barrier.wait()
        return result

    monkeypatch.setattr(module, name, wait_then_call)


def _in_threads(function, parties: int) -> list:
    """Call ``function`` in ``parties`` threads; returns each result or the exception raised."""

    def guarded():
        try:
            return function()
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread got
            return exc

    with ThreadPoolExecutor(max_workers=parties) as pool:
        return [f.result() for f in [pool.submit(guarded) for _ in range(parties)]]


def test_same_file_registered_by_two_sessions_at_once(monkeypatch, ledger) -> None:
    import core.datasets as datasets
    from core.startup import start

    start()
    data = csv_bytes(make_tabular_frame(120, seed=7))
    _release_together(monkeypatch, datasets, "read_csv_bytes", 2)
    results = _in_threads(lambda: datasets.register_dataset(data, "shared.csv"), 2)
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, [f"{type(e).__name__}: {e}" for e in errors]
    assert results[0].id == results[1].id
    stored = results[0].stored_path
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == results[0].sha256


def test_two_trainings_create_the_same_split_at_once(monkeypatch, ledger) -> None:
    import core.splits as splits
    from core.datasets import register_dataset
    from core.db import session_factory
    from core.startup import start

    start()
    frame = make_tabular_frame(120, seed=8)
    info = register_dataset(csv_bytes(frame), "split.csv")
    _release_together(monkeypatch, splits, "make_assignment", 2)

    def create():
        with session_factory().begin() as session:
            return splits.get_or_create_split(
                session, info.id, TARGET, frame[TARGET], seed=0, stratify=True
            ).tolist()

    results = _in_threads(create, 2)
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, [f"{type(e).__name__}: {str(e).splitlines()[0]}" for e in errors]
    assert results[0] == results[1]
