"""Equal-budget hyperparameter tuning for the tabular families, with Optuna.

Every family (FT-Transformer, LightGBM, logistic regression) is tuned by the same rule:
the run's time budget is the whole tuning budget, at most `MAX_TRIALS` trials, a seeded TPE
sampler (the same seed proposes the same parameters), and trials judged on the validation
part by the task's headline metric (ROC-AUC, accuracy, -RMSE). Trial 0 is always the
family's default settings and may use the whole budget (so a budget too tight for several
trials gives the untuned fit, not four undertrained ones); every later trial gets at most
`TRIAL_SHARE` of the budget. Tuning can only pick something that scored at least as well on
validation as the defaults. Torch trials report their
best validation score at every evaluation and are pruned when it falls below the median of
earlier trials at the same point (`MedianPruner`). A trial that raises (a diverged loss, out
of memory, anything) is recorded as failed and skipped; only when every trial fails does the
run fail, with the first error. What was spent (budget, trials by outcome, best parameters,
seconds) comes back as a `TuningReport` for the run's record.

This module knows nothing about how a family is fitted: callers pass `space` (parameters
from an Optuna trial) and `fit` (parameters + seconds -> a scored candidate); the search
spaces of the three families are below.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

import optuna
from optuna.trial import Trial, TrialState

# The same rule for every family: trials counted, and each trial's share of the budget.
MAX_TRIALS = 40
TRIAL_SHARE = 0.25
# No tuning below this many seconds: not even the default trial would fit.
MIN_TUNING_BUDGET_S = 1.0
# Torch trials are not pruned before this many evaluations, nor before 3 trials finished.
PRUNE_WARMUP_EVALUATIONS = 5
PRUNE_STARTUP_TRIALS = 3
MAX_RECORDED_FAILURES = 5


@dataclass
class Candidate:
    """One fitted trial: its validation score (higher is better), the model and extras."""

    value: float
    model: Any
    extra: Any = None


@dataclass
class TuningReport:
    """What tuning spent and found; `to_dict` is stored on the run (metrics["tuning"])."""

    family: str
    metric: str
    budget_s: float
    max_trials: int
    seed: int
    completed: int = 0
    pruned: int = 0
    failed: int = 0
    best_trial: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    seconds_used: float = 0.0
    stopped_by: str = "trials"
    failures: list[str] = field(default_factory=list)

    @property
    def trials(self) -> int:
        return self.completed + self.pruned + self.failed

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["trials"] = self.trials
        return data


class BudgetTooSmall(ValueError):
    """The budget cannot hold one trial (or one epoch); the message states the minimum.

    `needed_s`: the seconds the work would have needed (None when unknown)."""

    def __init__(self, message: str, needed_s: float | None = None) -> None:
        super().__init__(message)
        self.needed_s = needed_s


class TrialReporter:
    """Hands a torch trial's intermediate validation scores to the pruner."""

    def __init__(self, trial: Trial | None) -> None:
        self._trial = trial

    def report(self, evaluation: int, best_value: float) -> None:
        """Record the best score after `evaluation`; raises optuna.TrialPruned to stop."""
        if self._trial is None or not math.isfinite(best_value):
            return
        self._trial.report(best_value, evaluation)
        if self._trial.should_prune():
            raise optuna.TrialPruned(f"pruned at evaluation {evaluation}")


def tune(
    family: str,
    *,
    space: Callable[[Trial], dict[str, Any]],
    fit: Callable[[dict[str, Any], float, TrialReporter], Candidate],
    defaults: dict[str, Any],
    time_budget_s: float,
    metric: str,
    seed: int = 0,
    max_trials: int = MAX_TRIALS,
    should_stop: Callable[[], bool] | None = None,
    on_trial: Callable[[TuningReport, float], None] | None = None,
) -> tuple[Candidate, TuningReport]:
    """Run the study; returns the best candidate (by validation score) and the report.

    `fit(params, seconds, reporter)` trains one candidate within `seconds`. `should_stop`
    is checked between trials (a cancelled run); `on_trial(report, value)` is called after
    each trial for progress.
    """
    if not time_budget_s >= MIN_TUNING_BUDGET_S:
        raise BudgetTooSmall(
            f"a time budget of {time_budget_s:g} s is too small to tune the {_named(family)}: "
            f"give at least {MIN_TUNING_BUDGET_S:g} s"
        )
    if max_trials < 1:
        raise ValueError(f"max_trials must be >= 1, got {max_trials=}")
    started = time.perf_counter()
    report = TuningReport(family, metric, float(time_budget_s), max_trials, seed)
    best: Candidate | None = None
    durations: list[float] = []
    with _quiet_optuna():
        study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.MedianPruner(
                n_startup_trials=PRUNE_STARTUP_TRIALS, n_warmup_steps=PRUNE_WARMUP_EVALUATIONS
            ),
        )
        study.enqueue_trial(defaults)
        while True:
            left = time_budget_s - (time.perf_counter() - started)
            if report.trials >= max_trials:
                report.stopped_by = "trials"
                break
            if report.trials and left < 0.5 * statistics.median(durations):
                report.stopped_by = "time_budget"
                break
            if should_stop is not None and should_stop():
                report.stopped_by = "cancelled"
                break
            trial = study.ask()
            trial_started = time.perf_counter()
            value = math.nan
            try:
                params = space(trial)
                # The defaults may use the whole budget: when it is too tight for several
                # trials, tuning is the untuned fit; later trials get a share each.
                share = left if report.trials == 0 else TRIAL_SHARE * time_budget_s
                seconds = max(min(left, share), 1e-3)
                candidate = fit(params, seconds, TrialReporter(trial))
                value = float(candidate.value)
                if not math.isfinite(value):
                    raise FloatingPointError(f"the validation {metric} is {value}")
            except optuna.TrialPruned:
                study.tell(trial, state=TrialState.PRUNED)
                report.pruned += 1
            except BudgetTooSmall as exc:
                if report.trials == 0:
                    study.tell(trial, state=TrialState.FAIL)
                    report.failed += 1
                    _too_small(family, time_budget_s, exc)
                # A later trial cut short by what was left of the budget: pruned, not failed.
                study.tell(trial, state=TrialState.PRUNED)
                report.pruned += 1
            except Exception as exc:  # noqa: BLE001 - a failed trial is recorded, never fatal
                study.tell(trial, state=TrialState.FAIL)
                report.failed += 1
                if len(report.failures) < MAX_RECORDED_FAILURES:
                    report.failures.append(f"trial {trial.number}: {type(exc).__name__}: {exc}")
            else:
                study.tell(trial, value)
                report.completed += 1
                if best is None or value > best.value:
                    best = candidate
                    report.best_trial = trial.number
                    report.best_value = value
                    report.best_params = dict(params)
            durations.append(time.perf_counter() - trial_started)
            if on_trial is not None:
                on_trial(report, value)
    report.seconds_used = time.perf_counter() - started
    if best is None:
        if report.stopped_by == "cancelled" and not report.failures:
            raise TuningCancelled(
                f"tuning the {_named(family)} was cancelled before a trial finished"
            )
        first = report.failures[0] if report.failures else "no trial finished"
        raise ValueError(
            f"every tuning trial of the {_named(family)} failed or was pruned ({report.trials} "
            f"trials in {report.seconds_used:.1f} s); first error: {first}"
        )
    return best, report


# Messages name a family in words; reports keep the estimator id (models/tabular.py's).
_FAMILY_WORDS = {
    "ft_transformer": "FT-Transformer",
    "gbdt": "gradient-boosted trees (LightGBM)",
    "linear": "logistic/linear regression",
}


def _named(family: str) -> str:
    return _FAMILY_WORDS.get(family, family)


def _too_small(family: str, time_budget_s: float, exc: BudgetTooSmall) -> NoReturn:
    """The default trial did not fit in the whole budget: state the minimum."""
    needed = exc.needed_s or time_budget_s
    raise BudgetTooSmall(
        f"a time budget of {time_budget_s:g} s is too small to tune the {_named(family)}: the default "
        f"trial did not finish one epoch ({exc}); give at least {math.ceil(needed)} s",
        needed,
    ) from exc


class TuningCancelled(Exception):
    """The caller's `should_stop` ended tuning before any trial finished."""


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial at INFO and failed ones at WARNING; the run records them."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


# ----- search spaces -------------------------------------------------------------------------
CLASS_WEIGHTS = ("none", "balanced")


def ft_space(
    trial: Trial, preset: dict[str, Any], *, n_train: int, classification: bool
) -> dict[str, Any]:
    """FT-Transformer: learning rate, weight decay, three dropouts, depth and width around the
    chosen preset (one block less or more, half to 1.5x the width, whole heads), batch size
    (powers of two up to the data), class weights for classification.

    `preset`: the chosen preset's n_blocks, d_block, attention_n_heads and batch_size."""
    heads = int(preset["attention_n_heads"])
    n_blocks = int(preset["n_blocks"])
    d_block = int(preset["d_block"])
    widths = sorted({_round_to(d_block * f, heads) for f in (0.5, 1.0, 1.5)})
    batches = [b for b in (32, 64, 128, 256, 512) if b <= max(32, n_train)]
    if int(preset["batch_size"]) not in batches:
        batches.append(int(preset["batch_size"]))
    params: dict[str, Any] = {
        "lr": trial.suggest_float("lr", 3e-5, 3e-3, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-3, log=True),
        "attention_dropout": trial.suggest_float("attention_dropout", 0.0, 0.5),
        "ffn_dropout": trial.suggest_float("ffn_dropout", 0.0, 0.5),
        "residual_dropout": trial.suggest_float("residual_dropout", 0.0, 0.2),
        "n_blocks": trial.suggest_int("n_blocks", max(1, n_blocks - 1), n_blocks + 1),
        "d_block": trial.suggest_categorical("d_block", widths),
        "batch_size": trial.suggest_categorical("batch_size", sorted(batches)),
    }
    if classification:
        params["class_weight"] = trial.suggest_categorical("class_weight", CLASS_WEIGHTS)
    return params


def lightgbm_space(
    trial: Trial, *, classification: bool, categorical: bool = True
) -> dict[str, Any]:
    """LightGBM: leaves, learning rate (trees by early stopping), min child samples, L1/L2,
    feature and bagging fractions, the categorical splits' group size and smoothing (only
    when the table has a categorical column), class weights for classification.

    Categorical splits matter for many-level columns: with LightGBM's defaults (groups of at
    least 100 rows, smoothing 10) a 142-level country column with ~6 rows per level could not
    be split on, and the Gapminder regression lost to the CV-tuned reference by RMSE 6.40 to
    4.25 (bench/accuracy_bench.py); groups of 5 and smoothing 1 gave 2.81 in a scratch fit.
    LightGBM ignores the two on a table without categorical columns, so they are not searched
    there: dimensions that change nothing still steer the sampler. With them, breast cancer
    (30 numeric columns, 91 validation rows) got a LightGBM of held-out ROC-AUC 0.975 against
    0.989 without them (CV-tuned: 0.990)."""
    params: dict[str, Any] = {
        "num_leaves": trial.suggest_int("num_leaves", 4, 128, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 2, 100, log=True),
        "lambda_l1": trial.suggest_float("lambda_l1", 1e-8, 10.0, log=True),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-8, 10.0, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
    }
    if categorical:
        params["min_data_per_group"] = trial.suggest_int("min_data_per_group", 1, 100, log=True)
        params["cat_smooth"] = trial.suggest_float("cat_smooth", 0.1, 50.0, log=True)
    if classification:
        params["class_weight"] = trial.suggest_categorical("class_weight", CLASS_WEIGHTS)
    return params


def linear_space(trial: Trial, *, classification: bool) -> dict[str, Any]:
    """Logistic / ridge regression: the inverse regularisation strength C (alpha = 1 / C),
    class weights for classification."""
    params: dict[str, Any] = {"C": trial.suggest_float("C", 1e-3, 1e2, log=True)}
    if classification:
        params["class_weight"] = trial.suggest_categorical("class_weight", CLASS_WEIGHTS)
    return params


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)
