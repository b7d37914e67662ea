"""Prediction tasks and the target encoder every tabular model shares.

Labels are compared as strings so that a target read as integers from one CSV and as text from
another (or with stray spaces) still maps to the same classes; numbers that are whole are
written without a decimal part ("1", not "1.0") for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[str, ...] = get_args(Task)

# A numeric target with more distinct values than this is treated as a quantity to predict.
MAX_CLASSES_NUMERIC = 20
# A text target with more classes than this is most likely an identifier, not a label.
MAX_CLASSES = 50


def _label(value: Any) -> str | None:
    """One value as its label string; None for missing (NaN, None, empty text)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value).strip()
    return text or None


def label_strings(values: pd.Series | np.ndarray | list) -> np.ndarray:
    """Values as an object array of stripped label strings, None where missing.

    Shared with the preprocessor so categorical features and targets follow one rule. Each
    distinct value is converted once (factorize), so a million rows cost one pass in C.
    """
    codes, uniques = pd.factorize(pd.Series(values), use_na_sentinel=True)
    lookup = np.array([_label(u) for u in uniques] + [None], dtype=object)
    return lookup[codes]  # code -1 (missing) picks the trailing None


def _sort_key(label: str) -> tuple[int, float, str]:
    """Numeric labels sort by value ("2" before "10"), then text labels alphabetically."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


@dataclass(frozen=True)
class TargetEncoder:
    """Maps target values to what models train on, and back.

    Classification: int64 class indices (binary: 1 = the positive class). Regression: float32
    values scaled to zero mean and unit variance, which keeps the torch loss well conditioned.
    """

    task: str
    classes: tuple[str, ...] = ()
    positive_class: str | None = None
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task=}")
        if self.task == "regression":
            if self.classes or self.positive_class is not None:
                raise ValueError(f"a regression target has no classes, got {self.classes=}")
            if not (np.isfinite(self.std) and self.std > 0 and np.isfinite(self.mean)):
                raise ValueError(f"regression scaling must be finite, got {self.mean=} {self.std=}")
            return
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"need at least two distinct classes, got {self.classes=}")
        if self.task == "binary":
            if len(self.classes) != 2 or self.positive_class != self.classes[1]:
                raise ValueError(
                    "a binary target has two classes with the positive one last, got "
                    f"{self.classes=} {self.positive_class=}"
                )
        elif self.positive_class is not None:
            raise ValueError(f"only binary targets have a positive class, {self.positive_class=}")

    @property
    def n_classes(self) -> int:
        """Number of classes; 0 for regression."""
        return len(self.classes)

    @property
    def d_out(self) -> int:
        """Number of model outputs: one logit for binary, one per class, one value."""
        return len(self.classes) if self.task == "multiclass" else 1

    @classmethod
    def fit(
        cls, y: pd.Series, task: str | None = None, positive: str | None = None
    ) -> TargetEncoder:
        """Learn the task, classes and scaling from training targets.

        Without `task`: numeric with more than 20 distinct values -> regression, two values ->
        binary, 3..50 -> multiclass. The binary positive class defaults to the minority class
        (ties: the one sorted last) because that is usually the event a business acts on.
        """
        if task is not None and task not in TASKS:
            raise ValueError(f"task must be one of {TASKS} or None, got {task=}")
        if len(y) == 0:
            raise ValueError("the target column is empty")
        numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
        labels = label_strings(y)
        missing = int(sum(v is None for v in labels))
        if missing:
            raise ValueError(f"the target has {missing} missing values; drop those rows first")
        counts = pd.Series(labels, dtype=object).value_counts()
        if len(counts) == 1:
            raise ValueError(f"target has one class ({counts.index[0]!r}); nothing to predict")
        task = task or _infer_task(numeric, len(counts))
        if positive is not None and task != "binary":
            raise ValueError(f"a positive class only applies to binary targets, {positive=}")
        if task == "regression":
            return cls._fit_regression(y, numeric)
        if len(counts) > MAX_CLASSES:
            raise ValueError(f"the target has {len(counts)} classes; at most {MAX_CLASSES}")
        ordered = tuple(sorted(counts.index, key=_sort_key))
        if task == "multiclass":
            return cls(task="multiclass", classes=ordered)
        if len(ordered) != 2:
            raise ValueError(f"a binary target needs exactly two classes, found {len(ordered)}")
        return cls._fit_binary(counts, ordered, positive)

    @classmethod
    def _fit_regression(cls, y: pd.Series, numeric: bool) -> TargetEncoder:
        if not numeric:
            raise ValueError(f"a regression target must be numeric, got {y.dtype=}")
        values = y.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError("the regression target contains infinite values")
        std = float(values.std())
        return cls(task="regression", mean=float(values.mean()), std=std if std > 0 else 1.0)

    @classmethod
    def _fit_binary(
        cls, counts: pd.Series, ordered: tuple[str, ...], positive: str | None
    ) -> TargetEncoder:
        if positive is None:
            # Minority first; among equal counts the label sorted last wins.
            positive = min(ordered, key=lambda c: (counts[c], -ordered.index(c)))
        else:
            positive = _label(positive)
            if positive not in ordered:
                raise ValueError(f"positive class not found in the target: {positive=} {ordered=}")
        negative = ordered[0] if ordered[1] == positive else ordered[1]
        return cls(task="binary", classes=(negative, positive), positive_class=positive)

    def encode(self, y: pd.Series | np.ndarray | list) -> np.ndarray:
        """Class indices (int64) or scaled values (float32); unknown labels raise ValueError."""
        if self.task == "regression":
            values = pd.to_numeric(pd.Series(y), errors="coerce").to_numpy(dtype=np.float64)
            if not np.isfinite(values).all():
                bad = np.flatnonzero(~np.isfinite(values))[:5].tolist()
                raise ValueError(f"the regression target is missing or not numeric at rows {bad}")
            return ((values - self.mean) / self.std).astype(np.float32)
        index = {label: i for i, label in enumerate(self.classes)}
        labels = label_strings(y)
        if any(v is None for v in labels):
            raise ValueError("the target has missing values; drop those rows first")
        unknown = sorted({v for v in labels if v not in index})
        if unknown:
            raise ValueError(f"target labels not seen in training: {unknown[:5]}")
        return np.fromiter((index[v] for v in labels), dtype=np.int64, count=len(labels))

    def decode(self, idx: np.ndarray) -> np.ndarray:
        """Class labels for class indices, or values in original units for regression."""
        idx = np.asarray(idx)
        if self.task == "regression":
            return idx.astype(np.float64) * self.std + self.mean
        return np.asarray(self.classes, dtype=object)[idx.astype(np.int64)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, read back by `from_dict`."""
        return {
            "task": self.task,
            "classes": list(self.classes),
            "positive_class": self.positive_class,
            "mean": self.mean,
            "std": self.std,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetEncoder:
        """Rebuild from `to_dict` output (validated again by the constructor)."""
        return cls(
            task=data["task"],
            classes=tuple(data.get("classes", ())),
            positive_class=data.get("positive_class"),
            mean=float(data.get("mean", 0.0)),
            std=float(data.get("std", 1.0)),
        )


def _infer_task(numeric: bool, n_distinct: int) -> str:
    if numeric and n_distinct > MAX_CLASSES_NUMERIC:
        return "regression"
    if n_distinct == 2:
        return "binary"
    if n_distinct <= MAX_CLASSES:
        return "multiclass"
    raise ValueError(
        f"cannot infer the task: the target is text with {n_distinct} distinct values "
        f"(at most {MAX_CLASSES} classes); choose another target or set the task"
    )
