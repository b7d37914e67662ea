"""Training runs: queue, execute (in a worker or in-process), measure, record, load.

``execute_run`` is the whole job: it reads the dataset through ``core``, trains through
``models``, measures time / throughput / FLOPs / memory, writes the artifact atomically and
records everything on the run's row. It is a plain function of the run id so the CLI, the
background worker and (later) a cluster worker all call the same code.

Depends on core.runs (records, load_run_model), core.kinds.registry (each kind's check and
fit), core.datasets, core.splits and core.jobs; nothing that reads runs depends on this module
for that (they use core.runs).
"""

from __future__ import annotations

import os
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from core import audit
from core.access import Actor
from core.datasets import check_target, get_dataset, load_frame
from core.db import session_factory, unit_of_work
from core.jobs import cancel_requested
from core.kinds import registry
from core.kinds.base import FitContext, LoadedModel, Output, QueueRequest
from core.kinds.registry import get_kind
from core.records import TrainingRunRecord, utcnow
from core.runs import (
    LOOKUP,
    PartPredictions,
    RunInfo,
    RunOptions,
    get_run,
    holdout_predictions,
    load_run_model,
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
    session: Session | None = None,
) -> int:
    """Queue a run after checking every choice against the dataset; returns the run id.

    ``members`` and ``rule`` ("mean" or "stack") are for the kind that combines runs (the
    registry's ``combiner()``): its members may still be queued, as long as they run first.
    ``session``: the caller's transaction, when the run is one part of a larger action (a
    learning curve queues all its runs at once). ``tune``: a kind that can be tuned spends its
    whole time budget tuning on the validation part (models/tuning.py); other kinds ignore it.
    """
    actor = audit.authorize(actor, "train", "dataset", dataset_id)
    kind = get_kind(model)
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
    # Personal data is checked on the columns asked for, before the kind keeps its columns.
    pii = [c.name for c in dataset.schema.columns if c.pii and c.name in chosen]
    if not kind.checks_pii:
        pii = []
    if pii and not allow_pii:
        raise ValueError(
            f"Column(s) {', '.join(pii)} look like personal data; they are left out of the "
            "features unless you opt in (allow personal data)."
        )
    if pii:
        extra_options["allow_pii"] = tuple(pii)
    queued = kind.check(
        QueueRequest(
            dataset_id=dataset_id,
            dataset_name=dataset.name,
            target=target,
            seed=seed,
            column_kinds=kinds,
            features=tuple(chosen),
            text_columns=tuple(text_columns) if text_columns else None,
            size=size,
            members=tuple(members or ()),
            rule=rule,
            runs=LOOKUP,
        )
    )
    chosen, size = list(queued.features), queued.size
    extra_options.update(queued.options)
    if not 0.05 <= train_fraction <= 1.0:
        raise ValueError(
            f"The share of training rows must be between 5% and 100%, got {train_fraction}."
        )
    if time_budget_s is not None and time_budget_s <= 0:
        raise ValueError(f"The time budget must be positive, got {time_budget_s}.")
    tune = bool(tune) and kind.tunable
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
    with unit_of_work(session) as session:
        record = TrainingRunRecord(
            dataset_id=dataset_id,
            model=model,
            size=size,
            target=target,
            features_json=chosen,
            options_json=RunOptions.from_dict(
                {
                    "positive_class": positive_class,
                    "train_fraction": train_fraction,
                    "subsample_seed": None if subsample_seed is None else int(subsample_seed),
                    **extra_options,
                }
            ).to_dict(),
            seed=seed,
            time_budget_s=time_budget_s,
            status="queued",
            progress_json={"stage": "queued"},
        )
        session.add(record)
        session.flush()
        audit.record(session, actor, "train", "run", record.id, "ok", f"dataset {dataset_id}")
        return record.id


def queue_candidates(
    dataset_id: int,
    models: list[str] | tuple[str, ...],
    *,
    size: str | None = None,
    seed: int = 0,
    time_budget_s: float | None = 120.0,
    allow_pii: bool = False,
    stack_text_with_tabular: bool = False,
    tune: bool = False,
    actor: Actor | None = None,
) -> list[int]:
    """Queue the Train page's candidates on one dataset; returns the run ids.

    Cheap baselines go first so the leaderboard fills while the transformers train.
    ``tune``: tune the kinds that can be tuned within the budget.
    ``stack_text_with_tabular``: also train the text transformer and the tabular transformer
    and stack them on their log-odds (the model for rows with text and tabular columns)."""
    chosen = list(dict.fromkeys(get_kind(m).name for m in models))
    stacked: list[str] = []
    if stack_text_with_tabular:
        stacked = [k.name for k in registry.transformers() if k.input in ("text", "tabular")]
        chosen = list(dict.fromkeys([*chosen, *stacked]))
        stacked.sort(key=lambda name: get_kind(name).input != "text")  # members: text first
    order = sorted(chosen, key=lambda m: get_kind(m).family == "transformer")
    run_ids = [
        create_run(
            dataset_id,
            model,
            size=size if get_kind(model).sizes() else None,
            seed=seed,
            time_budget_s=time_budget_s,
            allow_pii=allow_pii,
            tune=tune and get_kind(model).tunable,
            actor=actor,
        )
        for model in order
    ]
    if stacked:
        by_model = dict(zip(order, run_ids, strict=True))
        run_ids.append(
            create_run(
                dataset_id,
                registry.combiner().name,
                seed=seed,
                members=[by_model[m] for m in stacked],
                rule="stack",
                actor=actor,
            )
        )
    return run_ids


def store_validation_predictions(run_id: int, stored: PartPredictions) -> None:
    _update(run_id, validation_json=stored.to_dict())


def _part_predictions(
    model: Any, run: RunInfo, part: pd.DataFrame, target_encoder, money_column: str | None
) -> PartPredictions:
    """y (class index) and P(positive) of one part, capped like the test part, for the
    threshold and value maths; classification only."""
    part = part.iloc[:MAX_STORED_TEST_ROWS]
    money = None
    if money_column:
        money = pd.to_numeric(part[money_column], errors="coerce").fillna(0.0).tolist()
    return PartPredictions(
        y=target_encoder.encode(part[run.target]).tolist(),
        proba=np.asarray(predict_frame(model, part)).tolist(),
        money=money,
    )


def compute_validation_predictions(run_id: int) -> PartPredictions:
    """Recompute and store the validation-part predictions of an older succeeded run."""
    from models.tasks import TargetEncoder

    run = get_run(run_id)
    if run.task is None:
        raise ValueError(f"Run #{run_id} has no trained model (status: {run.status}).")
    data = _prepare_data(run)
    if run.task is None:
        raise ValueError(f"Run #{run_id} has no trained model (status: {run.status}).")
    encoder = TargetEncoder(task=run.task, classes=run.classes, positive_class=run.positive_class)
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
    _update(run_id, progress_json=progress)


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
    fraction = run.options.train_fraction
    if fraction < 1.0:
        # Learning curves: a seeded subsample of the training part; validation and test
        # parts stay whole so every point is measured on the same rows.
        keep = max(10, int(round(len(parts["train"]) * fraction)))
        # ``subsample_seed`` repeats a share with other rows on the same split.
        pick = run.subsample_seed
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
    dataset = get_dataset(run.dataset_id)
    context = FitContext(
        parts=parts,
        target=target_encoder,
        device=device,
        threads=threads,
        on_epoch=on_epoch,
        column_kinds={c.name: c.kind for c in dataset.schema.columns},
        runs=LOOKUP,
        should_stop=should_stop,
    )
    return get_kind(run.model).fit(run, context)


def predict_frame(model: LoadedModel, frame: pd.DataFrame, output: Output = "proba") -> np.ndarray:
    """``model.predict_frame(frame, output=...)``: kept as a function for callers that map it."""
    return model.predict_frame(frame, output=output)


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
        progress_json={"stage": "loading data"},
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
                "trial": report.trial,
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
            parts["train"][run.target], positive=run.options.positive_class
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
        if fit.tuning:
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
            classes_json=list(target_encoder.classes),
            metrics_json=evaluation["metrics"],
            test_json=stored,
            validation_json=None if validation is None else validation.to_dict(),
            train_seconds=fit.train_seconds,
            train_rows_per_s=rows_seen / fit.train_seconds if fit.train_seconds else None,
            infer_rows_per_s=evaluation["infer_rows_per_s"],
            params=int(fit.params),
            flops_per_row=fit.flops_per_row,
            peak_rss_bytes=int(memory.peak_rss_bytes),
            cuda_peak_bytes=memory.peak_cuda_bytes,
            artifact_path=str(artifact),
            progress_json={"stage": "done", "history": history},
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
            progress_json={
                "stage": "failed",
                "history": history,
                "trace": traceback.format_exc()[-4000:],
            },
        )
    return get_run(run_id)


def _mark_cancelled(run_id: int, history: list[dict]) -> None:
    _update(
        run_id,
        status="cancelled",
        finished_at=utcnow(),
        progress_json={"stage": "cancelled", "history": history},
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
    tuning = run.metrics.extra.get("tuning")
    if tuning:
        trials = f"{tuning['completed']} done"
        if tuning.get("pruned"):
            trials += f", {tuning['pruned']} pruned"
        if tuning.get("failed"):
            trials += f", {tuning['failed']} failed"
    else:
        trials = "1 (defaults)" if run.status == "succeeded" else "–"
    return {"budget_s": run.time_budget_s, "trials": trials, "spent_s": run.train_seconds}


def holdout_frame(run_id: int) -> pd.DataFrame:
    """The run's test rows (in the order of its stored test predictions)."""
    return part_frame(run_id, "test")


def confidently_wrong(run_id: int, limit: int = 10) -> pd.DataFrame:
    """Test rows the model got wrong with the highest confidence (binary and multiclass)."""
    run = get_run(run_id)
    stored = holdout_predictions(run_id)
    if run.task not in ("binary", "multiclass") or stored.proba is None:
        return pd.DataFrame()
    frame = holdout_frame(run_id).iloc[: len(stored.y)].reset_index(drop=True)
    y = np.asarray(stored.y)
    proba = np.asarray(stored.proba, dtype=float)
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
