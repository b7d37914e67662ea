"""models.tasks: the task a target implies, its classes, and the encoding models train on."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.tasks import MAX_CLASSES, TargetEncoder, label_strings


def test_labels_are_stripped_strings_with_whole_numbers_written_plainly() -> None:
    values = [1.0, 2, " a ", "", None, float("nan"), 2.5, np.int64(7)]
    assert label_strings(values).tolist() == ["1", "2", "a", None, None, None, "2.5", "7"]
    assert label_strings(pd.Series([True, False])).tolist() == ["True", "False"]


def test_a_target_read_as_numbers_or_as_text_maps_to_the_same_classes() -> None:
    encoder = TargetEncoder.fit(pd.Series([0, 1, 1, 0, 1]), positive="1")
    assert encoder.encode(pd.Series(["1", " 0 ", 1.0])).tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    ("y", "task"),
    [
        (pd.Series(["yes", "no", "no"]), "binary"),
        (pd.Series(["a", "b", "c", "a"]), "multiclass"),
        (pd.Series(np.arange(21, dtype=float)), "regression"),
        (pd.Series(np.arange(20) % 20), "multiclass"),  # 20 distinct numbers: still classes
    ],
)
def test_the_task_is_inferred_from_the_values(y: pd.Series, task: str) -> None:
    assert TargetEncoder.fit(y).task == task


def test_binary_positive_defaults_to_the_minority_then_the_label_sorted_last() -> None:
    minority = TargetEncoder.fit(pd.Series(["good"] * 5 + ["bad"] * 2))
    assert minority.classes == ("good", "bad") and minority.positive_class == "bad"
    tie = TargetEncoder.fit(pd.Series(["x", "y", "x", "y"]))
    assert tie.positive_class == "y"
    chosen = TargetEncoder.fit(pd.Series(["good"] * 5 + ["bad"] * 2), positive="good")
    assert chosen.classes == ("bad", "good")
    assert chosen.encode(["good", "bad"]).tolist() == [1, 0]


def test_classes_sort_numbers_by_value() -> None:
    encoder = TargetEncoder.fit(pd.Series(["10", "2", "1", "2"]))
    assert encoder.classes == ("1", "2", "10") and encoder.d_out == 3


def test_regression_targets_are_scaled_and_decoded_back() -> None:
    y = pd.Series(np.linspace(10.0, 50.0, 30))
    encoder = TargetEncoder.fit(y)
    encoded = encoder.encode(y)
    assert encoded.dtype == np.float32
    assert abs(float(encoded.mean())) < 1e-6 and float(encoded.std()) == pytest.approx(1, rel=1e-5)
    np.testing.assert_allclose(encoder.decode(encoded), y.to_numpy(), rtol=1e-6)
    assert encoder.n_classes == 0 and encoder.d_out == 1


@pytest.mark.parametrize(
    ("y", "options", "words"),
    [
        (pd.Series([], dtype=float), {}, "empty"),
        (pd.Series(["a", None, "b"]), {}, "1 missing"),
        (pd.Series(["a", "a"]), {}, "one class"),
        (pd.Series([f"id{i}" for i in range(MAX_CLASSES + 1)]), {}, "cannot infer"),
        (pd.Series(["a", "b", "c"]), {"task": "binary"}, "exactly two"),
        (pd.Series(["a", "b"]), {"positive": "c"}, "positive class not found"),
        (pd.Series(["a", "b", "c"]), {"positive": "a"}, "only applies to binary"),
        (pd.Series(["a", "b"]), {"task": "regression"}, "must be numeric"),
        (pd.Series(["a", "b"]), {"task": "ranking"}, "task must be one of"),
    ],
)
def test_unusable_targets_are_refused_with_the_reason(y, options, words) -> None:
    with pytest.raises(ValueError, match=words):
        TargetEncoder.fit(y, **options)


def test_unknown_or_missing_labels_at_encode_time_are_refused() -> None:
    encoder = TargetEncoder.fit(pd.Series(["a", "b", "a"]))
    with pytest.raises(ValueError, match=r"not seen in training: \['c'\]"):
        encoder.encode(["a", "c"])
    with pytest.raises(ValueError, match="missing"):
        encoder.encode(["a", None])
    regression = TargetEncoder.fit(pd.Series(np.arange(30, dtype=float)))
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        regression.encode(["1.5", "x"])


@pytest.mark.parametrize(
    "y", [pd.Series(["no", "yes", "yes"]), pd.Series(list("abcab")), pd.Series(np.arange(40.0))]
)
def test_json_round_trip(y: pd.Series) -> None:
    encoder = TargetEncoder.fit(y)
    assert TargetEncoder.from_dict(json.loads(json.dumps(encoder.to_dict()))) == encoder


@pytest.mark.parametrize(
    "fields",
    [
        {"task": "binary", "classes": ("a", "b"), "positive_class": "a"},  # positive not last
        {"task": "multiclass", "classes": ("a", "a")},
        {"task": "multiclass", "classes": ("a", "b", "c"), "positive_class": "c"},
        {"task": "regression", "std": 0.0},
        {"task": "regression", "classes": ("a", "b")},
    ],
)
def test_inconsistent_encoders_cannot_be_built(fields) -> None:
    with pytest.raises(ValueError):
        TargetEncoder(**fields)
