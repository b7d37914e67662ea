"""Batch scoring: chunking never changes a result, failures leave nothing, exports are safe."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from core import runs as runs_module
from core import training as training_module
from core.datasets import Roles, ensure_samples, register_dataset
from core.db import session_factory
from core.records import DatasetSplitRecord, PredictionRecord, ScoreBatchRecord
from core.scoring import batch_predictions, list_batches, score_source
from core.splits import TEST
from tests.fixtures import (
    CREDIT_SAMPLE,
    POSITIVE,
    TARGET,
    assert_same_results,
    csv_bytes,
    make_tabular_frame,
    payoff_home,
    register_frame,
    train,
)

NEW_ROWS = make_tabular_frame(60, seed=11)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, module_ledger) -> SimpleNamespace:
    """One trained run per backend: the tests using it run on SQLite and on PostgreSQL."""
    home = tmp_path_factory.mktemp("scoring_home")
    with payoff_home(home, module_ledger):
        dataset = register_frame(make_tabular_frame(), money_column="amount")
        run = train(dataset.id, "logreg")
    return SimpleNamespace(home=home, run=run, db_url=module_ledger)


@pytest.fixture
def run(trained: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, _isolated_home: Path):
    monkeypatch.setenv("PAYOFF_HOME", str(trained.home))
    if trained.db_url:
        monkeypatch.setenv("PAYOFF_DB_URL", trained.db_url)
    return trained.run


def _counts() -> tuple[int, int]:
    with session_factory().begin() as session:
        batches = session.scalar(select(func.count()).select_from(ScoreBatchRecord))
        predictions = session.scalar(select(func.count()).select_from(PredictionRecord))
    return batches, predictions


def _read_export(source: Path | io.BytesIO) -> pd.DataFrame:
    """A CSV exactly as text (empty cells stay empty strings)."""
    return pd.read_csv(source, dtype=str, keep_default_na=False)


def _with_cell(frame: pd.DataFrame, row: int, column: str, value: str) -> pd.DataFrame:
    """A copy with one cell replaced by text (the column becomes text)."""
    out = frame.astype({column: "object"}).copy()
    out.loc[row, column] = value
    return out


def test_chunked_scoring_equals_one_shot(run, tmp_path: Path) -> None:
    data = csv_bytes(NEW_ROWS)
    small = score_source(run.id, data, chunk_rows=7, out_path=tmp_path / "small.csv")
    whole = score_source(run.id, data, chunk_rows=10_000, out_path=tmp_path / "whole.csv")
    assert small.rows == whole.rows == 60
    # Decisions and row order exactly; probabilities to float64 tolerance (issue 12).
    assert_same_results(batch_predictions(small.batch_id), batch_predictions(whole.batch_id))
    assert_same_results(_read_export(tmp_path / "small.csv"), _read_export(tmp_path / "whole.csv"))
    assert small.drift == whole.drift


def test_stored_rows_equal_the_export_and_the_model(run, tmp_path: Path) -> None:
    out = tmp_path / "scored.csv"
    report = score_source(run.id, csv_bytes(NEW_ROWS), chunk_rows=13, out_path=out)
    stored = batch_predictions(report.batch_id)
    export = pd.read_csv(out, float_precision="round_trip")
    assert stored["row_number"].tolist() == list(range(1, 61))
    assert list(export.columns) == [*NEW_ROWS.columns, "prediction", "probability", "decision"]
    assert report.output_columns == list(export.columns)
    assert stored["prediction"].tolist() == export["prediction"].tolist()
    assert stored["decision"].tolist() == export["decision"].tolist()
    np.testing.assert_array_equal(stored["probability"], export["probability"])
    pd.testing.assert_frame_equal(export[list(NEW_ROWS.columns)], NEW_ROWS, check_dtype=False)
    expected = training_module.predict_frame(training_module.load_run_model(run.id), NEW_ROWS)
    np.testing.assert_allclose(stored["probability"], expected, rtol=0, atol=1e-12)
    # No threshold given: the run's operating threshold decides (no longer a fixed 0.5).
    cutoff = report.threshold
    assert report.threshold_source == "validation" and 0.0 <= cutoff <= 1.0
    assert stored["prediction"].tolist() == np.where(expected >= cutoff, POSITIVE, "good").tolist()
    assert stored["reasons"].isna().all()
    listed = [b for b in list_batches(run.id) if b["batch_id"] == report.batch_id]
    assert listed and listed[0]["rows"] == 60


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_threshold_sets_the_decision(run, threshold: float) -> None:
    report = score_source(run.id, csv_bytes(NEW_ROWS), threshold=threshold)
    decisions = batch_predictions(report.batch_id)["decision"]
    assert decisions.tolist() == [1 if threshold == 0.0 else 0] * 60


@pytest.mark.parametrize("threshold", [-0.01, 1.5])
def test_threshold_outside_0_1_is_refused(run, threshold: float) -> None:
    before = _counts()
    with pytest.raises(ValueError, match="between 0 and 1"):
        score_source(run.id, csv_bytes(NEW_ROWS), threshold=threshold)
    assert _counts() == before


def test_missing_column_is_named_and_nothing_is_written(run, tmp_path: Path) -> None:
    before = _counts()
    out = tmp_path / "scored.csv"
    with pytest.raises(ValueError, match="income"):
        score_source(run.id, csv_bytes(NEW_ROWS.drop(columns="income")), out_path=out)
    assert _counts() == before
    assert list(tmp_path.iterdir()) == []  # neither the export nor a partial file


def test_extra_columns_are_listed_and_ignored(run) -> None:
    frame = NEW_ROWS.assign(note="hello", branch="B7")
    report = score_source(run.id, csv_bytes(frame), chunk_rows=25)
    plain = score_source(run.id, csv_bytes(NEW_ROWS))
    assert report.extra_columns == ["amount", "note", "branch"]  # amount: not a feature
    assert any("note" in w for w in report.warnings)
    assert_same_results(batch_predictions(report.batch_id), batch_predictions(plain.batch_id))


def test_unseen_categories_are_counted(run) -> None:
    frame = NEW_ROWS.astype({"region": "object"}).copy()
    frame.loc[[3, 10, 40], "region"] = "mars"
    frame.loc[[5], "region"] = None  # missing is not unseen
    report = score_source(run.id, csv_bytes(frame), chunk_rows=7)
    assert report.unseen_categories == {"region": 3}
    assert any("'region'" in w and "never appeared" in w for w in report.warnings)


def test_text_in_a_numeric_column_names_column_and_spreadsheet_row(run) -> None:
    frame = _with_cell(NEW_ROWS, 3, "income", "abc")  # 4th data row = spreadsheet row 5
    before = _counts()
    with pytest.raises(ValueError, match=r"'income'.*row\(s\) 5 .*'abc'"):
        score_source(run.id, csv_bytes(frame))
    assert _counts() == before


def test_a_bad_row_in_a_later_chunk_removes_the_whole_batch(run, tmp_path: Path) -> None:
    frame = _with_cell(NEW_ROWS, 20, "age", "forty")  # chunk 3 of 7-row chunks, row 22
    before = _counts()
    with pytest.raises(ValueError, match=r"'age'.*row\(s\) 22 "):
        score_source(run.id, csv_bytes(frame), chunk_rows=7, out_path=tmp_path / "out.csv")
    assert _counts() == before
    assert list(tmp_path.iterdir()) == []


def test_formula_cells_are_neutralised_in_the_export(run, tmp_path: Path) -> None:
    notes = ["=cmd|' /C calc'!A0", "@SUM(A1:A9)", "-x", "+1+1", '=HYPERLINK("x")', "-5", "3.2"]
    frame = NEW_ROWS.head(len(notes)).assign(note=notes)
    frame = _with_cell(frame, 0, "age", "-5")
    out = tmp_path / "scored.csv"
    score_source(run.id, csv_bytes(frame), out_path=out)
    export = _read_export(out)
    assert export["note"].tolist() == [
        "'=cmd|' /C calc'!A0",
        "'@SUM(A1:A9)",
        "'-x",
        "'+1+1",
        '\'=HYPERLINK("x")',
        "-5",
        "3.2",
    ]
    assert export.loc[0, "age"] == "-5"  # numbers are data, not formulas
    as_uploaded = _read_export(io.BytesIO(csv_bytes(frame)))
    assert export["income"].tolist() == as_uploaded["income"].tolist()


def test_reasons_for_the_first_rows(run) -> None:
    report = score_source(run.id, csv_bytes(NEW_ROWS), chunk_rows=2, reasons_for_rows=3)
    reasons = batch_predictions(report.batch_id)["reasons"]
    assert reasons.head(3).notna().all() and reasons.iloc[3:].isna().all()
    for text in reasons.head(3):
        # Up to three reasons, each pushing toward the row's decision (or a sentence saying
        # no column does): fewer than three when fewer columns push that way.
        if not text.startswith("No column"):
            assert 1 <= len(text.split("; ")) <= 3
            assert all(part.split(" = ")[0] in run.features for part in text.split("; "))


def test_reasons_agree_with_the_decision_at_the_given_threshold(run) -> None:
    report = score_source(run.id, csv_bytes(NEW_ROWS), threshold=0.1, reasons_for_rows=60)
    table = batch_predictions(report.batch_id)
    assert report.threshold == 0.1 and report.threshold_source == "given"
    assert table["decision"].sum() > 0
    for decision, text in zip(table["decision"], table["reasons"], strict=True):
        words = "raises" if decision else "lowers"
        other = "lowers" if decision else "raises"
        assert text.startswith(f"No column {words}") or (words in text and other not in text)
    # The Score page's time estimate reads this batch's measured rate.
    from core.scoring import reasons_plan

    plan = reasons_plan(run, 100)
    assert f"Score batch #{report.batch_id}" in plan["basis"]
    assert report.reasons_rows == 60 and report.reasons_seconds > 0
    assert plan["ms_per_row"] == pytest.approx(1000 * report.reasons_seconds / 60)


def test_no_threshold_means_the_operating_threshold(run) -> None:
    from core.thresholds import (
        operating_threshold,
        reset_operating_threshold,
        set_operating_threshold,
    )

    chosen = operating_threshold(run.id)
    report = score_source(run.id, csv_bytes(NEW_ROWS))
    assert report.threshold == pytest.approx(chosen.threshold)
    assert report.threshold_source == "validation"
    decisions = batch_predictions(report.batch_id)
    expected = (decisions["probability"] >= chosen.threshold).astype(int)
    assert decisions["decision"].tolist() == expected.tolist()
    try:
        set_operating_threshold(run.id, 0.2)
        report = score_source(run.id, csv_bytes(NEW_ROWS))
        assert (report.threshold, report.threshold_source) == (0.2, "user")
        assert list_batches(run.id)[0]["threshold"] == 0.2
    finally:
        reset_operating_threshold(run.id)


def test_drift_is_near_zero_on_training_data_and_large_when_shifted(run) -> None:
    train_rows = training_module.part_frame(run.id, "train")
    same = score_source(run.id, csv_bytes(train_rows))
    assert set(same.drift) == {"age", "income", "region"}
    for column, item in same.drift.items():
        assert item["psi"] < 0.01, column
        assert item["level"] == "stable"
    shifted = score_source(run.id, csv_bytes(train_rows.assign(income=train_rows["income"] + 100)))
    assert shifted.drift["income"]["psi"] > 1.0
    assert shifted.drift["income"]["level"] == "major shift"
    assert shifted.drift["age"]["psi"] < 0.01
    assert any("income" in w and "PSI" in w for w in shifted.warnings)


def test_the_real_credit_sample_scores_as_it_was_evaluated() -> None:
    """Scoring re-reads the raw file its own way; on real data (missing markers, integer
    columns, categoricals) it must see exactly what training saw."""
    credit = ensure_samples()[0]
    run = train(credit.id, "logreg")
    report = score_source(run.id, CREDIT_SAMPLE, source_name="credit.csv", chunk_rows=1000)
    assert report.rows == credit.n_rows == 4454
    with session_factory().begin() as session:
        split = session.scalar(select(DatasetSplitRecord.assignment))
    test_rows = np.flatnonzero(np.frombuffer(split, dtype=np.uint8) == TEST)
    stored = batch_predictions(report.batch_id).set_index("row_number")
    evaluated = runs_module.holdout_predictions(run.id).proba
    np.testing.assert_allclose(
        stored.loc[test_rows + 1, "probability"], evaluated, rtol=0, atol=1e-12
    )


def test_unknown_run_is_refused() -> None:
    with pytest.raises(ValueError, match="no training run with id 404"):
        score_source(404, csv_bytes(NEW_ROWS))


def test_row_numbers_count_blank_lines_like_a_spreadsheet(run) -> None:
    lines = csv_bytes(NEW_ROWS.head(10)).decode().splitlines()
    lines.insert(3, "")  # spreadsheet row 4 is blank
    fields = lines[6].split(",")
    lines[6] = ",".join(["abc", *fields[1:]])  # spreadsheet row 7
    with pytest.raises(ValueError, match=r"row\(s\) 7 "):
        score_source(run.id, ("\n".join(lines) + "\n").encode())


def test_a_decimal_comma_file_scores_like_it_trained() -> None:
    frame = make_tabular_frame(150, seed=8)
    data = frame.to_csv(index=False, sep=";", decimal=",").encode()
    info = register_dataset(data, "european.csv", roles=Roles(target=TARGET))
    assert info.schema.column("income").kind == "numeric"
    run = train(info.id, "logreg")
    report = score_source(run.id, data)
    assert report.rows == 150
    plain = score_source(run.id, csv_bytes(frame))
    assert_same_results(batch_predictions(report.batch_id), batch_predictions(plain.batch_id))


def test_result_comparison_is_tolerant_of_last_bits_only() -> None:
    """The helper above forgives float64 noise, never a changed decision or probability."""
    base = pd.DataFrame({"prediction": ["bad", "good"], "probability": [0.1, 0.7]})
    base["decision"] = pd.array([1, 0], dtype="Int64")
    noisy = base.assign(probability=[0.1 + 4e-17, 0.7 - 1e-16])
    assert_same_results(base, noisy)
    with pytest.raises(AssertionError):
        assert_same_results(base, base.assign(probability=[0.1, 0.7001]))
    flipped = base.copy()
    flipped["decision"] = pd.array([0, 0], dtype="Int64")
    with pytest.raises(AssertionError):
        assert_same_results(base, flipped)
