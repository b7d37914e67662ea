"""The export guard: every CSV Payoff hands to a person goes through `to_safe_csv`.

A spreadsheet runs a cell that starts with one of `FORMULA_PREFIXES` as a formula (CSV
injection, OWASP: = + - @ tab and carriage return). Ingest warns about such cells (they stay
data in Payoff); exports neutralise them with a leading single quote, the OWASP remedy.
Text that is a plain number ("-5", "+1.5e3") is data, not a formula, and is left alone.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _is_number(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").notna()


def formula_cells(values: pd.Series) -> pd.Series:
    """True where a text cell would run as a formula in a spreadsheet (missing: False)."""
    text = values.astype("string")
    risky = text.str.startswith(FORMULA_PREFIXES).fillna(False).astype(bool)
    if risky.any():
        risky &= ~_is_number(text.where(risky))
    return risky


def safe_column_name(name: object) -> str:
    """A column name as exports write it (a formula-like name gets a leading quote)."""
    text = str(name)
    return "'" + text if formula_cells(pd.Series([text])).iat[0] else text


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells (and column names) that a spreadsheet would run as a formula
    start with a single quote. Numeric and boolean columns are untouched."""
    out = frame.copy()
    out.columns = [safe_column_name(c) for c in out.columns]
    for position in range(out.shape[1]):
        values = out.iloc[:, position]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        risky = formula_cells(values)
        if risky.any():
            text = values.astype("string")
            out.isetitem(position, text.mask(risky, "'" + text))
    return out


def to_safe_csv(
    frame: pd.DataFrame, path: str | Path | None = None, *, header: bool = True, mode: str = "w"
) -> bytes | None:
    """CSV for spreadsheets: formulas neutralised, and CRLF line ends so that a line break or
    carriage return inside a cell is always quoted (with "\\n" endings a bare "\\r" is not,
    and a spreadsheet would start a new row at it, escaping the formula guard).

    With `path`: written (or appended with mode="a") there, returns None; else UTF-8 bytes.
    """
    safe = neutralise_formulas(frame)
    text = safe.to_csv(path, index=False, header=header, mode=mode, lineterminator="\r\n")
    return None if path is not None else text.encode("utf-8")
