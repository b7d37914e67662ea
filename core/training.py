"""Training runs: queue, execute (in a worker or in-process), measure, record, load.

``execute_run`` is the whole job: it reads the dataset through ``core``, trains through
``models``, measures time / throughput / FLOPs / memory, writes the artifact atomically and
records everything on the run's row. It is a plain function of the run id so the CLI, the
background worker and (later) a cluster worker all call the same code.
"""

from __future__ import annotations

import json
import os
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from core import audit
from core.access import Actor
from core.datasets import check_target, get_dataset, load_frame
from core.db import session_factory
from core.jobs import cancel_requested
from core.records import TrainingRunRecord, utcnow
from core.runs import (
    DEFAULT_FT_SIZE,
    MODEL_KINDS,
    MODEL_LABELS,
    TABULAR_KINDS,
    TEXT_KINDS,
    RunInfo,
    get_run,
    holdout_predictions,
)
from core.settings import load_settings
from core.splits import TEST, TRAIN, VALIDATION, get_or_create_split

# Most test-part predictions kept on the run row for curves and the profit maths.
MAX_STORED_TEST_ROWS = 200_000


# ---- queue ----------------------------------------------------------------------------------


def create_run(
    dataset_id: int,
    model: str,
    *,
    target: str | None = None,
    features: list[str] | tuple[str, ...] | None = None,
    positive_class: str | None = None,
    size: str | None = None,
    seed: int = 0,
    time_budget_s: float | None = 120.0,
    text_columns: list[str] | tuple[str, ...] | None = None,
    train_fraction: float = 1.0,
    members: list[int] | None = None,
    rule: str = "stack",
    subsample_seed: int | None = None,
    allow_pii: bool = False,
    tune: bool = False,
    actor: Actor | None = None,
) -> int:
    """Queue a run after checking every choice against the dataset; returns the run id.

    ``members`` and ``rule`` ("mean" or "stack") are for ``model="ensemble"``: its members may
    still be queued, as long as they run first. ``tune``: a tabular model spends its whole
    time budget tuning on the validation part (models/tuning.py); other kinds ignore it.
    """
    actor = audit.authorize(actor, "train", "dataset", dataset_id)
    if model not in MODEL_KINDS:
        raise ValueError(f"Unknown model {model!r}; choose one of {', '.join(MODEL_KINDS)}.")
    dataset = get_dataset(dataset_id)
    target = target or dataset.roles.target
    if not target:
        raise ValueError(f"Dataset {dataset.name!r} has no target column; choose one.")
    if target not in dataset.schema.names:
        raise ValueError(f"The target {target!r} is not a column of {dataset.name!r}.")
    check_target(dataset.schema, target)
    chosen = [c for c in (features or dataset.roles.features) if c != target]
    kinds = {c.name: c.kind for c in dataset.schema.columns}
    extra_options: dict = {}
    # Personal data is checked on the columns asked for, before the per-kind filter below.
    pii = [c.name for c in dataset.schema.columns if c.pii and c.name in chosen]
    if model == "ensemble":
        pii = []  # its members were checked when they were queued
    if pii and not allow_pii:
        raise ValueError(
            f"Column(s) {', '.join(pii)} look like personal data; they are left out of the "
            "features unless you opt in (allow personal data)."
        )
    if pii:
        extra_options["allow_pii"] = pii
    if model == "ensemble":
        from core.ensembles import RULE_LABELS, check_members

        if rule not in RULE_LABELS:
            raise ValueError(
                f"The ensemble rule must be one of {', '.join(RULE_LABELS)}, got {rule!r}."
            )
        member_runs = check_members(dataset_id, target, seed, list(members or []))
        chosen = list(dict.fromkeys(c for r in member_runs for c in r.features))
        extra_options = {"members": [r.id for r in member_runs], "rule": rule}
    elif model in TEXT_KINDS:
        texts = list(text_columns or [c for c in chosen if kinds.get(c) == "text"])
        if not texts:
            raise ValueError(
                f"The {MODEL_LABELS[model]} needs a text column; {dataset.name!r} has none "
                "among the chosen features."
            )
        missing = [c for c in texts if c not in kinds]
        if missing:
            raise ValueError(f"Text column(s) not in the dataset: {', '.join(missing)}.")
        chosen = texts
    else:
        chosen = [c for c in chosen if kinds.get(c) in ("numeric", "categorical")]
        if not chosen:
            raise ValueError(
                "Choose at least one numeric or categorical feature for a tabular model "
                "(text columns need the text transformer)."
            )
    if not 0.05 <= train_fraction <= 1.0:
        raise ValueError(
            f"The share of training rows must be between 5% and 100%, got {train_fraction}."
        )
    if time_budget_s is not None and time_budget_s <= 0:
        raise ValueError(f"The time budget must be positive, got {time_budget_s}.")
    tune = bool(tune) and model in TABULAR_KINDS
    if tune:
        from models.tuning import MIN_TUNING_BUDGET_S

        if time_budget_s is None or time_budget_s < MIN_TUNING_BUDGET_S:
            raise ValueError(
                f"Tuning needs a time budget of at least {MIN_TUNING_BUDGET_S:g} s, "
                f"got {time_budget_s}."
            )
        extra_options["tune"] = True
    positive_class = positive_class or (
        dataset.roles.positive_class if target == dataset.roles.target else None
    )
    if model == "ft-transformer":
        size = size or DEFAULT_FT_SIZE
    with session_factory().begin() as session:
        record = TrainingRunRecord(
            dataset_id=dataset_id,
            model=model,
            size=size,
            target=target,
            features_json=json.dumps(chosen),
            options_json=json.dumps(
                {
                    "positive_class": positive_class,
                    "train_fraction": train_fraction,
                    **extra_options,
                    **({} if subsample_seed is None else {"subsample_seed": int(subsample_seed)}),
                }
            ),
            seed=seed,
            time_budget_s=time_budget_s,
            status="queued",
            progress_json=json.dumps({"stage": "queued"}),
        )
        session.add(record)
        session.flush()
        audit.record(session, actor, "train", "run", record.id, "ok", f"dataset {dataset_id}")
        return record.id


def ft_sizes() -> tuple[str, ...]:
    """FT-Transformer size presets, smallest first (pages must not import models/)."""
    from models.ft_transformer import SIZE_PRESETS

    return tuple(SIZE_PRESETS)


def store_validation_predictions(run_id: int, stored: dict) -> None:
    _update(run_id, validation_json=stored)


def _part_predictions(
    model: Any, run: RunInfo, part: pd.DataFrame, target_encoder, money_column: str | None
) -> dict:
    """y (class index) and P(positive) of one part, capped like the test part, for the
    threshold and value maths; classification only."""
    part = part.iloc[:MAX_STORED_TEST_ROWS]
    stored = {
        "y": target_encoder.encode(part[run.target]).tolist(),
        "proba": np.asarray(predict_frame(model, part)).tolist(),
    }
    if money_column:
        stored["money"] = pd.to_numeric(part[money_column], errors="coerce").fillna(0.0).tolist()
    return stored


def compute_validation_predictions(run_id: int) -> dict:
    """Recompute and store the validation-part predictions of an older succeeded run."""
    from models.tasks import TargetEncoder

    run = get_run(run_id)
    data = _prepare_data(run)
    encoder = TargetEncoder(
        task=str(run.task), classes=run.classes, positive_class=run.positive_class
    )
    stored = _part_predictions(
        load_run_model(run_id), run, data["parts"]["val"], encoder, data["money_column"]
    )
    store_validation_predictions(run_id, stored)
    return stored


# ---- execute --------------------------------------------------------------------------------


class RunCancelled(Exception):
    pass


def _update(run_id: int, **fields: Any) -> None:
    with session_factory().begin() as session:
        record = session.get(TrainingRunRecord, run_id)
        for key, value in fields.items():
            setattr(record, key, value)


def _set_progress(run_id: int, progress: dict) -> None:
    _update(run_id, progress_json=json.dumps(progress, default=float))


def _prepare_data(run: RunInfo) -> dict:
    """Load the frame, drop rows without a target, and cut it by the stored split."""
    dataset = get_dataset(run.dataset_id)
    frame = load_frame(run.dataset_id)
    y_all = frame[run.target]
    kind = dataset.schema.column(run.target).kind
    stratify = kind != "numeric" or y_all.nunique(dropna=True) <= 20
    with session_factory().begin() as session:
        assignment = get_or_create_split(
            session, run.dataset_id, run.target, y_all, run.seed, stratify
        )
    parts = {}
    for name, code in (("train", TRAIN), ("val", VALIDATION), ("test", TEST)):
        rows = np.flatnonzero(assignment == code)
        parts[name] = frame.iloc[rows].reset_index(drop=True)
    fraction = float(run.options.get("train_fraction", 1.0))
    if fraction < 1.0:
        # Learning curves: a seeded subsample of the training part; validation and test
        # parts stay whole so every point is measured on the same rows.
        keep = max(10, int(round(len(parts["train"]) * fraction)))
        # ``subsample_seed`` repeats a share with other rows on the same split.
        pick = int(run.options.get("subsample_seed", run.seed))
        parts["train"] = parts["train"].sample(n=keep, random_state=pick).reset_index(drop=True)
    money = dataset.roles.money_column
    return {
        "dataset": dataset,
        "parts": parts,
        "money_column": money if money in frame.columns else None,
        "dropped_missing_target": int((assignment == 255).sum()),
    }


def _fit(
    run: RunInfo,
    parts: dict,
    target_encoder,
    device: str,
    threads: int,
    on_epoch,
    should_stop: Callable[[], bool] | None = None,
):
    from models.preprocessing import FeatureSpec
    from models.tabular import fit_tabular

    if run.model in TABULAR_KINDS:
        dataset = get_dataset(run.dataset_id)
        kinds = {c.name: c.kind for c in dataset.schema.columns}
        spec = FeatureSpec(
            numeric=tuple(c for c in run.features if kinds[c] == "numeric"),
            categorical=tuple(c for c in run.features if kinds[c] == "categorical"),
        )
        return fit_tabular(
            run.model,
            train_df=parts["train"],
            y_train=parts["train"][run.target],
            val_df=parts["val"],
            y_val=parts["val"][run.target],
            spec=spec,
            target=target_encoder,
            size=run.size or DEFAULT_FT_SIZE,
            seed=run.seed,
            time_budget_s=run.time_budget_s,
            device=device,
            threads=threads,
            on_epoch=on_epoch,
            tune=bool(run.options.get("tune")),
            should_stop=should_stop,
        )
    if run.model == "ensemble":
        from core.ensembles import fit_ensemble_run

        return fit_ensemble_run(run, parts, target_encoder)
    from core.text_runs import fit_text_run

    return fit_text_run(run, parts, target_encoder, device, threads, on_epoch)


def predict_frame(model: Any, frame: pd.DataFrame, output: str = "proba") -> np.ndarray:
    """One call for every model kind: tabular models take columns, text models take text."""
    from core.ensembles import is_ensemble
    from core.text_runs import is_text_model, texts_of

    if is_ensemble(model):
        return model.predict(frame, output=output)
    if is_text_model(model):
        return model.predict_texts(texts_of(model, frame), output=output)
    return model.predict_encoded(model.preprocessor.encode(frame), output=output)


def _evaluate(model: Any, run: RunInfo, test: pd.DataFrame, target_encoder) -> dict:
    from models.metrics import (
        HEADLINE,
        bootstrap_interval,
        classification_metrics,
        curves,
        regression_metrics,
    )

    task = target_encoder.task
    started = time.perf_counter()
    prediction = predict_frame(model, test)
    infer_seconds = time.perf_counter() - started
    y = target_encoder.encode(test[run.target])
    headline = HEADLINE[task]
    if task == "regression":
        metrics = regression_metrics(test[run.target].to_numpy(dtype=float), prediction)
        truth = test[run.target].to_numpy(dtype=float)

        def metric_fn(a, b):
            return regression_metrics(a, b)[headline]

        interval = bootstrap_interval(metric_fn, truth, prediction)
        stored = {"y": truth.tolist(), "prediction": prediction.tolist()}
        extra = {}
    else:
        metrics = classification_metrics(task, y, prediction)

        def metric_fn(a, b):
            return classification_metrics(task, a, b)[headline]

        interval = bootstrap_interval(metric_fn, y, prediction)
        stored = {"y": y.tolist(), "proba": np.asarray(prediction).tolist()}
        extra = {"curves": curves(y, prediction)} if task == "binary" else {}
    recorded: dict[str, Any] = {k: float(v) for k, v in metrics.items()}
    recorded.update(headline=headline, interval=[float(interval[0]), float(interval[1])])
    recorded.update(extra)
    recorded["test_rows"] = len(test)
    return {
        "metrics": recorded,
        "stored": stored,
        "infer_rows_per_s": len(test) / infer_seconds if infer_seconds > 0 else None,
    }


def train_job(params: dict, context) -> dict:
    """The "train" job (core/jobs.py): params {"run_id"}; the run's row keeps the results."""
    run = execute_run(int(params["run_id"]), should_stop=context.cancelled)
    result: dict = {"run_id": run.id, "run_status": run.status}
    if run.status != "succeeded":
        result.update(_status=run.status, error=run.error)
    return result


def execute_run(
    run_id: int,
    *,
    device_preference: str | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunInfo:
    """Train the queued run ``run_id`` to a terminal status; returns the final run.

    ``should_stop``: checked with the cancel flag after every epoch (a job's cancel check)."""
    from models.measure import PeakMemory, device_name, resolve_device
    from models.tasks import TargetEncoder

    settings = load_settings()
    run = get_run(run_id)
    if run.status not in ("queued",):
        raise ValueError(f"Run #{run_id} is {run.status}; only a queued run can be started.")
    if cancel_requested(run_id):
        _update(run_id, status="cancelled", finished_at=utcnow())
        return get_run(run_id)
    device = resolve_device(device_preference or settings.device)
    _update(
        run_id,
        status="running",
        pid=os.getpid(),  # so a later start can tell this live run from a dead one
        started_at=utcnow(),
        device=device,
        device_name=device_name(device),
        progress_json=json.dumps({"stage": "loading data"}),
    )
    history: list[dict] = []

    def on_epoch(report) -> bool:
        history.append(
            {
                "epoch": report.epoch,
                "train_loss": report.train_loss,
                "val_loss": report.val_loss,
                "val_metric": report.val_metric,
                "elapsed_s": report.elapsed_s,
                "eta_s": report.eta_s,
            }
        )
        _set_progress(run_id, {"stage": "training", "history": history, "eta_s": report.eta_s})
        return not stop_now()

    def stop_now() -> bool:
        return cancel_requested(run_id) or (should_stop is not None and should_stop())

    try:
        data = _prepare_data(run)
        parts = data["parts"]
        target_encoder = TargetEncoder.fit(
            parts["train"][run.target], positive=run.options.get("positive_class")
        )
        _set_progress(run_id, {"stage": "training", "history": history})
        with PeakMemory(device) as memory:
            fit = _fit(run, parts, target_encoder, device, settings.threads, on_epoch, stop_now)
        if fit.loop is not None and fit.loop.stopped_by == "cancelled":
            raise RunCancelled()
        if cancel_requested(run_id) or (should_stop is not None and should_stop()):
            raise RunCancelled()
        _set_progress(run_id, {"stage": "evaluating", "history": history})
        evaluation = _evaluate(fit.model, run, parts["test"], target_encoder)
        stored = evaluation["stored"]
        if data["money_column"]:
            stored["money"] = (
                pd.to_numeric(parts["test"][data["money_column"]], errors="coerce")
                .fillna(0.0)
                .tolist()
            )
        for key in list(stored):
            stored[key] = stored[key][:MAX_STORED_TEST_ROWS]
        validation = None
        if target_encoder.task in ("binary", "multiclass"):
            validation = _part_predictions(
                fit.model, run, parts["val"], target_encoder, data["money_column"]
            )
        evaluation["metrics"]["dropped_missing_target"] = data["dropped_missing_target"]
        if getattr(fit, "tuning", None):
            evaluation["metrics"]["tuning"] = fit.tuning  # budget, trials, best, seconds
        _set_progress(run_id, {"stage": "saving", "history": history})
        # A unique suffix: a run id can come back after the ledger is reset, a folder must not.
        artifact = settings.artifacts_dir / f"run-{run_id}-{uuid.uuid4().hex[:8]}"
        fit.model.save(artifact)
        rows_seen = fit.loop.rows_seen if fit.loop is not None else len(parts["train"])
        _update(
            run_id,
            status="succeeded",
            finished_at=utcnow(),
            task=target_encoder.task,
            positive_class=target_encoder.positive_class,
            classes_json=json.dumps(list(target_encoder.classes)),
            metrics_json=json.dumps(evaluation["metrics"]),
            test_json=json.dumps(stored),
            validation_json=validation,
            train_seconds=fit.train_seconds,
            train_rows_per_s=rows_seen / fit.train_seconds if fit.train_seconds else None,
            infer_rows_per_s=evaluation["infer_rows_per_s"],
            params=int(fit.params),
            flops_per_row=fit.flops_per_row,
            peak_rss_bytes=int(memory.peak_rss_bytes),
            cuda_peak_bytes=memory.peak_cuda_bytes,
            artifact_path=str(artifact),
            progress_json=json.dumps({"stage": "done", "history": history}),
        )
    except RunCancelled:
        _mark_cancelled(run_id, history)
    except Exception as exc:  # noqa: BLE001 - recorded on the row, shown on the page
        if _cancel_check(stop_now):  # e.g. tuning cancelled before its first trial finished
            _mark_cancelled(run_id, history)
            return get_run(run_id)
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        _update(
            run_id,
            status="failed",
            finished_at=utcnow(),
            error=message,
            progress_json=json.dumps(
                {"stage": "failed", "history": history, "trace": traceback.format_exc()[-4000:]}
            ),
        )
    return get_run(run_id)


def _mark_cancelled(run_id: int, history: list[dict]) -> None:
    _update(
        run_id,
        status="cancelled",
        finished_at=utcnow(),
        progress_json=json.dumps({"stage": "cancelled", "history": history}),
    )


def _cancel_check(stop_now: Callable[[], bool]) -> bool:
    try:
        return stop_now()
    except Exception:  # noqa: BLE001 - a failing cancel check is not a cancel
        return False


def budget_summary(run: RunInfo) -> dict[str, Any]:
    """What a run was given and spent, for the leaderboard: ``budget_s`` (its time budget),
    ``trials`` (text: tuning trials completed / pruned / failed, or "1 (defaults)" for an
    untuned run that finished) and ``spent_s`` (seconds training and tuning actually took)."""
    tuning = run.metrics.get("tuning")
    if tuning:
        trials = f"{tuning['completed']} done"
        if tuning.get("pruned"):
            trials += f", {tuning['pruned']} pruned"
        if tuning.get("failed"):
            trials += f", {tuning['failed']} failed"
    else:
        trials = "1 (defaults)" if run.status == "succeeded" else "–"
    return {"budget_s": run.time_budget_s, "trials": trials, "spent_s": run.train_seconds}


def _serving_threads() -> None:
    """Models served in this process (scoring, reasons, explanations, what-if) run on
    PAYOFF_THREADS torch threads, as training does. torch's default (one per core) made the
    Score page's SHAP reasons 6-17x slower on 2 shared cores (16 vs 105-284 ms per row)."""
    import torch

    threads = load_settings().threads
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def load_run_model(run_id: int) -> Any:
    """The trained model of a succeeded run, verified against its manifest."""
    run = get_run(run_id)
    if run.status != "succeeded" or run.artifact_path is None:
        raise ValueError(f"Run #{run_id} has no trained model (status: {run.status}).")
    _serving_threads()
    if run.model in TABULAR_KINDS:
        from models.tabular import FittedTabularModel

        return FittedTabularModel.load(run.artifact_path)
    if run.model == "ensemble":
        from core.ensembles import load_ensemble

        return load_ensemble(run)
    from core.text_runs import load_text_model

    return load_text_model(run)


def holdout_frame(run_id: int) -> pd.DataFrame:
    """The run's test rows (in the order of its stored test predictions)."""
    return part_frame(run_id, "test")


def confidently_wrong(run_id: int, limit: int = 10) -> pd.DataFrame:
    """Test rows the model got wrong with the highest confidence (binary and multiclass)."""
    run = get_run(run_id)
    stored = holdout_predictions(run_id)
    if run.task not in ("binary", "multiclass") or "proba" not in stored:
        return pd.DataFrame()
    frame = holdout_frame(run_id).iloc[: len(stored["y"])].reset_index(drop=True)
    y = np.asarray(stored["y"])
    proba = np.asarray(stored["proba"], dtype=float)
    if run.task == "binary":
        predicted = (proba >= 0.5).astype(int)
        confidence = np.where(predicted == 1, proba, 1 - proba)
    else:
        predicted = proba.argmax(axis=1)
        confidence = proba.max(axis=1)
    wrong = np.flatnonzero(predicted != y)
    order = wrong[np.argsort(-confidence[wrong])][:limit]
    out = frame.iloc[order][list(run.features)].copy()
    out.insert(0, "actual", [run.classes[i] for i in y[order]])
    out.insert(1, "predicted", [run.classes[i] for i in predicted[order]])
    out.insert(2, "confidence", confidence[order].round(3))
    return out.reset_index(drop=True)


def part_frame(run_id: int, part: str) -> pd.DataFrame:
    """The run's ``train``, ``val`` or ``test`` rows of its stored split."""
    if part not in ("train", "val", "test"):
        raise ValueError(f"part must be train, val or test, got {part!r}")
    return _prepare_data(get_run(run_id))["parts"][part]
