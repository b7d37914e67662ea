"""FT-Transformer presets and the shared torch training loop, on tiny seeded data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from rtdl_revisiting_models import FTTransformer

from models.ft_transformer import SIZE_PRESETS, build_ft_transformer
from models.measure import flops_per_row
from models.metrics import classification_metrics
from models.preprocessing import FeatureSpec
from models.tabular import fit_tabular, inference_batch_rows
from models.tasks import TargetEncoder
from models.training_loop import LoopConfig, fit_torch_model, iterate_minibatches

SPEC = FeatureSpec(numeric=("x1", "x2"), categorical=("c1", "c2"))


def make_toy(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """Learnable binary data: x1 and c1 carry signal, x2 (10% missing) and c2 are noise."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.uniform(size=n)
    x2[rng.uniform(size=n) < 0.1] = np.nan
    c1 = rng.choice(["a", "b", "c", "d"], size=n)
    c2 = rng.choice(["u", "v"], size=n)
    logit = 3.0 * x1 + 2.5 * np.isin(c1, ["a", "b"]) - 1.25
    y = np.where(rng.uniform(size=n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame = pd.DataFrame({"x1": x1, "x2": x2, "c1": c1, "c2": c2})
    return frame, pd.Series(y, name="y")


def _fit_tiny(seed: int = 0, **kwargs):
    train, y_train = make_toy(300, seed=1)
    val, y_val = make_toy(150, seed=2)
    target = TargetEncoder.fit(y_train, positive="yes")
    options = {"size": "tiny", "seed": seed, "time_budget_s": None} | kwargs
    result = fit_tabular(
        "ft_transformer",
        train_df=train,
        y_train=y_train,
        val_df=val,
        y_val=y_val,
        spec=SPEC,
        target=target,
        **options,
    )
    return result, target


def test_default_preset_is_the_papers_configuration() -> None:
    expected = FTTransformer.get_default_kwargs(3)
    assert SIZE_PRESETS["default"] == expected
    assert SIZE_PRESETS["tiny"]["_is_default"] is False


@pytest.mark.parametrize(
    ("n_cont", "cards"), [(3, [4, 2]), (0, [4, 2]), (3, [])], ids=["both", "cat-only", "num-only"]
)
def test_build_handles_missing_feature_kinds(n_cont: int, cards: list[int]) -> None:
    model = build_ft_transformer(n_cont, cards, d_out=3, size="tiny").eval()
    x_cont = torch.randn(5, n_cont) if n_cont else None
    x_cat = torch.zeros(5, len(cards), dtype=torch.long) if cards else None
    assert model(x_cont, x_cat).shape == (5, 3)


def test_build_rejects_no_features_and_unknown_size() -> None:
    with pytest.raises(ValueError, match="at least one"):
        build_ft_transformer(0, [], d_out=1, size="tiny")
    with pytest.raises(ValueError, match="size='huge'"):
        build_ft_transformer(2, [], d_out=1, size="huge")


def test_flops_grow_with_preset() -> None:
    inputs = (torch.zeros(4, 3), torch.zeros(4, 2, dtype=torch.long))
    tiny = flops_per_row(build_ft_transformer(3, [4, 2], 1, "tiny"), inputs)
    small = flops_per_row(build_ft_transformer(3, [4, 2], 1, "small"), inputs)
    assert 0 < tiny < small


def test_tiny_model_learns_a_learnable_toy_set() -> None:
    result, target = _fit_tiny()
    history = result.loop.history
    assert history[-1].train_loss < 0.8 * history[0].train_loss
    test, y_test = make_toy(300, seed=3)
    proba = result.model.predict_frame(test)
    auc = classification_metrics("binary", target.encode(y_test), proba)["roc_auc"]
    assert auc > 0.85
    assert result.params == result.model.n_params() > 0
    assert result.flops_per_row > 0


def test_inference_batches_are_cache_sized_on_cpu_and_large_on_cuda() -> None:
    # 2^18 floats per [rows, tokens, width] tensor, as a power of two in 32..1024
    assert inference_batch_rows(21, 64, "cpu") == 128  # "small", 20 columns
    assert inference_batch_rows(21, 32, "cpu") == 256  # "tiny"
    assert inference_batch_rows(21, 192, "cpu") == 64  # "default"
    assert inference_batch_rows(3, 8, "cpu") == 1024 and inference_batch_rows(500, 192, "cpu") == 32
    assert inference_batch_rows(21, 64, "cuda:0") == 8192
    with pytest.raises(ValueError, match="tokens and width"):
        inference_batch_rows(0, 64, "cpu")


def test_predictions_do_not_depend_on_the_batch_size() -> None:
    result, _ = _fit_tiny()
    model = result.model
    z = model.preprocessor.encode(make_toy(700, seed=5)[0])
    assert model.inference_batch_rows() == inference_batch_rows(5, 32, "cpu") == 1024
    default = model.predict_encoded(z, output="logit")
    np.testing.assert_allclose(
        model.predict_encoded(z, output="logit", batch_size=7), default, atol=1e-5
    )


def test_seeded_cpu_training_is_deterministic() -> None:
    first, _ = _fit_tiny(seed=7)
    second, _ = _fit_tiny(seed=7)
    test, _ = make_toy(50, seed=4)
    np.testing.assert_array_equal(first.model.predict_frame(test), second.model.predict_frame(test))
    assert first.loop.epochs_run == second.loop.epochs_run


def test_time_budget_stops_training_and_keeps_a_usable_model() -> None:
    # Early stopping waits for 400 steps (> 1 s); one epoch is 10 steps (< 1 s on a busy CPU).
    result, _ = _fit_tiny(time_budget_s=1.0)
    assert result.loop.stopped_by == "time_budget"
    assert 10 <= result.loop.steps < 400  # 300 rows in batches of 32: 10 steps an epoch
    assert result.loop.rows_seen == 32 * result.loop.steps - 20 * (result.loop.steps // 10)
    test, _ = make_toy(20, seed=5)
    assert np.isfinite(result.model.predict_frame(test)).all()


def test_a_budget_below_one_epoch_says_the_minimum() -> None:
    with pytest.raises(ValueError, match=r"does not fit one epoch.*give at least \d+ s"):
        _fit_tiny(time_budget_s=1e-4)


def test_small_data_gets_small_batches_and_enough_steps() -> None:
    result, _ = _fit_tiny()
    assert result.loop.stopped_by == "early_stop"
    assert result.loop.steps >= 400  # FT_MIN_STEPS, though 300 rows are 10 steps an epoch
    # one evaluation per epoch of 10 steps; the weights kept are the best evaluation's
    assert [r.step for r in result.loop.history[:3]] == [10, 20, 30]
    best = max(r.val_metric for r in result.loop.history)
    assert result.loop.history[result.loop.best_epoch - 1].val_metric == best
    assert result.loop.best_step == 10 * result.loop.best_epoch


def test_on_epoch_returning_false_cancels() -> None:
    seen = []

    def cancel_at_two(report) -> bool:
        seen.append(report.epoch)
        return report.epoch < 2

    result, _ = _fit_tiny(on_epoch=cancel_at_two)
    assert result.loop.stopped_by == "cancelled"
    assert seen == [1, 2] and result.loop.epochs_run == 2
    assert result.loop.best_epoch in (1, 2)


def test_unseen_categories_and_missing_numerics_at_predict_time() -> None:
    result, _ = _fit_tiny()
    odd = pd.DataFrame(
        {"x1": [np.nan, 0.5], "x2": [np.inf, np.nan], "c1": ["zzz", None], "c2": ["v", ""]}
    )
    proba = result.model.predict_frame(odd)
    assert proba.shape == (2,) and np.isfinite(proba).all()
    logit = result.model.predict_frame(odd, output="logit")
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), proba, rtol=1e-6)


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_other_tasks_train_and_predict_in_the_right_space(task: str) -> None:
    train, _ = make_toy(240, seed=1)
    val, _ = make_toy(80, seed=2)
    if task == "multiclass":
        y_train, y_val = train["c1"].rename("y"), val["c1"].rename("y")
        spec = FeatureSpec(numeric=("x1", "x2"), categorical=("c2",))
    else:
        y_train, y_val = 1000 + 50 * train["x1"], 1000 + 50 * val["x1"]
        spec = SPEC
    target = TargetEncoder.fit(y_train, task=task)
    result = fit_tabular(
        "ft_transformer",
        train_df=train,
        y_train=y_train,
        val_df=val,
        y_val=y_val,
        spec=spec,
        target=target,
        size="tiny",
        time_budget_s=3,
    )
    out = result.model.predict_frame(val)
    if task == "multiclass":
        assert out.shape == (80, 4)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    else:
        assert out.shape == (80,)
        assert abs(out.mean() - 1000) < 25  # original units, not the scaled training target


def _linear_problem():
    """A tiny regression for the generic loop: no make_parameter_groups, plain tensors."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=gen)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    return x, y


def test_generic_loop_restores_best_weights_on_early_stop() -> None:
    x, y = _linear_problem()
    model = torch.nn.Linear(3, 1)
    snapshots = {}
    scripted_metric = iter([0.9, 0.5, 0.4, 0.3, 0.2])  # best at epoch 1, then worse

    def on_epoch(report) -> None:
        snapshots[report.epoch] = model.weight.detach().clone()

    result = fit_torch_model(
        model,
        train_batches=lambda rng: ((x[i], y[i]) for i in iterate_minibatches(64, 16, rng)),
        loss_fn=lambda m, b: torch.nn.functional.mse_loss(m(b[0])[:, 0], b[1]),
        evaluate=lambda m: (0.0, next(scripted_metric)),
        config=LoopConfig(max_epochs=10, patience=3, lr=0.05, time_budget_s=None),
        on_epoch=on_epoch,
    )
    assert result.stopped_by == "early_stop"
    assert (result.best_epoch, result.epochs_run) == (1, 4)
    torch.testing.assert_close(model.weight, snapshots[1])
    assert not torch.equal(snapshots[1], snapshots[4])
    assert result.rows_seen == 4 * 64
    assert result.history[-1].eta_s == 0.0


def test_generic_loop_runs_to_max_epochs_and_reports_progress() -> None:
    x, y = _linear_problem()
    model = torch.nn.Linear(3, 1)
    result = fit_torch_model(
        model,
        train_batches=lambda rng: ((x[i], y[i]) for i in iterate_minibatches(64, 16, rng)),
        loss_fn=lambda m, b: torch.nn.functional.mse_loss(m(b[0])[:, 0], b[1]),
        evaluate=lambda m: (
            float(torch.nn.functional.mse_loss(m(x)[:, 0], y)),
            -float(torch.nn.functional.mse_loss(m(x)[:, 0], y)),
        ),
        config=LoopConfig(max_epochs=5, lr=0.05, time_budget_s=None),
    )
    assert result.stopped_by == "max_epochs" and result.epochs_run == 5
    losses = [r.train_loss for r in result.history]
    assert losses[-1] < losses[0]
    assert [r.epoch for r in result.history] == [1, 2, 3, 4, 5]
    assert not model.training


def test_loop_config_validates() -> None:
    with pytest.raises(ValueError, match="batch_size=0"):
        LoopConfig(batch_size=0)
    with pytest.raises(ValueError, match="device='tpu'"):
        LoopConfig(device="tpu")
