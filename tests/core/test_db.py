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
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db import BUSY_TIMEOUT_MS, get_engine, make_engine, migrate, upgrade_to_head
from core.records import Base
from core.settings import REPO_ROOT
from tests.conftest import BACKENDS, database_url

ORM_TABLES = set(Base.metadata.tables)


def _alembic(engine: Engine, action: str, revision: str) -> None:
    """Run an Alembic command on ``engine`` the way core.db does (connection handed over)."""
    migrate(engine, action, revision)


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
                 "report_json": {}, "created_at": datetime(2026, 1, 1)},
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


# ---- 0006: JSON columns ---------------------------------------------------------------------


def _documents_at_0005() -> dict:
    """Documents as the code at revision 0005 wrote them (json.dumps text, NaN included)."""
    from core.ingest import read_csv_bytes
    from tests.fixtures import csv_bytes, make_tabular_frame

    schema = read_csv_bytes(csv_bytes(make_tabular_frame(40)), name="d.csv").schema.to_dict()
    roles = {"target": "outcome", "positive_class": "bad", "features": ["age", "plan"],
             "money_column": "amount", "id_column": None, "ignored": []}  # fmt: skip
    return {
        "schema": schema,
        "roles": roles,
        "options": {
            "positive_class": "bad",
            "train_fraction": 0.25,
            "allow_pii": ["email"],
            "subsample_seed": 3,
            "from_a_newer_branch": {"k": 1},
        },
        "ensemble_options": {
            "positive_class": "bad",
            "train_fraction": 1.0,
            "members": [1, 2],
            "rule": "mean",
        },
        "metrics": {
            "roc_auc": 0.8123456789012345,
            "pr_auc": float("nan"),
            "log_loss": 0.5,
            "headline": "roc_auc",
            "interval": [0.70000000000000007, 0.9],
            "curves": {"roc": {"x": [0.0, 1.0], "y": [0.0, 1.0]}},
            "test_rows": 3,
            "dropped_missing_target": 0,
        },
        "test": {
            "y": [0, 1, 1],
            "proba": [0.1, 0.30000000000000004, 1e-300],
            "money": [10.5, 0.0, 3.25],
        },
        "validation": {"y": [1, 0], "proba": [0.9, 0.2]},
        "progress": {"stage": "done", "history": [{"epoch": 1, "val_loss": float("nan")}]},
        "report": {"rows": 3, "warnings": ["drift"], "psi": {"age": 0.01}},
        "assumptions": {"device": "H100", "use_case": {"monthly_volume": 20000}},
        "results": {"roi": 1.5, "payback_months": float("inf"), "verdict_label": "pays"},
        "columns": ["age", "plan"],
        "quality": {"fidelity": {"spearman": 0.99}, "trustworthy": True},
        "rows": {
            "rows": {"columns": ["age", "plan"], "data": [[30, "a"]]},
            "output": [0.4],
            "spans": [],
            "kind": "tabular",
        },
    }


def _insert_at_0005(engine: Engine, docs: dict) -> None:
    import json

    def dumps(value) -> str:
        return json.dumps(value)  # as 0005's code did: NaN and Infinity as bare tokens

    when = datetime(2026, 1, 1)
    statements = [
        ("INSERT INTO dataset (id, name, sha256, stored_path, n_rows, n_columns, schema_json, "
         "roles_json, is_sample, created_at) VALUES (1, 'd', 'abc', 'p', 40, 5, :schema, "
         ":roles, :no, :when)", {"schema": dumps(docs["schema"]), "roles": dumps(docs["roles"])}),
        ("INSERT INTO training_run (id, dataset_id, model, target, features_json, options_json, "
         "seed, status, cancel_requested, progress_json, classes_json, metrics_json, test_json, "
         "validation_json, task, created_at) VALUES (:id, 1, 'logreg', 'outcome', :features, "
         ":options, 0, 'succeeded', :no, :progress, :classes, :metrics, :test, :validation, "
         "'binary', :when)",
         {"id": 1, "features": dumps(["age", "plan"]), "options": dumps(docs["options"]),
          "progress": dumps(docs["progress"]), "classes": dumps(["good", "bad"]),
          "metrics": dumps(docs["metrics"]), "test": dumps(docs["test"]),
          "validation": dumps(docs["validation"])}),
        # A queued ensemble as 0005 left it: empty texts where nothing was written yet.
        ("INSERT INTO training_run (id, dataset_id, model, target, features_json, options_json, "
         "seed, status, cancel_requested, progress_json, classes_json, metrics_json, test_json, "
         "created_at) VALUES (2, 1, 'ensemble', 'outcome', '[]', :options, 0, 'queued', :no, "
         "'', '', '', '', :when)", {"options": dumps(docs["ensemble_options"])}),
        ("INSERT INTO score_batch (id, run_id, source_name, n_rows, seconds, status, "
         "report_json, created_at) VALUES (1, 1, 'x.csv', 3, 0.5, 'complete', :report, :when)",
         {"report": dumps(docs["report"])}),
        ("INSERT INTO explanation (id, run_id, source_name, n_rows, columns_json, output_space, "
         "base_value, method, seconds, ms_per_row, additivity_error, quality_json, rows_json, "
         "status, created_at) VALUES (1, 1, 'x.csv', 1, :columns, 'log-odds', 0.1, 'm', 1.0, "
         "1.0, 0.0, :quality, :rows, 'complete', :when)",
         {"columns": dumps(docs["columns"]), "quality": dumps(docs["quality"]),
          "rows": dumps(docs["rows"])}),
        ("INSERT INTO scenario (id, name, run_id, use_case, assumptions_json, results_json, "
         "created_at) VALUES (1, 's', 1, 'fraud', :assumptions, :results, :when)",
         {"assumptions": dumps(docs["assumptions"]), "results": dumps(docs["results"])}),
    ]  # fmt: skip
    with engine.begin() as connection:
        for sql, params in statements:
            connection.execute(text(sql), {**params, "no": False, "when": when})


def test_0006_moves_existing_rows_into_json_columns_unchanged(ledger: str) -> None:
    """A ledger at 0005 with real rows (runs with options, metrics and predictions, a dataset,
    a score batch, an explanation, a scenario) reads back the same values after the upgrade,
    on SQLite and PostgreSQL; NaN and infinity (which JSON cannot hold) come back as null,
    which the typed readers take as NaN. The downgrade restores equivalent text."""
    import json
    import math

    from core.datasets import get_dataset
    from core.explanations import get_explanation
    from core.runs import (
        PartPredictions,
        RunMetrics,
        RunOptions,
        get_run,
        holdout_predictions,
        validation_predictions,
    )
    from core.scenarios import list_scenarios
    from core.scoring import list_batches
    from core.settings import load_settings

    docs = _documents_at_0005()
    engine = make_engine(load_settings().db_url)
    _alembic(engine, "upgrade", "0005")
    _insert_at_0005(engine, docs)
    _alembic(engine, "upgrade", "0006")
    assert _schema_diffs(engine) == []

    run = get_run(1)
    assert run.options == RunOptions.from_dict(docs["options"])
    assert run.options.train_fraction == 0.25 and run.subsample_seed == 3
    assert run.options.allow_pii == ("email",) and run.options.positive_class == "bad"
    assert run.options.to_dict() == docs["options"]  # unknown keys round-trip
    assert run.features == ("age", "plan") and run.classes == ("good", "bad")
    metrics = run.metrics
    assert metrics.values["roc_auc"] == 0.8123456789012345 and metrics.values["log_loss"] == 0.5
    assert math.isnan(metrics.values["pr_auc"])
    assert metrics.headline == "roc_auc" and metrics.interval == (0.70000000000000007, 0.9)
    assert metrics.curves == docs["metrics"]["curves"] and metrics.test_rows == 3
    assert run.headline == ("roc_auc", 0.8123456789012345, (0.70000000000000007, 0.9))
    assert list(metrics.figures()) == ["roc_auc", "pr_auc", "log_loss", "test_rows",
                                       "dropped_missing_target"]  # fmt: skip
    assert holdout_predictions(1) == PartPredictions.from_dict(docs["test"])
    assert holdout_predictions(1).proba == [0.1, 0.30000000000000004, 1e-300]  # bit for bit
    assert validation_predictions(1) == PartPredictions(y=[1, 0], proba=[0.9, 0.2])
    assert run.progress == {"stage": "done", "history": [{"epoch": 1, "val_loss": None}]}

    queued = get_run(2)
    assert queued.options.members == (1, 2) and queued.options.rule == "mean"
    assert queued.label == "#2 Ensemble (mean: #1 + #2)"
    assert queued.metrics == RunMetrics() and queued.progress == {} and queued.classes == ()
    assert holdout_predictions(2) == PartPredictions()

    dataset = get_dataset(1)
    assert dataset.schema.to_dict() == docs["schema"]
    assert dataset.roles.money_column == "amount" and dataset.roles.features == ("age", "plan")
    assert list_batches(1)[0]["report"] == docs["report"]
    scenario = list_scenarios()[0]
    assert scenario["assumptions"] == docs["assumptions"]
    assert scenario["results"] == {**docs["results"], "payback_months": None}
    explanation = get_explanation(1)
    assert explanation.columns == ["age", "plan"] and explanation.quality == docs["quality"]
    assert explanation.rows.to_dict("list") == {"age": [30], "plan": ["a"]}

    # Key order is kept (PostgreSQL json, not jsonb): tables show figures in computed order.
    from core.records import ScenarioRecord

    with Session(engine) as session:
        assert list(session.get(ScenarioRecord, 1).results_json) == list(docs["results"])

    _alembic(engine, "downgrade", "0005")
    with engine.connect() as connection:
        options, metrics_text, progress = connection.execute(
            text("SELECT options_json, metrics_json, progress_json FROM training_run WHERE id = 1")
        ).one()
    assert json.loads(options) == docs["options"]
    assert json.loads(metrics_text) == {**docs["metrics"], "pr_auc": None}
    assert json.loads(progress)["stage"] == "done"
    engine.dispose()


def test_json_columns_write_nan_as_null_on_both_backends(ledger: str) -> None:
    """New writes go through core.db.dumps_json: a NaN metric is stored as null (PostgreSQL
    refuses NaN in json) and read back as NaN; numpy values are written as plain numbers."""
    import math

    import numpy as np

    from core.db import session_factory
    from core.records import TrainingRunRecord
    from core.runs import get_run
    from core.training import create_run
    from tests.fixtures import make_tabular_frame, register_frame

    run_id = create_run(register_frame(make_tabular_frame(60)).id, "logreg")
    with session_factory().begin() as session:
        record = session.get(TrainingRunRecord, run_id)
        record.metrics_json = {"roc_auc": np.float64("nan"), "brier": np.float32(0.25),
                               "test_rows": np.int64(7), "headline": "roc_auc"}  # fmt: skip
    metrics = get_run(run_id).metrics
    assert math.isnan(metrics.values["roc_auc"]) and metrics.values["brier"] == 0.25
    assert metrics.test_rows == 7 and metrics.headline == "roc_auc"
    with session_factory().begin() as session:
        assert session.get(TrainingRunRecord, run_id).metrics_json["roc_auc"] is None
