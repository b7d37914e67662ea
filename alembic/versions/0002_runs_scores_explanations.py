"""training runs, splits, score batches, predictions, explanations and scenarios

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_split",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "dataset_id",
            sa.Integer(),
            sa.ForeignKey("dataset.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("assignment", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("dataset_id", "target", "seed"),
    )
    op.create_table(
        "training_run",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "dataset_id",
            sa.Integer(),
            sa.ForeignKey("dataset.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("model", sa.String(40), nullable=False),
        sa.Column("size", sa.String(40), nullable=True),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("features_json", sa.Text(), nullable=False),
        sa.Column("options_json", sa.Text(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("time_budget_s", sa.Float(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("progress_json", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("task", sa.String(20), nullable=True),
        sa.Column("positive_class", sa.String(200), nullable=True),
        sa.Column("classes_json", sa.Text(), nullable=False),
        sa.Column("metrics_json", sa.Text(), nullable=False),
        sa.Column("test_json", sa.Text(), nullable=False),
        sa.Column("device", sa.String(20), nullable=True),
        sa.Column("device_name", sa.String(200), nullable=True),
        sa.Column("train_seconds", sa.Float(), nullable=True),
        sa.Column("train_rows_per_s", sa.Float(), nullable=True),
        sa.Column("infer_rows_per_s", sa.Float(), nullable=True),
        sa.Column("params", sa.Integer(), nullable=True),
        sa.Column("flops_per_row", sa.Float(), nullable=True),
        sa.Column("peak_rss_bytes", sa.Integer(), nullable=True),
        sa.Column("cuda_peak_bytes", sa.Integer(), nullable=True),
        sa.Column("energy_joules", sa.Float(), nullable=True),
        sa.Column("artifact_path", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_training_run_status", "training_run", ["status"])
    op.create_table(
        "score_batch",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "run_id",
            sa.Integer(),
            sa.ForeignKey("training_run.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("source_name", sa.String(300), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("writer_pid", sa.Integer(), nullable=True),
        sa.Column("report_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "prediction",
        sa.Column(
            "batch_id",
            sa.Integer(),
            sa.ForeignKey("score_batch.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("row_number", sa.Integer(), primary_key=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("label", sa.Integer(), nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "prediction_reason",
        sa.Column(
            "batch_id",
            sa.Integer(),
            sa.ForeignKey("score_batch.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("row_number", sa.Integer(), primary_key=True),
        sa.Column("reasons", sa.Text(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "explanation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "run_id",
            sa.Integer(),
            sa.ForeignKey("training_run.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("source_name", sa.String(300), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("columns_json", sa.Text(), nullable=False),
        sa.Column("output_space", sa.String(100), nullable=False),
        sa.Column("base_value", sa.Float(), nullable=False),
        sa.Column("method", sa.String(100), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("ms_per_row", sa.Float(), nullable=False),
        sa.Column("additivity_error", sa.Float(), nullable=False),
        sa.Column("quality_json", sa.Text(), nullable=False),
        sa.Column("rows_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("writer_pid", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "explanation_value",
        sa.Column(
            "explanation_id",
            sa.Integer(),
            sa.ForeignKey("explanation.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("row_number", sa.Integer(), primary_key=True),
        sa.Column("column_index", sa.Integer(), primary_key=True),
        sa.Column("value", sa.Float(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "scenario",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column(
            "run_id",
            sa.Integer(),
            sa.ForeignKey("training_run.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("use_case", sa.String(64), nullable=False),
        sa.Column("assumptions_json", sa.Text(), nullable=False),
        sa.Column("results_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "scenario",
        "explanation_value",
        "explanation",
        "prediction_reason",
        "prediction",
        "score_batch",
    ):
        op.drop_table(table)
    op.drop_index("ix_training_run_status", table_name="training_run")
    op.drop_table("training_run")
    op.drop_table("dataset_split")
