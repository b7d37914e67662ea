"""The ledger's schema is owned by Alembic: migrations must build exactly the ORM tables.

A drift between ``core/records.py`` and ``alembic/versions`` would only show on a user's
existing database (a missing column at the first query), so it is checked here on a real
SQLite file and a real PostgreSQL database, together with the pragmas that keep concurrent
workers from failing and the COPY path of bulk writes.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from core.db import BUSY_TIMEOUT_MS, get_engine, make_engine, upgrade_to_head
from core.records import Base
from core.settings import REPO_ROOT
from tests.conftest import BACKENDS, database_url

ORM_TABLES = set(Base.metadata.tables)


def _alembic(engine: Engine, action: str, revision: str) -> None:
    """Run an Alembic command on ``engine`` the way core.db does (connection handed over)."""
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "alembic"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


def _schema_diffs(engine: Engine) -> list:
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


@pytest.fixture(params=BACKENDS)
def fresh_engine(request, tmp_path: Path) -> Engine:
    url = database_url(request, request.param) or f"sqlite:///{tmp_path / 'fresh.db'}"
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_upgrade_from_empty_matches_the_orm_exactly(fresh_engine: Engine) -> None:
    assert _tables(fresh_engine) == set()
    _alembic(fresh_engine, "upgrade", "head")
    assert _tables(fresh_engine) == ORM_TABLES
    assert _schema_diffs(fresh_engine) == []


def test_downgrade_to_base_and_up_again(fresh_engine: Engine) -> None:
    upgrade_to_head(fresh_engine)
    _alembic(fresh_engine, "downgrade", "base")
    assert _tables(fresh_engine) == set()
    upgrade_to_head(fresh_engine)
    upgrade_to_head(fresh_engine)  # idempotent: a second start must not fail or change anything
    assert _schema_diffs(fresh_engine) == []


def test_each_revision_step_is_reversible(fresh_engine: Engine) -> None:
    _alembic(fresh_engine, "upgrade", "0001")
    assert _tables(fresh_engine) == {"dataset"}
    _alembic(fresh_engine, "upgrade", "head")
    _alembic(fresh_engine, "downgrade", "0001")
    assert _tables(fresh_engine) == {"dataset"}


def test_sqlite_pragmas_are_set_on_every_connection() -> None:
    engine = get_engine()
    for _ in range(2):  # a pooled and a fresh connection
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == BUSY_TIMEOUT_MS
        engine.dispose()


def test_the_database_lives_in_payoff_home(_isolated_home: Path) -> None:
    engine = get_engine()
    assert Path(engine.url.database) == _isolated_home / "payoff.db"
    assert (_isolated_home / "payoff.db").is_file()
    assert get_engine() is engine  # one engine per URL and process


def test_foreign_keys_are_enforced() -> None:
    """A run pointing at no dataset, or deleting a dataset a run needs, must fail."""
    engine = get_engine()
    insert_run = text(
        "INSERT INTO training_run (dataset_id, model, target, features_json, options_json, "
        "seed, status, cancel_requested, progress_json, classes_json, metrics_json, test_json, "
        "created_at) VALUES (:dataset, 'logreg', 'y', '[]', '{}', 0, 'queued', 0, '{}', '[]', "
        "'{}', '{}', '2026-01-01')"
    )
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert_run, {"dataset": 999})
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO dataset (id, name, sha256, stored_path, n_rows, n_columns, "
                "schema_json, roles_json, is_sample, created_at) VALUES (1, 'd', 'abc', 'p', 1, "
                "1, '{}', '{}', 0, '2026-01-01')"
            )
        )
        connection.execute(insert_run, {"dataset": 1})
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text("DELETE FROM dataset WHERE id = 1"))  # ON DELETE RESTRICT


# ---- PostgreSQL specifics -------------------------------------------------------------------


def _prediction_rows(n: int) -> list[tuple]:
    """Rows as score_source writes them: NaN scores as NULL, NULL labels for regression."""
    rows = []
    for i in range(n):
        score = None if i % 17 == 0 else (i * 0.37) % 1.0 + 1e-13 * i
        rows.append((0, i, score, None if i % 5 == 0 else i % 2))
    return rows


def test_bulk_insert_writes_the_same_rows_on_both_backends(request, tmp_path: Path) -> None:
    """COPY (PostgreSQL) and executemany (SQLite) store identical rows, floats bit for bit."""
    from core.db import bulk_insert
    from core.records import PredictionRecord, ScoreBatchRecord

    stored = {}
    for backend in BACKENDS:
        url = database_url(request, backend) or f"sqlite:///{tmp_path / 'copy.db'}"
        engine = make_engine(url)
        upgrade_to_head(engine)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO dataset (id, name, sha256, stored_path, n_rows, n_columns, "
                    "schema_json, roles_json, is_sample, created_at) VALUES (1, 'd', 'abc', 'p', "
                    "1, 1, '{}', '{}', false, '2026-01-01')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO training_run (id, dataset_id, model, target, features_json, "
                    "options_json, seed, status, cancel_requested, progress_json, classes_json, "
                    "metrics_json, test_json, created_at) VALUES (1, 1, 'logreg', 'y', '[]', "
                    "'{}', 0, 'succeeded', false, '{}', '[]', '{}', '{}', '2026-01-01')"
                )
            )
            batch_id = connection.execute(
                ScoreBatchRecord.__table__.insert().returning(ScoreBatchRecord.id),
                {"run_id": 1, "source_name": "x", "n_rows": 0, "seconds": 0.0, "status": "w",
                 "report_json": "{}", "created_at": datetime(2026, 1, 1)},
            ).scalar()  # fmt: skip
        rows = [(batch_id, *row[1:]) for row in _prediction_rows(5_000)]
        bulk_insert(PredictionRecord.__table__, iter(rows), engine, parent_checked=True)
        with engine.connect() as connection:
            stored[backend] = [
                tuple(r)[1:]
                for r in connection.execute(
                    PredictionRecord.__table__.select().order_by(PredictionRecord.row_number)
                )
            ]
        engine.dispose()
    assert len(stored["sqlite"]) == 5_000
    assert stored["postgresql"] == stored["sqlite"]


def test_copy_with_a_bad_row_writes_nothing(request) -> None:
    from core.db import bulk_insert
    from core.records import PredictionRecord

    engine = make_engine(database_url(request, "postgresql"))
    upgrade_to_head(engine)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # there is no batch 42
        bulk_insert(PredictionRecord.__table__, [(42, 1, 0.5, 1)], engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM prediction")).scalar() == 0
    engine.dispose()


def test_concurrent_first_starts_migrate_a_new_postgres_database_once(request) -> None:
    """Eight processes' worth of engines open one new database at once: the advisory lock lets
    one migrate, the others find the schema at head."""
    from concurrent.futures import ThreadPoolExecutor

    url = database_url(request, "postgresql")

    def first_start(_):
        engine = make_engine(url)
        try:
            upgrade_to_head(engine)
        finally:
            engine.dispose()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(first_start, range(8)))
    engine = make_engine(url)
    assert _tables(engine) == ORM_TABLES
    assert _schema_diffs(engine) == []
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    engine.dispose()


def test_training_run_counts_hold_more_than_32_bits(ledger: str) -> None:
    """Peak memory above 2 GiB must fit (PostgreSQL's INTEGER is 32-bit)."""
    from core.records import TrainingRunRecord
    from core.training import create_run
    from tests.fixtures import make_tabular_frame, register_frame

    run_id = create_run(register_frame(make_tabular_frame(60)).id, "logreg")
    from core.db import session_factory

    with session_factory().begin() as session:
        session.get(TrainingRunRecord, run_id).peak_rss_bytes = 5 * 2**30
    with session_factory().begin() as session:
        assert session.get(TrainingRunRecord, run_id).peak_rss_bytes == 5 * 2**30


def test_an_unreachable_database_is_named_in_one_line(tmp_path: Path, monkeypatch) -> None:
    """No server behind the URL: the CLI says which database in one line, exits non-zero and
    writes nothing (not even the stored copy of the file it was asked to register)."""
    import subprocess
    import sys

    home = tmp_path / "home"
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    url = f"postgresql+psycopg://analyst:secret@/payoff?host={tmp_path / 'nosock'}&port=5999"
    env = {**__import__("os").environ, "PAYOFF_HOME": str(home), "PAYOFF_DB_URL": url}
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "datasets", "add", str(csv)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "error: Cannot reach the database postgresql+psycopg://analyst:***@/payoff"
    )
    assert "secret" not in result.stderr
    assert result.stdout == ""
    assert not (home / "datasets").exists() or not any((home / "datasets").iterdir())


def test_copy_as_a_plain_database_user_still_checks_foreign_keys(pg_server) -> None:
    """Without the right to skip triggers (not a superuser), COPY falls back to checked rows."""
    import psycopg

    from core.db import bulk_insert
    from core.records import PredictionRecord

    name = "plain_user_db"
    with psycopg.connect(
        host=str(pg_server.socket_dir), port=pg_server.port, user="postgres", autocommit=True
    ) as admin:
        admin.execute("DROP DATABASE IF EXISTS plain_user_db")
        admin.execute("DROP ROLE IF EXISTS analyst")
        admin.execute("CREATE ROLE analyst LOGIN")
        admin.execute(f"CREATE DATABASE {name} OWNER analyst")
    url = pg_server.url(name).replace("postgres@", "analyst@")
    engine = make_engine(url)
    try:
        upgrade_to_head(engine)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO dataset (id, name, sha256, stored_path, n_rows, n_columns, "
                    "schema_json, roles_json, is_sample, created_at) VALUES (1, 'd', 'abc', 'p', "
                    "1, 1, '{}', '{}', false, now()); INSERT INTO training_run (id, dataset_id, "
                    "model, target, features_json, options_json, seed, status, cancel_requested, "
                    "progress_json, classes_json, metrics_json, test_json, created_at) VALUES (1, "
                    "1, 'logreg', 'y', '[]', '{}', 0, 'succeeded', false, '{}', '[]', '{}', '{}', "
                    "now()); INSERT INTO score_batch (id, run_id, source_name, n_rows, seconds, "
                    "status, report_json, created_at) VALUES (7, 1, 'x', 0, 0, 'w', '{}', now())"
                )
            )
        bulk_insert(PredictionRecord.__table__, [(7, 1, 0.25, 0), (7, 2, None, 1)], engine,
                    parent_checked=True)  # fmt: skip
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            bulk_insert(PredictionRecord.__table__, [(8, 1, 0.5, 1)], engine, parent_checked=True)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT * FROM prediction ORDER BY row_number")).all()
        assert [tuple(r) for r in rows] == [(7, 1, 0.25, 0), (7, 2, None, 1)]
    finally:
        engine.dispose()
        pg_server.drop_database(url)
