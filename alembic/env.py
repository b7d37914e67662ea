"""Alembic environment: migrations run on the connection core.db hands over, or on the URL
from core.settings when alembic is called from the command line."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from core.records import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from core.settings import load_settings

    engine = create_engine(load_settings().db_url)
    with engine.connect() as connection:
        _run(connection)


def _run(connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things in place; batch mode copies the table.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
