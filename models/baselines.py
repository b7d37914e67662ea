"""Cheap baselines trained on the same encoded matrix Z as the FT-Transformer.

Both train on class indices (`TargetEncoder.encode`) or, for regression, on the target in its
original units: trees and ridge regression are indifferent to the target's scale, and this way
their outputs, trees and coefficients (what SHAP reads) need no unscaling. Both persist as text (LightGBM's model string, JSON coefficients), so loading a saved
model never unpickles anything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np
from scipy.special import expit, log_softmax, softmax
from sklearn.linear_model import LogisticRegression, Ridge
from threadpoolctl import threadpool_limits

_OBJECTIVES = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}
_OUTPUTS = ("proba", "logit", "value")


def _check_output(task: str, output: str) -> None:
    if output not in _OUTPUTS:
        raise ValueError(f"output must be one of {_OUTPUTS}, got {output=}")
    if task != "regression" and output == "value":
        raise ValueError(f"output='value' is for regression; use 'proba' or 'logit', {task=}")


# Small-data friendly: on the credit sample (5 seeds) this beat LightGBM's defaults (31
# leaves, all features) by ~0.006 ROC-AUC; see bench/train_bench.py. Trial 0 of tuning.
LIGHTGBM_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "lambda_l2": 1.0,
}


class LightGBMModel:
    """Gradient-boosted trees with LightGBM's native categorical splits on Z's code columns."""

    def __init__(self, booster: lgb.Booster, task: str) -> None:
        if task not in _OBJECTIVES:
            raise ValueError(f"unknown task {task=}")
        self.booster = booster
        self.task = task

    @classmethod
    def fit(
        cls,
        z_train: np.ndarray,
        y_train: np.ndarray,
        z_val: np.ndarray,
        y_val: np.ndarray,
        *,
        task: str,
        n_classes: int,
        categorical_indices: list[int],
        seed: int = 0,
        threads: int = 1,
        time_budget_s: float | None = None,
        settings: dict[str, Any] | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> LightGBMModel:
        """Train with early stopping on the validation loss; keep the best iteration only.

        `settings` override `LIGHTGBM_DEFAULTS` (tuning: models/tuning.py); a
        `bagging_fraction` below 1 bags every iteration. `sample_weight` weights training
        rows (class weights)."""
        if task not in _OBJECTIVES:
            raise ValueError(f"unknown task {task=}")
        params: dict[str, Any] = {
            "objective": _OBJECTIVES[task],
            **LIGHTGBM_DEFAULTS,
            **(settings or {}),
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,  # with deterministic=True: same trees on every run
            "num_threads": threads,  # explicit: LightGBM ignores OMP_NUM_THREADS
            "verbose": -1,
        }
        if task == "multiclass":
            params["num_class"] = n_classes
        if params.get("bagging_fraction", 1.0) < 1.0:
            params["bagging_freq"] = 1
        train = lgb.Dataset(
            z_train, y_train, weight=sample_weight, categorical_feature=categorical_indices
        )
        val = lgb.Dataset(z_val, y_val, reference=train, categorical_feature=categorical_indices)
        history: dict[str, dict[str, list[float]]] = {}
        callbacks: list[Callable[..., Any]] = [
            lgb.early_stopping(50, verbose=False),
            lgb.record_evaluation(history),
        ]
        if time_budget_s is not None:
            callbacks.append(_deadline_callback(time.perf_counter() + time_budget_s))
        booster = lgb.train(params, train, 2000, valid_sets=[val], callbacks=callbacks)
        losses = next(iter(history["valid_0"].values()))
        best = int(np.argmin(losses)) + 1
        # Re-reading the string drops the trees after the best iteration for good.
        return cls(lgb.Booster(model_str=booster.model_to_string(num_iteration=best)), task)

    def predict(self, z: np.ndarray, output: str = "proba") -> np.ndarray:
        """Binary: P(positive) or its logit [n]; multiclass: proba or log-proba [n, C];
        regression: the value [n] in the units it was trained on."""
        _check_output(self.task, output)
        if self.task == "regression":
            return np.asarray(self.booster.predict(z))
        if self.task == "binary":
            return np.asarray(self.booster.predict(z, raw_score=output == "logit"))
        raw = self.booster.predict(z, raw_score=True)
        return softmax(raw, axis=1) if output == "proba" else log_softmax(raw, axis=1)

    def to_bytes(self) -> bytes:
        """LightGBM's own text format."""
        return self.booster.model_to_string().encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, task: str) -> LightGBMModel:
        """Inverse of `to_bytes`."""
        return cls(lgb.Booster(model_str=data.decode("utf-8")), task)

    def n_params(self) -> int:
        """Tree nodes (splits + leaves): the closest thing trees have to a parameter count."""
        trees = self.booster.dump_model()["tree_info"]
        return int(sum(2 * t["num_leaves"] - 1 for t in trees))


def _deadline_callback(deadline: float) -> Callable[[Any], None]:
    def stop_at_deadline(env: Any) -> None:
        if time.perf_counter() >= deadline:
            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    # Run after record_evaluation (order 20) so the last tree's score is recorded.
    stop_at_deadline.order = 40  # type: ignore[attr-defined]
    return stop_at_deadline


class LinearModel:
    """Logistic regression (Ridge for regression) on a design matrix built from Z.

    Design: numerics median-imputed and standardised, a 0/1 indicator for each numeric column
    that had gaps in training, and a one-hot block per categorical (code 0 included). The
    fitted numbers live in a JSON dict and prediction is numpy over it.
    """

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.task: str = state["task"]
        self._impute = np.asarray(state["impute"], dtype=np.float64)
        self._mean = np.asarray(state["mean"], dtype=np.float64)
        self._scale = np.asarray(state["scale"], dtype=np.float64)
        self._coef = np.asarray(state["coef"], dtype=np.float64)
        self._intercept = np.asarray(state["intercept"], dtype=np.float64)

    @classmethod
    def fit(
        cls,
        z_train: np.ndarray,
        y_train: np.ndarray,
        *,
        task: str,
        n_numeric: int,
        cat_cardinalities: list[int],
        seed: int = 0,
        threads: int = 1,
        C: float = 1.0,
        class_weight: str | None = None,
    ) -> LinearModel:
        """Fit imputation, scaling and an L2-regularised linear model (C = 1 / alpha; tuning
        varies C); `class_weight="balanced"` weights classes by inverse frequency."""
        if not C > 0 or class_weight not in (None, "none", "balanced"):
            raise ValueError(f"C must be positive and class_weight None or 'balanced': {C=}")
        if task not in _OBJECTIVES:
            raise ValueError(f"unknown task {task=}")
        z = np.asarray(z_train, dtype=np.float64)
        numeric = z[:, :n_numeric]
        with np.errstate(all="ignore"):
            impute = np.nan_to_num(np.nanmedian(numeric, axis=0), nan=0.0)
        filled = np.where(np.isnan(numeric), impute, numeric)
        scale = filled.std(axis=0)
        state: dict[str, Any] = {
            "task": task,
            "n_numeric": n_numeric,
            "indicator_idx": np.flatnonzero(np.isnan(numeric).any(axis=0)).tolist(),
            "cat_cardinalities": list(cat_cardinalities),
            "impute": impute.tolist(),
            "mean": filled.mean(axis=0).tolist(),
            "scale": np.where(scale > 0, scale, 1.0).tolist(),
            "coef": [],
            "intercept": [],
        }
        model = cls(state)
        x = model.design(z)
        with threadpool_limits(limits=threads):
            if task == "regression":
                fitted = Ridge(alpha=1.0 / C).fit(x, y_train)
            else:
                weights = "balanced" if class_weight == "balanced" else None
                fitted = LogisticRegression(
                    C=C, class_weight=weights, max_iter=2000, random_state=seed
                )
                fitted.fit(x, y_train)
        state["coef"] = np.atleast_2d(fitted.coef_).tolist()
        state["intercept"] = np.atleast_1d(fitted.intercept_).tolist()
        return cls(state)

    def design(self, z: np.ndarray) -> np.ndarray:
        """Z -> the design matrix X the linear model was fitted on."""
        z = np.asarray(z, dtype=np.float64)
        n_num = self.state["n_numeric"]
        cards = self.state["cat_cardinalities"]
        if z.ndim != 2 or z.shape[1] != n_num + len(cards):
            raise ValueError(f"Z must have {n_num + len(cards)} columns, got {z.shape=}")
        numeric = z[:, :n_num]
        missing = np.isnan(numeric)
        standard = (np.where(missing, self._impute, numeric) - self._mean) / self._scale
        blocks = [standard, missing[:, self.state["indicator_idx"]].astype(np.float64)]
        for j, card in enumerate(cards):
            codes = np.nan_to_num(z[:, n_num + j], nan=0.0).astype(np.int64)
            codes[(codes < 0) | (codes >= card)] = 0
            blocks.append(np.eye(card)[codes])
        return np.concatenate(blocks, axis=1)

    def feature_groups(self) -> list[int]:
        """For each design column, the index of the Z column it came from (to group SHAP)."""
        n_num = self.state["n_numeric"]
        groups = list(range(n_num)) + list(self.state["indicator_idx"])
        for j, card in enumerate(self.state["cat_cardinalities"]):
            groups += [n_num + j] * card
        return groups

    def linear_parts(self) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray, np.ndarray]:
        """(design_fn, coef, intercept) with output = design_fn(Z) @ coef.T + intercept.

        coef is [p] and intercept [1] for binary (the logit) and regression (the value);
        [C, p] and [C] for multiclass (per-class logits).
        """
        coef = self._coef if self.task == "multiclass" else self._coef[0]
        return self.design, coef.copy(), self._intercept.copy()

    def predict(self, z: np.ndarray, output: str = "proba") -> np.ndarray:
        """Same contract as `LightGBMModel.predict`."""
        _check_output(self.task, output)
        logits = self.design(z) @ self._coef.T + self._intercept
        if self.task != "multiclass":
            logits = logits[:, 0]
        if self.task == "regression" or output == "logit":
            return log_softmax(logits, axis=1) if self.task == "multiclass" else logits
        if self.task == "binary":
            return expit(logits)
        return softmax(logits, axis=1)

    def to_bytes(self) -> bytes:
        """The fitted state as JSON."""
        return json.dumps(self.state, allow_nan=False).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> LinearModel:
        """Inverse of `to_bytes`."""
        return cls(json.loads(data.decode("utf-8")))

    def n_params(self) -> int:
        """Coefficients plus intercepts."""
        return int(self._coef.size + self._intercept.size)
