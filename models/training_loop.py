"""One training loop for every torch model in Payoff (FT-Transformer, text classifier).

The caller supplies the data and the maths (`train_batches`, `loss_fn`, `evaluate`); the loop
owns what must behave the same everywhere: seeding, AdamW, gradient clipping, early stopping
that restores the best weights, a wall-clock budget, progress reports and cancellation.

Budgets are counted in optimiser steps and seconds as well as epochs: with
`eval_every_steps` the validation part is scored every that many steps (else once per
epoch), `patience` counts evaluations without improvement, early stopping never fires before
`min_steps`, and `max_steps` / `time_budget_s` end training whatever the epoch count. So a
small data set (a few optimiser steps per epoch) still gets enough steps to learn.

Optionally (`LoopConfig.lr_schedule="warmup_linear"`) the learning rate rises linearly over a
warm-up and then falls linearly to zero at the planned last step; with `fill_budget` that plan
is re-made from the measured seconds per step (after every step and every validation) so the
decay ends when the time budget does, `max_epochs` being only a ceiling.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

StopReason = Literal["early_stop", "time_budget", "max_epochs", "max_steps", "cancelled"]
LrSchedule = Literal["constant", "warmup_linear"]
LR_SCHEDULES: tuple[str, ...] = ("constant", "warmup_linear")
# The plan may end training early only once this many steps were timed.
_MIN_MEASURED_STEPS = 4


@dataclass
class LoopConfig:
    """Training settings; `time_budget_s=None` means no wall-clock limit.

    `patience` counts evaluations (once per epoch, or every `eval_every_steps` optimiser
    steps); `min_steps` keeps early stopping off until that many steps; `max_steps=None`
    means no step limit.
    """

    max_epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-4
    weight_decay: float = 1e-5
    patience: int = 8
    grad_clip: float = 1.0
    time_budget_s: float | None = 120
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    max_steps: int | None = None
    min_steps: int = 0
    eval_every_steps: int | None = None
    # Learning-rate schedule per optimiser step (every group's own lr is scaled alike).
    lr_schedule: LrSchedule = "constant"
    warmup_share: float = 0.0  # share of the planned steps spent warming up
    steps_per_epoch: int | None = None  # batches per epoch; needed by "warmup_linear"
    fill_budget: bool = False  # plan the steps to end with time_budget_s (see module doc)
    eval_cost_steps: float = 0.0  # a validation's cost in training steps, until it is measured
    # Sum over one epoch's batches of their first tensor's size (text: tokens). With it the
    # plan prices the steps ahead by their mean size, not by the size of the few timed so far
    # (batches of long texts cost several times those of short ones).
    units_per_epoch: float | None = None

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.batch_size < 1 or self.patience < 1 or self.threads < 1:
            raise ValueError(
                "max_epochs, batch_size, patience and threads must be >= 1, got "
                f"{self.max_epochs=} {self.batch_size=} {self.patience=} {self.threads=}"
            )
        if (self.max_steps is not None and self.max_steps < 1) or self.min_steps < 0:
            raise ValueError(f"max_steps must be >= 1 and min_steps >= 0: {self.max_steps=}")
        if self.eval_every_steps is not None and self.eval_every_steps < 1:
            raise ValueError(f"eval_every_steps must be >= 1 or None: {self.eval_every_steps=}")
        if not (self.lr > 0 and self.weight_decay >= 0 and self.grad_clip >= 0):
            raise ValueError(f"invalid {self.lr=} {self.weight_decay=} {self.grad_clip=}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ValueError(f"time_budget_s must be positive or None, got {self.time_budget_s=}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'cpu' or 'cuda[:n]', got {self.device=}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}: {self.lr_schedule=}")
        if not 0.0 <= self.warmup_share < 1.0:
            raise ValueError(f"warmup_share must be in [0, 1): {self.warmup_share=}")
        if self.lr_schedule != "constant" and not (self.steps_per_epoch or 0) >= 1:
            raise ValueError(f"{self.lr_schedule=} needs steps_per_epoch >= 1")
        if self.fill_budget and (self.time_budget_s is None or self.lr_schedule == "constant"):
            raise ValueError("fill_budget needs a time_budget_s and a decaying lr_schedule")


@dataclass
class EpochReport:
    """Progress after one evaluation: `epoch` is its 1-based number (one per epoch unless the
    loop evaluates every `eval_every_steps` steps), `step` the optimiser steps so far;
    `train_loss` is the mean since the previous evaluation; `eta_s` a rough upper bound."""

    epoch: int
    train_loss: float
    val_loss: float
    val_metric: float
    best_val_metric: float
    elapsed_s: float
    eta_s: float
    step: int = 0
    trial: int = 0  # tuning: which trial (0 = the defaults) this evaluation belongs to


@dataclass
class LoopResult:
    """How training ended; the model holds the weights of evaluation `best_epoch` (1-based).

    `epochs_run` counts evaluations (= epochs unless evaluated every `eval_every_steps`)."""

    best_epoch: int
    epochs_run: int
    stopped_by: StopReason
    train_seconds: float
    rows_seen: int
    history: list[EpochReport] = field(default_factory=list)
    steps: int = 0
    best_step: int = 0

    @property
    def best_val_metric(self) -> float:
        """The validation metric of the weights the model holds (-inf if none finite)."""
        return self.history[-1].best_val_metric if self.history else -math.inf

    planned_steps: int | None = None  # the schedule's last plan (None: constant lr)


def fit_torch_model(
    model: torch.nn.Module,
    *,
    train_batches: Callable[[np.random.Generator], Iterable[tuple]],
    loss_fn: Callable[[torch.nn.Module, tuple], torch.Tensor],
    evaluate: Callable[[torch.nn.Module], tuple[float, float]],
    config: LoopConfig,
    optimizer_groups: Iterable | None = None,
    on_epoch: Callable[[EpochReport], bool | None] | None = None,
) -> LoopResult:
    """Train `model` in place and leave it in eval mode with its best weights.

    `train_batches(rng)` yields one epoch of batches (tuples of tensors or None), shuffled with
    the given seeded generator; the loop moves tensors to the device. `evaluate(model)`
    returns (val_loss, val_metric), higher metric = better; it runs under no_grad in eval
    mode. `on_epoch` returning False cancels (anything else continues).
    """
    warm_up_optimizer()
    started = time.perf_counter()  # the budget includes setting up the optimiser
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = torch.device(config.device)
    _enable_tf32(device)
    model.to(device)
    optimizer = torch.optim.AdamW(
        _parameter_groups(model, optimizer_groups), lr=config.lr, weight_decay=config.weight_decay
    )
    state = _LoopState(config, started)
    plan = _StepPlan(config) if config.lr_schedule != "constant" else None
    on_step = None
    if plan is not None:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, plan.factor)
        on_step = _schedule_step(scheduler, plan, state)

    def evaluate_and_report() -> None:
        eval_started = time.perf_counter()
        val_loss, val_metric = _evaluate(model, evaluate, device)
        if plan is not None:
            plan.replan(state, eval_seconds=time.perf_counter() - eval_started)
        report = state.end_evaluation(model, val_loss, val_metric)
        if on_epoch is not None and on_epoch(report) is False:
            state.reason = "cancelled"
        model.train()

    while state.reason is None:
        model.train()
        for batch in train_batches(rng):
            _train_step(model, optimizer, batch, loss_fn, state, device)
            if on_step is not None and on_step():
                break
            if state.out_of_time() or state.out_of_steps():
                break
            if state.evaluation_due():
                evaluate_and_report()
                if state.reason is not None:
                    break
        else:
            state.epochs_completed += 1
            if state.steps_per_epoch is None:
                state.steps_per_epoch = state.steps
            at_max = state.epochs_completed >= config.max_epochs
            if state.last_eval_step != state.steps and (config.eval_every_steps is None or at_max):
                evaluate_and_report()
            elif at_max and state.reason is None:
                state.reason = "max_epochs"  # the last step was just evaluated
            continue
        if state.last_eval_step != state.steps:
            evaluate_and_report()  # the weights since the last evaluation are scored too
    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    model.eval()
    return LoopResult(
        best_epoch=state.best_epoch,
        epochs_run=len(state.history),
        stopped_by=state.reason,
        train_seconds=time.perf_counter() - state.start,
        rows_seen=state.rows_seen,
        history=state.history,
        steps=state.steps,
        best_step=state.best_step,
        planned_steps=None if plan is None else plan.planned,
    )


def warm_up_optimizer() -> None:
    """The first AdamW of a process imports torch's compiler stack (2-9 s on a busy CPU).
    Done once before any clock starts, so it never eats a run's or a trial's time budget."""
    global _OPTIMIZER_WARM
    if not _OPTIMIZER_WARM:
        torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])
        _OPTIMIZER_WARM = True


_OPTIMIZER_WARM = False


class _StepPlan:
    """How many optimiser steps training gets, and the lr factor of each step.

    The plan starts at max_epochs x steps_per_epoch. With `fill_budget` it is re-made from the
    measured training seconds per step and the last validation's seconds, so the steps that
    fit in the time left are planned (never more than the ceiling): the warm-up is
    `warmup_share` of the plan and the linear decay reaches zero at its end.
    """

    def __init__(self, config: LoopConfig) -> None:
        self.config = config
        self.steps_per_epoch = int(config.steps_per_epoch or 1)
        self.ceiling = config.max_epochs * self.steps_per_epoch
        self.planned = self.ceiling
        self.eval_seconds = 0.0
        self.eval_measured = False

    def warmup_steps(self) -> int:
        return int(round(self.config.warmup_share * self.planned))

    def factor(self, step: int) -> float:
        """lr multiplier of the (0-based) step about to be taken."""
        warm = self.warmup_steps()
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (self.planned - step) / max(self.planned - warm, 1))

    def replan(self, state: _LoopState, eval_seconds: float | None = None) -> None:
        if eval_seconds is not None:
            self.eval_seconds = eval_seconds
            self.eval_measured = True
        budget = self.config.time_budget_s
        if not self.config.fill_budget or budget is None or state.steps < 1:
            return
        per_step = state.train_step_seconds / state.steps
        if self.config.units_per_epoch and state.units_done > 0:
            mean_units = self.config.units_per_epoch / self.steps_per_epoch
            per_step = state.train_step_seconds / state.units_done * mean_units
        if not self.eval_measured:
            self.eval_seconds = per_step * self.config.eval_cost_steps
        left = budget - state.elapsed() - self.eval_seconds  # the last validation still runs
        # each further step also carries its share of one validation per epoch
        more = int(max(left, 0.0) / (per_step + self.eval_seconds / self.steps_per_epoch))
        # no step fits: stop now, so the last validation ends within the budget; but not on
        # the first few steps' word (the first one is slow, and batches differ in length)
        floor = state.steps if state.steps >= _MIN_MEASURED_STEPS else state.steps + 1
        self.planned = max(floor, min(self.ceiling, state.steps + more))

    def done(self, steps: int) -> bool:
        return steps >= self.planned


def _schedule_step(
    scheduler: torch.optim.lr_scheduler.LRScheduler, plan: _StepPlan, state: _LoopState
) -> Callable[[], bool]:
    """After each optimiser step: re-plan, advance the schedule; True = stop."""

    def on_step() -> bool:
        plan.replan(state)
        scheduler.step()
        if plan.done(state.steps):
            state.reason = "max_epochs" if plan.planned >= plan.ceiling else "time_budget"
            return True
        return False

    return on_step


class _LoopState:
    """Bookkeeping for one run: clock, steps, best weights, patience, why it stopped."""

    def __init__(self, config: LoopConfig, start: float) -> None:
        self.config = config
        self.start = start
        self.history: list[EpochReport] = []
        self.best_metric = -math.inf
        self.best_epoch = 0
        self.best_step = 0
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.rows_seen = 0
        self.steps = 0
        self.epochs_completed = 0
        self.steps_per_epoch: int | None = None
        self.last_eval_step = -1
        self.loss_sum = 0.0
        self.loss_rows = 0
        self.train_step_seconds = 0.0  # time inside training steps (not validation)
        self.units_done = 0  # their batches' first tensors' sizes, summed
        self.reason: StopReason | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def out_of_time(self) -> bool:
        budget = self.config.time_budget_s
        if self.reason is None and budget is not None and self.elapsed() >= budget:
            self.reason = "time_budget"
        return self.reason == "time_budget"

    def out_of_steps(self) -> bool:
        limit = self.config.max_steps
        if self.reason is None and limit is not None and self.steps >= limit:
            self.reason = "max_steps"
        return self.reason == "max_steps"

    def evaluation_due(self) -> bool:
        every = self.config.eval_every_steps
        return every is not None and self.steps % every == 0

    def end_evaluation(
        self, model: torch.nn.Module, val_loss: float, val_metric: float
    ) -> EpochReport:
        evaluation = len(self.history) + 1
        # NaN never counts as an improvement, but the first evaluation always sets a baseline.
        if self.best_weights is None or val_metric > self.best_metric:
            self.best_metric = val_metric if not math.isnan(val_metric) else -math.inf
            self.best_epoch = evaluation
            self.best_step = self.steps
            self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if self.reason is None:
            waited = evaluation - self.best_epoch >= self.config.patience
            if waited and self.steps >= self.config.min_steps:
                self.reason = "early_stop"
            elif self.epochs_completed >= self.config.max_epochs:
                self.reason = "max_epochs"
            elif not self.out_of_steps():
                self.out_of_time()  # evaluation may have used up the rest of the budget
        train_loss = self.loss_sum / self.loss_rows if self.loss_rows else float("nan")
        self.loss_sum, self.loss_rows = 0.0, 0
        self.last_eval_step = self.steps
        elapsed = self.elapsed()
        report = EpochReport(
            epoch=evaluation,
            train_loss=train_loss,
            val_loss=val_loss,
            val_metric=val_metric,
            best_val_metric=self.best_metric,
            elapsed_s=elapsed,
            eta_s=self._eta(elapsed),
            step=self.steps,
        )
        self.history.append(report)
        return report

    def _eta(self, elapsed: float) -> float:
        if self.reason is not None or self.steps == 0:
            return 0.0
        per_step = elapsed / self.steps
        limits = []
        if self.config.max_steps is not None:
            limits.append(per_step * max(self.config.max_steps - self.steps, 0))
        if self.steps_per_epoch is not None:
            total = self.config.max_epochs * self.steps_per_epoch
            limits.append(per_step * max(total - self.steps, 0))
        if self.config.time_budget_s is not None:
            limits.append(max(self.config.time_budget_s - elapsed, 0.0))
        return min(limits) if limits else 0.0


def _train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: tuple,
    loss_fn: Callable[[torch.nn.Module, tuple], torch.Tensor],
    state: _LoopState,
    device: torch.device,
) -> None:
    """One optimiser step; a non-finite loss raises FloatingPointError (never trained on)."""
    step_started = time.perf_counter()
    batch = _to_device(batch, device)
    n = _batch_rows(batch)
    optimizer.zero_grad(set_to_none=True)
    with _autocast(device):
        loss = loss_fn(model, batch)
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"training diverged: the loss is {loss.item()} at step {state.steps + 1}; "
            "try a smaller learning rate"
        )
    loss.backward()
    if state.config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), state.config.grad_clip)
    optimizer.step()
    state.loss_sum += float(loss.detach()) * n
    state.loss_rows += n
    state.rows_seen += n
    state.steps += 1
    state.units_done += _batch_units(batch)
    state.train_step_seconds += time.perf_counter() - step_started


def _evaluate(
    model: torch.nn.Module,
    evaluate: Callable[[torch.nn.Module], tuple[float, float]],
    device: torch.device,
) -> tuple[float, float]:
    model.eval()
    with torch.no_grad(), _autocast(device):
        val_loss, val_metric = evaluate(model)
    return float(val_loss), float(val_metric)


def _parameter_groups(model: torch.nn.Module, groups: Iterable | None) -> Any:
    """Explicit groups, else the model's own (rtdl: no weight decay on norms, biases,
    embeddings), else all parameters."""
    if groups is not None:
        return list(groups)
    make_groups = getattr(model, "make_parameter_groups", None)
    return make_groups() if callable(make_groups) else model.parameters()


def _to_device(batch: tuple, device: torch.device) -> tuple:
    return tuple(
        x.to(device, non_blocking=True) if isinstance(x, torch.Tensor) else x for x in batch
    )


def _batch_units(batch: tuple) -> int:
    """Size of the batch's first tensor (rows x width): the cost unit of `units_per_epoch`."""
    for item in batch:
        if isinstance(item, torch.Tensor):
            return int(item.numel())
    return 0


def _batch_rows(batch: tuple) -> int:
    for item in batch:
        if isinstance(item, torch.Tensor) and item.ndim > 0:
            return int(item.shape[0])
    raise ValueError("a training batch must contain at least one tensor with a row dimension")


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (tensor cores, no loss scaling needed); nothing on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _enable_tf32(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def iterate_minibatches(
    n_rows: int, batch_size: int, rng: np.random.Generator
) -> Iterator[torch.Tensor]:
    """Shuffled row indices for one epoch, as index tensors (a helper for `train_batches`)."""
    order = torch.from_numpy(rng.permutation(n_rows))
    yield from torch.split(order, batch_size)
