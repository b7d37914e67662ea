"""Run records and lookups: what a training run is, as the rest of the app reads it.

Kept apart from core/training.py (which queues and executes runs) so that anything that only
needs to *read* runs -- scoring, explanations, valuation, pages -- does not depend on the
training machinery, and training can depend on those modules without an import cycle.

Depends on core.kinds.registry (a run's label, loading its model); the registry and the kinds
never import this module: what they need of other runs (an ensemble's members) they get
through ``LOOKUP``, handed in by ``load_run_model``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from core import audit
from core.access import Actor
from core.db import get_or_raise, session_factory
from core.kinds import registry
from core.kinds.base import LoadedModel, RunLookup
from core.records import TrainingRunRecord
from core.run_fields import PartPredictions as PartPredictions
from core.run_fields import RunMetrics as RunMetrics
from core.run_fields import RunOptions as RunOptions


@dataclass(frozen=True)
class RunInfo:
    id: int
    dataset_id: int
    model: str
    size: str | None
    target: str
    features: tuple[str, ...]
    options: RunOptions
    seed: int
    time_budget_s: float | None
    status: str
    progress: dict
    error: str | None
    task: str | None
    positive_class: str | None
    classes: tuple[str, ...]
    metrics: RunMetrics
    device: str | None
    device_name: str | None
    train_seconds: float | None
    train_rows_per_s: float | None
    infer_rows_per_s: float | None
    params: int | None
    flops_per_row: float | None
    peak_rss_bytes: int | None
    artifact_path: Path | None
    created_at: datetime
    finished_at: datetime | None
    # The decision threshold (binary runs): chosen on validation rows or set by the user;
    # None until core.thresholds.operating_threshold first chooses it.
    operating_threshold: float | None = None
    threshold_source: str | None = None

    @property
    def train_fraction(self) -> float:
        return self.options.train_fraction

    @property
    def subsample_seed(self) -> int:
        """Which rows a training share (train_fraction < 1) took: the run's seed by default."""
        seed = self.options.subsample_seed
        return self.seed if seed is None else seed

    @property
    def label(self) -> str:
        return registry.run_label(self)

    @property
    def headline(self) -> tuple[str, float | None, tuple[float, float] | None]:
        name = self.metrics.headline
        if not name:
            return ("", None, None)
        return (name, self.metrics.values.get(name), self.metrics.interval)


def _to_info(r: TrainingRunRecord) -> RunInfo:
    return RunInfo(
        id=r.id,
        dataset_id=r.dataset_id,
        model=r.model,
        size=r.size,
        target=r.target,
        features=tuple(r.features_json),
        options=RunOptions.from_dict(r.options_json),
        seed=r.seed,
        time_budget_s=r.time_budget_s,
        status=r.status,
        progress=r.progress_json or {},
        error=r.error,
        task=r.task,
        positive_class=r.positive_class,
        classes=tuple(r.classes_json or ()),
        metrics=RunMetrics.from_dict(r.metrics_json),
        device=r.device,
        device_name=r.device_name,
        train_seconds=r.train_seconds,
        train_rows_per_s=r.train_rows_per_s,
        infer_rows_per_s=r.infer_rows_per_s,
        params=r.params,
        flops_per_row=r.flops_per_row,
        peak_rss_bytes=r.peak_rss_bytes,
        artifact_path=Path(r.artifact_path) if r.artifact_path else None,
        created_at=r.created_at,
        finished_at=r.finished_at,
        operating_threshold=r.operating_threshold,
        threshold_source=r.threshold_source,
    )


def get_run(run_id: int) -> RunInfo:
    with session_factory().begin() as session:
        return _to_info(get_or_raise(session, TrainingRunRecord, run_id))


def list_runs(dataset_id: int | None = None) -> list[RunInfo]:
    with session_factory().begin() as session:
        query = select(TrainingRunRecord).order_by(TrainingRunRecord.id.desc())
        if dataset_id is not None:
            query = query.where(TrainingRunRecord.dataset_id == dataset_id)
        return [_to_info(r) for r in session.scalars(query).all()]


def holdout_predictions(run_id: int) -> PartPredictions:
    """The run's test part: labels (class index), scores and money weights where known."""
    with session_factory().begin() as session:
        record = get_or_raise(session, TrainingRunRecord, run_id)
        return PartPredictions.from_dict(record.test_json)


def validation_predictions(run_id: int) -> PartPredictions | None:
    """The run's validation part: labels (class index), scores and money weights where known;
    None for a run trained before they were stored."""
    with session_factory().begin() as session:
        stored = get_or_raise(session, TrainingRunRecord, run_id).validation_json
        return None if stored is None else PartPredictions.from_dict(stored)


def delete_run(run_id: int, *, actor: Actor | None = None) -> None:
    actor = audit.authorize(actor, "delete", "run", run_id)
    with session_factory().begin() as session:
        record = get_or_raise(session, TrainingRunRecord, run_id)
        if record.status in ("queued", "running"):
            raise ValueError(f"Run #{run_id} is still {record.status}; cancel it first.")
        artifact = Path(record.artifact_path) if record.artifact_path else None
        session.delete(record)
        audit.record(session, actor, "delete", "run", run_id)
    if artifact is not None:
        shutil.rmtree(artifact, ignore_errors=True)


def load_run_model(run_id: int) -> LoadedModel:
    """The trained model of a succeeded run, verified against its manifest."""
    run = get_run(run_id)
    if run.status != "succeeded" or run.artifact_path is None:
        raise ValueError(f"Run #{run_id} has no trained model (status: {run.status}).")
    return registry.load_model(run, LOOKUP)


# What kinds may ask about other runs (an ensemble's members).
LOOKUP = RunLookup(get_run=get_run, load_run_model=load_run_model)
