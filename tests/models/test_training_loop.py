"""The shared training loop's learning-rate schedule: warm-up, linear decay, a plan that fills
the time budget. A one-layer model on random rows keeps each test under a second of compute."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from models.training_loop import LoopConfig, LoopResult, fit_torch_model


def run_loop(config: LoopConfig, step_seconds: float = 0.0) -> tuple[LoopResult, list[float]]:
    """Train a linear model; returns the loop's result and the lr of every optimiser step."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).float()
    per_batch = 64 // int(config.steps_per_epoch or 4)

    def batches(rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        order = torch.from_numpy(rng.permutation(64))
        for rows in torch.split(order, per_batch):
            yield x[rows], y[rows]

    def loss_fn(m: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if step_seconds:
            time.sleep(step_seconds)  # a slow model, without using a core
        return torch.nn.functional.binary_cross_entropy_with_logits(m(batch[0])[:, 0], batch[1])

    def evaluate(m: torch.nn.Module) -> tuple[float, float]:
        loss = float(loss_fn(m, (x, y)))
        return loss, -loss

    lrs: list[float] = []
    handle = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"])
    )
    try:
        result = fit_torch_model(
            model, train_batches=batches, loss_fn=loss_fn, evaluate=evaluate, config=config
        )
    finally:
        handle.remove()
    return result, lrs


def test_warmup_then_linear_decay_to_zero_over_the_planned_steps() -> None:
    config = LoopConfig(
        max_epochs=5,
        batch_size=16,
        lr=0.1,
        patience=10,
        time_budget_s=None,
        lr_schedule="warmup_linear",
        warmup_share=0.2,
        steps_per_epoch=4,
    )
    result, lrs = run_loop(config)
    assert result.steps == result.planned_steps == 20 and len(lrs) == 20
    assert result.stopped_by == "max_epochs"
    warm = 4  # 20% of 20 steps
    np.testing.assert_allclose(lrs[:warm], [0.1 * (s + 1) / warm for s in range(warm)])
    np.testing.assert_allclose(lrs[warm:], [0.1 * (20 - s) / 16 for s in range(warm, 20)])
    assert max(lrs) == pytest.approx(0.1) and lrs[-1] == pytest.approx(0.1 / 16)


def test_constant_schedule_keeps_the_learning_rate() -> None:
    result, lrs = run_loop(LoopConfig(max_epochs=2, lr=0.05, time_budget_s=None, patience=5))
    assert lrs == [0.05] * 8 and result.planned_steps is None and result.steps == 8


def test_the_plan_fills_the_time_budget_and_decays_by_its_end() -> None:
    # 20 ms a step, 1.5 s: about 70 steps fit, far fewer than the 100 epochs x 4 ceiling
    config = LoopConfig(
        max_epochs=100,
        lr=0.1,
        patience=1000,
        time_budget_s=1.5,
        lr_schedule="warmup_linear",
        warmup_share=0.1,
        steps_per_epoch=4,
        fill_budget=True,
    )
    result, lrs = run_loop(config, step_seconds=0.02)
    assert result.stopped_by == "time_budget"
    assert result.planned_steps is not None and result.planned_steps < 400
    assert 10 <= result.steps <= 80
    assert result.train_seconds < 1.5 + 0.25  # the last validation fits in the budget too
    peak = int(np.argmax(lrs))
    assert 0 < peak < len(lrs) // 3  # a warm-up, then ...
    assert lrs[-1] < 0.35 * max(lrs)  # ... a decay that reached its low end with the time
    late = lrs[peak + (len(lrs) - peak) // 2 :]
    assert max(late) < 0.75 * max(lrs)


def test_schedule_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="steps_per_epoch"):
        LoopConfig(lr_schedule="warmup_linear")
    with pytest.raises(ValueError, match="lr_schedule"):
        LoopConfig(lr_schedule="cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="warmup_share"):
        LoopConfig(lr_schedule="warmup_linear", steps_per_epoch=2, warmup_share=1.0)
    with pytest.raises(ValueError, match="fill_budget"):
        LoopConfig(fill_budget=True)


def test_the_plan_prices_steps_by_their_size_not_by_the_first_ones() -> None:
    """One big batch (64 rows) timed first, in epochs of 64 + 3 x 4 rows: priced per step the
    plan thinks every step is as slow as it; priced per unit (row x column) it is not."""
    from models.training_loop import _LoopState, _StepPlan

    def planned(units: float | None) -> int:
        config = LoopConfig(
            max_epochs=1000,
            time_budget_s=100.0,
            lr_schedule="warmup_linear",
            steps_per_epoch=4,
            fill_budget=True,
            units_per_epoch=units,
        )
        state = _LoopState(config, time.perf_counter())
        state.steps, state.train_step_seconds, state.units_done = 1, 6.4, 64 * 4
        plan = _StepPlan(config)
        plan.replan(state)
        return plan.planned

    assert planned(None) in (15, 16)  # 1 + 100 s / 6.4 s (less the microseconds spent)
    # 0.025 s per unit x 76 rows x 4 columns / 4 steps = 1.9 s a step
    assert planned(76 * 4) in (52, 53)
