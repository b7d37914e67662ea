"""structured fields become JSON columns instead of text blobs

Revision ID: 0006
Revises: 0005

Every ``*_json`` text column becomes a JSON column (PostgreSQL ``json``; on SQLite a column
declared JSON, which holds the same text). Names are kept: they still say what the column holds.

PostgreSQL ``json`` rather than ``jsonb``: it keeps each document as written, key order
included (metric and scenario tables are shown in the order they were computed), like the
JSON columns already there (``validation_json``, ``job.params``); nothing queries inside
these documents. A later ``ALTER ... TYPE jsonb USING col::jsonb`` is one statement if that
changes.

Before the type change, documents that JSON cannot hold are rewritten: Python's ``json.dumps``
wrote NaN and infinity as ``NaN`` / ``Infinity``, which PostgreSQL refuses, so those become
``null`` (core.db.dumps_json does the same for new writes, and readers take null as NaN); an
empty text becomes the column's empty document. The downgrade turns the columns back into
text holding the same documents.
"""

import json
import math

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# table -> {column: the empty document an empty text stands for}
COLUMNS = {
    "dataset": {"schema_json": "{}", "roles_json": "{}"},
    "training_run": {
        "features_json": "[]",
        "options_json": "{}",
        "progress_json": "{}",
        "classes_json": "[]",
        "metrics_json": "{}",
        "test_json": "{}",
    },
    "score_batch": {"report_json": "{}"},
    "explanation": {"columns_json": "[]", "quality_json": "{}", "rows_json": "{}"},
    "scenario": {"assumptions_json": "{}", "results_json": "{}"},
}


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _repair(table: str, column: str, empty: str) -> None:
    """Rewrite the texts a JSON column cannot take (only those rows are read)."""
    bind = op.get_bind()
    rows = sa.table(table, sa.column("id", sa.Integer()), sa.column(column, sa.Text()))
    cell = rows.c[column]
    suspects = bind.execute(
        sa.select(rows.c.id, cell).where(
            sa.or_(
                cell.is_(None),
                cell == "",
                cell.like("%NaN%"),
                cell.like("%Infinity%"),
            )
        )
    ).all()
    for row_id, text in suspects:
        fixed = json.dumps(_finite(json.loads(text or empty)), allow_nan=False)
        if fixed != text:
            bind.execute(sa.update(rows).where(rows.c.id == row_id).values({column: fixed}))


def _retype(table: str, columns, old: sa.types.TypeEngine, new: sa.types.TypeEngine) -> None:
    """SQLite: one batch copy of the table. PostgreSQL: one ALTER TABLE for all its columns,
    so a large table is rewritten once, not once per column (6x on training_run)."""
    if op.get_bind().dialect.name == "postgresql":
        cast = "json" if isinstance(new, sa.JSON) else "text"
        clauses = ", ".join(f"ALTER COLUMN {c} TYPE {cast} USING {c}::{cast}" for c in columns)
        op.execute(f"ALTER TABLE {table} {clauses}")
        return
    with op.batch_alter_table(table) as batch:
        for column in columns:
            batch.alter_column(column, existing_type=old, existing_nullable=False, type_=new)


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        for column, empty in columns.items():
            _repair(table, column, empty)
        _retype(table, columns, sa.Text(), sa.JSON())


def downgrade() -> None:
    for table, columns in COLUMNS.items():
        _retype(table, columns, sa.JSON(), sa.Text())
