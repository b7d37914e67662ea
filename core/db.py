"""Engine, sessions and schema upgrades for the ledger.

SQLite gets WAL (readers never block the one writer), foreign keys on, and a busy timeout so
concurrent sessions wait for the write lock instead of failing with "database is locked".
PostgreSQL (``postgresql+psycopg://``, psycopg 3) is the team ledger: migrations take an
advisory lock, bulk writes use COPY, workers claim jobs with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import threading
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
from alembic import command
from alembic.config import Config
from sqlalchemy import CursorResult, Engine, Result, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from core.settings import REPO_ROOT, load_settings

BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10
# Any constant works: it names the one advisory lock that serialises schema upgrades.
MIGRATION_LOCK_KEY = 0x7061796F6666  # "payoff"

_lock = threading.Lock()
_engines: dict[str, Engine] = {}

T = TypeVar("T")


def get_or_raise(session: Session, model: type[T], id: int, what: str = "training run") -> T:
    """The row of ``model`` with primary key ``id``, or ValueError naming what is missing."""
    record = session.get(model, id)
    if record is None:
        raise ValueError(f"There is no {what} with id {id}.")
    return record


def affected(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE statement changed (``Session.execute`` is typed as returning
    a plain Result; for these statements it is a CursorResult)."""
    return cast(CursorResult[Any], result).rowcount


def _plain(value: Any) -> Any:
    """json.dumps ``default``: numpy scalars and arrays as plain numbers and lists, dates as
    ISO text; anything else is a programming error (TypeError)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _finite(value: Any) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        value = _plain(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps_json(value: Any) -> str:
    """How every JSON column is written (the engines' ``json_serializer``).

    JSON has no NaN or infinity (PostgreSQL's json type refuses Python's ``NaN`` token), so a
    non-finite number is written as null; readers that expect a number read null as NaN
    (core.runs.RunMetrics). numpy values become plain numbers and lists."""
    try:
        return json.dumps(value, allow_nan=False, default=_plain)
    except ValueError:  # a NaN or infinity somewhere: walk the document once
        return json.dumps(_finite(value), allow_nan=False, default=_plain)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Deleted rows and freed pages are overwritten with zeros, so an erased dataset's bytes do
    # not linger in the file (see scrub_deleted_pages for the WAL).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            json_serializer=dumps_json,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if url.startswith("postgresql") else {}
    return create_engine(
        url, pool_pre_ping=True, connect_args=connect_args, json_serializer=dumps_json
    )


def describe_url(url: str) -> str:
    """The URL as it may be shown to a user: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1] if "@" in url else url


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Processes that open a new SQLite ledger at once must not all create its tables: an
    exclusive file lock next to the database lets one migrate while the others wait."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:":
        yield
        return
    with open(f"{path}.migrate.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(engine: Engine, action: str = "upgrade", revision: str = "head") -> None:
    """Run an Alembic ``upgrade`` or ``downgrade`` to ``revision`` in one transaction.

    SQLite alters most columns by copying the table (Alembic's batch mode: create, copy, drop,
    rename). Dropping a table that other rows point to would fail with foreign keys on, or
    cascade its children away, so its connection runs the migration with foreign keys off and
    checks them all before the commit (SQLite's documented procedure for schema changes;
    ``PRAGMA foreign_keys`` only takes effect outside a transaction)."""
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "alembic"))
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                if engine.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                config.attributes["connection"] = connection
                getattr(command, action)(config, revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"Migration left rows without their parent: {broken}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def upgrade_to_head(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent, one process at a time).

    SQLite: a file lock next to the database. PostgreSQL: a transaction-level advisory lock,
    so workers on several machines starting against a new database migrate it once."""
    with _migration_lock(engine):
        migrate(engine, "upgrade", "head")


def get_engine(url: str | None = None) -> Engine:
    """One migrated engine per URL and process.

    A database that cannot be reached (or a URL that cannot be used) raises ValueError with one
    line naming it (password hidden), before anything is written anywhere."""
    url = url or load_settings().db_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = None
            try:
                engine = make_engine(url)
                upgrade_to_head(engine)
            except (ArgumentError, NoSuchModuleError) as exc:
                raise ValueError(
                    f"PAYOFF_DB_URL is not a usable database URL: {describe_url(url)} ({exc})"
                ) from None
            except DBAPIError as exc:
                if engine is not None:
                    engine.dispose()
                reason = " ".join(str(exc.orig or exc).split())
                raise ValueError(
                    f"Cannot reach the database {describe_url(url)}: {reason}"
                ) from None
            _engines[url] = engine
        return engine


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    """Use as ``with session_factory().begin() as session:``: one user action, one transaction."""
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextlib.contextmanager
def unit_of_work(session: Session | None = None) -> Iterator[Session]:
    """The transaction a write joins: the caller's ``session`` when it passes one (its action
    commits once, at its end), else a new transaction committed on exit. Write helpers take
    ``session=None`` and open their transaction through this."""
    if session is not None:
        yield session
        return
    with session_factory().begin() as own:
        yield own


def dispose_all() -> None:
    """Forget cached engines (tests point PAYOFF_HOME somewhere new for every test)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def bulk_insert(table, rows, engine: Engine | None = None, *, parent_checked: bool = False) -> None:
    """Insert many tuples (in ``table``'s column order) in one transaction.

    On SQLite this goes straight to the driver's executemany, the fastest path measured here
    (docs/STACK.md: 1.5M rows/s for tuples against 0.22M for the ORM bulk path); on
    PostgreSQL through COPY (psycopg 3, see ``_copy_rows``); elsewhere through a Core insert of
    dicts. ``parent_checked``: the caller has just created the one parent row every tuple
    points to, so SQLite may skip the per-row foreign-key lookup (0.79M -> 0.93M prediction
    rows/s here); deletes still cascade on every connection. On PostgreSQL the same skip is
    ``SET LOCAL session_replication_role = replica`` for the COPY's transaction, which needs a
    superuser or ``GRANT SET ON PARAMETER session_replication_role``; without it every row is
    checked (about 4x slower here, see README Performance).
    """
    engine = engine or get_engine()
    names = [c.name for c in table.columns]
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg":
        _copy_rows(engine, table, names, rows, parent_checked=parent_checked)
        return
    if engine.dialect.name == "sqlite":
        placeholders = ", ".join("?" for _ in names)
        raw = engine.raw_connection()
        try:
            if parent_checked:
                raw.execute("PRAGMA foreign_keys=OFF")  # outside a transaction, as SQLite needs
            raw.cursor().executemany(
                f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({placeholders})", rows
            )
            raw.commit()
        finally:
            if parent_checked:
                raw.execute("PRAGMA foreign_keys=ON")
            raw.close()
        return
    with engine.begin() as connection:
        connection.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in rows])


def scrub_deleted_pages(engine: Engine | None = None, attempts: int = 20) -> bool | None:
    """After an erasure: make sure no copy of deleted rows is left in the database's files.

    SQLite (secure_delete is on for every connection) zeroes deleted content in the pages it
    writes, but the write-ahead log still holds the pages' earlier versions; a TRUNCATE
    checkpoint copies the zeroed pages into the database file and empties the log. It waits
    for readers still holding an older snapshot (retrying for a few seconds) and returns
    whether the log was emptied. Other databases (PostgreSQL): row deletion only, its VACUUM
    reclaims the space later and nothing here overwrites its pages; returns None.
    """
    import time

    engine = engine or get_engine()
    if engine.dialect.name != "sqlite":
        return None
    for _ in range(attempts):
        with engine.connect() as connection:
            busy, _log, _done = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        if not busy:
            return True
        time.sleep(0.25)
    return False


# Engines (by URL) whose database user may not set session_replication_role.
_no_trigger_skip: set[str] = set()


def _copy_rows(engine: Engine, table, names: list[str], rows, *, parent_checked: bool) -> None:
    """COPY ... FROM STDIN in PostgreSQL's binary format, one transaction (nothing is visible
    before the commit, nothing is left after an error)."""
    import psycopg

    quote = engine.dialect.identifier_preparer.quote
    types = [_COPY_TYPES[type(c.type).__name__] for c in table.columns]
    statement = (
        f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
        "FROM STDIN (FORMAT BINARY)"
    )
    key = str(engine.url)
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        if connection is None:  # only after the pool invalidated it
            raise RuntimeError(f"The connection to {engine.url!r} was closed before COPY.")
        if parent_checked and key not in _no_trigger_skip:
            try:
                # Only this transaction: the per-row foreign-key triggers are skipped, as
                # SQLite's PRAGMA foreign_keys=OFF does above.
                connection.execute("SET LOCAL session_replication_role = replica")
            except psycopg.errors.InsufficientPrivilege:
                connection.rollback()
                _no_trigger_skip.add(key)
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()


# SQLAlchemy column types of the bulk-written tables -> PostgreSQL type names for binary COPY.
_COPY_TYPES = {
    "Integer": "int4",
    "BigInteger": "int8",
    "Float": "float8",
    "Text": "text",
    "String": "text",
    "Boolean": "bool",
}
