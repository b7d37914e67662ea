"""Run records and lookups: what a training run is, as the rest of the app reads it.

Kept apart from core/training.py (which queues and executes runs) so that anything that only
needs to *read* runs -- ensembles, scoring, explanations, valuation, pages -- does not depend on
the training machinery, and training can depend on those modules without an import cycle.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from core import audit
from core.access import Actor
from core.db import get_or_raise, session_factory
from core.records import TrainingRunRecord

TABULAR_KINDS = ("ft-transformer", "lightgbm", "logreg")
TEXT_KINDS = ("text-transformer", "tfidf-logreg")
MODEL_KINDS = TABULAR_KINDS + TEXT_KINDS + ("ensemble",)


MODEL_LABELS = {
    "ft-transformer": "FT-Transformer",
    "lightgbm": "LightGBM (baseline)",
    "logreg": "Logistic regression (baseline)",
    "text-transformer": "Text transformer (fine-tuned MiniLM)",
    "tfidf-logreg": "TF-IDF + logistic regression (baseline)",
    "ensemble": "Ensemble",
}


# ---- typed views of the run's JSON columns -----------------------------------------------
# Each reads what any version wrote (missing keys take their defaults) and keeps keys it does
# not know in ``extra``, so a field added by newer code survives a read-modify-write here.


@dataclass(frozen=True)
class RunOptions:
    """What the analyst chose when queueing the run (``training_run.options_json``)."""

    positive_class: str | None = None
    train_fraction: float = 1.0  # share of the training part used (learning curves)
    subsample_seed: int | None = None  # which rows that share takes (default: the run's seed)
    members: tuple[int, ...] = ()  # ensemble: the member runs
    rule: str = "stack"  # ensemble: "mean" or "stack"
    allow_pii: tuple[str, ...] = ()  # personal-data columns the analyst let in as features
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = ("positive_class", "train_fraction", "subsample_seed", "members", "rule", "allow_pii")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RunOptions:
        data = data or {}
        seed = data.get("subsample_seed")
        pii = data.get("allow_pii")
        return cls(
            positive_class=data.get("positive_class"),
            train_fraction=float(data.get("train_fraction", 1.0)),
            subsample_seed=None if seed is None else int(seed),
            members=tuple(int(m) for m in data.get("members") or ()),
            rule=str(data.get("rule") or "stack"),
            allow_pii=tuple(pii) if isinstance(pii, list | tuple) else (),
            extra={k: v for k, v in data.items() if k not in cls._KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        """As stored: positive_class and train_fraction always, the rest only when set."""
        out: dict[str, Any] = {
            "positive_class": self.positive_class,
            "train_fraction": self.train_fraction,
        }
        if self.members:
            out.update(members=list(self.members), rule=self.rule)
        if self.allow_pii:
            out["allow_pii"] = list(self.allow_pii)
        if self.subsample_seed is not None:
            out["subsample_seed"] = self.subsample_seed
        return {**out, **self.extra}


def _number(value: Any) -> float:
    """A stored metric: null (how JSON holds NaN, see core.db.dumps_json) reads as NaN."""
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class RunMetrics:
    """The test-part evaluation (``training_run.metrics_json``).

    ``values``: every metric figure by name (roc_auc, accuracy, rmse, ...; NaN where it could
    not be computed), in the order they were computed. ``headline`` names the one the
    leaderboard ranks by, ``interval`` its bootstrap 95% interval.
    """

    values: Mapping[str, float] = field(default_factory=dict)
    headline: str | None = None
    interval: tuple[float, float] | None = None
    curves: Mapping[str, Any] | None = None  # binary: ROC, PR and calibration points
    test_rows: int | None = None
    dropped_missing_target: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = ("headline", "interval", "curves", "test_rows", "dropped_missing_target")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RunMetrics:
        data = data or {}
        interval = data.get("interval")
        rows, dropped = data.get("test_rows"), data.get("dropped_missing_target")
        values: dict[str, float] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key in cls._KEYS:
                continue
            if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
                values[key] = _number(value)
            else:
                extra[key] = value
        return cls(
            values=values,
            headline=data.get("headline") or None,
            interval=(_number(interval[0]), _number(interval[1])) if interval else None,
            curves=data.get("curves"),
            test_rows=None if rows is None else int(rows),
            dropped_missing_target=None if dropped is None else int(dropped),
            extra=extra,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.values)
        if self.headline is not None:
            out["headline"] = self.headline
        if self.interval is not None:
            out["interval"] = list(self.interval)
        if self.curves is not None:
            out["curves"] = dict(self.curves)
        if self.test_rows is not None:
            out["test_rows"] = self.test_rows
        if self.dropped_missing_target is not None:
            out["dropped_missing_target"] = self.dropped_missing_target
        return {**out, **self.extra}

    def figures(self) -> dict[str, float]:
        """Every number to show in a table: the metric values, then the row counts."""
        counts = {
            "test_rows": self.test_rows,
            "dropped_missing_target": self.dropped_missing_target,
        }
        return {**self.values, **{k: v for k, v in counts.items() if v is not None}}


@dataclass(frozen=True)
class PartPredictions:
    """A part's stored predictions (``test_json``: test part, ``validation_json``: validation
    part), row-aligned lists capped at core.training.MAX_STORED_TEST_ROWS.

    ``y``: the class index (classification) or the true value (regression). ``proba``:
    P(positive) per row (binary) or one list of class probabilities per row (multiclass);
    ``prediction``: the predicted value (regression); ``money``: the dataset's money column.
    Empty (``y == []``) for a run that has not succeeded.
    """

    y: list = field(default_factory=list)
    proba: list | None = None
    prediction: list[float] | None = None
    money: list[float] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = ("y", "proba", "prediction", "money")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PartPredictions:
        data = data or {}
        return cls(
            y=list(data.get("y") or []),
            proba=data.get("proba"),
            prediction=data.get("prediction"),
            money=data.get("money"),
            extra={k: v for k, v in data.items() if k not in cls._KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"y": self.y}
        for key in ("proba", "prediction", "money"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return {**out, **self.extra}


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
        if self.model == "ensemble":
            members = " + ".join(f"#{m}" for m in self.options.members)
            return f"#{self.id} Ensemble ({self.options.rule}: {members})"
        size = f" {self.size}" if self.size and self.model == "ft-transformer" else ""
        share = f" ({self.train_fraction:.0%} of rows)" if self.train_fraction < 1 else ""
        return f"#{self.id} {MODEL_LABELS.get(self.model, self.model)}{size}{share}"

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


DEFAULT_FT_SIZE = "small"


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
