"""core.exports: the one export guard, used by every CSV Payoff writes for a person."""

from __future__ import annotations

import ast
import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from core.exports import FORMULA_PREFIXES, neutralise_formulas, to_safe_csv
from core.ingest import read_csv_bytes

ROOT = Path(__file__).resolve().parents[2]
# OWASP "CSV Injection": cells starting with these run as formulas in spreadsheet programs.
OWASP = {"=", "+", "-", "@", "\t", "\r"}


def _rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def test_the_prefixes_are_the_owasp_set() -> None:
    assert set(FORMULA_PREFIXES) == OWASP and len(FORMULA_PREFIXES) == len(OWASP)


@pytest.mark.parametrize("prefix", sorted(OWASP), ids=repr)
def test_each_prefix_is_neutralised_in_cells_and_names(prefix: str) -> None:
    risky = f"{prefix}cmd|' /C calc'!A0"
    frame = pd.DataFrame({risky: ["x", "y"], "note": [risky, "plain"], "n": [1.5, -2.0]})
    header, first, second = _rows(to_safe_csv(frame))
    assert header == ["'" + risky, "note", "n"]
    assert first == ["x", "'" + risky, "1.5"]
    assert second == ["y", "plain", "-2.0"]  # a negative number in a numeric column is data


@pytest.mark.parametrize("number", ["-5", "+1.5", "-1e3", "-inf", "+0"])
def test_numbers_written_as_text_are_left_alone(number: str) -> None:
    frame = pd.DataFrame({"note": [number, "-x"]}, dtype="string")
    assert _rows(to_safe_csv(frame))[1:] == [[number], ["'-x"]]


def test_missing_values_and_booleans_pass_through() -> None:
    frame = pd.DataFrame({"note": pd.Series(["=1", None], dtype="string"), "flag": [True, False]})
    safe = neutralise_formulas(frame)
    assert safe["note"].iloc[0] == "'=1" and pd.isna(safe["note"].iloc[1])
    assert safe["flag"].tolist() == [True, False]
    assert frame["note"].iloc[0] == "=1"  # the caller's frame is not changed


def test_a_carriage_return_inside_a_cell_stays_inside_the_cell(tmp_path: Path) -> None:
    frame = pd.DataFrame({"note": ["note\r=1+1", "ok"]})
    path = tmp_path / "out.csv"
    assert to_safe_csv(frame, path) is None
    to_safe_csv(frame, path, header=False, mode="a")
    rows = _rows(path.read_bytes())
    assert rows == [["note"], ["note\r=1+1"], ["ok"], ["note\r=1+1"], ["ok"]]


def test_ingest_warns_about_the_cells_exports_neutralise() -> None:
    """Ingest strips cells (a leading tab or CR never survives); the other prefixes are
    reported with the guard's own rule, numbers excepted."""
    cells = ["=1+1", "+A1", "-A1", "@SUM(A1)", "-5", "+2.5", "plain"]
    data = ("id,note\n" + "".join(f"{i},{c}\n" for i, c in enumerate(cells))).encode()
    warnings = read_csv_bytes(data).schema.warnings
    assert any("'note' has 4 cells that a spreadsheet would run as formulas" in w for w in warnings)


# ---- every export path uses the guard -------------------------------------------------------


def _sources() -> list[Path]:
    return sorted([*(ROOT / "core").rglob("*.py"), *(ROOT / "pages").rglob("*.py")])


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == name)
            or (isinstance(node.func, ast.Name) and node.func.id == name)
        )
    ]


def test_only_the_guard_writes_csv() -> None:
    """`DataFrame.to_csv` appears in core/exports.py only: every other CSV goes through it."""
    writers = [
        f"{path.relative_to(ROOT)}:{call.lineno}"
        for path in _sources()
        if path != ROOT / "core" / "exports.py"
        for call in _calls(ast.parse(path.read_text()), "to_csv")
    ]
    assert writers == []


def test_every_csv_download_is_guarded() -> None:
    """Each st.download_button offering text/csv is handed the bytes of to_safe_csv(...)."""
    unguarded, guarded = [], 0
    for path in _sources():
        for call in _calls(ast.parse(path.read_text()), "download_button"):
            values = [*call.args, *(k.value for k in call.keywords)]
            mimes = [v.value for v in values if isinstance(v, ast.Constant)]
            if "text/csv" not in mimes:
                continue
            data = call.args[1] if len(call.args) > 1 else None
            is_guarded = (
                isinstance(data, ast.Call)
                and isinstance(data.func, ast.Name)
                and data.func.id == "to_safe_csv"
            )
            guarded += is_guarded
            if not is_guarded:
                unguarded.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert unguarded == []
    assert guarded >= 4  # Score, Explain (2), score deciles
