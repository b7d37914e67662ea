"""models.tabular: fit_tabular's checks and the FittedTabularModel contract shared by the
three tabular kinds (prediction spaces, raw rows in, description, artifact round trip)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.preprocessing import FeatureSpec
from models.tabular import MODEL_KINDS, FittedTabularModel, fit_tabular
from models.tasks import TargetEncoder

SPEC = FeatureSpec(numeric=("x1", "x2"), categorical=("c1",))


def _toy(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    c1 = rng.choice(["a", "b", "c"], size=n)
    logit = 2.5 * x1 + 1.5 * (c1 == "a") - 0.5
    y = np.where(rng.uniform(size=n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame({"x1": x1, "x2": x2, "c1": c1}), pd.Series(y, name="y")


TRAIN, Y_TRAIN = _toy(240, 1)
VAL, Y_VAL = _toy(120, 2)
TARGET = TargetEncoder.fit(Y_TRAIN, positive="yes")


def _fit(kind: str, **options):
    options = {"size": "tiny", "time_budget_s": None} | options
    return fit_tabular(
        kind,
        train_df=TRAIN,
        y_train=Y_TRAIN,
        val_df=VAL,
        y_val=Y_VAL,
        spec=SPEC,
        target=TARGET,
        **options,
    )


@pytest.fixture(scope="module", params=MODEL_KINDS)
def fitted(request):
    return _fit(request.param)


def test_each_kind_learns_the_signal(fitted) -> None:
    proba = fitted.model.predict_frame(VAL)
    y = TARGET.encode(Y_VAL)
    assert proba.shape == (len(VAL),) and ((proba >= 0) & (proba <= 1)).all()
    # Rank quality well above chance on held-out rows (x1 and c1 carry the signal).
    positives, negatives = proba[y == 1], proba[y == 0]
    auc = (positives[:, None] > negatives[None, :]).mean()
    assert auc > 0.75, (fitted.model.kind, auc)


def test_logit_is_the_log_odds_of_proba_and_frames_equal_encoded_rows(fitted) -> None:
    model = fitted.model
    z = model.preprocessor.encode(VAL)
    proba = model.predict_encoded(z)
    np.testing.assert_allclose(model.predict_frame(VAL), proba, rtol=0, atol=1e-12)
    logit = model.predict_encoded(z, output="logit")
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), proba, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="regression"):
        model.predict_encoded(z, output="value")


def test_description_matches_the_kind(fitted) -> None:
    model = fitted.model
    assert fitted.params == model.n_params() > 0
    if model.kind == "gbdt":
        assert fitted.flops_per_row is None and fitted.loop is None
    elif model.kind == "linear":
        assert fitted.flops_per_row == 2 * model.n_params() and fitted.loop is None
        design, coef, intercept = model.linear_parts()
        z = model.preprocessor.encode(VAL.head(5))
        logit = design(z) @ np.ravel(coef) + np.ravel(intercept)[0]
        np.testing.assert_allclose(logit, model.predict_encoded(z, output="logit"), atol=1e-9)
    else:
        assert fitted.flops_per_row > fitted.params and fitted.loop is not None
        assert model.size == "tiny"
    if model.kind != "linear":
        with pytest.raises(ValueError, match="only exists for logreg"):
            model.linear_parts()


def test_saved_and_loaded_models_predict_the_same(fitted, tmp_path: Path) -> None:
    fitted.model.save(tmp_path / "m")
    loaded = FittedTabularModel.load(tmp_path / "m")
    assert (loaded.kind, loaded.size, loaded.target) == (
        fitted.model.kind,
        fitted.model.size,
        TARGET,
    )
    np.testing.assert_allclose(
        loaded.predict_frame(VAL), fitted.model.predict_frame(VAL), rtol=0, atol=1e-12
    )


def test_encoded_rows_of_the_wrong_width_are_refused() -> None:
    model = _fit("linear").model
    with pytest.raises(ValueError, match=r"shape \[n_rows, 3\]"):
        model.predict_encoded(np.zeros((2, 5)))


@pytest.mark.parametrize(
    ("kind", "options", "words"),
    [
        ("xgboost", {}, "unknown model kind"),
        ("ft_transformer", {"size": "huge"}, "unknown FT-Transformer size"),
        ("linear", {"threads": 0}, "threads must be >= 1"),
    ],
)
def test_bad_fit_arguments_are_refused(kind, options, words) -> None:
    with pytest.raises(ValueError, match=words):
        _fit(kind, **options)


def test_empty_or_misaligned_parts_are_refused() -> None:
    with pytest.raises(ValueError, match="need training and validation rows"):
        fit_tabular(
            "linear",
            train_df=TRAIN.iloc[:0],
            y_train=Y_TRAIN.iloc[:0],
            val_df=VAL,
            y_val=Y_VAL,
            spec=SPEC,
            target=TARGET,
        )
    with pytest.raises(ValueError, match="differ in length"):
        fit_tabular(
            "linear",
            train_df=TRAIN,
            y_train=Y_TRAIN.iloc[:-1],
            val_df=VAL,
            y_val=Y_VAL,
            spec=SPEC,
            target=TARGET,
        )


def test_regression_predicts_in_original_units() -> None:
    rng = np.random.default_rng(3)
    y = pd.Series(1000 + 200 * TRAIN["x1"].to_numpy() + rng.normal(scale=5, size=len(TRAIN)))
    y_val = pd.Series(1000 + 200 * VAL["x1"].to_numpy())
    result = fit_tabular(
        "linear",
        train_df=TRAIN,
        y_train=y,
        val_df=VAL,
        y_val=y_val,
        spec=SPEC,
        target=TargetEncoder.fit(y, task="regression"),
    )
    predicted = result.model.predict_frame(VAL)
    assert np.abs(predicted - y_val.to_numpy()).mean() < 20  # units of y, not scaled ones
