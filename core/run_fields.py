"""Typed views of a training run's JSON columns: its options, its test metrics and its stored
predictions. Plain dataclasses with no imports from the app, so core.runs (which reads the
rows) and core.kinds (which the runs module depends on) can both use them without a cycle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
    tune: bool = False  # spend the time budget tuning on the validation part (models/tuning.py)
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = (
        "positive_class",
        "train_fraction",
        "subsample_seed",
        "members",
        "rule",
        "allow_pii",
        "tune",
    )

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
            tune=bool(data.get("tune", False)),
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
        if self.tune:
            out["tune"] = True
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
