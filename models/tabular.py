"""The one entry point core/ uses for tabular models: fit, predict, save, load.

Every kind consumes the same encoded matrix Z (see models/preprocessing.py), so scoring,
explanations and the leaderboard treat FT-Transformer, LightGBM and logistic regression alike.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.special import expit, log_softmax, softmax
from scipy.stats import rankdata

from models.artifacts import (
    ArtifactError,
    bytes_to_state_dict,
    read_artifact,
    state_dict_to_bytes,
    write_artifact,
)
from models.baselines import LIGHTGBM_DEFAULTS, LightGBMModel, LinearModel
from models.ft_transformer import (
    ARCHITECTURE_KEYS,
    SIZE_PRESETS,
    TRAINING_DEFAULTS,
    build_ft_transformer,
    model_inputs,
)
from models.measure import flops_per_row, resolve_device
from models.metrics import HEADLINE
from models.preprocessing import FeatureSpec, TabularPreprocessor
from models.tasks import TargetEncoder
from models.training_loop import (
    EpochReport,
    LoopConfig,
    LoopResult,
    fit_torch_model,
    iterate_minibatches,
    warm_up_optimizer,
)
from models.tuning import (
    MAX_TRIALS,
    BudgetTooSmall,
    Candidate,
    TrialReporter,
    ft_space,
    lightgbm_space,
    linear_space,
    tune,
)

# The models layer's own estimator ids (core/kinds maps the app's model kinds onto them).
MODEL_KINDS = ("ft_transformer", "gbdt", "linear")
Output = Literal["proba", "logit", "value"]
_WEIGHT_FILES = {
    "ft_transformer": "weights.safetensors",
    "gbdt": "lightgbm.txt",
    "linear": "linear.json",
}


class FittedTabularModel:
    """A trained model with everything needed to score raw rows.

    `estimator` is the underlying object: a torch module (FT-Transformer, in eval mode), a
    `LightGBMModel` (its `.booster` suits shap's TreeExplainer) or a `LinearModel`.
    """

    def __init__(
        self,
        kind: str,
        size: str | None,
        spec: FeatureSpec,
        target: TargetEncoder,
        preprocessor: TabularPreprocessor,
        estimator: Any,
        device: str = "cpu",
        architecture: dict[str, Any] | None = None,
    ) -> None:
        if kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {kind=}; choose from {MODEL_KINDS}")
        self.kind = kind
        self.size = size
        # FT-Transformer depth / width / dropouts that tuning changed from the preset.
        self.architecture = dict(architecture) if architecture else None
        self.spec = spec
        self.target = target
        self.preprocessor = preprocessor
        self.estimator = estimator
        self.device = device
        if kind == "ft_transformer":
            estimator.to(device).eval()

    # ----- prediction --------------------------------------------------------------------
    def predict_encoded(
        self, z: np.ndarray, *, output: Output = "proba", batch_size: int | None = None
    ) -> np.ndarray:
        """Predictions for Z rows.

        batch_size: rows per FT-Transformer forward pass; None picks a cache-sized batch on
        the CPU and a large one on CUDA (`inference_batch_rows`).

        Binary: P(positive) [n] ("proba") or its log-odds ("logit"). Multiclass: [n, C] proba
        or log-proba. Regression: the value in original units, whatever `output` says (it
        has one output), so generic callers can use the default.
        """
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size=}")
        task = self.target.task
        if output not in ("proba", "logit", "value"):
            raise ValueError(f"output must be 'proba', 'logit' or 'value', got {output=}")
        if task != "regression" and output == "value":
            raise ValueError(f"output='value' is for regression models; this one is {task=}")
        output = "value" if task == "regression" else output
        if self.kind == "ft_transformer":
            return self._predict_torch(np.asarray(z, dtype=np.float64), output, batch_size)
        z = self._check_z(z)
        return np.asarray(self.estimator.predict(z, output=output), dtype=np.float64)

    def _check_z(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        width = len(self.spec.columns)
        if z.ndim != 2 or z.shape[1] != width:
            raise ValueError(f"Z must have shape [n_rows, {width}], got {z.shape=}")
        return z

    def _predict_torch(self, z: np.ndarray, output: str, batch_size: int | None) -> np.ndarray:
        if batch_size is None:
            batch_size = self.inference_batch_rows()
        raw = _torch_outputs(self.estimator, self.preprocessor, z, batch_size, self.device)
        return _transform_outputs(raw, self.target, output)

    def inference_batch_rows(self) -> int:
        """Rows per FT-Transformer forward pass when the caller does not say."""
        tokens = len(self.spec.columns) + 1  # one token per column, plus [CLS]
        return inference_batch_rows(tokens, _d_block(self.estimator), self.device)

    def predict_frame(self, df: pd.DataFrame, *, output: Output = "proba") -> np.ndarray:
        """`predict_encoded(preprocessor.encode(df))`: raw rows in, predictions out."""
        return self.predict_encoded(self.preprocessor.encode(df), output=output)

    # ----- description -------------------------------------------------------------------
    def n_params(self) -> int:
        """Trainable parameters (tree nodes for LightGBM, coefficients for logreg)."""
        if self.kind == "ft_transformer":
            return int(sum(p.numel() for p in self.estimator.parameters()))
        return self.estimator.n_params()

    def flops_per_row(self) -> float | None:
        """Forward FLOPs per row; None for trees (no matmuls to count)."""
        if self.kind == "gbdt":
            return None
        if self.kind == "linear":
            return float(2 * self.estimator.n_params())
        x_cont = torch.zeros(8, self.preprocessor.n_cont, device=self.device)
        x_cat = torch.zeros(8, len(self.spec.categorical), dtype=torch.long, device=self.device)
        return flops_per_row(self.estimator, model_inputs(x_cont, x_cat))

    def linear_parts(self) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray, np.ndarray]:
        """For logreg: (design_fn, coef, intercept); see `LinearModel.linear_parts`."""
        if self.kind != "linear":
            raise ValueError(f"linear_parts only exists for logreg models, not {self.kind=}")
        return self.estimator.linear_parts()

    # ----- persistence -------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write the artifact folder (atomically; an existing folder is an ArtifactError)."""
        config = {
            "kind": self.kind,
            "size": self.size,
            "spec": self.spec.to_dict(),
            "target": self.target.to_dict(),
        }
        if self.architecture:
            config["architecture"] = self.architecture
        files = {
            "model.json": _json_bytes(config),
            "preprocessing.json": _json_bytes(self.preprocessor.to_dict()),
            _WEIGHT_FILES[self.kind]: self._estimator_bytes(),
        }
        manifest = {"kind": self.kind, "size": self.size, "task": self.target.task}
        write_artifact(Path(folder), files, manifest)

    def _estimator_bytes(self) -> bytes:
        if self.kind == "ft_transformer":
            return state_dict_to_bytes(self.estimator.state_dict())
        return self.estimator.to_bytes()

    @classmethod
    def load(
        cls, folder: Path, device: str = "cpu", legacy_kind: str | None = None
    ) -> FittedTabularModel:
        """Verify (sha256, format version) and rebuild a saved model on `device` ("auto" ok).

        `legacy_kind`: the estimator id to read an older artifact as, whose config names the
        app's model kind instead of an estimator id."""
        _, files = read_artifact(Path(folder))
        try:
            config = json.loads(files["model.json"])
            kind = config["kind"]
            kind = kind if kind in MODEL_KINDS else legacy_kind or kind
            spec = FeatureSpec.from_dict(config["spec"])
            target = TargetEncoder.from_dict(config["target"])
            pre = TabularPreprocessor.from_dict(json.loads(files["preprocessing.json"]))
            weights = files[_WEIGHT_FILES[kind]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(
                f"artifact {folder} is not a complete tabular model: {exc}"
            ) from exc
        arch = config.get("architecture")
        estimator = _load_estimator(kind, config.get("size"), weights, pre, target, arch)
        return cls(
            kind, config.get("size"), spec, target, pre, estimator, resolve_device(device), arch
        )


@dataclass
class FitResult:
    """A fitted model plus what its training cost (loop is None for the baselines).

    `tuning`: what tuning spent and found (`TuningReport.to_dict()`), None when not tuned."""

    model: FittedTabularModel
    loop: LoopResult | None
    train_seconds: float
    params: int
    flops_per_row: float | None
    tuning: dict[str, Any] | None = field(default=None)


def fit_tabular(
    kind: str,
    *,
    train_df: pd.DataFrame,
    y_train: pd.Series,
    val_df: pd.DataFrame,
    y_val: pd.Series,
    spec: FeatureSpec,
    target: TargetEncoder,
    size: str = "small",
    seed: int = 0,
    time_budget_s: float | None = 120,
    device: str = "cpu",
    threads: int = 1,
    on_epoch: Callable[[EpochReport], bool | None] | None = None,
    tune: bool = False,
    max_trials: int = MAX_TRIALS,
    should_stop: Callable[[], bool] | None = None,
) -> FitResult:
    """Fit the preprocessor on `train_df` only, then the model; validation drives early stopping.

    `device` may be "auto". `size`, `time_budget_s` (checked between batches) and `on_epoch`
    apply to the FT-Transformer; LightGBM honours the time budget between trees; logreg
    ignores both. A budget too small for one FT-Transformer epoch is a ValueError that
    states the minimum.

    `tune=True`: the whole time budget goes to tuning the family on the validation part
    (models/tuning.py: at most `max_trials` trials, the defaults first); `should_stop` is
    checked between trials, and `FitResult.tuning` says what was spent.
    """
    _check_fit_args(kind, size, train_df, y_train, val_df, y_val, threads)
    device = resolve_device(device)
    start = time.perf_counter()
    pre = TabularPreprocessor().fit(train_df, spec)
    z_train, z_val = pre.encode(train_df), pre.encode(val_df)
    y_tr, y_va = target.encode(y_train), target.encode(y_val)
    data = _Data(pre, target, spec, z_train, y_tr, z_val, y_va, seed, device, threads)
    loop = None
    tuned = None
    if tune:
        tuned = _fit_tuned(kind, data, size, time_budget_s, max_trials, on_epoch, should_stop)
        estimator, loop = tuned.estimator, tuned.loop
    elif kind == "ft_transformer":
        params = ft_default_params(size, len(y_tr), target.task)
        estimator, loop = _fit_ft(data, size, params, time_budget_s, on_epoch)
    elif kind == "gbdt":
        estimator = _fit_lightgbm(data, {}, time_budget_s)
    else:
        estimator = _fit_linear(data, {})
    model = FittedTabularModel(
        kind,
        size if kind == "ft_transformer" else None,
        spec,
        target,
        pre,
        estimator,
        device,
        architecture=tuned.architecture if tuned else None,
    )
    return FitResult(
        model=model,
        loop=loop,
        train_seconds=time.perf_counter() - start,
        params=model.n_params(),
        flops_per_row=model.flops_per_row(),
        tuning=tuned.report if tuned else None,
    )


@dataclass
class _Data:
    """The encoded parts and fixed settings every fit of one run shares."""

    pre: TabularPreprocessor
    target: TargetEncoder
    spec: FeatureSpec
    z_train: np.ndarray
    y_train: np.ndarray
    z_val: np.ndarray
    y_val: np.ndarray
    seed: int
    device: str
    threads: int


@dataclass
class _Tuned:
    estimator: Any
    loop: LoopResult | None
    architecture: dict[str, Any] | None
    report: dict[str, Any]


def _check_fit_args(
    kind: str,
    size: str,
    train_df: pd.DataFrame,
    y_train: pd.Series,
    val_df: pd.DataFrame,
    y_val: pd.Series,
    threads: int,
) -> None:
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind=}; choose from {MODEL_KINDS}")
    if kind == "ft_transformer" and size not in SIZE_PRESETS:
        raise ValueError(f"unknown FT-Transformer size {size=}; choose from {list(SIZE_PRESETS)}")
    if len(train_df) == 0 or len(val_df) == 0:
        raise ValueError(f"need training and validation rows, got {len(train_df)=} {len(val_df)=}")
    if len(train_df) != len(y_train) or len(val_df) != len(y_val):
        raise ValueError(
            f"features and target differ in length: {len(train_df)=} {len(y_train)=} "
            f"{len(val_df)=} {len(y_val)=}"
        )
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads=}")


def _baseline_target(target: TargetEncoder, encoded: np.ndarray) -> np.ndarray:
    """Baselines learn regression in original units (see models/baselines.py)."""
    return target.decode(encoded) if target.task == "regression" else encoded


def _class_weights(target: TargetEncoder, y: np.ndarray) -> np.ndarray:
    """Inverse-frequency ("balanced") weight per class: n / (n_classes x n_c)."""
    counts = np.bincount(y, minlength=target.n_classes).astype(np.float64)
    return len(y) / (target.n_classes * np.maximum(counts, 1.0))


def validation_score(target: TargetEncoder, y_val: np.ndarray, prediction: np.ndarray) -> float:
    """The headline metric on validation rows, higher = better: ROC-AUC (binary; -log-loss
    when the part has one class), accuracy (multiclass), -RMSE in original units.

    `y_val` is encoded (class index, or the scaled regression value); `prediction` is
    P(positive) / class probabilities / the value in original units. Computed with numpy
    (it runs at every evaluation of every trial); equal to models/metrics.py's figures."""
    prediction = np.asarray(prediction, dtype=np.float64)
    if target.task == "regression":
        return -float(np.sqrt(np.mean((target.decode(y_val) - prediction) ** 2)))
    if target.task == "multiclass":
        return float(np.mean(prediction.argmax(axis=1) == y_val))
    positive = y_val == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return -_log_loss(target, y_val, prediction)
    ranks = rankdata(prediction)  # average ranks for ties: the Mann-Whitney form of ROC-AUC
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _log_loss(target: TargetEncoder, y: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes (probabilities clipped at 1e-15)."""
    p = np.column_stack([1 - proba, proba]) if target.task == "binary" else proba
    picked = np.clip(p[np.arange(len(y)), y], 1e-15, 1.0)
    return float(-np.mean(np.log(picked)))


# ----- baselines -----------------------------------------------------------------------------
def _fit_lightgbm(
    data: _Data, settings: dict[str, Any], time_budget_s: float | None
) -> LightGBMModel:
    """LightGBM with `settings` over its defaults; "class_weight": "balanced" weights rows."""
    settings = dict(settings)
    balanced = settings.pop("class_weight", "none") == "balanced"
    weights = _class_weights(data.target, data.y_train)[data.y_train] if balanced else None
    return LightGBMModel.fit(
        data.z_train,
        _baseline_target(data.target, data.y_train),
        data.z_val,
        _baseline_target(data.target, data.y_val),
        task=data.target.task,
        n_classes=data.target.n_classes,
        categorical_indices=list(range(len(data.spec.numeric), len(data.spec.columns))),
        seed=data.seed,
        threads=data.threads,
        time_budget_s=time_budget_s,
        settings=settings,
        sample_weight=weights,
    )


def _fit_linear(data: _Data, settings: dict[str, Any]) -> LinearModel:
    return LinearModel.fit(
        data.z_train,
        _baseline_target(data.target, data.y_train),
        task=data.target.task,
        n_numeric=len(data.spec.numeric),
        cat_cardinalities=data.pre.cat_cardinalities,
        seed=data.seed,
        threads=data.threads,
        C=float(settings.get("C", 1.0)),
        class_weight=settings.get("class_weight"),
    )


# ----- tuning --------------------------------------------------------------------------------
def _fit_tuned(
    kind: str,
    data: _Data,
    size: str,
    time_budget_s: float | None,
    max_trials: int,
    on_epoch: Callable[[EpochReport], bool | None] | None,
    should_stop: Callable[[], bool] | None,
) -> _Tuned:
    """Tune `kind` on the validation part within `time_budget_s` (models/tuning.py)."""
    if time_budget_s is None:
        raise ValueError("tuning needs a time budget: set time_budget_s")
    task = data.target.task
    classification = task != "regression"
    cancelled = False
    rows_seen = 0  # by every FT-Transformer trial: the run's throughput counts them all
    if kind == "ft_transformer":
        warm_up_optimizer()  # a one-off import, not tuning time
    started = time.perf_counter()

    def stop() -> bool:
        return cancelled or (should_stop is not None and should_stop())

    if kind == "ft_transformer":
        defaults = ft_default_params(size, len(data.y_train), task)
        preset = {**SIZE_PRESETS[size], "batch_size": defaults["batch_size"]}
        evaluations, trials = 0, 0

        def space(trial: Any) -> dict[str, Any]:
            return ft_space(trial, preset, n_train=len(data.y_train), classification=classification)

        def fit(params: dict[str, Any], seconds: float, reporter: TrialReporter) -> Candidate:
            nonlocal cancelled, rows_seen, trials
            batch = min(int(params["batch_size"]), len(data.y_train))
            trial_steps, trial = 0, trials
            trials += 1

            def trial_epoch(report: EpochReport) -> bool:
                nonlocal evaluations, trial_steps
                evaluations += 1
                trial_steps = report.step
                elapsed = time.perf_counter() - started
                overall = EpochReport(
                    epoch=evaluations,
                    train_loss=report.train_loss,
                    val_loss=report.val_loss,
                    val_metric=report.val_metric,
                    best_val_metric=report.best_val_metric,
                    elapsed_s=elapsed,
                    eta_s=max(time_budget_s - elapsed, 0.0),
                    step=report.step,
                    trial=trial,
                )
                if on_epoch is not None and on_epoch(overall) is False:
                    return False
                reporter.report(report.epoch, report.best_val_metric)
                return True

            try:
                module, loop = _fit_ft(data, size, params, seconds, trial_epoch)
            except BaseException:
                rows_seen += trial_steps * batch  # a pruned or failed trial trained too
                raise
            rows_seen += loop.rows_seen
            cancelled = cancelled or loop.stopped_by == "cancelled"
            return Candidate(loop.best_val_metric, module, loop)

    elif kind == "gbdt":
        defaults = {**LIGHTGBM_DEFAULTS, "lambda_l1": 1e-8, "bagging_fraction": 1.0}
        if classification:
            defaults["class_weight"] = "none"

        def space(trial: Any) -> dict[str, Any]:
            return lightgbm_space(
                trial, classification=classification, categorical=bool(data.spec.categorical)
            )

        def fit(params: dict[str, Any], seconds: float, reporter: TrialReporter) -> Candidate:
            model = _fit_lightgbm(data, params, seconds)
            return Candidate(_baseline_score(data, model), model)

    else:
        defaults = {"C": 1.0, **({"class_weight": "none"} if classification else {})}

        def space(trial: Any) -> dict[str, Any]:
            return linear_space(trial, classification=classification)

        def fit(params: dict[str, Any], seconds: float, reporter: TrialReporter) -> Candidate:
            model = _fit_linear(data, params)
            return Candidate(_baseline_score(data, model), model)

    best, report = tune(
        kind,
        space=space,
        fit=fit,
        defaults=defaults,
        time_budget_s=time_budget_s,
        metric=HEADLINE[task],
        seed=data.seed,
        max_trials=max_trials,
        should_stop=stop,
    )
    loop = best.extra
    if loop is not None:
        loop.rows_seen = rows_seen  # all trials' rows, so rows/s is per second of tuning
        if cancelled:
            loop.stopped_by = "cancelled"
    architecture = None
    if kind == "ft_transformer":
        chosen = {k: report.best_params[k] for k in ARCHITECTURE_KEYS}
        architecture = {k: v for k, v in chosen.items() if SIZE_PRESETS[size][k] != v} or None
    return _Tuned(best.model, loop, architecture, report.to_dict())


def _baseline_score(data: _Data, model: LightGBMModel | LinearModel) -> float:
    output = "value" if data.target.task == "regression" else "proba"
    return validation_score(data.target, data.y_val, model.predict(data.z_val, output=output))


# ----- FT-Transformer ------------------------------------------------------------------------
# Budgets in optimiser steps (see models/training_loop.py): the validation part is scored
# about once an epoch (at least every 10 and at most every 500 steps), early stopping waits
# FT_PATIENCE evaluations without improvement and never fires before FT_MIN_STEPS steps,
# and training ends after FT_MAX_EPOCHS epochs or FT_MIN_MAX_STEPS steps, whichever is more.
# With 800 rows and batch 256 the old epoch budget (100) allowed ~300 steps.
FT_MIN_STEPS = 400
FT_PATIENCE = 8
FT_MAX_EPOCHS = 100
FT_MIN_MAX_STEPS = 2000
FT_WEIGHT_DECAY = 1e-5


def default_batch_size(n_train: int, preset_batch: int) -> int:
    """The preset's batch, made smaller for small data: about a tenth of the rows, a power of
    two in [32, preset], so 800 rows train in batches of 64 (13 steps an epoch), not 256."""
    tenth = max(1, n_train // 10)
    return int(min(preset_batch, max(32, 1 << (tenth.bit_length() - 1)), max(n_train, 1)))


def ft_default_params(size: str, n_train: int, task: str) -> dict[str, Any]:
    """The settings of preset `size` (TRAINING_DEFAULTS and its architecture): trial 0 of
    tuning, and what an untuned run trains with."""
    preset = SIZE_PRESETS[size]
    params: dict[str, Any] = {
        "lr": float(TRAINING_DEFAULTS[size]["lr"]),
        "weight_decay": FT_WEIGHT_DECAY,
        **{k: preset[k] for k in ARCHITECTURE_KEYS},
        "batch_size": default_batch_size(n_train, int(TRAINING_DEFAULTS[size]["batch_size"])),
    }
    if task != "regression":
        params["class_weight"] = "none"
    return params


def _ft_loop_config(
    params: dict[str, Any], n_train: int, time_budget_s: float | None, data: _Data
) -> LoopConfig:
    """Loop settings for `params`: step budgets as above; batches never exceed the data."""
    batch = int(min(params["batch_size"], n_train))
    steps_per_epoch = math.ceil(n_train / batch)
    return LoopConfig(
        lr=float(params["lr"]),
        weight_decay=float(params["weight_decay"]),
        batch_size=batch,
        max_epochs=1_000_000,
        max_steps=max(FT_MAX_EPOCHS * steps_per_epoch, FT_MIN_MAX_STEPS),
        min_steps=FT_MIN_STEPS,
        eval_every_steps=min(max(steps_per_epoch, 10), 500),
        patience=FT_PATIENCE,
        time_budget_s=time_budget_s,
        seed=data.seed,
        device=data.device,
        threads=data.threads,
    )


def _fit_ft(
    data: _Data,
    size: str,
    params: dict[str, Any],
    time_budget_s: float | None,
    on_epoch: Callable[[EpochReport], bool | None] | None,
) -> tuple[torch.nn.Module, LoopResult]:
    """One FT-Transformer with `params` (see `ft_default_params`); best validation weights."""
    started = time.perf_counter()
    target, pre = data.target, data.pre
    config = _ft_loop_config(params, len(data.y_train), time_budget_s, data)
    torch.manual_seed(config.seed)  # weight initialisation is part of a reproducible run
    overrides = {k: params[k] for k in ARCHITECTURE_KEYS if k in params}
    module = build_ft_transformer(pre.n_cont, pre.cat_cardinalities, target.d_out, size, overrides)
    device = torch.device(config.device)
    x_cont, x_cat = (torch.from_numpy(a).to(device) for a in pre.to_model_inputs(data.z_train))
    y = torch.from_numpy(data.y_train).to(device)
    weight = None
    if params.get("class_weight") == "balanced":
        weight = torch.from_numpy(_class_weights(target, data.y_train)).float().to(device)

    def train_batches(rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        for idx in iterate_minibatches(len(y), config.batch_size, rng):
            idx = idx.to(device)
            yield x_cont[idx], x_cat[idx], y[idx]

    def loss_fn(model: torch.nn.Module, batch: tuple) -> torch.Tensor:
        xc, xk, yb = batch
        return _loss(target.task, model(*model_inputs(xc, xk)), yb, weight)

    def evaluate(model: torch.nn.Module) -> tuple[float, float]:
        rows = inference_batch_rows(data.z_val.shape[1] + 1, _d_block(model), config.device)
        raw = _torch_outputs(model, pre, data.z_val, rows, config.device)
        return _val_loss_and_metric(raw, data.y_val, target)

    if time_budget_s is not None:  # building the model counts against the budget
        config.time_budget_s = max(time_budget_s - (time.perf_counter() - started), 1e-6)
    result = fit_torch_model(
        module,
        train_batches=train_batches,
        loss_fn=loss_fn,
        evaluate=evaluate,
        config=config,
        on_epoch=on_epoch,
    )
    steps_per_epoch = math.ceil(len(y) / config.batch_size)
    if result.stopped_by == "time_budget" and result.steps < steps_per_epoch:
        needed = result.train_seconds / max(result.steps, 1) * steps_per_epoch * 1.5
        raise BudgetTooSmall(
            f"a time budget of {time_budget_s:g} s does not fit one epoch of the FT-Transformer "
            f"({result.steps} of {steps_per_epoch} steps done); give at least "
            f"{math.ceil(needed)} s",
            needed,
        )
    return module, result


def _loss(
    task: str, out: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy (class `weight`s, if any, per class) or MSE on the scaled target."""
    out = out.float()
    if task == "binary":
        if weight is None:
            return F.binary_cross_entropy_with_logits(out[:, 0], y.float())
        rows = weight[y]  # a weighted mean over the batch
        return F.binary_cross_entropy_with_logits(out[:, 0], y.float(), weight=rows) * (
            len(y) / rows.sum()
        )
    if task == "multiclass":
        return F.cross_entropy(out, y, weight=weight)
    return F.mse_loss(out[:, 0], y)


def _val_loss_and_metric(
    raw: np.ndarray, y_val: np.ndarray, target: TargetEncoder
) -> tuple[float, float]:
    """Validation loss and the headline metric (`validation_score`), higher = better."""
    if target.task == "regression":
        loss = float(np.mean((raw[:, 0] - y_val) ** 2))
        return loss, validation_score(target, y_val, target.decode(raw[:, 0]))
    proba = _transform_outputs(raw, target, "proba")
    return _log_loss(target, y_val, proba), validation_score(target, y_val, proba)


def _torch_outputs(
    module: torch.nn.Module,
    pre: TabularPreprocessor,
    z: np.ndarray,
    batch_size: int,
    device: str,
) -> np.ndarray:
    """Raw model outputs [n, d_out] as float64, computed batch by batch without autograd."""
    x_cont, x_cat = pre.to_model_inputs(z)
    d_out = _d_out(module)
    if len(x_cont) == 0:
        return np.empty((0, d_out), dtype=np.float64)
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(x_cont), batch_size):
            xc = torch.from_numpy(x_cont[start : start + batch_size]).to(device)
            xk = torch.from_numpy(x_cat[start : start + batch_size]).to(device)
            chunks.append(module(*model_inputs(xc, xk)).float().cpu())
    return torch.cat(chunks).numpy().astype(np.float64)


def inference_batch_rows(tokens: int, width: int, device: str) -> int:
    """Rows per inference batch: large on CUDA, cache-sized on the CPU.

    On the CPU an FT-Transformer forward pass is bound by memory traffic, not arithmetic:
    each block streams several [rows, tokens, width] float32 tensors. Batches whose tensors
    fit in the core's cache (~1 MB: 2^18 floats) ran 2-3x faster than batches of 4,096 rows
    (20 columns, 1 thread, rows/s at 64 / 256 / 4,096 rows: "small" 13.5k / 14.2k / 6.8k,
    "tiny" 69k / 93k / 47k, "default" 2.2k / 1.8k / 1.1k). On CUDA large batches win.
    """
    if tokens < 1 or width < 1:
        raise ValueError(f"tokens and width must be >= 1: {tokens=} {width=}")
    if str(device).startswith("cuda"):
        return 8192
    fit = (1 << 18) // (tokens * width)
    return int(min(1024, max(32, 1 << max(fit, 1).bit_length() - 1)))


def _d_block(module: torch.nn.Module) -> int:
    backbone: Any = module.backbone
    return int(backbone.output.linear.in_features)


def _d_out(module: torch.nn.Module) -> int:
    backbone: Any = module.backbone
    return int(backbone.output.linear.out_features)


def _transform_outputs(raw: np.ndarray, target: TargetEncoder, output: str) -> np.ndarray:
    if target.task == "regression":
        return target.decode(raw[:, 0])
    if target.task == "binary":
        return raw[:, 0] if output == "logit" else expit(raw[:, 0])
    return log_softmax(raw, axis=1) if output == "logit" else softmax(raw, axis=1)


def _load_estimator(
    kind: str,
    size: str | None,
    weights: bytes,
    pre: TabularPreprocessor,
    target: TargetEncoder,
    architecture: dict[str, Any] | None = None,
) -> Any:
    if kind == "gbdt":
        return LightGBMModel.from_bytes(weights, target.task)
    if kind == "linear":
        return LinearModel.from_bytes(weights)
    if size not in SIZE_PRESETS:
        raise ArtifactError(f"artifact names an unknown FT-Transformer size {size=}")
    try:
        module = build_ft_transformer(
            pre.n_cont, pre.cat_cardinalities, target.d_out, size, architecture
        )
    except ValueError as exc:
        raise ArtifactError(f"artifact has an invalid FT-Transformer architecture: {exc}") from exc
    try:
        module.load_state_dict(bytes_to_state_dict(weights))
    except RuntimeError as exc:
        raise ArtifactError(f"weights do not fit the recorded model shape: {exc}") from exc
    return module


def _json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, indent=2, allow_nan=False).encode("utf-8")
