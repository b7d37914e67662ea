"""The one entry point core/ uses for tabular models: fit, predict, save, load.

Every kind consumes the same encoded matrix Z (see models/preprocessing.py), so scoring,
explanations and the leaderboard treat FT-Transformer, LightGBM and logistic regression alike.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.special import expit, log_softmax, softmax

from models.artifacts import (
    ArtifactError,
    bytes_to_state_dict,
    read_artifact,
    state_dict_to_bytes,
    write_artifact,
)
from models.baselines import LightGBMModel, LinearModel
from models.ft_transformer import (
    SIZE_PRESETS,
    TRAINING_DEFAULTS,
    build_ft_transformer,
    model_inputs,
)
from models.measure import flops_per_row, resolve_device
from models.metrics import classification_metrics, regression_metrics
from models.preprocessing import FeatureSpec, TabularPreprocessor
from models.tasks import TargetEncoder
from models.training_loop import (
    EpochReport,
    LoopConfig,
    LoopResult,
    fit_torch_model,
    iterate_minibatches,
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
    ) -> None:
        if kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {kind=}; choose from {MODEL_KINDS}")
        self.kind = kind
        self.size = size
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
        estimator = _load_estimator(kind, config.get("size"), weights, pre, target)
        return cls(kind, config.get("size"), spec, target, pre, estimator, resolve_device(device))


@dataclass
class FitResult:
    """A fitted model plus what its training cost (loop is None for the baselines)."""

    model: FittedTabularModel
    loop: LoopResult | None
    train_seconds: float
    params: int
    flops_per_row: float | None


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
) -> FitResult:
    """Fit the preprocessor on `train_df` only, then the model; validation drives early stopping.

    `device` may be "auto". `size`, `time_budget_s` (checked between batches) and `on_epoch`
    apply to the FT-Transformer; LightGBM honours the time budget between trees; logreg
    ignores both.
    """
    _check_fit_args(kind, size, train_df, y_train, val_df, y_val, threads)
    device = resolve_device(device)
    start = time.perf_counter()
    pre = TabularPreprocessor().fit(train_df, spec)
    z_train, z_val = pre.encode(train_df), pre.encode(val_df)
    y_tr, y_va = target.encode(y_train), target.encode(y_val)
    loop = None
    if kind == "ft_transformer":
        config = _ft_loop_config(size, len(y_tr), seed, time_budget_s, device, threads)
        estimator, loop = _fit_ft(pre, target, z_train, y_tr, z_val, y_va, size, config, on_epoch)
    elif kind == "gbdt":
        estimator = LightGBMModel.fit(
            z_train,
            _baseline_target(target, y_tr),
            z_val,
            _baseline_target(target, y_va),
            task=target.task,
            n_classes=target.n_classes,
            categorical_indices=list(range(len(spec.numeric), len(spec.columns))),
            seed=seed,
            threads=threads,
            time_budget_s=time_budget_s,
        )
    else:
        estimator = LinearModel.fit(
            z_train,
            _baseline_target(target, y_tr),
            task=target.task,
            n_numeric=len(spec.numeric),
            cat_cardinalities=pre.cat_cardinalities,
            seed=seed,
            threads=threads,
        )
    model = FittedTabularModel(
        kind, size if kind == "ft_transformer" else None, spec, target, pre, estimator, device
    )
    return FitResult(
        model=model,
        loop=loop,
        train_seconds=time.perf_counter() - start,
        params=model.n_params(),
        flops_per_row=model.flops_per_row(),
    )


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


# ----- FT-Transformer ------------------------------------------------------------------------
def _ft_loop_config(
    size: str, n_train: int, seed: int, time_budget_s: float | None, device: str, threads: int
) -> LoopConfig:
    """The loop settings of a preset (see TRAINING_DEFAULTS); batches never exceed the data."""
    defaults = TRAINING_DEFAULTS[size]
    return LoopConfig(
        lr=float(defaults["lr"]),
        batch_size=int(min(defaults["batch_size"], n_train)),
        time_budget_s=time_budget_s,
        seed=seed,
        device=device,
        threads=threads,
    )


def _fit_ft(
    pre: TabularPreprocessor,
    target: TargetEncoder,
    z_train: np.ndarray,
    y_train: np.ndarray,
    z_val: np.ndarray,
    y_val: np.ndarray,
    size: str,
    config: LoopConfig,
    on_epoch: Callable[[EpochReport], bool | None] | None,
) -> tuple[torch.nn.Module, LoopResult]:
    torch.manual_seed(config.seed)  # weight initialisation is part of a reproducible run
    module = build_ft_transformer(pre.n_cont, pre.cat_cardinalities, target.d_out, size)
    device = torch.device(config.device)
    x_cont, x_cat = (torch.from_numpy(a).to(device) for a in pre.to_model_inputs(z_train))
    y = torch.from_numpy(y_train).to(device)

    def train_batches(rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        for idx in iterate_minibatches(len(y), config.batch_size, rng):
            idx = idx.to(device)
            yield x_cont[idx], x_cat[idx], y[idx]

    def loss_fn(model: torch.nn.Module, batch: tuple) -> torch.Tensor:
        xc, xk, yb = batch
        return _loss(target.task, model(*model_inputs(xc, xk)), yb)

    def evaluate(model: torch.nn.Module) -> tuple[float, float]:
        rows = inference_batch_rows(z_val.shape[1] + 1, _d_block(model), config.device)
        raw = _torch_outputs(model, pre, z_val, rows, config.device)
        return _val_loss_and_metric(raw, y_val, target)

    result = fit_torch_model(
        module,
        train_batches=train_batches,
        loss_fn=loss_fn,
        evaluate=evaluate,
        config=config,
        on_epoch=on_epoch,
    )
    return module, result


def _loss(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = out.float()
    if task == "binary":
        return F.binary_cross_entropy_with_logits(out[:, 0], y.float())
    if task == "multiclass":
        return F.cross_entropy(out, y)
    return F.mse_loss(out[:, 0], y)


def _val_loss_and_metric(
    raw: np.ndarray, y_val: np.ndarray, target: TargetEncoder
) -> tuple[float, float]:
    """Validation loss and the headline metric, sign-flipped for RMSE so higher is better."""
    if target.task == "regression":
        loss = float(np.mean((raw[:, 0] - y_val) ** 2))
        truth, pred = target.decode(y_val), target.decode(raw[:, 0])
        return loss, -regression_metrics(truth, pred)["rmse"]
    proba = _transform_outputs(raw, target, "proba")
    metrics = classification_metrics(target.task, y_val, proba)
    if target.task == "multiclass":
        return metrics["log_loss"], metrics["accuracy"]
    auc = metrics["roc_auc"]
    # A validation split with one class has no ROC-AUC; fall back to the (negated) loss.
    return metrics["log_loss"], auc if np.isfinite(auc) else -metrics["log_loss"]


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
    return int(module.backbone.output.linear.in_features)


def _d_out(module: torch.nn.Module) -> int:
    return int(module.backbone.output.linear.out_features)


def _transform_outputs(raw: np.ndarray, target: TargetEncoder, output: str) -> np.ndarray:
    if target.task == "regression":
        return target.decode(raw[:, 0])
    if target.task == "binary":
        return raw[:, 0] if output == "logit" else expit(raw[:, 0])
    return log_softmax(raw, axis=1) if output == "logit" else softmax(raw, axis=1)


def _load_estimator(
    kind: str, size: str | None, weights: bytes, pre: TabularPreprocessor, target: TargetEncoder
) -> Any:
    if kind == "gbdt":
        return LightGBMModel.from_bytes(weights, target.task)
    if kind == "linear":
        return LinearModel.from_bytes(weights)
    if size not in SIZE_PRESETS:
        raise ArtifactError(f"artifact names an unknown FT-Transformer size {size=}")
    module = build_ft_transformer(pre.n_cont, pre.cat_cardinalities, target.d_out, size)
    try:
        module.load_state_dict(bytes_to_state_dict(weights))
    except RuntimeError as exc:
        raise ArtifactError(f"weights do not fit the recorded model shape: {exc}") from exc
    return module


def _json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, indent=2, allow_nan=False).encode("utf-8")
