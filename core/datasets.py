"""Dataset registry: uploaded files stored content-addressed, one ``dataset`` row each.

Registering is one transaction: the file is written to a temp name and renamed into place, the
row is inserted, and if the insert fails the new file is removed again, so a failure never
leaves a file without a row or a row without a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from core import audit
from core.access import SYSTEM, Actor
from core.db import affected_rows, scrub_deleted_pages, session_factory
from core.ingest import DatasetSchema, IngestError, read_csv_bytes
from core.jobs import pid_alive
from core.records import (
    DatasetRecord,
    ExplanationRecord,
    ExplanationValueRecord,
    JobRecord,
    PredictionReasonRecord,
    PredictionRecord,
    ScenarioRecord,
    ScoreBatchRecord,
    TrainingRunRecord,
)
from core.settings import SAMPLES_DIR, load_settings

__all__ = [
    "DatasetInfo",
    "DatasetInUseError",
    "Roles",
    "SAMPLES",
    "check_target",
    "delete_dataset",
    "ensure_samples",
    "find_dataset_by_name",
    "get_dataset",
    "list_datasets",
    "load_frame",
    "pii_columns",
    "register_dataset",
    "set_roles",
]


@dataclass(frozen=True)
class Roles:
    """What each column is for. Features default to the schema's suggestion (no PII)."""

    target: str | None = None
    positive_class: str | None = None
    features: tuple[str, ...] = ()
    money_column: str | None = None
    id_column: str | None = None
    ignored: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Roles:
        return cls(
            target=data.get("target"),
            positive_class=data.get("positive_class"),
            features=tuple(data.get("features") or ()),
            money_column=data.get("money_column"),
            id_column=data.get("id_column"),
            ignored=tuple(data.get("ignored") or ()),
        )

    def validate(self, schema: DatasetSchema) -> None:
        names = set(schema.names)
        for label, column in (
            ("target", self.target),
            ("money column", self.money_column),
            ("id column", self.id_column),
        ):
            if column is not None and column not in names:
                raise ValueError(f"The {label} {column!r} is not a column of this dataset.")
        unknown = [c for c in (*self.features, *self.ignored) if c not in names]
        if unknown:
            raise ValueError(f"These columns are not in the dataset: {', '.join(unknown)}.")
        if self.target is not None and self.target in self.features:
            raise ValueError(f"The target {self.target!r} cannot also be a feature.")
        if self.target is not None:
            check_target(schema, self.target)
        if self.money_column is not None and schema.column(self.money_column).kind != "numeric":
            raise ValueError(f"The money column {self.money_column!r} must be numeric.")


def check_target(schema: DatasetSchema, target: str) -> None:
    """A model learns to tell values of the target apart: refuse a target column without
    values or with one value only, naming it (ValueError)."""
    profile = schema.column(target)
    if profile.n_unique == 0:
        raise ValueError(
            f"The target column {target!r} has no values (every row is missing); a model needs "
            "at least two classes to learn from. Choose another target column."
        )
    if profile.n_unique == 1:
        value = profile.example_values[0] if profile.example_values else "one value"
        raise ValueError(
            f"The target column {target!r} has only one class ({value!r} in every row that has "
            "a value); a model needs at least two. Choose another target column."
        )


@dataclass(frozen=True)
class DatasetInfo:
    id: int
    name: str
    sha256: str
    stored_path: Path
    n_rows: int
    n_columns: int
    schema: DatasetSchema
    roles: Roles
    use_case: str | None
    is_sample: bool
    created_at: datetime
    n_runs: int = 0


@dataclass(frozen=True)
class SampleSpec:
    file: str
    name: str
    roles: Roles
    use_case: str
    note: str = field(default="")


# Real public samples shipped in samples/ (attribution in samples/ATTRIBUTION.md).
SAMPLES: tuple[SampleSpec, ...] = (
    SampleSpec(
        file="credit_scoring.csv",
        name="Credit scoring (sample)",
        roles=Roles(target="Status", positive_class="bad", money_column="Amount"),
        use_case="credit_scoring",
        note="4,454 real loan applications (UPC CreditScoring data); 'bad' = defaulted.",
    ),
    SampleSpec(
        file="food_reviews_sample.csv",
        name="Food reviews (sample)",
        roles=Roles(target="score", positive_class="other", id_column="product"),
        use_case="customer_service_routing",
        note="2,000 real Amazon Fine Food reviews; 'other' = an unhappy (1-4 star) customer.",
    ),
)


class DatasetInUseError(ValueError):
    """Deleting a dataset that training runs still depend on."""


def _to_info(record: DatasetRecord, n_runs: int = 0) -> DatasetInfo:
    return DatasetInfo(
        id=record.id,
        name=record.name,
        sha256=record.sha256,
        stored_path=Path(record.stored_path),
        n_rows=record.n_rows,
        n_columns=record.n_columns,
        schema=DatasetSchema.from_dict(json.loads(record.schema_json)),
        roles=Roles.from_dict(json.loads(record.roles_json)),
        use_case=record.use_case,
        is_sample=record.is_sample,
        created_at=record.created_at,
        n_runs=n_runs,
    )


def _clean_name(name: str) -> str:
    # A display name only: it never becomes part of a path (files are stored by sha256).
    cleaned = " ".join(str(name).split())[:200]
    return cleaned or "dataset"


def _default_roles(schema: DatasetSchema, roles: Roles | None, suggest_target: bool) -> Roles:
    """Roles as given, the schema's suggested target where none is given (unless
    ``suggest_target`` is False: a page whose analyst chose no target means no target)."""
    roles = roles or Roles()
    target = roles.target or (schema.suggested_target if suggest_target else None)
    features = roles.features or tuple(
        c
        for c in schema.default_features()
        if c not in (target, roles.money_column, roles.id_column)
    )
    return replace(roles, target=target, features=features)


def _write_atomically(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` unless it exists; returns True when this call created it."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per call: two sessions (threads of one server) may save the same upload at once.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return True


def register_dataset(
    data: bytes,
    name: str,
    *,
    roles: Roles | None = None,
    use_case: str | None = None,
    is_sample: bool = False,
    suggest_target: bool = True,
    actor: Actor | None = None,
) -> DatasetInfo:
    """Parse, store and record a CSV. The same bytes always give the same dataset.

    Raises ``IngestError`` (nothing written) when the file cannot be used, or when the
    target (given, or suggested) has no values or one class only; AccessDenied when the
    actor may not upload. The upload is written to the audit trail with the new row.
    """
    actor = audit.authorize(actor, "upload", "dataset")
    settings = load_settings()
    sha = hashlib.sha256(data).hexdigest()
    factory = session_factory()
    with factory.begin() as session:
        existing = session.scalar(select(DatasetRecord).where(DatasetRecord.sha256 == sha))
        if existing is not None:
            info = _to_info(existing)
            if roles is not None and roles.target is not None:
                try:  # the caller's target must be usable even when the file is known
                    Roles(target=roles.target).validate(info.schema)
                except ValueError as exc:
                    raise IngestError(str(exc)) from None
            if not is_sample:
                audit.record(session, actor, "upload", "dataset", existing.id, "ok", "same bytes")
            return info
    with audit.failures_recorded(actor, "upload", "dataset"):
        schema = read_csv_bytes(data, limits=settings.limits, name=name).schema
        final_roles = _default_roles(schema, roles, suggest_target)
        try:
            final_roles.validate(schema)
        except ValueError as exc:
            raise IngestError(str(exc)) from None
    path = settings.datasets_dir / sha[:2] / f"{sha}.csv"
    created = _write_atomically(path, data)
    try:
        with factory.begin() as session:
            record = DatasetRecord(
                name=_clean_name(name),
                sha256=sha,
                stored_path=str(path),
                n_rows=schema.n_rows,
                n_columns=len(schema.columns),
                schema_json=json.dumps(schema.to_dict()),
                roles_json=json.dumps(final_roles.to_dict()),
                use_case=use_case,
                is_sample=is_sample,
            )
            session.add(record)
            session.flush()
            audit.record(session, actor, "upload", "dataset", record.id)
            return _to_info(record)
    except IntegrityError:
        # The same bytes were registered by another session meanwhile: theirs is ours too
        # (and the file is theirs as well, so it stays).
        with factory.begin() as session:
            existing = session.scalar(select(DatasetRecord).where(DatasetRecord.sha256 == sha))
            if existing is not None:
                if not is_sample:
                    audit.record(
                        session, actor, "upload", "dataset", existing.id, "ok", "same bytes"
                    )
                return _to_info(existing)
        raise
    except Exception:
        if created:
            path.unlink(missing_ok=True)
        raise


def list_datasets() -> list[DatasetInfo]:
    with session_factory().begin() as session:
        counts = dict(
            session.execute(
                select(TrainingRunRecord.dataset_id, func.count()).group_by(
                    TrainingRunRecord.dataset_id
                )
            ).all()
        )
        records = session.scalars(select(DatasetRecord).order_by(DatasetRecord.id)).all()
        return [_to_info(r, counts.get(r.id, 0)) for r in records]


def get_dataset(dataset_id: int) -> DatasetInfo:
    with session_factory().begin() as session:
        record = session.get(DatasetRecord, dataset_id)
        if record is None:
            raise ValueError(f"There is no dataset with id {dataset_id}.")
        n_runs = session.scalar(
            select(func.count()).where(TrainingRunRecord.dataset_id == dataset_id)
        )
        return _to_info(record, n_runs or 0)


def pii_columns(dataset_id: int) -> list[str]:
    """Columns of the dataset flagged as personal data at ingest (none if it is gone)."""
    with session_factory().begin() as session:
        record = session.get(DatasetRecord, dataset_id)
        if record is None:
            return []
        schema = DatasetSchema.from_dict(json.loads(record.schema_json))
        return [c.name for c in schema.columns if c.pii]


def find_dataset_by_name(name: str) -> DatasetInfo | None:
    with session_factory().begin() as session:
        record = session.scalar(
            select(DatasetRecord).where(DatasetRecord.name == name).order_by(DatasetRecord.id)
        )
        return None if record is None else _to_info(record)


def load_frame(dataset_id: int) -> pd.DataFrame:
    """The dataset as a DataFrame, parsed exactly as it was at registration."""
    info = get_dataset(dataset_id)
    if not info.stored_path.exists():
        raise ValueError(
            f"The file of dataset {info.name!r} is missing from {info.stored_path.parent}; "
            "upload it again."
        )
    data = info.stored_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != info.sha256:
        raise ValueError(f"The stored file of dataset {info.name!r} was changed on disk.")
    return read_csv_bytes(data, limits=load_settings().limits, name=info.name).frame


def set_roles(
    dataset_id: int, roles: Roles, use_case: str | None = None, *, actor: Actor | None = None
) -> DatasetInfo:
    actor = audit.authorize(actor, "edit", "dataset", dataset_id)
    with session_factory().begin() as session:
        record = session.get(DatasetRecord, dataset_id)
        if record is None:
            raise ValueError(f"There is no dataset with id {dataset_id}.")
        schema = DatasetSchema.from_dict(json.loads(record.schema_json))
        roles.validate(schema)
        record.roles_json = json.dumps(roles.to_dict())
        record.use_case = use_case
        audit.record(session, actor, "edit", "dataset", dataset_id, "ok", "roles")
        session.flush()
        return _to_info(record)


def rename_dataset(dataset_id: int, name: str, *, actor: Actor | None = None) -> None:
    actor = audit.authorize(actor, "edit", "dataset", dataset_id)
    with session_factory().begin() as session:
        record = session.get(DatasetRecord, dataset_id)
        if record is None:
            raise ValueError(f"There is no dataset with id {dataset_id}.")
        record.name = _clean_name(name)
        audit.record(session, actor, "edit", "dataset", dataset_id, "ok", "name")


def delete_dataset(
    dataset_id: int,
    *,
    cascade: bool = False,
    force: bool = False,
    actor: Actor | None = None,
) -> dict:
    """Erase a dataset: its row and stored file, and with ``cascade`` everything derived from
    it (runs, their score batches and predictions, explanations, scenarios, model artifacts,
    stored exports and worker logs). Admins only. ``force`` is the older name of ``cascade``.

    Rows go in one transaction with the audit event (ids and counts only, never data); files
    after the commit; then the database's deleted pages are overwritten (SQLite secure_delete
    and a WAL checkpoint, see core.db.scrub_deleted_pages). Returns what was deleted.
    """
    cascade = cascade or force
    actor = audit.authorize(actor, "delete", "dataset", dataset_id)
    settings = load_settings()
    files: list[Path] = []
    folders: list[Path] = []
    with audit.failures_recorded(actor, "delete", "dataset", dataset_id):
        with session_factory().begin() as session:
            record = session.get(DatasetRecord, dataset_id)
            if record is None:
                raise ValueError(f"There is no dataset with id {dataset_id}.")
            runs = session.scalars(
                select(TrainingRunRecord).where(TrainingRunRecord.dataset_id == dataset_id)
            ).all()
            if runs and not cascade:
                raise DatasetInUseError(
                    f"Dataset #{dataset_id} has {len(runs)} training run(s); delete with "
                    "cascade (CLI: --cascade) to erase them, their scores, explanations and "
                    "exports too."
                )
            active = [
                r.id
                for r in runs
                if r.status in ("queued", "running") and r.pid and pid_alive(r.pid)
            ]
            if active:
                raise ValueError(
                    f"Run(s) {', '.join(f'#{i}' for i in active)} of dataset #{dataset_id} are "
                    "still training; cancel them first."
                )
            run_ids = [r.id for r in runs]
            batch_ids = list(
                session.scalars(
                    select(ScoreBatchRecord.id).where(ScoreBatchRecord.run_id.in_(run_ids))
                )
            )
            explanation_ids = list(
                session.scalars(
                    select(ExplanationRecord.id).where(ExplanationRecord.run_id.in_(run_ids))
                )
            )
            deleted: dict[str, Any] = {
                "dataset_id": dataset_id,
                "runs": run_ids,
                "score_batches": batch_ids,
                "predictions": affected_rows(
                    session.execute(
                        delete(PredictionRecord).where(PredictionRecord.batch_id.in_(batch_ids))
                    )
                ),
                "prediction_reasons": affected_rows(
                    session.execute(
                        delete(PredictionReasonRecord).where(
                            PredictionReasonRecord.batch_id.in_(batch_ids)
                        )
                    )
                ),
                "explanations": explanation_ids,
            }
            session.execute(
                delete(ExplanationValueRecord).where(
                    ExplanationValueRecord.explanation_id.in_(explanation_ids)
                )
            )
            session.execute(
                delete(ExplanationRecord).where(ExplanationRecord.id.in_(explanation_ids))
            )
            session.execute(delete(ScoreBatchRecord).where(ScoreBatchRecord.id.in_(batch_ids)))
            deleted["scenarios"] = list(
                session.scalars(select(ScenarioRecord.id).where(ScenarioRecord.run_id.in_(run_ids)))
            )
            session.execute(
                delete(ScenarioRecord).where(ScenarioRecord.id.in_(deleted["scenarios"]))
            )
            # Jobs of these runs, and the input copies they kept under PAYOFF_HOME/inputs
            # (uploads scored or explained through the job queue) unless another job uses one.
            jobs = list(session.scalars(select(JobRecord).where(JobRecord.run_id.in_(run_ids))))
            inputs = {str(p) for j in jobs for p in _job_inputs(j.params)}
            others = session.scalars(
                select(JobRecord.params).where(JobRecord.id.notin_([j.id for j in jobs]))
            )
            inputs -= {str(p) for params in others for p in _job_inputs(params)}
            files.extend(settings.home / p for p in sorted(inputs))
            deleted["jobs"] = [j.id for j in jobs]
            for job in jobs:
                session.delete(job)
            for run in runs:
                if run.artifact_path:
                    folders.append(Path(run.artifact_path))
                files.extend(_run_files(settings, run.id))
                session.delete(run)
            # Runs first: training_run.dataset_id is ON DELETE RESTRICT, and the unit of work
            # would otherwise delete the dataset row before its runs. Splits cascade.
            session.flush()
            files.append(Path(record.stored_path))
            if settings.exports_dir.is_dir():
                # The Score page names an export after the scored bytes' sha256 prefix, so
                # this dataset's rows scored by another dataset's model go too.
                files.extend(settings.exports_dir.glob(f"score-run*-{record.sha256[:12]}*"))
            session.delete(record)
            session.flush()
            audit.record(
                session,
                actor,
                "delete",
                "dataset",
                dataset_id,
                "ok",
                f"cascade: {len(run_ids)} run(s), {len(batch_ids)} score batch(es), "
                f"{len(explanation_ids)} explanation(s), {len(deleted['scenarios'])} scenario(s)"
                if cascade
                else None,
            )
        # Files go only after the rows are gone for good; a crash here leaves an orphan file,
        # never a row that points at nothing.
        removed = []
        for path in dict.fromkeys(files):
            if path.exists():
                path.unlink()
                removed.append(str(path))
        for folder in folders:
            if folder.exists():
                shutil.rmtree(folder)
                removed.append(str(folder))
        deleted["files"] = removed
        deleted["pages_overwritten"] = scrub_deleted_pages()
    return deleted


def _job_inputs(params: dict | None) -> list[str]:
    """Files a job kept under PAYOFF_HOME/inputs (paths relative to PAYOFF_HOME)."""
    params = params or {}
    return [
        str(params[key])
        for key in ("input", "background_input")
        if isinstance(params.get(key), str) and str(params[key]).startswith("inputs/")
    ]


def _run_files(settings, run_id: int) -> list[Path]:
    """Stored exports (the Score page names them score-run<ID>-*) and worker logs of a run."""
    found: list[Path] = []
    if settings.exports_dir.is_dir():
        found += settings.exports_dir.glob(f"score-run{run_id}-*")
        found += settings.exports_dir.glob(f".score-run{run_id}-*")
    log = settings.home / "logs" / f"run-{run_id}.log"
    if log.exists():
        found.append(log)
    return found


def ensure_samples() -> list[DatasetInfo]:
    """Register the built-in samples once, so a new user can act at once."""
    infos = []
    for sample in SAMPLES:
        data = (SAMPLES_DIR / sample.file).read_bytes()
        infos.append(
            register_dataset(
                data,
                sample.name,
                roles=sample.roles,
                use_case=sample.use_case,
                is_sample=True,
                actor=SYSTEM,
            )
        )
    return infos
