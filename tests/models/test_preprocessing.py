"""TargetEncoder and TabularPreprocessor: the encoded matrix Z and the model inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.preprocessing import UNKNOWN_LABEL, FeatureSpec, TabularPreprocessor, decile_bins
from models.tasks import TargetEncoder

SPEC = FeatureSpec(numeric=("age", "income"), categorical=("home",))


def _train() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [20, 30, 40, 50, 60, 70],
            "income": [1.0, np.nan, 3.0, 4.0, 5.0, 6.0],
            "home": ["rent", " own", "rent", "parents", "rent", None],
            "ignored": list("abcdef"),
        }
    )


def _fitted() -> TabularPreprocessor:
    return TabularPreprocessor().fit(_train(), SPEC)


# ----- TargetEncoder -------------------------------------------------------------------------
def test_binary_positive_defaults_to_minority_class() -> None:
    enc = TargetEncoder.fit(pd.Series(["good", "bad", "good", "good"]))
    assert (enc.task, enc.classes, enc.positive_class) == ("binary", ("good", "bad"), "bad")
    np.testing.assert_array_equal(enc.encode(pd.Series(["bad", "good"])), [1, 0])
    assert enc.decode(np.array([1, 0])).tolist() == ["bad", "good"]


def test_binary_tie_picks_label_sorted_last_and_labels_compare_as_strings() -> None:
    enc = TargetEncoder.fit(pd.Series([0, 1, 1, 0]))
    assert enc.positive_class == "1"
    np.testing.assert_array_equal(enc.encode(pd.Series(["1", " 0", 1.0])), [1, 0, 1])


def test_task_inference_and_errors() -> None:
    assert TargetEncoder.fit(pd.Series(np.arange(30.0))).task == "regression"
    assert TargetEncoder.fit(pd.Series(list("abcab"))).task == "multiclass"
    with pytest.raises(ValueError, match="target has one class"):
        TargetEncoder.fit(pd.Series(["x", "x"]))
    with pytest.raises(ValueError, match="cannot infer the task"):
        TargetEncoder.fit(pd.Series([f"id{i}" for i in range(60)]))
    with pytest.raises(ValueError, match="positive class not found"):
        TargetEncoder.fit(pd.Series(["a", "b"]), positive="c")
    enc = TargetEncoder.fit(pd.Series(["a", "b"]))
    with pytest.raises(ValueError, match="not seen in training: \\['z'\\]"):
        enc.encode(pd.Series(["a", "z"]))


def test_regression_target_scales_and_round_trips() -> None:
    y = pd.Series(np.linspace(100, 200, 25))
    enc = TargetEncoder.fit(y)
    scaled = enc.encode(y)
    assert scaled.dtype == np.float32
    assert abs(scaled.mean()) < 1e-5 and abs(scaled.std() - 1) < 1e-5
    np.testing.assert_allclose(enc.decode(scaled), y, rtol=1e-5)
    assert TargetEncoder.from_dict(json.loads(json.dumps(enc.to_dict()))) == enc


# ----- FeatureSpec / encode ------------------------------------------------------------------
def test_spec_orders_numeric_first_and_rejects_duplicates() -> None:
    assert SPEC.columns == ("age", "income", "home")
    with pytest.raises(ValueError, match="listed twice"):
        FeatureSpec(numeric=("a",), categorical=("a",))


def test_encode_builds_z_with_codes_and_nans() -> None:
    pre = _fitted()
    assert pre.vocabularies == {"home": ["own", "parents", "rent"]}
    frame = pd.DataFrame(
        {"age": ["25", " ", "inf"], "income": [1.5, -np.inf, None], "home": ["own", "boat", None]}
    )
    z = pre.encode(frame)
    assert z.dtype == np.float64
    np.testing.assert_array_equal(z[:, 0], [25.0, np.nan, np.nan])
    np.testing.assert_array_equal(z[:, 1], [1.5, np.nan, np.nan])
    np.testing.assert_array_equal(z[:, 2], [1.0, 0.0, 0.0])  # unseen and missing -> 0
    assert pre.unseen_counts(frame) == {"home": 1}


def test_text_in_a_numeric_column_names_column_and_rows() -> None:
    frame = _train().assign(age=["20", "30", "forty", "50", "n/a", "70"])
    with pytest.raises(ValueError, match=r"column 'age'.*'forty'.*rows \[2, 4\]"):
        _fitted().encode(frame)


def test_missing_feature_column_is_reported() -> None:
    with pytest.raises(ValueError, match="lacks feature columns.*income"):
        _fitted().encode(_train().drop(columns="income"))


# ----- model inputs ---------------------------------------------------------------------------
def test_model_inputs_are_quantile_normal_with_missing_indicators() -> None:
    pre = _fitted()
    assert pre.indicator_columns == ("income",)  # age had no gaps in training
    assert pre.n_cont == 3 and pre.cat_cardinalities == [4]
    x_cont, x_cat = pre.to_model_inputs(pre.encode(_train()))
    assert x_cont.dtype == np.float32 and x_cat.dtype == np.int64
    assert np.all(np.diff(x_cont[:, 0]) > 0)  # monotone in age
    assert abs(x_cont[:, 0].mean()) < 1e-5  # symmetric ranks -> centred
    np.testing.assert_array_equal(x_cont[:, 2], [0, 1, 0, 0, 0, 0])
    assert x_cont[1, 1] == 0.0  # missing income -> 0 after normalisation
    np.testing.assert_array_equal(x_cat[:, 0], [3, 1, 3, 2, 3, 0])


def test_model_inputs_clip_out_of_range_values_and_codes() -> None:
    pre = _fitted()
    z = np.array([[1e9, -1e9, 99.0], [np.nan, np.nan, -3.0]])
    x_cont, x_cat = pre.to_model_inputs(z)
    assert np.isfinite(x_cont).all() and x_cont[0, 0] > 4 and x_cont[0, 1] < -4
    np.testing.assert_array_equal(x_cat[:, 0], [0, 0])
    with pytest.raises(ValueError, match="shape"):
        pre.to_model_inputs(np.zeros((2, 5)))


def test_json_round_trip_gives_identical_outputs() -> None:
    pre = _fitted()
    clone = TabularPreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    z = pre.encode(_train())
    np.testing.assert_array_equal(clone.encode(_train()), z)
    for mine, theirs in zip(pre.to_model_inputs(z), clone.to_model_inputs(z), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert clone.training_stats == pre.training_stats
    assert clone.spec == SPEC


def test_training_stats_typical_row_and_decoding() -> None:
    pre = _fitted()
    stats = pre.training_stats
    assert stats["numeric"]["age"]["median"] == 45.0
    assert stats["numeric"]["income"]["missing_rate"] == pytest.approx(1 / 6)
    assert sum(stats["numeric"]["age"]["decile_fractions"]) == pytest.approx(1.0)
    assert stats["categorical"]["home"]["frequencies"] == pytest.approx([1 / 6, 1 / 6, 1 / 6, 0.5])
    assert pre.typical_row() == {"age": 45.0, "income": 4.0, "home": "rent"}
    labels = pre.decode_categorical("home", np.array([0, 2, 7]))
    assert labels.tolist() == [UNKNOWN_LABEL, "parents", UNKNOWN_LABEL]
    json.dumps(stats, allow_nan=False)  # JSON-safe


def test_decile_bins_follow_the_training_rule() -> None:
    edges = [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
    np.testing.assert_array_equal(
        decile_bins(np.array([-1, 0, 0.5, 8, 99]), edges), [0, 2, 2, 9, 9]
    )
    assert decile_bins(np.array([1.0, 2.0]), []).tolist() == [0, 0]  # no training values


def test_unfitted_preprocessor_says_so() -> None:
    with pytest.raises(ValueError, match="not fitted"):
        TabularPreprocessor().encode(_train())
