"""validation predictions and the operating threshold of each run

Revision ID: 0003
Revises: 0002

A run's decision threshold is chosen on its validation rows (never on the test rows it is
valued on) or set by the user; every page and the CLI read it from here.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_run") as batch:
        batch.add_column(sa.Column("validation_json", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("operating_threshold", sa.Float(), nullable=True))
        batch.add_column(sa.Column("threshold_source", sa.String(20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_run") as batch:
        batch.drop_column("threshold_source")
        batch.drop_column("operating_threshold")
        batch.drop_column("validation_json")
