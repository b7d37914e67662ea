"""Hostile input at the three doors: upload, batch scoring and the what-if form.

Every case either gives a correct result (the same rows out as in, finite probabilities in
[0, 1]) or is refused with ValueError / IngestError whose message names the problem; never
another exception type. After a refusal the ledger is unchanged (rows of dataset, score_batch
and prediction, stored files) and no export file, whole or partial, is left behind.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.ingest import IngestError
from core.settings import load_settings
from tests.fixtures import FEATURES, TARGET, csv_bytes, make_tabular_frame

TRAIN_ROWS = 300
SCORE_ROWS = 20
TABLES = ("dataset", "score_batch", "prediction", "training_run")


@dataclass(frozen=True)
class Refused:
    """The input must be refused with a message containing all of ``words``."""

    words: tuple[str, ...]


@dataclass(frozen=True)
class Accepted:
    """The input must be used; ``rows`` is how many data rows it holds (None: the default)."""

    rows: int | None = None
    notes: tuple[str, ...] = field(default=())
    kinds: tuple[tuple[str, str], ...] = field(default=())  # (column, schema kind) pairs


@dataclass(frozen=True)
class Trained:
    home: Path
    run_id: int


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    """One logistic regression on the generated credit-like data, shared by the module."""
    home = tmp_path_factory.mktemp("hostile_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PAYOFF_HOME", str(home))
        from core.datasets import register_dataset
        from core.startup import start
        from core.training import create_run, execute_run

        start()
        info = register_dataset(csv_bytes(make_tabular_frame(TRAIN_ROWS)), "train.csv")
        run = execute_run(create_run(info.id, "logreg", seed=0, time_budget_s=30))
        assert run.status == "succeeded", run.error
    return Trained(home=home, run_id=run.id)


@pytest.fixture
def ledger(trained, monkeypatch) -> Trained:
    """Point this test at the shared trained ledger (cases only add rows or change nothing)."""
    monkeypatch.setenv("PAYOFF_HOME", str(trained.home))
    return trained


def _counts(home: Path) -> dict[str, int]:
    with sqlite3.connect(home / "payoff.db") as connection:
        counts = {t: connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    connection.close()
    return counts


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _assert_refused(exc: Exception, words: tuple[str, ...]) -> None:
    assert isinstance(exc, (ValueError, IngestError)), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    missing = [w for w in words if w.lower() not in message.lower()]
    assert not missing, f"message lacks {missing}: {message}"


# ---- upload ------------------------------------------------------------------------------------

HEADER = "age,income,region,outcome\n"
UPLOAD_ROWS = 40
# Enough varied rows that column kinds are inferred as they are for real files.
ROWS = csv_bytes(make_tabular_frame(UPLOAD_ROWS, seed=2)[["age", "income", "region", TARGET]])
ROWS = ROWS.decode().split("\n", 1)[1]
N = UPLOAD_ROWS + 1  # the rows above plus the hostile one
NUMERIC = (("age", "numeric"), ("income", "numeric"))

UPLOAD_CASES = [
    pytest.param(HEADER + "nan,NaN,north,bad\n" + ROWS, Accepted(N, kinds=NUMERIC), id="nan"),
    pytest.param(
        HEADER + "inf,50,north,bad\n" + ROWS,
        Accepted(N, notes=("'age'", "infinite value became missing"), kinds=NUMERIC),
        id="inf",
    ),
    pytest.param(
        HEADER + "-inf,50,north,bad\n" + ROWS,
        Accepted(N, notes=("infinite value",), kinds=NUMERIC),
        id="-inf",
    ),
    pytest.param(
        HEADER + "1e308,-1e308,north,bad\n" + ROWS, Accepted(N, kinds=NUMERIC), id="1e308"
    ),
    pytest.param(
        HEADER + "-5,50,north,bad\n" + ROWS, Accepted(N, kinds=NUMERIC), id="negative-age"
    ),
    pytest.param(HEADER + ",,,bad\n" + ROWS, Accepted(N, kinds=NUMERIC), id="empty-strings"),
    pytest.param(HEADER + "30,50," + "x" * 10_000 + ",bad\n" + ROWS, Accepted(N), id="10k-chars"),
    pytest.param(
        HEADER + "abc,50,north,bad\n" + ROWS,
        Accepted(N, notes=("'age'", "'abc'", "became missing"), kinds=NUMERIC),
        id="text-in-numeric",
    ),
    pytest.param(
        HEADER + "30,50,=1+2,bad\n" + ROWS,
        Accepted(N, kinds=(("region", "categorical"),)),
        id="formula-cell",
    ),
    pytest.param(
        "âge🦄,income,region,outcome\n30,50,北京🦄,bad\n" + ROWS,
        Accepted(N, kinds=(("âge🦄", "numeric"),)),
        id="emoji",
    ),
    pytest.param(
        "region,outcome,income,age\nnorth,bad,50.5,30\nsouth,good,60,41\n",
        Accepted(2),
        id="columns-reordered",
    ),
    pytest.param(
        (HEADER + ROWS).replace("\n", "\r\n"), Accepted(UPLOAD_ROWS, kinds=NUMERIC), id="crlf"
    ),
    pytest.param(
        (HEADER + ROWS).replace(",", ";"), Accepted(UPLOAD_ROWS, kinds=NUMERIC), id="semicolons"
    ),
    pytest.param(
        (HEADER + "30,50,Zürich,bad\n" + ROWS).encode("cp1252"), Accepted(N), id="windows-1252"
    ),
    pytest.param(HEADER + "30,50,no\x00rth,bad\n" + ROWS, Refused(("NUL bytes",)), id="nul-byte"),
    pytest.param(
        "age,income,age,outcome\n1,2,3,bad\n", Refused(("'age'", "twice")), id="duplicated-header"
    ),
    pytest.param(HEADER, Refused(("no data rows",)), id="header-only"),
    pytest.param("", Refused(("empty",)), id="empty-file"),
    pytest.param(" \n \n", Refused(("empty",)), id="blank-file"),
    pytest.param(b"\x89PNG\r\n\x1a\n" + bytes(range(256)), Refused(("PNG image",)), id="png-image"),
    pytest.param(
        HEADER + "30,50,north,bad,9\n" + ROWS, Refused(("Row 2", "5 values")), id="ragged"
    ),
    pytest.param(
        HEADER + '30,50,"north,bad\n' + ROWS, Refused(("Row 2", "quote")), id="open-quote"
    ),
    pytest.param(
        HEADER + "30,50," + "x" * 200_001 + ",bad\n",
        Refused(("200,001 characters", "limit")),
        id="cell-too-long",
    ),
]


@pytest.mark.parametrize(("data", "expected"), UPLOAD_CASES)
def test_upload(data: str | bytes, expected, ledger) -> None:
    from core.datasets import load_frame, register_dataset

    raw = data.encode() if isinstance(data, str) else data
    before, stored = _counts(ledger.home), _files(load_settings().datasets_dir)
    try:
        info = register_dataset(raw, "hostile.csv")
    except Exception as exc:  # noqa: BLE001 - the type is what is checked
        if not isinstance(expected, Refused):
            raise
        _assert_refused(exc, expected.words)
        assert _counts(ledger.home) == before
        assert _files(load_settings().datasets_dir) == stored
        return
    assert isinstance(expected, Accepted), f"accepted, expected refusal {expected}"
    frame = load_frame(info.id)
    assert len(frame) == info.n_rows == expected.rows
    assert info.roles.target == TARGET
    # Infinities are read as missing values: no model can use them.
    assert not np.isinf(frame.select_dtypes("number").to_numpy()).any()
    for column, kind in expected.kinds:
        assert info.schema.column(column).kind == kind
    for note in expected.notes:
        assert any(note in w for w in info.schema.warnings), info.schema.warnings
    assert _counts(ledger.home)["dataset"] == before["dataset"] + 1


def test_upload_with_only_the_target_column_cannot_be_trained(ledger) -> None:
    from core.datasets import register_dataset
    from core.training import create_run

    info = register_dataset(b"outcome\nbad\ngood\ngood\nbad\n", "only-target.csv")
    assert info.roles.features == ()
    before = _counts(ledger.home)
    with pytest.raises(ValueError, match="at least one numeric or categorical feature"):
        create_run(info.id, "logreg")
    assert _counts(ledger.home) == before


# ---- batch scoring -----------------------------------------------------------------------------


def _score_lines() -> list[str]:
    frame = make_tabular_frame(SCORE_ROWS, seed=5)[list(FEATURES)]
    return csv_bytes(frame).decode().splitlines()


def _replace_cell(column: str, value: str, row: int = 1) -> bytes:
    """The scoring file with one cell of data row ``row`` replaced by ``value``."""
    lines = _score_lines()
    cells = lines[row].split(",")
    cells[list(FEATURES).index(column)] = value
    lines[row] = ",".join(cells)
    return ("\n".join(lines) + "\n").encode()


def _transform(change) -> bytes:
    return ("\n".join(change(_score_lines())) + "\n").encode()


def _drop_column(lines: list[str], column: str) -> list[str]:
    index = list(FEATURES).index(column)
    return [",".join(c for j, c in enumerate(line.split(",")) if j != index) for line in lines]


def _reorder(lines: list[str]) -> list[str]:
    return [",".join(reversed(line.split(","))) for line in lines]


SCORE_CASES = [
    pytest.param(_replace_cell("income", "nan"), Accepted(), id="nan"),
    pytest.param(_replace_cell("age", "inf"), Accepted(), id="inf"),
    pytest.param(_replace_cell("age", "-inf"), Accepted(), id="-inf"),
    pytest.param(_replace_cell("income", "1e308"), Accepted(), id="1e308"),
    pytest.param(_replace_cell("income", "-1e308"), Accepted(), id="-1e308"),
    pytest.param(_replace_cell("amount", "1e309"), Accepted(), id="1e309-overflows"),
    pytest.param(_replace_cell("age", "-40"), Accepted(), id="negative-age"),
    pytest.param(
        _replace_cell("region", "atlantis"),
        Accepted(notes=("never appeared",)),
        id="unknown-category",
    ),
    pytest.param(_replace_cell("region", ""), Accepted(), id="empty-string"),
    pytest.param(_replace_cell("region", "x" * 10_000), Accepted(), id="10k-chars"),
    pytest.param(
        _replace_cell("region", '=HYPERLINK("http://evil")'), Accepted(), id="formula-cell"
    ),
    pytest.param(_replace_cell("region", "北京🦄"), Accepted(), id="emoji"),
    pytest.param(
        _transform(lambda lines: [*lines[:1], ",,,", *lines[2:]]),
        Accepted(rows=SCORE_ROWS - 1),
        id="blank-row-skipped",
    ),
    pytest.param(
        _transform(lambda lines: [*lines[:1], "NA,NA,NA,NA", *lines[2:]]),
        Accepted(),
        id="row-of-missing-values",
    ),
    pytest.param(_transform(_reorder), Accepted(), id="columns-reordered"),
    pytest.param(
        _transform(lambda lines: [f"{line},extra" for line in lines]),
        Accepted(notes=("not use",)),
        id="extra-column",
    ),
    pytest.param(
        _transform(lambda lines: [x.replace(",", ";") for x in lines]), Accepted(), id="semicolons"
    ),
    pytest.param(
        _replace_cell("region", "Zürich").decode().encode("cp1252"), Accepted(), id="windows-1252"
    ),
    pytest.param(
        _replace_cell("age", "abc", row=3),
        Refused(("'age'", "numbers", "row(s) 4", "abc")),
        id="text-in-numeric",
    ),
    pytest.param(_replace_cell("age", "4\x002"), Refused(("NUL bytes",)), id="nul-byte"),
    pytest.param(
        _transform(lambda lines: _drop_column(lines, "income")),
        Refused(("missing 1 column", "income")),
        id="column-missing",
    ),
    pytest.param(
        _transform(lambda lines: lines[:1]), Refused(("header but no data rows",)), id="header-only"
    ),
    pytest.param(
        b"outcome\nbad\ngood\n", Refused(("missing 4 column", "age", "region")), id="only-target"
    ),
    pytest.param(b"", Refused(("empty",)), id="empty-file"),
    pytest.param(b"\x89PNG\r\n\x1a\n" + bytes(range(256)), Refused(("PNG image",)), id="png-image"),
    pytest.param(
        _transform(lambda lines: [*lines[:3], lines[3] + ",9", *lines[4:]]),
        Refused(("Row 4", "5 values")),
        id="ragged-later-row",
    ),
    pytest.param(
        _transform(lambda lines: [lines[0], lines[1] + ",9,9", *lines[2:]]),
        Refused(("Row 2", "header")),
        id="ragged-first-row",
    ),
    pytest.param(
        _transform(lambda lines: [lines[0], lines[1] + ',"open', *lines[2:]]),
        Refused(("quote",)),
        id="open-quote",
    ),
    pytest.param(
        _transform(
            lambda lines: [
                f"{line},{line.split(',')[0]}" if i else f"{line},age"
                for i, line in enumerate(lines)
            ]
        ),
        Refused(("'age'", "twice")),
        id="duplicated-header",
    ),
]


@pytest.mark.parametrize(("data", "expected"), SCORE_CASES)
def test_score(data: bytes, expected, ledger, tmp_path) -> None:
    from core.scoring import batch_predictions, score_source

    exports = tmp_path / "exports"
    out = exports / "scores.csv"
    before = _counts(ledger.home)
    try:
        report = score_source(ledger.run_id, data, source_name="hostile.csv", out_path=out)
    except Exception as exc:  # noqa: BLE001 - the type is what is checked
        if not isinstance(expected, Refused):
            raise
        _assert_refused(exc, expected.words)
        assert _counts(ledger.home) == before
        assert _files(exports) == []
        return
    assert isinstance(expected, Accepted), f"accepted, expected refusal {expected}"
    rows = SCORE_ROWS if expected.rows is None else expected.rows
    assert report.rows == rows
    predictions = batch_predictions(report.batch_id)
    assert len(predictions) == rows
    probability = predictions["probability"].to_numpy(dtype=float)
    assert np.isfinite(probability).all() and ((probability >= 0) & (probability <= 1)).all()
    exported = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert len(exported) == rows
    assert _files(exports) == [out]
    for note in expected.notes:
        assert any(note in w for w in report.warnings), report.warnings
    after = _counts(ledger.home)
    assert after["score_batch"] == before["score_batch"] + 1
    assert after["prediction"] == before["prediction"] + rows


def test_score_is_independent_of_column_order(ledger) -> None:
    from core.scoring import batch_predictions, score_source

    plain = score_source(ledger.run_id, _transform(lambda lines: lines))
    reordered = score_source(ledger.run_id, _transform(_reorder))
    np.testing.assert_allclose(
        batch_predictions(plain.batch_id)["probability"],
        batch_predictions(reordered.batch_id)["probability"],
    )


# ---- the what-if form --------------------------------------------------------------------------


def _one_row(**values) -> pd.DataFrame:
    row = make_tabular_frame(20, seed=5)[list(FEATURES)].iloc[[0]].reset_index(drop=True)
    for column, value in values.items():
        row[column] = pd.Series([value], dtype=object if isinstance(value, str) else None)
    return row


WHAT_IF_CASES = [
    pytest.param(_one_row(income=math.nan), Accepted(), id="nan"),
    pytest.param(_one_row(age=math.inf), Accepted(), id="inf"),
    pytest.param(_one_row(age=-math.inf), Accepted(), id="-inf"),
    pytest.param(_one_row(income=1e308), Accepted(), id="1e308"),
    pytest.param(_one_row(income=-1e308), Accepted(), id="-1e308"),
    pytest.param(_one_row(age=-40.0), Accepted(), id="negative-age"),
    pytest.param(_one_row(region="atlantis"), Accepted(), id="unknown-category"),
    pytest.param(_one_row(region=""), Accepted(), id="empty-string"),
    pytest.param(_one_row(region="x" * 10_000), Accepted(), id="10k-chars"),
    pytest.param(_one_row(region="=1+1"), Accepted(), id="formula"),
    pytest.param(_one_row(region="北京🦄"), Accepted(), id="emoji"),
    pytest.param(_one_row(region=None), Accepted(), id="none-category"),
    pytest.param(_one_row()[list(reversed(FEATURES))], Accepted(), id="columns-reordered"),
    pytest.param(_one_row().astype(str), Accepted(), id="numbers-as-text"),
    pytest.param(_one_row(age="abc"), Refused(("'age'", "numeric", "abc")), id="text-in-numeric"),
    pytest.param(_one_row().drop(columns=["income"]), Refused(("income",)), id="column-missing"),
    pytest.param(_one_row().iloc[:0], Refused(("row",)), id="no-row"),
]


@pytest.mark.parametrize(("row", "expected"), WHAT_IF_CASES)
def test_what_if(row: pd.DataFrame, expected, ledger) -> None:
    from core.explanations import explain_row
    from core.runs import get_run
    from core.training import load_run_model, predict_frame

    run, model = get_run(ledger.run_id), load_run_model(ledger.run_id)
    before = _counts(ledger.home)
    try:
        score = predict_frame(model, row)
        explanation = explain_row(run, model, row)
    except Exception as exc:  # noqa: BLE001 - the type is what is checked
        if not isinstance(expected, Refused):
            raise
        _assert_refused(exc, expected.words)
        return
    finally:
        assert _counts(ledger.home) == before  # the what-if editor never writes
    assert isinstance(expected, Accepted), f"accepted, expected refusal {expected}"
    assert score.shape == (1,)
    assert np.isfinite(score).all() and 0.0 <= score[0] <= 1.0
    assert np.isfinite(explanation.values).all()
    assert explanation.columns == list(FEATURES)
    # The explanation adds up to the model's own log-odds (where the log-odds are finite).
    probability = float(np.clip(score[0], 1e-12, 1 - 1e-12))
    if 1e-12 < score[0] < 1 - 1e-12:
        expected_logit = math.log(probability / (1 - probability))
        assert explanation.output == pytest.approx(expected_logit, abs=1e-6)
    assert explanation.base_value + explanation.values.sum() == pytest.approx(
        explanation.output, rel=1e-9, abs=1e-9
    )
