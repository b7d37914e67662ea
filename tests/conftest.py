"""Shared test setup: every test gets its own PAYOFF_HOME, and torch uses one thread.

One thread keeps tests fast and deterministic on the 2-core CI machine (see docs/STACK.md:
two threads ran 3x slower whenever the other core was busy).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PAYOFF_THREADS", "1")

import pytest  # noqa: E402

from tests import pg  # noqa: E402

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Point Payoff's data folder and database at a fresh temp folder for each test."""
    home = tmp_path / "payoff_home"
    monkeypatch.setenv("PAYOFF_HOME", str(home))
    monkeypatch.delenv("PAYOFF_DB_URL", raising=False)
    yield home


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard requirement
        return
    torch.set_num_threads(1)


# ---- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server():
    """One real PostgreSQL 15 server for the whole test session (a temp folder, a Unix socket).

    Without server binaries the PostgreSQL tests skip and say why; under CI (CI=true) they fail
    instead, so a CI machine can never pass by silently skipping them."""
    reason = pg.missing_reason()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI needs PostgreSQL for these tests: {reason}")
        pytest.skip(reason)
    # Durability is not what these tests check: skip fsync so they run at memory speed.
    server = pg.PgServer(settings=("fsync=off", "synchronous_commit=off", "max_connections=300"))
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - reported once, as the reason
        server.stop()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL did not start: {exc}")
        pytest.skip(f"PostgreSQL did not start: {exc}")
    yield server
    from core.db import dispose_all

    dispose_all()
    server.stop()


def database_url(request: pytest.FixtureRequest, backend: str) -> str | None:
    """A fresh PostgreSQL database's URL (dropped at the end of the requesting scope), or
    None for SQLite (the ledger file in PAYOFF_HOME)."""
    if backend == "sqlite":
        return None
    server = request.getfixturevalue("pg_server")
    url = server.create_database()

    def drop() -> None:
        from core.db import dispose_all

        dispose_all()
        server.drop_database(url)

    request.addfinalizer(drop)
    return url


@pytest.fixture(params=BACKENDS)
def ledger(request, _isolated_home, monkeypatch) -> str:
    """Run the test on a SQLite file and on a fresh PostgreSQL database (the backend's name)."""
    url = database_url(request, request.param)
    if url:
        monkeypatch.setenv("PAYOFF_DB_URL", url)
    return request.param


@pytest.fixture(scope="module", params=BACKENDS)
def module_ledger(request) -> str | None:
    """For module-scoped homes: None (SQLite) or the URL of a PostgreSQL database kept for the
    module; pass it to ``tests.fixtures.payoff_home(home, db_url)``."""
    return database_url(request, request.param)
