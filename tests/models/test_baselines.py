"""LightGBM and the linear baseline on the encoded matrix Z."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from models.baselines import LightGBMModel, LinearModel
from models.metrics import classification_metrics
from models.preprocessing import FeatureSpec
from models.tabular import fit_tabular
from models.tasks import TargetEncoder
from tests.models.test_ft_transformer import SPEC, make_toy


def _encoded(n: int, seed: int):
    from models.preprocessing import TabularPreprocessor

    train, y = make_toy(400, seed=1)
    pre = TabularPreprocessor().fit(train, SPEC)
    target = TargetEncoder.fit(y, positive="yes")
    frame, y_other = make_toy(n, seed=seed)
    return pre, pre.encode(frame), target.encode(y_other)


def _lightgbm(seed: int = 0) -> LightGBMModel:
    _, z_train, y_train = _encoded(400, seed=1)
    _, z_val, y_val = _encoded(200, seed=2)
    return LightGBMModel.fit(
        z_train, y_train, z_val, y_val, task="binary", n_classes=2, categorical_indices=[2, 3]
    )


def test_lightgbm_learns_and_is_deterministic() -> None:
    _, z_test, y_test = _encoded(300, seed=3)
    first, second = _lightgbm(), _lightgbm()
    proba = first.predict(z_test)
    assert classification_metrics("binary", y_test, proba)["roc_auc"] > 0.85
    np.testing.assert_array_equal(proba, second.predict(z_test))
    logit = first.predict(z_test, output="logit")
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), proba, rtol=1e-9)


def test_lightgbm_uses_native_categorical_splits() -> None:
    model = _lightgbm()
    dump = model.booster.dump_model()
    decisions = set()

    def walk(node: dict) -> None:
        if "decision_type" in node:
            decisions.add(node["decision_type"])
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in dump["tree_info"]:
        walk(tree["tree_structure"])
    assert "==" in decisions  # categorical split on c1's codes, not a one-hot
    assert model.n_params() > 0


def test_lightgbm_text_round_trip_and_time_budget() -> None:
    model = _lightgbm()
    _, z_test, _ = _encoded(50, seed=4)
    clone = LightGBMModel.from_bytes(model.to_bytes(), "binary")
    np.testing.assert_array_equal(clone.predict(z_test), model.predict(z_test))
    _, z_train, y_train = _encoded(400, seed=1)
    rushed = LightGBMModel.fit(
        z_train,
        y_train,
        z_train,
        y_train,
        task="binary",
        n_classes=2,
        categorical_indices=[2, 3],
        time_budget_s=1e-9,
    )
    assert rushed.booster.num_trees() == 1


def _linear() -> tuple[LinearModel, np.ndarray, np.ndarray]:
    pre, z_train, y_train = _encoded(400, seed=1)
    model = LinearModel.fit(
        z_train, y_train, task="binary", n_numeric=2, cat_cardinalities=pre.cat_cardinalities
    )
    return model, z_train, y_train


def test_linear_model_predicts_like_sklearn_from_json() -> None:
    model, z_train, y_train = _linear()
    x = model.design(z_train)
    reference = LogisticRegression(C=1.0, max_iter=2000, random_state=0).fit(x, y_train)
    clone = LinearModel.from_bytes(model.to_bytes())
    np.testing.assert_allclose(clone.predict(z_train), reference.predict_proba(x)[:, 1], atol=1e-9)


def test_linear_parts_and_groups_describe_the_design() -> None:
    model, z_train, _ = _linear()
    design_fn, coef, intercept = model.linear_parts()
    x = design_fn(z_train)
    np.testing.assert_allclose(x @ coef + intercept, model.predict(z_train, output="logit"))
    # 2 numerics + 1 indicator (x2 has gaps) + one-hots of c1 (5 codes) and c2 (3 codes)
    assert model.feature_groups() == [0, 1, 1] + [2] * 5 + [3] * 3
    assert x.shape[1] == len(model.feature_groups())


def test_linear_design_imputes_and_handles_unknown_codes() -> None:
    model, _, _ = _linear()
    z = np.array([[np.nan, np.nan, 99.0, -1.0]])
    x = model.design(z)
    assert np.isfinite(x).all()
    assert x[0, 2] == 1.0  # x2 missing indicator
    assert x[0, 3] == 1.0 and x[0, 8] == 1.0  # unknown codes land on slot 0


@pytest.mark.parametrize("kind", ["gbdt", "linear"])
def test_regression_baselines_predict_in_original_units(kind: str) -> None:
    train, _ = make_toy(300, seed=1)
    val, _ = make_toy(100, seed=2)
    y_train, y_val = 5000 + 300 * train["x1"], 5000 + 300 * val["x1"]
    result = fit_tabular(
        kind,
        train_df=train,
        y_train=y_train,
        val_df=val,
        y_val=y_val,
        spec=SPEC,
        target=TargetEncoder.fit(y_train, task="regression"),
    )
    pred = result.model.predict_frame(val)
    assert np.sqrt(np.mean((pred - y_val) ** 2)) < 60  # 300 = one std of the signal


@pytest.mark.parametrize("kind", ["gbdt", "linear"])
def test_multiclass_baselines_return_probabilities(kind: str) -> None:
    train, _ = make_toy(300, seed=1)
    val, _ = make_toy(100, seed=2)
    spec = FeatureSpec(numeric=("x1", "x2"), categorical=("c2",))
    result = fit_tabular(
        kind,
        train_df=train,
        y_train=train["c1"],
        val_df=val,
        y_val=val["c1"],
        spec=spec,
        target=TargetEncoder.fit(train["c1"]),
    )
    proba = result.model.predict_frame(val)
    assert proba.shape == (100, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    log_proba = result.model.predict_frame(val, output="logit")
    np.testing.assert_allclose(np.exp(log_proba), proba, rtol=1e-9)
    with pytest.raises(ValueError, match="output='value'"):
        result.model.predict_frame(val, output="value")


@pytest.mark.parametrize("kind", ["gbdt", "linear"])
def test_baselines_score_unseen_categories_and_missing_numerics(kind: str) -> None:
    train, y_train = make_toy(300, seed=1)
    val, y_val = make_toy(100, seed=2)
    result = fit_tabular(
        kind,
        train_df=train,
        y_train=y_train,
        val_df=val,
        y_val=y_val,
        spec=SPEC,
        target=TargetEncoder.fit(y_train, positive="yes"),
    )
    odd = pd.DataFrame({"x1": [np.nan], "x2": [np.nan], "c1": ["new"], "c2": [None]})
    proba = result.model.predict_frame(odd)
    assert proba.shape == (1,) and 0 < proba[0] < 1
    assert result.loop is None and result.params > 0
