"""The ledger's schema is owned by Alembic: migrations must build exactly the ORM tables.

A drift between ``core/records.py`` and ``alembic/versions`` would only show on a user's
existing database (a missing column at the first query), so it is checked here on a real
SQLite file, together with the pragmas that keep concurrent workers from failing.
"""

from __future__ import annotations

from pathlib import Path

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


@pytest.fixture
def fresh_engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
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
