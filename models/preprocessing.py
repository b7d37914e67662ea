"""Feature preprocessing shared by every tabular model, stored as JSON.

Two stages, kept apart on purpose:

1. `encode(df) -> Z`: one float64 column per original feature (numeric: raw value, NaN when
   missing; categorical: vocabulary code, 0 = missing/unseen). Every model and every SHAP
   explainer works on Z, so explanations stay in the space of the columns the analyst knows.
2. `to_model_inputs(Z)`: what the FT-Transformer eats: quantile-normal numerics plus missing
   indicators, and int64 category codes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from models.tasks import label_strings

FORMAT_VERSION = 1
MAX_QUANTILES = 1000
# Keeps ndtri finite: the extremes map to about +/-5.2 standard deviations.
_UNIFORM_EPS = 1e-7
# Shown to users for code 0; encoding it again gives 0, so a round trip stays stable.
UNKNOWN_LABEL = "(missing or unseen)"
_DECILES = np.linspace(0.0, 1.0, 11)


@dataclass(frozen=True)
class FeatureSpec:
    """Which columns are features, and how each is treated. `columns` is Z's column order."""

    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "numeric", tuple(self.numeric))
        object.__setattr__(self, "categorical", tuple(self.categorical))
        columns = self.columns
        if not columns:
            raise ValueError("a model needs at least one feature column")
        duplicates = sorted({c for c in columns if columns.count(c) > 1})
        if duplicates:
            raise ValueError(f"feature columns listed twice: {duplicates=}")

    @property
    def columns(self) -> tuple[str, ...]:
        """Numeric columns first, then categorical ones: the column order of Z."""
        return self.numeric + self.categorical

    def to_dict(self) -> dict[str, list[str]]:
        """JSON-safe form."""
        return {"numeric": list(self.numeric), "categorical": list(self.categorical)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        """Inverse of `to_dict`."""
        return cls(numeric=tuple(data["numeric"]), categorical=tuple(data["categorical"]))


def numeric_values(series: pd.Series, column: str) -> np.ndarray:
    """A column as float64, NaN for missing and +/-inf; non-numeric text raises ValueError.

    Silently coercing "12,5" or "n/a " to NaN would hide a broken upload, so the analyst is
    told which column and rows to fix instead.
    """
    if pd.api.types.is_bool_dtype(series):
        values = series.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    elif pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        text = series.astype("string").str.strip()
        present = text.notna() & (text != "")
        coerced = pd.to_numeric(text.where(present), errors="coerce")
        bad = present & coerced.isna()
        if bad.any():
            rows = series.index[bad.to_numpy()][:5].tolist()
            example = series[bad].iloc[0]
            raise ValueError(
                f"column {column!r} should be numeric but has text such as {example!r} "
                f"at rows {rows}"
            )
        values = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    values = values.copy()
    values[~np.isfinite(values)] = np.nan
    return values


class _QuantileNormal:
    """Maps values through the training CDF to a standard normal; NaN stays NaN.

    Averaging interpolation from both ends (as scikit-learn's QuantileTransformer does) puts a
    value repeated across many quantiles (e.g. Debt = 0) in the middle of its range. The
    reversed tables are built once: scoring calls this for every small SHAP batch.
    """

    def __init__(self, quantiles: np.ndarray) -> None:
        self.degenerate = quantiles.size < 2 or quantiles[0] == quantiles[-1]
        self.quantiles = quantiles
        self.refs = np.linspace(0.0, 1.0, quantiles.size)
        self.neg_quantiles = -quantiles[::-1]
        self.neg_refs = -self.refs[::-1]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.degenerate:
            return np.where(np.isnan(x), np.nan, 0.0)
        forward = np.interp(x, self.quantiles, self.refs)
        backward = -np.interp(-x, self.neg_quantiles, self.neg_refs)
        uniform = np.clip(0.5 * (forward + backward), _UNIFORM_EPS, 1.0 - _UNIFORM_EPS)
        return ndtri(uniform)


class TabularPreprocessor:
    """Learns numeric quantiles, categorical vocabularies and training statistics."""

    def __init__(self) -> None:
        self.spec: FeatureSpec | None = None
        self._quantiles: dict[str, np.ndarray] = {}
        self._normalisers: dict[str, _QuantileNormal] = {}
        self._indicator_columns: tuple[str, ...] = ()
        self._vocab: dict[str, list[str]] = {}
        self._stats: dict[str, Any] = {}

    # ----- fitting -----------------------------------------------------------------------
    def fit(self, df: pd.DataFrame, spec: FeatureSpec) -> TabularPreprocessor:
        """Learn everything from the training rows only (never validation/test rows)."""
        if len(df) == 0:
            raise ValueError("cannot fit the preprocessor on an empty table")
        _require_columns(df, spec)
        self.spec = spec
        numeric = {c: numeric_values(df[c], c) for c in spec.numeric}
        self._set_quantiles({c: _fit_quantiles(v) for c, v in numeric.items()})
        self._indicator_columns = tuple(c for c, v in numeric.items() if np.isnan(v).any())
        self._vocab = {c: _fit_vocabulary(df[c]) for c in spec.categorical}
        z = self.encode(df)
        self._stats = self._fit_stats(z)
        return self

    def _fit_stats(self, z: np.ndarray) -> dict[str, Any]:
        spec = self._spec()
        stats: dict[str, Any] = {"n_rows": int(z.shape[0]), "numeric": {}, "categorical": {}}
        for j, column in enumerate(spec.numeric):
            stats["numeric"][column] = _numeric_stats(z[:, j])
        for j, column in enumerate(spec.categorical, start=len(spec.numeric)):
            codes = z[:, j].astype(np.int64)
            counts = np.bincount(codes, minlength=len(self._vocab[column]) + 1)
            stats["categorical"][column] = {
                "frequencies": (counts / counts.sum()).tolist(),
                "mode_code": int(np.argmax(counts[1:]) + 1) if counts[1:].sum() else 0,
            }
        return stats

    # ----- encoding ----------------------------------------------------------------------
    def encode(self, df: pd.DataFrame) -> np.ndarray:
        """Z: float64 [n_rows, n_features] in `spec.columns` order (see module docstring)."""
        spec = self._spec()
        _require_columns(df, spec)
        z = np.empty((len(df), len(spec.columns)), dtype=np.float64)
        for j, column in enumerate(spec.numeric):
            z[:, j] = numeric_values(df[column], column)
        for j, column in enumerate(spec.categorical, start=len(spec.numeric)):
            z[:, j] = self._codes(df[column], column)
        return z

    def _codes(self, series: pd.Series, column: str) -> np.ndarray:
        labels = label_strings(series)
        codes = pd.Categorical(labels, categories=self._vocab[column]).codes
        return codes.astype(np.float64) + 1.0  # -1 (missing or unseen) becomes 0

    def unseen_counts(self, df: pd.DataFrame) -> dict[str, int]:
        """Per categorical column: non-missing values that training never saw."""
        spec = self._spec()
        _require_columns(df, spec)
        counts = {}
        for column in spec.categorical:
            labels = label_strings(df[column])
            present = np.array([v is not None for v in labels], dtype=bool)
            known = pd.Categorical(labels, categories=self._vocab[column]).codes >= 0
            counts[column] = int((present & ~known).sum())
        return counts

    def to_model_inputs(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x_cont float32 [n, n_cont], x_cat int64 [n, n_cat]) for the FT-Transformer.

        x_cont = quantile-normal numerics (missing -> 0, the training median) followed by one
        0/1 missing indicator per numeric column that had missing values in training.
        Category codes outside the vocabulary (e.g. from a SHAP perturbation) become 0.
        """
        spec = self._spec()
        z = self._check_z(z)
        n_num = len(spec.numeric)
        normal = [self._normalisers[c](z[:, j]) for j, c in enumerate(spec.numeric)]
        indicators = [np.isnan(z[:, spec.numeric.index(c)]) for c in self._indicator_columns]
        x_cont = np.empty((z.shape[0], self.n_cont), dtype=np.float32)
        for j, column_values in enumerate(normal + indicators):
            x_cont[:, j] = column_values
        x_cont[np.isnan(x_cont)] = 0.0
        x_cat = np.nan_to_num(z[:, n_num:], nan=0.0).astype(np.int64)
        sizes = np.asarray(self.cat_cardinalities, dtype=np.int64)
        x_cat[(x_cat < 0) | (x_cat >= sizes)] = 0
        return x_cont, x_cat

    def _check_z(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        width = len(self._spec().columns)
        if z.ndim != 2 or z.shape[1] != width:
            raise ValueError(f"Z must have shape [n_rows, {width}], got {z.shape=}")
        return z

    # ----- descriptions ------------------------------------------------------------------
    @property
    def n_cont(self) -> int:
        """Continuous inputs of the FT-Transformer: numerics plus missing indicators."""
        return len(self._spec().numeric) + len(self._indicator_columns)

    @property
    def indicator_columns(self) -> tuple[str, ...]:
        """Numeric columns that get a missing-value indicator (they had gaps in training)."""
        return self._indicator_columns

    @property
    def cat_cardinalities(self) -> list[int]:
        """Vocabulary size + 1 per categorical column (slot 0 = missing or unseen)."""
        return [len(self._vocab[c]) + 1 for c in self._spec().categorical]

    @property
    def vocabularies(self) -> dict[str, list[str]]:
        """Per categorical column, the labels of codes 1..k."""
        return {c: list(v) for c, v in self._vocab.items()}

    @property
    def training_stats(self) -> dict[str, Any]:
        """JSON-safe training statistics for drift checks and the what-if editor.

        numeric[col]: median, mean, min, max, missing_rate, deciles (11 edges) and
        decile_fractions (share of non-missing training rows per decile bin; ties make them
        uneven). categorical[col]: frequencies (index = code, 0 = missing) and mode_code.
        """
        return _json_copy(self._stats)

    def typical_row(self) -> dict[str, Any]:
        """A typical profile: median of each numeric, most frequent label of each category."""
        spec = self._spec()
        row: dict[str, Any] = {c: self._stats["numeric"][c]["median"] for c in spec.numeric}
        for column in spec.categorical:
            code = self._stats["categorical"][column]["mode_code"]
            row[column] = self.decode_categorical(column, np.array([code]))[0]
        return row

    def decode_categorical(self, column: str, codes: np.ndarray) -> np.ndarray:
        """Labels for codes of one categorical column; code 0 reads as UNKNOWN_LABEL."""
        if column not in self._vocab:
            raise ValueError(f"not a categorical feature: {column=}")
        lookup = np.array([UNKNOWN_LABEL, *self._vocab[column]], dtype=object)
        idx = np.nan_to_num(np.asarray(codes, dtype=np.float64), nan=0.0).astype(np.int64)
        idx[(idx < 0) | (idx >= lookup.size)] = 0
        return lookup[idx]

    # ----- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, read back by `from_dict`."""
        spec = self._spec()
        return {
            "format_version": FORMAT_VERSION,
            "spec": spec.to_dict(),
            "quantiles": {c: q.tolist() for c, q in self._quantiles.items()},
            "indicator_columns": list(self._indicator_columns),
            "vocabularies": self.vocabularies,
            "training_stats": self.training_stats,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TabularPreprocessor:
        """Inverse of `to_dict`; refuses a format it does not know."""
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unknown preprocessor format: {data.get('format_version')=}")
        pre = cls()
        pre.spec = FeatureSpec.from_dict(data["spec"])
        pre._set_quantiles(
            {c: np.asarray(q, dtype=np.float64) for c, q in data["quantiles"].items()}
        )
        pre._indicator_columns = tuple(data["indicator_columns"])
        pre._vocab = {c: list(v) for c, v in data["vocabularies"].items()}
        pre._stats = _json_copy(data["training_stats"])
        missing = set(pre.spec.numeric) - set(pre._quantiles)
        missing |= set(pre.spec.categorical) - set(pre._vocab)
        if missing:
            raise ValueError(f"preprocessor data lacks columns: {sorted(missing)}")
        return pre

    def _set_quantiles(self, quantiles: dict[str, np.ndarray]) -> None:
        self._quantiles = quantiles
        self._normalisers = {c: _QuantileNormal(q) for c, q in quantiles.items()}

    def _spec(self) -> FeatureSpec:
        if self.spec is None:
            raise ValueError("the preprocessor is not fitted yet; call fit() first")
        return self.spec


def decile_bins(values: np.ndarray, deciles: np.ndarray | list[float]) -> np.ndarray:
    """Bin index 0..9 of each value against the 11 training decile edges.

    Drift checks (PSI) must bin new data exactly as `training_stats` binned the training
    data, so the rule lives here: a value equal to an edge goes to the bin that starts there.
    """
    edges = np.asarray(deciles, dtype=np.float64)
    if edges.size < 2:  # the column had no values in training: everything shares one bin
        return np.zeros(np.shape(values), dtype=np.int64)
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, edges.size - 2)


def _require_columns(df: pd.DataFrame, spec: FeatureSpec) -> None:
    missing = [c for c in spec.columns if c not in df.columns]
    if missing:
        raise ValueError(f"the table lacks feature columns the model needs: {missing}")


def _fit_quantiles(values: np.ndarray) -> np.ndarray:
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return np.empty(0, dtype=np.float64)
    n_q = int(min(MAX_QUANTILES, finite.size))
    return np.quantile(finite, np.linspace(0.0, 1.0, max(n_q, 2)))


def _fit_vocabulary(series: pd.Series) -> list[str]:
    """Sorted distinct labels: a stable order, so the same data gives the same codes."""
    labels = {v for v in label_strings(series) if v is not None}
    return sorted(labels)


def _numeric_stats(values: np.ndarray) -> dict[str, Any]:
    finite = values[~np.isnan(values)]
    missing_rate = float(1.0 - finite.size / max(values.size, 1))
    if finite.size == 0:
        empty: dict[str, Any] = dict.fromkeys(("median", "mean", "min", "max"))
        return {**empty, "missing_rate": missing_rate, "deciles": [], "decile_fractions": []}
    deciles = np.quantile(finite, _DECILES)
    bins = decile_bins(finite, deciles)
    return {
        "median": float(np.median(finite)),
        "mean": float(finite.mean()),
        "min": float(finite.min()),
        "max": float(finite.max()),
        "missing_rate": missing_rate,
        "deciles": deciles.tolist(),
        "decile_fractions": (np.bincount(bins, minlength=10) / finite.size).tolist(),
    }


def _json_copy(data: dict[str, Any]) -> dict[str, Any]:
    """Deep copy of plain JSON data, so callers cannot mutate the fitted state."""
    return json.loads(json.dumps(data))
