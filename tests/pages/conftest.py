"""AppTest fixtures: the whole app (app.py and its router) driven in this process.

Two ledgers: the default empty one (a fresh PAYOFF_HOME per test from tests/conftest.py; the
samples are registered at start, so "empty" means no runs) and a trained one (logistic
regression, LightGBM, a tiny FT-Transformer and their stacked ensemble on the credit sample).
Training takes seconds, so it happens once per session in a template folder; every test gets
its own copy, with the absolute paths stored in the ledger moved to the copy, so a test can
score, explain and save scenarios without touching any other test's data.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import streamlit
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "app.py"
APP_TIMEOUT_S = 120
TRAINED_MODELS = ("logreg", "lightgbm", "ft-transformer")
CREDIT_SAMPLE_NAME = "Credit scoring (sample)"

_PAGE_TIMES: dict[str, list[float]] = {}


@dataclass(frozen=True)
class TrainedLedger:
    """A PAYOFF_HOME whose credit sample has one succeeded run per tabular model kind and a
    stacked ensemble of the FT-Transformer and LightGBM."""

    home: Path
    dataset_id: int
    run_ids: dict[str, int]


@pytest.fixture(scope="session", autouse=True)
def _session_state_without_pickle() -> Iterator[None]:
    """Let AppTest keep its bookkeeping in the session state.

    .streamlit/config.toml sets runner.enforceSerializableSessionState = true so real pages
    may only store plain, picklable values. AppTest itself stores a dict of live objects
    under an internal testing key ('$$STREAMLIT_INTERNAL_KEY_TESTING'), so with the option on
    every run after the first fails with UnserializableSessionStateError. The option is off
    for this test process only; the committed config stays strict.
    """
    option = "runner.enforceSerializableSessionState"
    previous = streamlit.config.get_option(option)
    streamlit.config.set_option(option, False)
    yield
    streamlit.config.set_option(option, previous)


@pytest.fixture(scope="session", autouse=True)
def _pages_only_through_app_navigation() -> Iterator[None]:
    """Run every page inside app.py's frame, as a running server does.

    Streamlit has a process-wide flag for its legacy pages/ folder mode: set once per
    process, and st.navigation (app.py) turns it off for good. AppTest resets it before every
    run, so a switched-to page would run on its own file first, and pages/_shared/frame.py
    would rerun it through app.py, dropping that run's widget events (a clicked button).
    Keeping the flag off after AppTest's reset gives the server's behaviour.
    """
    original = PagesManager.__init__

    def init_without_legacy_pages(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PagesManager, "__init__", init_without_legacy_pages)
        yield


@pytest.fixture(autouse=True)
def _close_engines() -> Iterator[None]:
    """Each test has its own ledger file; close its engine so file handles do not pile up."""
    yield
    from core.db import dispose_all

    dispose_all()


def new_app() -> AppTest:
    """The app as a browser session sees it, started on Home."""
    return AppTest.from_file(str(APP), default_timeout=APP_TIMEOUT_S)


def open_page(at: AppTest, page: str) -> AppTest:
    """Switch to ``pages/<page>.py``, run it, record how long the run took."""
    at.switch_page(f"pages/{page}.py")
    return timed_run(at, page)


def timed_run(at: AppTest, label: str) -> AppTest:
    started = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - started
    _PAGE_TIMES.setdefault(label, []).append(seconds)
    print(f"AppTest run of {label}: {seconds:.2f} s")
    return at


def assert_no_failure(at: AppTest) -> None:
    """No traceback and no 'Something went wrong' (the page's catch-all for unexpected errors)."""
    assert not at.exception, [e.value for e in at.exception]
    unexpected = [e.value for e in at.error if "Something went wrong" in e.value]
    assert not unexpected, unexpected


def texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


def pytest_terminal_summary(terminalreporter) -> None:
    """The AppTest run time of every page (the lead reports them)."""
    if not _PAGE_TIMES:
        return
    terminalreporter.section("AppTest page run times (seconds)")
    for label, seconds in sorted(_PAGE_TIMES.items()):
        terminalreporter.write_line(
            f"{label:<22} runs {len(seconds):>2}  median {sorted(seconds)[len(seconds) // 2]:6.2f}"
            f"  max {max(seconds):6.2f}"
        )


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory) -> TrainedLedger:
    """Train the three tabular models once; tests use copies (see ``trained_ledger``)."""
    home = tmp_path_factory.mktemp("trained_template")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PAYOFF_HOME", str(home))
        from core.datasets import ensure_samples, find_dataset_by_name
        from core.db import dispose_all
        from core.startup import start
        from core.training import create_run, execute_run

        start()
        ensure_samples()
        credit = find_dataset_by_name(CREDIT_SAMPLE_NAME)
        run_ids = {}
        for model in TRAINED_MODELS:
            run_id = create_run(
                credit.id,
                model,
                size="tiny" if model == "ft-transformer" else None,
                seed=0,
                time_budget_s=5,
            )
            run = execute_run(run_id, device_preference="cpu")
            assert run.status == "succeeded", run.error
            run_ids[model] = run_id
        members = [run_ids["ft-transformer"], run_ids["lightgbm"]]
        ensemble = execute_run(create_run(credit.id, "ensemble", members=members, rule="stack"))
        assert ensemble.status == "succeeded", ensemble.error
        run_ids["ensemble"] = ensemble.id
        # Closing the engine checkpoints SQLite's WAL into the file before it is copied.
        dispose_all()
    return TrainedLedger(home=home, dataset_id=credit.id, run_ids=run_ids)


@pytest.fixture
def trained_ledger(trained_template, tmp_path, monkeypatch) -> TrainedLedger:
    """A private copy of the trained template, set as this test's PAYOFF_HOME."""
    home = tmp_path / "trained_home"
    shutil.copytree(trained_template.home, home)
    old, new = str(trained_template.home), str(home)
    with sqlite3.connect(home / "payoff.db") as connection:
        connection.execute(
            "UPDATE dataset SET stored_path = replace(stored_path, ?, ?)", (old, new)
        )
        connection.execute(
            "UPDATE training_run SET artifact_path = replace(artifact_path, ?, ?)", (old, new)
        )
    connection.close()
    monkeypatch.setenv("PAYOFF_HOME", new)
    return TrainedLedger(
        home=home, dataset_id=trained_template.dataset_id, run_ids=dict(trained_template.run_ids)
    )


def worker_runs_the_queued_jobs(at, label: str, kind: str) -> None:
    """The page queued a job and shows its live panel; a worker (here this process, so the
    test needs no subprocess) runs it, and the page's next run shows the outcome."""
    from core.jobs import list_jobs, work

    queued = list_jobs(kind, active=True)
    assert len(queued) == 1, queued
    assert any(f"job #{queued[0].id}" in t for t in texts(at.markdown)), texts(at.markdown)
    done = work(idle_exit_s=0)
    assert [j.id for j in done] == [queued[0].id]
    timed_run(at, label)


@pytest.fixture
def no_local_worker(monkeypatch) -> None:
    """Pages only queue jobs; the test runs them (see worker_runs_the_queued_jobs)."""
    monkeypatch.setenv("PAYOFF_LOCAL_WORKER", "0")
