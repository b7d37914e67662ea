"""The ledger (SQLite or PostgreSQL): typed SQLAlchemy 2.x ORM tables.

The schema itself is owned by Alembic (``alembic/versions``); these classes must match the
latest migration (``tests/core/test_db.py`` checks that they do). ORM objects never leave
``core/``: public functions return frozen dataclasses or DataFrames.

Structured fields are JSON columns (PostgreSQL ``json``, SQLite text holding JSON; migration
0006 moved them off text blobs). Their names keep the ``_json`` suffix: it still says what the
column holds, and renaming would churn every query and raw SQL statement for no gain. Typed
views of them live beside their readers (``core.runs``: ``RunOptions``, ``RunMetrics``,
``PartPredictions``). Documents are written through ``core.db.dumps_json`` (NaN -> null).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# 64-bit on PostgreSQL (its INTEGER is 32-bit); SQLite integers are 64-bit already.
Count64 = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class DatasetRecord(Base):
    __tablename__ = "dataset"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    stored_path: Mapped[str] = mapped_column(String(500))
    n_rows: Mapped[int] = mapped_column(Integer)
    n_columns: Mapped[int] = mapped_column(Integer)
    schema_json: Mapped[dict] = mapped_column(JSON)
    roles_json: Mapped[dict] = mapped_column(JSON, default=dict)
    use_case: Mapped[str | None] = mapped_column(String(64), nullable=True)
    is_sample: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetSplitRecord(Base):
    """A stored train/validation/test assignment, one byte per row (0 train, 1 val, 2 test)."""

    __tablename__ = "dataset_split"
    __table_args__ = (UniqueConstraint("dataset_id", "target", "seed"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(200))
    seed: Mapped[int] = mapped_column(Integer)
    assignment: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainingRunRecord(Base):
    __tablename__ = "training_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="RESTRICT"))
    model: Mapped[str] = mapped_column(String(40))
    size: Mapped[str | None] = mapped_column(String(40), nullable=True)
    target: Mapped[str] = mapped_column(String(200))
    features_json: Mapped[list[str]] = mapped_column(JSON)
    options_json: Mapped[dict] = mapped_column(JSON, default=dict)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    time_budget_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    progress_json: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    task: Mapped[str | None] = mapped_column(String(20), nullable=True)
    positive_class: Mapped[str | None] = mapped_column(String(200), nullable=True)
    classes_json: Mapped[list[str]] = mapped_column(JSON, default=list)
    metrics_json: Mapped[dict] = mapped_column(JSON, default=dict)
    test_json: Mapped[dict] = mapped_column(JSON, default=dict)
    # Validation-part predictions (y, proba, money), the rows the operating threshold is
    # chosen on; NULL for runs trained before migration 0003 (computed on first use).
    validation_json: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # The decision threshold every page uses: chosen on validation rows or set by the user.
    operating_threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold_source: Mapped[str | None] = mapped_column(String(20), nullable=True)
    device: Mapped[str | None] = mapped_column(String(20), nullable=True)
    device_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    train_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    train_rows_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    infer_rows_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    params: Mapped[int | None] = mapped_column(Count64, nullable=True)
    flops_per_row: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_rss_bytes: Mapped[int | None] = mapped_column(Count64, nullable=True)
    cuda_peak_bytes: Mapped[int | None] = mapped_column(Count64, nullable=True)
    energy_joules: Mapped[float | None] = mapped_column(Float, nullable=True)
    artifact_path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)


class JobRecord(Base):
    """A long task (train | score | explain) that any worker reaching the ledger may claim.

    params: plain ids and values only (what the job function takes). progress / result: what
    pages show while it runs and once it is done. worker: "host:pid" of the claimer, which
    refreshes heartbeat_at every few seconds; a job whose heartbeat stopped is re-queued once,
    then marked interrupted. attempts: how many times it was claimed.
    """

    __tablename__ = "job"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_run.id", ondelete="SET NULL"), nullable=True, index=True
    )
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    progress: Mapped[dict] = mapped_column(JSON, default=dict)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ScoreBatchRecord(Base):
    __tablename__ = "score_batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_run.id", ondelete="CASCADE"))
    source_name: Mapped[str] = mapped_column(String(300))
    n_rows: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="writing")
    writer_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    report_json: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PredictionRecord(Base):
    """One scored row, kept narrow and numeric because batches reach millions of rows: four
    numeric columns in a WITHOUT ROWID table (the key is the storage order, one B-tree) took
    bulk inserts here from 0.54M to 0.97M rows/s against six columns with the label as text.

    score: P(positive) for binary, P(predicted class) for multiclass, the value for
    regression. label: the predicted class index (binary: 1 = flagged at the batch threshold);
    NULL for regression. Class names come from the run.
    """

    __tablename__ = "prediction"
    __table_args__ = {"sqlite_with_rowid": False}

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("score_batch.id", ondelete="CASCADE"), primary_key=True
    )
    row_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    label: Mapped[int | None] = mapped_column(Integer, nullable=True)


class PredictionReasonRecord(Base):
    """Top reasons of the rows that got them (usually a few hundred per batch)."""

    __tablename__ = "prediction_reason"
    __table_args__ = {"sqlite_with_rowid": False}

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("score_batch.id", ondelete="CASCADE"), primary_key=True
    )
    row_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    reasons: Mapped[str] = mapped_column(Text)


class ExplanationRecord(Base):
    __tablename__ = "explanation"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_run.id", ondelete="CASCADE"))
    source_name: Mapped[str] = mapped_column(String(300))
    n_rows: Mapped[int] = mapped_column(Integer)
    columns_json: Mapped[list[str]] = mapped_column(JSON)
    output_space: Mapped[str] = mapped_column(String(100))
    base_value: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(100))
    seconds: Mapped[float] = mapped_column(Float)
    ms_per_row: Mapped[float] = mapped_column(Float)
    additivity_error: Mapped[float] = mapped_column(Float)
    quality_json: Mapped[dict] = mapped_column(JSON, default=dict)
    rows_json: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="writing")
    writer_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExplanationValueRecord(Base):
    __tablename__ = "explanation_value"
    __table_args__ = {"sqlite_with_rowid": False}

    explanation_id: Mapped[int] = mapped_column(
        ForeignKey("explanation.id", ondelete="CASCADE"), primary_key=True
    )
    row_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    column_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class ScenarioRecord(Base):
    __tablename__ = "scenario"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_run.id", ondelete="SET NULL"), nullable=True
    )
    use_case: Mapped[str] = mapped_column(String(64))
    assumptions_json: Mapped[dict] = mapped_column(JSON)
    results_json: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEventRecord(Base):
    """One write, download, refusal or failure: who, what, on which object, how it ended.

    Only ids and action names, never data: after an erasure the trail says that a dataset was
    deleted, not what it held.
    """

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user: Mapped[str] = mapped_column(String(320), index=True)
    role: Mapped[str | None] = mapped_column(String(20), nullable=True)
    action: Mapped[str] = mapped_column(String(40))
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
