"""core.ingest against hostile uploads (tests/core/csv_cases.py) and the two real samples."""

from __future__ import annotations

import functools
import io
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
    open_csv,
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


# ---- one reader: whole uploads and streamed chunks ---------------------------------------


def _limit_case(case: Case) -> bool:
    """Size limits guard uploads only; scoring streams files of any size."""
    return case.limits != Limits() or any("limit is" in words for words in case.error)


def _chunked_text(data: bytes | Path, chunk_rows: int) -> pd.DataFrame:
    """What scoring reads: spreadsheet row numbers, blank lines counted."""
    return pd.concat(list(open_csv(data, chunk_rows=chunk_rows)))


def _whole_text(data: bytes) -> pd.DataFrame:
    """What an upload reads, before typing: one chunk, blank lines skipped."""
    return pd.concat(list(open_csv(data, limits=Limits(), keep_blank_lines=False)))


def _error(read) -> str:
    with pytest.raises(IngestError) as caught:
        read()
    return str(caught.value)


@pytest.mark.parametrize("case", [c for c in CASES if not _limit_case(c)], ids=lambda c: c.id)
@pytest.mark.parametrize("chunk_rows", [1, 2, 1000])
def test_chunked_and_whole_file_reads_agree(case: Case, chunk_rows: int) -> None:
    """Every corpus case: the same error message, or the same text values in the same order."""
    if case.error:
        assert _error(lambda: _chunked_text(case.data, chunk_rows)) == _upload_error(case.data)
        return
    whole, chunked = _whole_text(case.data), _chunked_text(case.data, chunk_rows)
    upload = _upload(case.data)
    assert list(chunked.columns) == list(whole.columns) == list(upload.schema.names)
    pd.testing.assert_frame_equal(
        chunked.reset_index(drop=True), whole.reset_index(drop=True), check_dtype=True
    )
    # Typing the text is what turns it into the upload's frame.
    assert upload.frame.shape == whole.shape


# The whole-file upload of a case is the same for every chunk size: read it once per case
# (typing and profiling a 400-column file took ~5 s each time on the 2-core machine).
@functools.cache
def _upload(data: bytes):
    return read_csv_bytes(data)


@functools.cache
def _upload_error(data: bytes) -> str:
    return _error(lambda: read_csv_bytes(data))


def test_a_file_on_disk_reads_as_its_bytes(tmp_path: Path) -> None:
    data = (SAMPLES / "credit_scoring.csv").read_bytes()
    path = tmp_path / "credit.csv"
    path.write_bytes(data)
    from_disk, from_bytes = _chunked_text(path, 500), _chunked_text(data, 4454)
    pd.testing.assert_frame_equal(from_disk, from_bytes)
    assert from_disk.index[0] == 2 and from_disk.index[-1] == 4455  # spreadsheet rows
    assert int(from_disk.isna().sum().sum()) == 455  # the missing markers, as uploaded


def test_streamed_row_numbers_count_blank_lines_and_quoted_line_breaks() -> None:
    data = b'a,b\n1,x\n\n"2\nstill 2",y\n,\n3,z\n'
    text = _chunked_text(data, 1)
    assert text.index.tolist() == [2, 4, 6]  # header 1, blank 3, ",," 5 (dropped)
    assert text["a"].tolist() == ["1", "2\nstill 2", "3"]
    assert _whole_text(data)["a"].tolist() == ["1", "2\nstill 2", "3"]


@pytest.mark.parametrize("chunk_rows", [1, 3, 100])
def test_errors_in_later_chunks_name_the_same_row(chunk_rows: int) -> None:
    lines = ["a,b", *[f"{i},{i}" for i in range(10)]]
    ragged = ("\n".join([*lines[:8], "7,7,7", *lines[8:]]) + "\n").encode()
    expected = "Row 9 has 3 values but the header has 2 columns"
    assert expected in _error(lambda: read_csv_bytes(ragged))
    assert expected in _error(lambda: _chunked_text(ragged, chunk_rows))
    unclosed = ("\n".join([*lines[:6], '5,"open', *lines[6:]]) + "\n").encode()
    expected = 'Row 7 opens a quote (") that is never closed'
    assert expected in _error(lambda: read_csv_bytes(unclosed))
    assert expected in _error(lambda: _chunked_text(unclosed, chunk_rows))


def test_a_part_of_a_file_numbers_its_rows_and_errors_from_its_first_row() -> None:
    from core.ingest import read_csv_chunks

    part = read_csv_chunks(io.BytesIO(b"a,b\n1,2\n3,4\n"), "utf-8", ",", first_row=101)
    assert pd.concat(list(part)).index.tolist() == [101, 102]
    bad = read_csv_chunks(io.BytesIO(b"a,b\n1,2\n3,4,5\n"), "utf-8", ",", first_row=101)
    assert "Row 102 has 3 values" in _error(lambda: list(bad))


def test_upload_limits_are_checked_while_streaming() -> None:
    many = ("a\n" + "1\n" * 25).encode()
    reader = open_csv(many, chunk_rows=10, limits=Limits(max_rows=20))
    assert "more than 20 data rows" in _error(lambda: list(reader))
    assert len(pd.concat(list(open_csv(many, chunk_rows=10)))) == 25  # scoring: no row limit
