"""job queue: every long task (train, score, explain) is a row that workers claim

Revision ID: 0005
Revises: 0004

Also widens byte and parameter counts of training runs to 64 bits on PostgreSQL (its INTEGER
is 32-bit: a peak memory above 2 GiB did not fit); SQLite integers are 64-bit already.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

WIDENED = ("params", "peak_rss_bytes", "cuda_peak_bytes")


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column(
            "run_id",
            sa.Integer(),
            sa.ForeignKey("training_run.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_job_status", "job", ["status"])
    op.create_index("ix_job_run_id", "job", ["run_id"])
    if op.get_bind().dialect.name == "postgresql":
        for column in WIDENED:
            op.alter_column("training_run", column, type_=sa.BigInteger())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for column in WIDENED:
            op.alter_column("training_run", column, type_=sa.Integer())
    op.drop_index("ix_job_run_id", table_name="job")
    op.drop_index("ix_job_status", table_name="job")
    op.drop_table("job")
