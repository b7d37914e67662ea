"""Interventional SHAP: checked against closed forms, shap's own Exact explainer, and itself."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import shap
import torch

from models.shapley import (
    MAX_EXACT_PLAYERS,
    EffectTables,
    count_evaluations,
    effect_tables,
    estimate_evaluations,
    exact_interventional,
    explain_effects,
    explain_interventional,
    fidelity,
    summarize_background,
)

M = 6


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.normal(size=(5, M)), rng.normal(size=(7, M)), rng.random(7) + 0.1


def pairwise(z: np.ndarray) -> np.ndarray:
    """Nonlinear, but every interaction involves at most two columns."""
    return np.tanh(z[:, 0] * z[:, 1]) + np.sin(z[:, 2]) * z[:, 3] ** 2 + z[:, 4] * z[:, 5]


def three_way(z: np.ndarray) -> np.ndarray:
    return z[:, 0] * z[:, 1] * z[:, 2] + np.tanh(z[:, 3] * z[:, 4] * z[:, 5])


@pytest.mark.parametrize("method", ["exact", "antithetic", "auto"])
def test_linear_model_matches_closed_form(data, method):
    x, b, w = data
    coef = np.arange(1.0, M + 1)
    result = explain_interventional(lambda z: z @ coef + 3.0, x, b, w, method=method)
    expected = coef * (x - (w / w.sum()) @ b)
    np.testing.assert_allclose(result.values, expected, atol=1e-12)
    assert result.base_value == pytest.approx(float((w / w.sum()) @ (b @ coef + 3.0)))
    np.testing.assert_allclose(result.output, x @ coef + 3.0)


def test_one_antithetic_pair_is_exact_for_pairwise_interactions(data):
    x, b, w = data
    exact = exact_interventional(pairwise, x, b, w)
    sampled = explain_interventional(pairwise, x, b, w, method="antithetic", n_pairs=1)
    assert sampled.method == "antithetic"
    np.testing.assert_allclose(sampled.values, exact.values, atol=1e-9)


def test_three_way_interaction_error_shrinks_with_more_pairs(data):
    x, b, w = data
    exact = exact_interventional(three_way, x, b, w).values
    errors = []
    for n_pairs in (1, 64):
        result = explain_interventional(three_way, x, b, w, method="antithetic", n_pairs=n_pairs)
        assert result.additivity_error < 1e-9
        errors.append(np.abs(result.values - exact).mean())
    assert errors[0] > 0.05  # one pair cannot split a 3-way term exactly
    assert errors[1] < errors[0] / 4


@pytest.mark.slow  # shap's own exact explainer: over a minute here
def test_exact_matches_shap_exact_explainer(data):
    x, b, _ = data
    explainer = shap.explainers.Exact(pairwise, shap.maskers.Independent(b, max_samples=len(b)))
    reference = explainer(x)
    ours = exact_interventional(pairwise, x, b)
    np.testing.assert_allclose(ours.values, reference.values, atol=1e-6)
    assert ours.base_value == pytest.approx(float(reference.base_values[0]), abs=1e-9)
    assert ours.additivity_error < 1e-9


def test_nan_and_equal_codes_are_null_players():
    # column 0: categorical code equal to every baseline's; column 1: NaN in row and baselines
    x = np.array([[2.0, np.nan, 0.5, -1.0, 3.0]])
    b = np.array([[2.0, np.nan, 1.5, 0.0, 1.0], [2.0, np.nan, -0.5, 2.0, 0.0]])
    seen_nan_rows = []

    def model(z: np.ndarray) -> np.ndarray:
        seen_nan_rows.append(np.isnan(z[:, 1]).all())
        filled = np.where(np.isnan(z), -1.0, z)
        return filled[:, 0] * filled[:, 2] * filled[:, 3] + filled[:, 1] * filled[:, 4]

    exact = exact_interventional(model, x, b)
    auto = explain_interventional(model, x, b)
    np.testing.assert_array_equal(exact.values[:, :2], 0.0)
    np.testing.assert_allclose(auto.values, exact.values, atol=1e-12)
    assert all(seen_nan_rows)
    # 3 differing columns per baseline: 2^3 - 2 coalitions, not 2^5 - 2
    assert exact.evaluations == 2 * 6 + 1 + 2
    assert exact.evaluations < estimate_evaluations(1, 5, 2, "exact")


def test_row_equal_to_every_baseline_gets_zero_values():
    b = np.array([[1.0, 2.0], [1.0, 2.0]])
    result = explain_interventional(lambda z: z.sum(axis=1), b[:1], b)
    np.testing.assert_array_equal(result.values, 0.0)
    assert result.method == "exact" and result.evaluations == 3


@pytest.mark.parametrize("method", ["exact", "antithetic", "auto"])
def test_estimate_is_exact_when_every_column_differs(data, method):
    x, b, w = data
    result = explain_interventional(pairwise, x, b, w, method=method, n_pairs=3)
    assert result.evaluations == estimate_evaluations(len(x), M, len(b), method, n_pairs=3)


@pytest.mark.parametrize("method", ["exact", "antithetic", "auto"])
def test_count_is_exact_where_columns_equal_a_baseline(data, method):
    x, b, w = data
    b = b.copy()
    b[0, :4] = x[0, :4]  # free players: the upper bound overcounts, the count must not
    b[1, :] = x[1, :]  # an empty game
    result = explain_interventional(pairwise, x, b, w, method=method, n_pairs=2)
    assert result.evaluations == count_evaluations(x, b, method, n_pairs=2)
    assert result.evaluations < estimate_evaluations(len(x), M, len(b), method, n_pairs=2)


def test_count_of_a_game_too_big_to_enumerate_is_prohibitive():
    wide = np.zeros((1, MAX_EXACT_PLAYERS + 1))
    assert count_evaluations(wide, wide + 1, "exact") >= 2**62
    assert count_evaluations(wide, wide + 1, "auto", n_pairs=1) < 100


def test_auto_enumerates_small_games_and_chains_large_ones():
    rng = np.random.default_rng(3)
    x, b = rng.normal(size=(4, 8)), rng.normal(size=(3, 8))
    b[0, 3:] = x[0, 3:]  # row 0 vs baseline 0: 3 differing columns -> enumerated
    result = explain_interventional(three_way, x, b, method="auto")
    assert result.method == "antithetic+exact"
    assert result.additivity_error < 1e-9


def test_batched_torch_model_matches_unbatched():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(M, 16), torch.nn.GELU(), torch.nn.Linear(16, 1))
    net = net.double().eval()
    sizes = []

    def predict(z: np.ndarray) -> np.ndarray:
        sizes.append(len(z))
        with torch.no_grad():
            return net(torch.from_numpy(z.copy())).squeeze(1).numpy()

    rng = np.random.default_rng(1)
    x, b = rng.normal(size=(6, M)), rng.normal(size=(5, M))
    whole = explain_interventional(predict, x, b, max_batch_rows=100_000)
    sizes.clear()
    progress = []
    batched = explain_interventional(
        predict, x, b, max_batch_rows=7, on_progress=lambda d, t: progress.append((d, t))
    )
    assert max(sizes) <= 7 and sum(sizes) == batched.evaluations == whole.evaluations
    np.testing.assert_allclose(batched.values, whole.values, atol=1e-12)
    assert batched.additivity_error < 1e-9
    assert progress[-1] == (6, 6) and len(progress) > 1
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


def test_seed_changes_permutations_but_is_reproducible(data):
    x, b, w = data
    first = explain_interventional(three_way, x, b, w, method="antithetic", seed=1).values
    again = explain_interventional(three_way, x, b, w, method="antithetic", seed=1).values
    other = explain_interventional(three_way, x, b, w, method="antithetic", seed=2).values
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_summarize_background_returns_weighted_real_rows():
    rng = np.random.default_rng(0)
    numeric = np.concatenate([rng.normal(0, 1, 300), rng.normal(10, 1, 100)])
    numeric[::17] = np.nan
    codes = rng.integers(0, 4, 400).astype(float)
    z = np.column_stack([numeric, codes, rng.exponential(size=400)])
    rows, weights = summarize_background(z, k=8, seed=0, categorical=[False, True, False])
    assert rows.shape == (8, 3) and weights.shape == (8,)
    assert weights.sum() == pytest.approx(1.0) and (weights > 0).all()
    for row in rows:
        same = (z == row) | (np.isnan(z) & np.isnan(row))
        assert same.all(axis=1).any()
    assert set(rows[:, 1]) <= {0.0, 1.0, 2.0, 3.0}
    # the second mode holds a quarter of the rows: its representatives weigh about that much
    assert weights[rows[:, 0] > 5].sum() == pytest.approx(0.25, abs=0.05)
    again = summarize_background(z, k=8, seed=0, categorical=[False, True, False])
    np.testing.assert_array_equal(again[1], weights)


def test_summarize_background_with_few_distinct_rows():
    z = np.repeat(np.array([[1.0, 0.0], [2.0, 1.0]]), [30, 10], axis=0)
    rows, weights = summarize_background(z, k=5)
    assert len(rows) == 2
    np.testing.assert_allclose(sorted(weights), [0.25, 0.75])
    small, small_weights = summarize_background(z[:3], k=5)
    np.testing.assert_array_equal(small, z[:3])
    np.testing.assert_allclose(small_weights, 1 / 3)


def test_fidelity_figures():
    reference = np.array([[1.0, -2.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]])
    values = np.array([[1.1, -2.0, 0.4, 0.0], [0.0, 0.0, 0.0, 0.0]])
    result = fidelity(values, reference)
    assert result["rows"] == 2
    assert result["spearman"] == pytest.approx(1.0)
    assert result["max_abs_error"] == pytest.approx(0.1 / 3.5)
    shuffled = fidelity(values[:1, ::-1], reference[:1])
    assert shuffled["spearman"] < 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"background": np.zeros((2, 3))}, "differ in columns"),
        ({"weights": np.array([1.0, -1.0])}, "weights"),
        ({"method": "kernel"}, "method"),
        ({"n_pairs": 0}, "n_pairs"),
        ({"seed": -1}, "seed"),
        ({"rows": np.zeros((0, 2))}, "rows"),
    ],
)
def test_bad_inputs_raise_value_error_naming_them(kwargs, message):
    args = {"rows": np.zeros((1, 2)), "background": np.ones((2, 2))} | kwargs
    with pytest.raises(ValueError, match=message):
        explain_interventional(lambda z: z.sum(axis=1), **args)


def test_wide_rows_refuse_exact_but_auto_explains_them():
    rng = np.random.default_rng(5)
    x, b = rng.normal(size=(2, 30)), rng.normal(size=(3, 30))
    calls = []

    def model(z: np.ndarray) -> np.ndarray:
        calls.append(len(z))
        return z @ np.linspace(-1, 1, 30)

    with pytest.raises(ValueError, match="2\\^d"):
        exact_interventional(model, x, b)
    assert not calls  # refused before any model call
    result = explain_interventional(model, x, b)
    np.testing.assert_allclose(result.values, np.linspace(-1, 1, 30) * (x - b.mean(0)))


def test_wrong_predict_shape_is_reported():
    with pytest.raises(ValueError, match="one score per row"):
        explain_interventional(lambda z: z, np.zeros((1, 2)), np.ones((2, 2)))


# --- main + total effects (the FT-Transformer's default) -------------------------------------


def _discrete(n: int = 40, seed: int = 3) -> np.ndarray:
    """Columns with at most 5 distinct values (one with gaps): every grid is then exact."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 5, size=(n, M)).astype(float)
    z[rng.random(n) < 0.2, 1] = np.nan
    return z


def _nan_safe(f):
    return lambda z: f(np.nan_to_num(z, nan=-1.0))


def test_effects_are_exact_for_pairwise_interactions_against_the_data():
    z = _discrete()
    model = _nan_safe(pairwise)
    tables = effect_tables(model, z, z, categorical=[False, False, True, False, False, False])
    rows = z[:6]
    result = explain_effects(model, rows, tables)
    exact = exact_interventional(model, rows, z)
    np.testing.assert_allclose(result.values, exact.values, atol=1e-9)
    assert result.base_value == pytest.approx(exact.base_value)
    assert result.method == "effects"
    # cost per row: each grid value that differs from the row's own, plus the row
    assert result.evaluations <= len(rows) * tables.calls_per_row


def test_effects_add_up_and_stay_close_with_higher_order_interactions():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(300, M))
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(M, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))

    def model(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.as_tensor(batch, dtype=torch.float32)).numpy()[:, 0].astype(float)

    tables = effect_tables(model, z, z[:200], grid=8, pd_grid=24)
    rows = z[:5]
    result = explain_effects(model, rows, tables)
    assert result.additivity_error < 1e-9
    reference = exact_interventional(model, rows, z[:200])
    figures = fidelity(result.values, reference.values)
    assert figures["spearman"] >= 0.9
    assert figures["max_abs_error"] <= 0.1


def test_control_variate_makes_one_grid_point_exact_for_an_additive_model():
    """With one grid value per column the plain grid mean puts the column's whole marginal at
    its median; the control variate (PD means over all values) is exact for additive models,
    and still exact for pairwise interactions when the grid covers every value."""
    rng = np.random.default_rng(11)
    z = rng.integers(0, 10, size=(60, M)).astype(float)  # 10 values: the PD grid is exact

    def additive(batch: np.ndarray) -> np.ndarray:
        return np.sin(batch[:, 0]) - batch[:, 1] ** 2 / 9 + np.abs(batch[:, 2] - 4) + batch[:, 3]

    tables = effect_tables(additive, z, z, grid=1, pd_grid=24)
    assert tables.pd_means is not None
    rows = z[:6]
    exact = exact_interventional(additive, rows, z)
    result = explain_effects(additive, rows, tables)
    assert result.evaluations <= len(rows) * (M + 1)  # one grid value per column, plus the row
    np.testing.assert_allclose(result.values, exact.values, atol=1e-9)
    plain = explain_effects(additive, rows, dataclasses.replace(tables, pd_means=None))
    # what the control variate removes (the gap's share-out hides it only when every column's
    # grid error has the same sign; here they differ)
    assert np.abs(plain.values - exact.values).max() > 0.1


def test_tables_stored_before_the_control_variate_still_explain():
    z = _discrete()
    tables = effect_tables(_nan_safe(pairwise), z, z[:10])
    stored = tables.to_dict()
    assert len(stored["pd_means"]) == M
    del stored["pd_means"]
    old = EffectTables.from_dict(json.loads(json.dumps(stored)))
    assert old.pd_means is None
    rows = z[10:14]
    # every value is on the grid here, so both totals are the same expectation
    np.testing.assert_allclose(
        explain_effects(_nan_safe(pairwise), rows, old).values,
        explain_effects(_nan_safe(pairwise), rows, tables).values,
        atol=1e-9,
    )
    with pytest.raises(ValueError, match="differ in columns"):
        EffectTables.from_dict({**tables.to_dict(), "pd_means": [0.0]})


def test_effect_tables_round_trip_through_plain_json():
    z = _discrete()
    tables = effect_tables(_nan_safe(pairwise), z, z[:10])
    again = EffectTables.from_dict(json.loads(json.dumps(tables.to_dict())))
    rows = z[10:14]
    np.testing.assert_allclose(
        explain_effects(_nan_safe(pairwise), rows, again).values,
        explain_effects(_nan_safe(pairwise), rows, tables).values,
    )
    with pytest.raises(ValueError, match="not a stored effect table"):
        EffectTables.from_dict({"grid_values": []})


def test_effects_refuse_rows_of_another_width():
    z = _discrete()
    tables = effect_tables(_nan_safe(pairwise), z, z[:5])
    with pytest.raises(ValueError, match="columns"):
        explain_effects(_nan_safe(pairwise), z[:2, :4], tables)
