"""core.ingest against hostile uploads (tests/core/csv_cases.py) and the two real samples."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.ingest import (
    ColumnProfile,
    DatasetSchema,
    IngestError,
    Limits,
    profile_frame,
    read_csv_bytes,
)
from tests.core.csv_cases import CASES, UNSET, Case

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
CASES_BY_ID = {c.id: c for c in CASES}
PEOPLE = CASES_BY_ID["pii_email_phone_ssn_card_and_amount"].data


def _same(actual: object, expected: object) -> bool:
    if expected is None:
        return actual is None or (isinstance(actual, float) and math.isnan(actual))
    return actual == expected


def _check_parsed(case: Case) -> None:
    result = read_csv_bytes(case.data, limits=case.limits)
    frame, schema = result.frame, result.schema
    if case.shape is not None:
        assert frame.shape == case.shape
    if case.names is not None:
        assert schema.names == case.names == tuple(frame.columns)
    if case.encoding is not None:
        assert schema.encoding == case.encoding
    if case.delimiter is not None:
        assert schema.delimiter == case.delimiter
    for name, kind in case.kinds.items():
        assert schema.column(name).kind == kind, schema.column(name)
    for name, expected in case.values.items():
        actual = frame[name].tolist()[: len(expected)]
        assert all(_same(a, e) for a, e in zip(actual, expected, strict=True)), actual
    for name, label in case.pii.items():
        assert schema.column(name).pii == label, schema.column(name)
    if case.warning is not None:
        assert any(case.warning in w for w in schema.warnings), schema.warnings
    if case.target is not UNSET:
        assert schema.suggested_target == case.target, schema.suggested_target_reason
    # Invariants of every successful parse: float64 or string columns, one profile each.
    for column in frame.columns:
        dtype = frame[column].dtype
        assert dtype == np.float64 or isinstance(dtype, pd.StringDtype), (column, dtype)
    assert schema.n_rows == len(frame) and schema.names == tuple(frame.columns)
    assert all(p.reason for p in schema.columns)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_csv_corpus(case: Case) -> None:
    if not case.error:
        _check_parsed(case)
        return
    with pytest.raises(IngestError) as caught:
        read_csv_bytes(case.data, limits=case.limits)
    message = str(caught.value)
    for words in case.error:
        assert words in message, message
    assert "C error" not in message and "Traceback" not in message


def test_corpus_is_big_enough_and_ids_unique() -> None:
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


def test_credit_scoring_sample() -> None:
    result = read_csv_bytes((SAMPLES / "credit_scoring.csv").read_bytes())
    schema = result.schema
    assert result.frame.shape == (4454, 14)
    assert schema.suggested_target == "Status"
    assert "2 classes" in schema.suggested_target_reason
    amount = schema.column("Amount")
    assert amount.kind == "numeric" and amount.pii is None
    assert result.frame["Amount"].dtype == np.float64
    assert {schema.column(c).kind for c in ("Home", "Marital", "Records", "Job")} == {"categorical"}
    assert int(result.frame.isna().sum().sum()) == 455  # as documented in samples/ATTRIBUTION.md
    assert "Status" not in schema.default_features() and "Amount" in schema.default_features()


def test_food_reviews_sample() -> None:
    schema = read_csv_bytes((SAMPLES / "food_reviews_sample.csv").read_bytes()).schema
    assert schema.column("review").kind == "text"
    assert schema.column("product").kind == "id"
    assert schema.suggested_target == "score"
    assert schema.default_features() == ["review"]


def test_schema_round_trips_through_json() -> None:
    schema = read_csv_bytes(PEOPLE).schema
    restored = DatasetSchema.from_dict(json.loads(json.dumps(schema.to_dict())))
    assert restored == schema


def test_from_dict_rejects_unknown_version_and_bad_kind() -> None:
    data = read_csv_bytes(b"a,b\n1,x\n2,y\n").schema.to_dict()
    with pytest.raises(ValueError, match="version=99"):
        DatasetSchema.from_dict({**data, "format_version": 99})
    data["columns"][0]["kind"] = "blob"
    with pytest.raises(ValueError, match="blob"):
        DatasetSchema.from_dict(data)


def test_pii_examples_are_masked_and_pii_left_out_of_features() -> None:
    schema = read_csv_bytes(PEOPLE).schema
    first_card = PEOPLE.decode().splitlines()[1].split(",")[3]  # "4xxx xxxx xxxx xxxx"
    assert schema.column("contact").example_values[0] == "u***@e***.com"
    assert schema.column("national").example_values[0] == "***-**-1000"
    assert schema.column("tel").example_values[0] == "+** ** **** 1000"
    assert schema.column("card").example_values[0] == "**** **** **** " + first_card[-4:]
    assert schema.default_features() == ["Amount"]
    assert any("personal data (email addresses)" in w for w in schema.warnings)


def test_unknown_column_names_the_column() -> None:
    schema = read_csv_bytes(b"a,b\n1,x\n2,y\n").schema
    with pytest.raises(ValueError, match="nope"):
        schema.column("nope")


def test_profile_frame_on_a_frame_not_from_bytes() -> None:
    df = pd.DataFrame(
        {
            "when": pd.date_range("2024-01-01", periods=30, freq="D"),
            "flag": [True, False] * 15,
            "count": np.arange(30) % 7,
            "approved": ["yes", "no", "no"] * 10,
        }
    )
    schema = profile_frame(df)
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds == {
        "when": "datetime",
        "flag": "categorical",
        "count": "numeric",
        "approved": "categorical",
    }
    assert schema.column("count").probably_categorical_codes
    assert schema.suggested_target == "approved"
    assert schema.default_features() == ["flag", "count"]


def test_non_bytes_input_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="type"):
        read_csv_bytes("a,b\n1,2\n")  # type: ignore[arg-type]


def test_limits_reject_non_positive_values() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        Limits(max_rows=0)


def test_column_profile_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="kind"):
        ColumnProfile("x", "blob", "why", "str", 0.0, 1, None, False, ())
