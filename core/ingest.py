"""Safe CSV ingest: bytes in, a typed DataFrame and an inferred schema out.

Pure on purpose: no files, no database, no streamlit. The page hands over uploaded bytes and
gets back either an `IngestResult` or one `IngestError` whose message an analyst can act on
(which row, which column, what to change). Everything the rest of Payoff assumes about a
dataset (column kinds, PII, the suggested target) is decided here, once, and stored with the
dataset as `DatasetSchema.to_dict()`.

Row numbers in messages count like a spreadsheet: the header is row 1, the first data row is
row 2, and a value with a line break inside quotes is still one row. The only exception: a
cell that is too long is located among non-blank lines, so blank lines above it are not
counted.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import math
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.exports import formula_cells

KINDS = ("numeric", "categorical", "text", "id", "datetime", "constant", "mostly_missing")
SCHEMA_FORMAT_VERSION = 1

# Tokens analysts and tools write for "no value"; compared after stripping, case-insensitive.
MISSING_TOKENS = frozenset({"", "na", "n/a", "null", "nan", "?", "-"})
DELIMITERS = (",", ";", "\t", "|")

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# Magic bytes of files analysts upload by mistake, so the message can say what to do instead.
_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive or an Excel workbook (.xlsx)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel workbook (.xls)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"PAR1", "a Parquet file"),
)
_DECODE_CHUNK = 1 << 20
_SNIFF_BYTES = 64 * 1024
_HEAD_BYTES = 1 << 20  # a streamed file's format is sniffed from this much
_SNIFFER_CHARS = 16 * 1024  # csv.Sniffer's regexes get slow on big samples
# Real text has almost no control characters; binary data decoded as Latin-1 has many.
_MAX_CONTROL_SHARE = 0.01
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

NUMERIC_SHARE = 0.95
MOSTLY_MISSING_SHARE = 0.9
PII_SHARE = 0.3
SMALL_CODE_MAX = 1000
_SAMPLE_SIZE = 500
_EXAMPLE_CHARS = 40
_EXAMPLE_SCAN = 1000  # examples are the first distinct values among the first 1,000

_DOT_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity)"
_COMMA_NUMBER = r"[+-]?\d{1,3}(?:\.\d{3})+(?:,\d*)?|[+-]?\d+(?:,\d*)?|[+-]?,\d+"
_PLAIN_NUMBER_RE = re.compile(rf"(?i:{_DOT_NUMBER})")


class IngestError(ValueError):
    """The one error ingest raises: the message is for the analyst, in words they can act on."""


@dataclass(frozen=True)
class Limits:
    """Upper bounds that keep one upload from exhausting the machine."""

    max_bytes: int = 200 * 2**20
    max_rows: int = 1_000_000
    max_columns: int = 500
    max_cell_chars: int = 100_000

    def __post_init__(self) -> None:
        for key, value in asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Limits.{key} must be a positive integer: {value=}")


@dataclass(frozen=True)
class ColumnProfile:
    """What one column is, why we think so, and whether it holds personal data."""

    name: str
    kind: str
    reason: str
    dtype: str
    missing_share: float
    n_unique: int
    pii: str | None
    probably_categorical_codes: bool
    example_values: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Unknown column kind {self.kind=}; expected one of {KINDS}")


@dataclass(frozen=True)
class DatasetSchema:
    """Per-column profiles plus how the file was read; stored as JSON next to the dataset."""

    columns: tuple[ColumnProfile, ...]
    n_rows: int
    encoding: str
    delimiter: str
    suggested_target: str | None
    suggested_target_reason: str
    warnings: tuple[str, ...] = field(default=())

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in file order."""
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnProfile:
        """The profile of `name`; ValueError names the unknown column."""
        for profile in self.columns:
            if profile.name == name:
                return profile
        raise ValueError(f"No column {name=} in this dataset; columns are {list(self.names)}")

    def default_features(self) -> list[str]:
        """Columns a model may use without the analyst opting in: no PII, no target, no ids."""
        usable = {"numeric", "categorical", "text"}
        return [
            c.name
            for c in self.columns
            if c.kind in usable and c.pii is None and c.name != self.suggested_target
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (lists, not tuples) with a format version for later migrations."""
        data = asdict(self)
        data["columns"] = [
            {**c, "example_values": list(c["example_values"])} for c in data["columns"]
        ]
        data["warnings"] = list(self.warnings)
        data["format_version"] = SCHEMA_FORMAT_VERSION
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetSchema:
        """Inverse of `to_dict`; ValueError names a wrong version or a missing key."""
        version = data.get("format_version")
        if version != SCHEMA_FORMAT_VERSION:
            raise ValueError(
                f"Unsupported stored schema {version=}; expected {SCHEMA_FORMAT_VERSION}"
            )
        try:
            columns = tuple(
                ColumnProfile(**{**c, "example_values": tuple(c["example_values"])})
                for c in data["columns"]
            )
            return cls(
                columns=columns,
                n_rows=int(data["n_rows"]),
                encoding=str(data["encoding"]),
                delimiter=str(data["delimiter"]),
                suggested_target=data["suggested_target"],
                suggested_target_reason=str(data["suggested_target_reason"]),
                warnings=tuple(data["warnings"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"Stored schema is incomplete or malformed: {exc!r}") from exc


@dataclass(frozen=True, eq=False)  # eq=False: comparing DataFrames with == is elementwise
class IngestResult:
    frame: pd.DataFrame
    schema: DatasetSchema


# --------------------------------------------------------------------------------------------
# Reading bytes
# --------------------------------------------------------------------------------------------


def read_csv_bytes(
    data: bytes, *, limits: Limits = Limits(), name: str = "upload.csv"
) -> IngestResult:
    """Parse uploaded CSV bytes into a typed frame and its schema, or raise IngestError.

    Numeric columns come back as float64, every other column as pandas' string dtype, in the
    file's order with stripped names.
    """
    if not isinstance(data, bytes | bytearray):
        raise ValueError(f"read_csv_bytes needs bytes: {type(data)=}")
    if not isinstance(limits, Limits):
        raise ValueError(f"limits must be a Limits: {type(limits)=}")
    csv_file = open_csv(bytes(data), name=name, limits=limits, keep_blank_lines=False)
    text = pd.concat(list(csv_file))  # one chunk for files under 100,000 rows
    frame, parse_warnings = _typed_frame(text, csv_file.delimiter)
    del text
    schema = profile_frame(frame, encoding=csv_file.encoding, delimiter=csv_file.delimiter)
    schema = replace(schema, warnings=(*csv_file.notes, *parse_warnings, *schema.warnings))
    return IngestResult(frame=frame, schema=schema)


def _format_size(n_bytes: int) -> str:
    if n_bytes >= 2**20 // 10:
        return f"{n_bytes / 2**20:,.1f} MB"
    return f"{n_bytes:,} bytes ({n_bytes / 2**20:.2f} MB)"


def _check_size(data: bytes, limits: Limits) -> None:
    if len(data) > limits.max_bytes:
        raise IngestError(
            f"The file is {_format_size(len(data))}; the limit is "
            f"{_format_size(limits.max_bytes)}. Upload a smaller extract or a sample."
        )


def _check_not_empty(data: bytes) -> None:
    body = data[len(_UTF8_BOM) :] if data.startswith(_UTF8_BOM) else data
    if not body.strip():
        raise IngestError("The file is empty.")


def _detect_encoding(data: bytes, name: str) -> str:
    """Pick the first codec that decodes the whole file and yields text, not binary noise.

    A BOM is trusted. Otherwise UTF-8 (strict), then Windows-1252 (Excel's default on
    Windows), then Latin-1, which decodes anything and so must pass the control-char test.
    UTF-16 is read only with its BOM (Excel's "Unicode text" export); without one, its NUL
    bytes make it indistinguishable from binary, and the message says how to re-save it.
    """
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise IngestError(
                f"'{name}' looks like {what}, not a CSV file. Save or export it as CSV "
                "(in Excel: File > Save As > CSV UTF-8) and upload that."
            )
    if data.startswith(_UTF8_BOM):
        candidates: tuple[str, ...] = ("utf-8-sig",)
    elif data.startswith(_UTF16_BOMS):
        candidates = ("utf-16",)
    elif b"\x00" in data:
        raise IngestError(
            f"The file '{name}' is not text (it looks like a binary file: found NUL bytes). "
            "If it is UTF-16 text without a byte-order mark, save it as CSV UTF-8."
        )
    else:
        candidates = ("utf-8", "cp1252", "latin-1")
    for encoding in candidates:
        share = _control_share(data, encoding)
        if share is None:
            continue
        if share > _MAX_CONTROL_SHARE:
            break
        return encoding
    raise IngestError(
        f"The file '{name}' is not text: it does not read as UTF-8, Windows-1252 or Latin-1 "
        "without control characters. Export it as CSV UTF-8."
    )


def _control_share(data: bytes, encoding: str) -> float | None:
    """Share of control characters once decoded, or None if `encoding` cannot decode it.

    Decodes chunk by chunk so a 200 MB upload is never held as one giant str.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    n_chars = n_controls = 0
    for start in range(0, len(data), _DECODE_CHUNK):
        chunk = data[start : start + _DECODE_CHUNK]
        try:
            text = decoder.decode(chunk, final=start + _DECODE_CHUNK >= len(data))
        except UnicodeDecodeError:
            return None
        n_chars += len(text)
        n_controls += len(_CONTROL_RE.findall(text))
    return n_controls / max(n_chars, 1)


def _decoded_sample(data: bytes, encoding: str) -> tuple[str, bool]:
    """The first ~64 KB as text, cut at a line end; and whether that is the whole file."""
    complete = len(data) <= _SNIFF_BYTES
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    text = decoder.decode(data[:_SNIFF_BYTES], final=complete)
    if not complete and "\n" in text:
        text = text[: text.rfind("\n") + 1]
    return text, complete


def _detect_delimiter(sample: str, complete: bool) -> str:
    """csv.Sniffer's guess when the rows agree with it, else the most consistent candidate.

    "Consistent" means the header has at least two fields and no row has more fields than the
    header (short rows are allowed). A file where no candidate qualifies is one column wide.
    """
    widths = {d: _record_widths(sample, d, complete) for d in DELIMITERS}
    sniffed = _sniff(sample[:_SNIFFER_CHARS])
    if sniffed is not None and _fits(widths[sniffed]):
        return sniffed
    fitting = [d for d in DELIMITERS if _fits(widths[d])]
    return max(fitting, key=lambda d: (_full_row_share(widths[d]), widths[d][0]), default=",")


def _sniff(sample: str) -> str | None:
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        return None


def _record_widths(sample: str, delimiter: str, complete: bool) -> list[int]:
    """Field counts of the sample's non-blank records (the last one dropped if cut short)."""
    try:
        rows = [len(r) for r in csv.reader(io.StringIO(sample), delimiter=delimiter) if r]
    except csv.Error:
        return []
    if not complete and len(rows) > 1:
        rows = rows[:-1]
    return rows[:500]


def _fits(widths: list[int]) -> bool:
    return bool(widths) and widths[0] > 1 and max(widths) == widths[0]


def _full_row_share(widths: list[int]) -> float:
    body = widths[1:]
    return sum(w == widths[0] for w in body) / len(body) if body else 1.0


_RAGGED_RE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_EOF_RE = re.compile(r"EOF inside string starting at row (\d+)")


def _parser_error(message: str, delimiter: str, shift: int = 0) -> IngestError:
    """pandas' tokenizer message in words; `shift` is added to its row numbers."""
    shown = {"\t": "tab"}.get(delimiter, repr(delimiter))
    if match := _RAGGED_RE.search(message):
        expected, row, saw = (int(g) for g in match.groups())
        return IngestError(
            f"Row {row + shift} has {saw} values but the header has {_count(expected, 'column')}. "
            f"Quote values that contain the delimiter ({shown}), or remove the extra values."
        )
    if match := _EOF_RE.search(message):
        return IngestError(
            f'Row {int(match.group(1)) + 1 + shift} opens a quote (") that is never closed, so '
            "the rest of the file would be read as one value. Close or remove that quote."
        )
    detail = message.replace("Error tokenizing data. C error:", "").strip().splitlines()[0]
    return IngestError(f"The file could not be read as CSV with delimiter {shown}: {detail}")


# --------------------------------------------------------------------------------------------
# The one CSV reader: whole uploads and streamed chunks
# --------------------------------------------------------------------------------------------

_UPLOAD_CHUNK_ROWS = 100_000


class CsvChunks:
    """A CSV opened for reading: its format, its header, and its data rows chunk by chunk.

    Iterating yields DataFrames of stripped text (pandas' string dtype; the usual "no value"
    tokens as missing) with the header's column names. Rows of blank cells are dropped (they
    are not records). Each chunk's index is the row number: like a spreadsheet (header = row
    1, blank lines counted) when blank lines are kept, else counted among non-blank lines.
    While reading, `records` counts the rows read (blank ones included) and `notes` collects
    what an analyst should know (columns without a name, rows with no values skipped).
    Iterate once; `close()` releases the file early.
    """

    def __init__(
        self,
        reader: Any,
        *,
        encoding: str,
        delimiter: str,
        columns: list[str],
        notes: list[str],
        limits: Limits | None,
        first_row: int,
        allow_empty: bool,
    ) -> None:
        self.encoding, self.delimiter, self.columns, self.notes = (
            encoding,
            delimiter,
            columns,
            notes,
        )
        self.records = 0
        self._reader, self._limits, self._first_row = reader, limits, first_row
        self._allow_empty = allow_empty

    def close(self) -> None:
        self._reader.close()

    def __iter__(self) -> Iterator[pd.DataFrame]:
        limits, kept = self._limits, 0
        try:
            while True:
                try:
                    raw = next(self._reader)
                except StopIteration:
                    break
                except Exception as exc:  # noqa: BLE001 - translated, or re-raised as it was
                    shift = self._first_row - 2
                    raise _read_error(exc, self.delimiter, self.encoding, shift) from None
                if limits is not None and self.records + len(raw) > limits.max_rows:
                    raise IngestError(
                        f"The file has more than {limits.max_rows:,} data rows; the limit is "
                        f"{limits.max_rows:,}. Upload a sample or split the file."
                    )
                start = self._first_row + self.records
                raw.index = pd.RangeIndex(start, start + len(raw))
                self.records += len(raw)
                if limits is not None:
                    _check_cell_lengths(raw, limits, self.columns)
                chunk = clean_chunk(raw, self.columns)
                kept += len(chunk)
                if len(chunk):
                    yield chunk
        finally:
            self.close()
        if kept == 0 and not self._allow_empty:
            raise IngestError("The file has a header but no data rows.")
        if kept < self.records:
            self.notes.append(f"Skipped {_count(self.records - kept, 'row')} with no values.")


def open_csv(
    source: bytes | str | Path,
    *,
    chunk_rows: int = _UPLOAD_CHUNK_ROWS,
    name: str = "upload.csv",
    limits: Limits | None = None,
    keep_blank_lines: bool = True,
) -> CsvChunks:
    """Open CSV bytes or a CSV file for chunked reading; IngestError names what is wrong.

    Bytes are checked whole (size against `limits`, encoding over every byte); a file is
    sniffed from its first megabyte, so a file of any size streams in flat memory (a byte
    that breaks the encoding further on is an IngestError when its chunk is read).
    """
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        if limits is not None:
            _check_size(data, limits)
        _check_not_empty(data)
        encoding = _detect_encoding(data, name)
        sample, complete = _decoded_sample(data, encoding)
        delimiter = _detect_delimiter(sample, complete)
        handle: Any = io.BytesIO(data)
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"No such file: {source}")
        with open(path, "rb") as file:
            head = file.read(_HEAD_BYTES)
        encoding, delimiter = sniff_format(head, name)
        handle = path
    return read_csv_chunks(
        handle,
        encoding,
        delimiter,
        chunk_rows=chunk_rows,
        limits=limits,
        keep_blank_lines=keep_blank_lines,
    )


def read_csv_chunks(
    handle: Any,
    encoding: str,
    delimiter: str,
    *,
    chunk_rows: int = _UPLOAD_CHUNK_ROWS,
    limits: Limits | None = None,
    keep_blank_lines: bool = True,
    first_row: int = 2,
    allow_empty: bool = False,
) -> CsvChunks:
    """Read CSV of a known format from `handle` (a path or a binary file object) in chunks.

    The header is read now (so a bad header fails at once); data rows as the chunks are
    iterated. `first_row` is the row number of the first data row (parts of a file read by
    several workers start further on); pandas' row numbers in errors are shifted by as much.
    `limits`: columns, cell length and rows are checked when given (uploads); scoring streams
    files of any length and passes None. `allow_empty`: no data rows is not an error (a part
    of a file that holds only blank lines).
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive: {chunk_rows=}")
    shift = first_row - 2
    try:
        reader = pd.read_csv(
            handle,
            sep=delimiter,
            header=None,  # the header row fixes the column count: a longer row is an error
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            quotechar='"',
            encoding=encoding,
            engine="c",
            chunksize=chunk_rows,
            skip_blank_lines=not keep_blank_lines,
        )
        header = reader.get_chunk(1)
    except Exception as exc:  # noqa: BLE001 - translated, or re-raised as it was
        raise _read_error(exc, delimiter, encoding, shift) from None
    try:
        if header.empty:
            raise IngestError("The file is empty.")
        if limits is not None and header.shape[1] > limits.max_columns:
            raise IngestError(
                f"The file has {header.shape[1]:,} columns; the limit is "
                f"{limits.max_columns:,}. Keep only the columns you need."
            )
        if limits is not None:
            _check_cell_lengths(header, limits, None)
        names, notes = _column_names(header.iloc[0].tolist())
    except BaseException:
        reader.close()
        raise
    return CsvChunks(
        reader,
        encoding=encoding,
        delimiter=delimiter,
        columns=names,
        notes=notes,
        limits=limits,
        first_row=first_row,
        allow_empty=allow_empty,
    )


def clean_chunk(raw: pd.DataFrame, names: list[str] | None = None) -> pd.DataFrame:
    """Text cells as Payoff reads them: stripped, "no value" tokens missing, blank rows
    dropped. `names` replaces the columns (else they are stripped); the index is kept."""
    out: dict[str, pd.Series] = {}
    blank = np.ones(len(raw), dtype=bool)
    columns = names if names is not None else [str(c).strip() for c in raw.columns]
    for column, key in zip(columns, raw.columns, strict=True):
        values = raw[key].astype("str").str.strip()
        blank &= values.fillna("").eq("").to_numpy()
        out[column] = _mark_missing(values)
    return pd.DataFrame(out, index=raw.index)[~blank]


def _read_error(exc: Exception, delimiter: str, encoding: str, shift: int) -> Exception:
    """pandas' and the codec's errors in words an analyst can act on (others unchanged)."""
    if isinstance(exc, pd.errors.EmptyDataError):
        return IngestError("The file is empty.")
    if isinstance(exc, pd.errors.ParserError):
        return _parser_error(str(exc), delimiter, shift)
    if isinstance(exc, UnicodeDecodeError):
        return IngestError(
            f"The file changes encoding part-way (it is not valid {encoding} text throughout); "
            "save it as CSV UTF-8."
        )
    return exc


# --------------------------------------------------------------------------------------------
# From text to a typed frame
# --------------------------------------------------------------------------------------------


def _typed_frame(text: pd.DataFrame, delimiter: str) -> tuple[pd.DataFrame, list[str]]:
    """Each column as float64 when it holds numbers, else the cleaned strings.

    Consumes `text` (the caller keeps no reference): each column is released once converted,
    so peak memory stays near one extra copy of the data.
    """
    notes: list[str] = []
    columns: dict[str, pd.Series] = {}
    for name in list(text.columns):
        values = text.pop(name).reset_index(drop=True)
        columns[name], note = _convert_column(name, values, delimiter)
        notes.extend(note)
    return pd.DataFrame(columns), notes


def _check_cell_lengths(raw: pd.DataFrame, limits: Limits, names: list[str] | None) -> None:
    """Cells longer than the limit; `names` None: `raw` is the header row (row 1)."""
    for j, col in enumerate(raw.columns):
        lengths = raw[col].str.len()
        too_long = lengths > limits.max_cell_chars
        if too_long.any():
            i = int(too_long.to_numpy().argmax())
            row = 1 if names is None else int(raw.index[i])
            where = f"column {j + 1}" + (f" ('{_truncate(names[j])}')" if names else "")
            raise IngestError(
                f"Row {row}, {where} has a value of {int(lengths.iat[i]):,} characters; the "
                f"limit is {limits.max_cell_chars:,}. Check for a missing closing quote."
            )


def _column_names(header: list[Any]) -> tuple[list[str], list[str]]:
    """Stripped names; empty ones become column_N (with a note); duplicates are an error."""
    names: list[str] = []
    notes: list[str] = []
    for j, value in enumerate(header, start=1):
        name = str(value).strip().lstrip("\ufeff").strip() if isinstance(value, str) else ""
        if not name:
            name = f"column_{j}"
            notes.append(f"Column {j} has no name in the header; it is called '{name}'.")
        names.append(name)
    check_unique_names(names)
    return names, notes


def check_unique_names(names: list[str]) -> None:
    """IngestError naming a repeated column name and where it appears."""
    positions: dict[str, list[int]] = {}
    for j, name in enumerate(names, start=1):
        positions.setdefault(name, []).append(j)
    for name, where in positions.items():
        if len(where) > 1:
            times = "twice" if len(where) == 2 else f"{len(where)} times"
            listed = ", ".join(map(str, where[:-1])) + f" and {where[-1]}"
            raise IngestError(
                f"Column names must be unique: '{name}' appears {times} (columns {listed}). "
                "Rename one of them in the header row."
            )


def _mark_missing(stripped: pd.Series) -> pd.Series:
    """Turn the usual "no value" tokens into real missing values."""
    return stripped.mask(stripped.str.lower().isin(MISSING_TOKENS))


def _convert_column(name: str, values: pd.Series, delimiter: str) -> tuple[pd.Series, list[str]]:
    """float64 when >= 95% of present values are numbers, else the cleaned strings."""
    present = values.dropna()
    if present.empty:
        return values, []
    numbers = parse_numbers(present, delimiter)
    if numbers.notna().mean() < NUMERIC_SHARE or _looks_like_codes(present):
        return values, []
    notes = []
    bad = present[numbers.isna()]
    if not bad.empty:
        notes.append(
            f"Column '{name}' is numeric, so {_count(len(bad), 'value')} that could not be read "
            f"as a number (e.g. '{_truncate(bad.iat[0])}') became missing."
        )
    infinite = np.isinf(numbers.to_numpy())
    if infinite.any():
        notes.append(
            f"Column '{name}': {_count(int(infinite.sum()), 'infinite value')} became missing."
        )
        numbers = numbers.mask(infinite)
    return numbers.reindex(values.index), notes


def _looks_like_codes(present: pd.Series) -> bool:
    """Leading zeros (zip codes, account numbers) or > 15 digits (card numbers) are not
    quantities, and float64 would lose them."""
    return bool(present.str.fullmatch(r"[+-]?(?:0\d+|\d{16,})").any())


def parse_numbers(present: pd.Series, delimiter: str) -> pd.Series:
    """Numbers with "." decimals; with ";" files, "," decimals (and "." thousands) when used.

    Values that are not numbers become NaN. Arrow's cast is ~50x faster than pd.to_numeric
    and accepts the same spellings, so a clean column skips the regex entirely.
    """
    if delimiter == ";" and present.str.contains(",", regex=False).any():
        ok = present.str.fullmatch(_COMMA_NUMBER)
        text = present.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    else:
        with contextlib.suppress(pa.ArrowInvalid):
            return _arrow_floats(present)
        ok = present.str.fullmatch(f"(?i:{_DOT_NUMBER})")
        text = present
    try:
        return _arrow_floats(text.where(ok))
    except pa.ArrowInvalid:
        return pd.to_numeric(text.where(ok), errors="coerce").astype("float64")


def _arrow_floats(text: pd.Series) -> pd.Series:
    """Strings to float64 in one vectorised cast; raises ArrowInvalid on any non-number."""
    floats = pc.cast(pa.array(text.array), pa.float64()).to_numpy(zero_copy_only=False)
    return pd.Series(floats, index=text.index, dtype="float64")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _truncate(value: str, limit: int = _EXAMPLE_CHARS) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------
# Profiling a frame
# --------------------------------------------------------------------------------------------


def profile_frame(df: pd.DataFrame, encoding: str = "utf-8", delimiter: str = ",") -> DatasetSchema:
    """Infer each column's kind, PII and a suggested target; works on any DataFrame."""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"profile_frame needs a DataFrame: {type(df)=}")
    names = [str(c) for c in df.columns]
    if len(set(names)) != len(names):
        raise ValueError(f"Column names must be unique: {names=}")
    profiles = tuple(_profile_column(name, df.iloc[:, j]) for j, name in enumerate(names))
    target, target_reason = _suggest_target(profiles, df)
    notes = [
        *(_formula_warning(name, df.iloc[:, j]) for j, name in enumerate(names)),
        *(_pii_warning(p) for p in profiles),
    ]
    return DatasetSchema(
        columns=profiles,
        n_rows=len(df),
        encoding=encoding,
        delimiter=delimiter,
        suggested_target=target,
        suggested_target_reason=target_reason,
        warnings=tuple(n for n in notes if n),
    )


def _as_text(present: pd.Series) -> pd.Series:
    """Present values as strings; whole floats without ".0" so 800.0 reads as 800."""
    if pd.api.types.is_float_dtype(present.dtype):
        floats = present.to_numpy(dtype="float64")
        whole = np.isfinite(floats) & (floats == np.round(floats)) & (np.abs(floats) < 2**53)
        text = [str(int(v)) if w else repr(float(v)) for v, w in zip(floats, whole, strict=True)]
        return pd.Series(text, index=present.index, dtype="str")
    return present.astype("str")


def _profile_column(name: str, series: pd.Series) -> ColumnProfile:
    present = series.dropna()
    n, m = len(series), len(present)
    n_unique = int(present.nunique())
    # Strings for pattern checks come from a sample: formatting a million floats is slow.
    sample = _as_text(_sample(present))
    pii = _detect_pii(name, sample)
    kind, reason, codes = _classify(name, series, present, sample, n_unique)
    return ColumnProfile(
        name=name,
        kind=kind,
        reason=reason,
        dtype=str(series.dtype),
        missing_share=(n - m) / n if n else 1.0,
        n_unique=n_unique,
        pii=pii,
        probably_categorical_codes=codes,
        example_values=_examples(_as_text(present.head(_EXAMPLE_SCAN)), pii),
    )


def _sample(values: pd.Series, size: int = _SAMPLE_SIZE) -> pd.Series:
    """A seeded sample, so the same file always gets the same profile."""
    return values if len(values) <= size else values.sample(size, random_state=0)


def _classify(
    name: str, series: pd.Series, present: pd.Series, sample: pd.Series, n_unique: int
) -> tuple[str, str, bool]:
    n, m = len(series), len(present)
    if m == 0 or (n - m) / n > MOSTLY_MISSING_SHARE:
        return "mostly_missing", f"{(n - m) / max(n, 1):.0%} of values are missing", False
    if n_unique == 1:
        first = _as_text(present.head(1)).iat[0]
        return "constant", f"every present value is '{_truncate(first)}'", False
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return "datetime", "stored as dates and times", False
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return _classify_numeric(name, present.astype("float64"), n, n_unique)
    return _classify_strings(name, sample, n, m, n_unique)


def _classify_numeric(
    name: str, present: pd.Series, n: int, n_unique: int
) -> tuple[str, str, bool]:
    values = present.to_numpy()
    finite = values[np.isfinite(values)]
    integers = finite.size > 0 and bool(np.all(finite == np.round(finite)))
    # Codes are small: a column of years or of 1e308 is a quantity even with few values.
    small = integers and float(np.abs(finite).max()) <= SMALL_CODE_MAX
    if integers and _unique_per_row(n, len(values), n_unique):
        if _id_like_name(name):
            return "id", "a different integer on every row and an id-like name", False
        if np.ptp(finite) == len(finite) - 1:
            return "id", "a different integer on every row, counting up by one: a row number", False
    if small and n_unique <= 5:
        return (
            "categorical",
            f"small integers with {n_unique} distinct values: probably categorical codes",
            True,
        )
    if small and n_unique <= 10:
        return (
            "numeric",
            f"small integers with {n_unique} distinct values: maybe categorical codes",
            True,
        )
    what = "integers" if integers else "numbers"
    return "numeric", f"{what} with {n_unique:,} distinct values", False


def _classify_strings(
    name: str, sample: pd.Series, n: int, m: int, n_unique: int
) -> tuple[str, str, bool]:
    if _looks_like_dates(sample):
        return "datetime", "at least 95% of values read as dates", False
    mean_chars = float(sample.str.len().mean())
    mean_words = float(sample.str.split().str.len().mean())
    long_values = mean_chars >= 30 or mean_words >= 4
    if _unique_per_row(n, m, n_unique) and not long_values:
        if _id_like_name(name):
            return "id", "a different value on every row and an id-like name", False
        if m >= 20 and not sample.str.contains(r"\s").any():
            return "id", "a different short code on every row: an identifier", False
    if long_values and (n_unique > 0.5 * m or n_unique > 100):
        return (
            "text",
            f"free text: {mean_chars:.0f} characters and {mean_words:.1f} words on average",
            False,
        )
    if n_unique <= 0.5 * m or n_unique <= 100:
        return "categorical", f"strings with {n_unique:,} distinct values", False
    return "text", f"short strings, mostly distinct ({n_unique:,} of {m:,})", False


def _unique_per_row(n: int, m: int, n_unique: int) -> bool:
    return n >= 2 and m == n and n_unique == n


_ID_TOKENS = frozenset({"id", "ids", "uuid", "guid", "identifier", "key", "ref", "reference"})


def _tokens(name: str) -> set[str]:
    """Lower-case words of a column name, splitting snake_case, kebab-case and camelCase."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)
    return {w.lower() for w in words} | {_compact(name)}


def _compact(name: str) -> str:
    """ "First Name", "first_name" and "firstName" all become "firstname"."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _id_like_name(name: str) -> bool:
    return bool(_tokens(name) & _ID_TOKENS)


_DATE_RE = re.compile(
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"
    r"|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}"
    r"|\d{1,2}\s+[A-Za-z]{3,9}\.?,?\s+\d{2,4}"
    r"|[A-Za-z]{3,9}\.?\s+\d{1,2},?\s+\d{4}"
)


def _looks_like_dates(sample: pd.Series) -> bool:
    if sample.str.contains(_DATE_RE).mean() < NUMERIC_SHARE:
        return False
    with warnings.catch_warnings():  # ambiguous day/month orders warn; we only count parses
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, format="mixed", errors="coerce")
    return bool(parsed.notna().mean() >= NUMERIC_SHARE)


# --------------------------------------------------------------------------------------------
# Personal data
# --------------------------------------------------------------------------------------------

_EMAIL_RE = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_CARD_RE = re.compile(r"\d[\d -]{11,22}\d")
_NATIONAL_ID_RE = re.compile(r"\d{3}-\d{2}-\d{4}|[A-Z]{2}\d{6}[A-D]")
_PHONE_RE = re.compile(r"\+?[\d\s().-]+")


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_email(value: str) -> bool:
    return _EMAIL_RE.fullmatch(value) is not None


def _is_card(value: str) -> bool:
    digits = _digits(value)
    return _CARD_RE.fullmatch(value) is not None and 13 <= len(digits) <= 19 and _luhn_ok(digits)


def _is_national_id(value: str) -> bool:
    return _NATIONAL_ID_RE.fullmatch(value) is not None


def _is_phone(value: str) -> bool:
    """>= 9 digits written like a phone number (a leading + or separators), not a plain number."""
    if _PHONE_RE.fullmatch(value) is None or _PLAIN_NUMBER_RE.fullmatch(value):
        return False
    has_separator = value.startswith("+") or re.search(r"\d[\s().-]+\d", value) is not None
    return has_separator and 9 <= len(_digits(value)) <= 15


# Order matters: an SSN also looks like a phone number, a card number like neither.
_VALUE_PII: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("email addresses", _is_email),
    ("card-like numbers", _is_card),
    ("national-id-like numbers", _is_national_id),
    ("phone numbers", _is_phone),
)
_PERSON_NAMES = frozenset(
    {"name", "fullname", "firstname", "lastname", "surname", "forename", "givenname",
     "familyname", "middlename", "maidenname", "customername", "clientname", "patientname",
     "contactname", "username", "employeename"}
)  # fmt: skip
_NAME_PII: tuple[tuple[str, frozenset[str]], ...] = (
    ("email addresses", frozenset({"email", "emailaddress"})),
    (
        "phone numbers",
        frozenset({"phone", "telephone", "tel", "mobile", "cellphone", "phonenumber"}),
    ),
    (
        "national-id-like numbers",
        frozenset({"ssn", "nino", "nationalid", "passport", "socialsecuritynumber"}),
    ),
    (
        "card-like numbers",
        frozenset({"cardnumber", "creditcard", "creditcardnumber", "ccnumber", "cardno"}),
    ),
    (
        "address column",
        frozenset({"address", "street", "zip", "zipcode", "postcode", "postal", "postalcode"}),
    ),
    ("date of birth column", frozenset({"dob", "birth", "birthdate", "birthday", "dateofbirth"})),
)


def _detect_pii(name: str, sample: pd.Series) -> str | None:
    """A value pattern matching >= 30% of the sample wins; else the column name decides."""
    values = sample.tolist()
    for label, matches in _VALUE_PII:
        if values and sum(map(matches, values)) / len(values) >= PII_SHARE:
            return label
    if _compact(name) in _PERSON_NAMES:  # whole name only: "product_name" is not a person
        return "name column"
    tokens = _tokens(name)
    for label, words in _NAME_PII:
        if tokens & words:
            return label
    return None


def _mask(value: str) -> str:
    """Enough of a value to recognise its shape, not the person: j***@e***.com, ***-**-6789."""
    if _is_email(value):
        local, domain = value.split("@", 1)
        host, _, suffix = domain.rpartition(".")
        return f"{local[0]}***@{host[0]}***.{suffix}"
    digits = _digits(value)
    if len(digits) >= 6:
        keep = len(digits) - 4
        out, seen = [], 0
        for char in value:
            if char.isdigit():
                seen += 1
                out.append("*" if seen <= keep else char)
            else:
                out.append(char)
        return "".join(out)
    return " ".join(word[0] + "***" for word in value.split())


def _examples(text: pd.Series, pii: str | None) -> tuple[str, ...]:
    firsts = pd.unique(text)[:3]
    return tuple(_truncate(_mask(v) if pii else v) for v in firsts)


def _pii_warning(profile: ColumnProfile) -> str | None:
    if profile.pii is None:
        return None
    return (
        f"Column '{profile.name}' looks like personal data ({profile.pii}); it is left out of "
        "the default features and its examples are masked."
    )


def _formula_warning(name: str, series: pd.Series) -> str | None:
    """Cells a spreadsheet would execute on open (core.exports.FORMULA_PREFIXES first);
    numbers like -5 are fine."""
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_datetime64_any_dtype(
        series.dtype
    ):
        return None
    text = series.dropna().astype("str")
    risky = text[formula_cells(text)]
    if risky.empty:
        return None
    return (
        f"Column '{name}' has {_count(len(risky), 'cell')} that a spreadsheet would run as formulas "
        f"(e.g. '{_truncate(risky.iat[0])}'); they are kept as data here, and exports "
        "neutralise them."
    )


# --------------------------------------------------------------------------------------------
# Target suggestion
# --------------------------------------------------------------------------------------------

_TARGET_WORDS = frozenset(
    {"target", "label", "labels", "class", "status", "outcome", "churn", "churned", "fraud",
     "fraudulent", "default", "defaulted", "y", "score", "result", "approved", "approval",
     "response", "responded", "converted", "conversion", "survived", "diagnosis", "decision"}
)  # fmt: skip


def _can_be_target(profile: ColumnProfile, max_classes: int) -> bool:
    classes = profile.kind == "categorical" or (
        profile.kind == "numeric" and profile.probably_categorical_codes
    )
    return classes and profile.pii is None and 2 <= profile.n_unique <= max_classes


def _suggest_target(
    profiles: tuple[ColumnProfile, ...], df: pd.DataFrame
) -> tuple[str | None, str]:
    """The last target-like name with 2..50 classes, else the last categorical with 2..20."""
    for j in reversed(range(len(profiles))):
        p = profiles[j]
        if _can_be_target(p, 50) and _tokens(p.name) & _TARGET_WORDS:
            return p.name, f"'{p.name}' has a target-like name and {_class_summary(df.iloc[:, j])}."
    for p in reversed(profiles):
        if p.pii is None and p.n_unique < 2 and _tokens(p.name) & _TARGET_WORDS:
            # Never put another column in its place silently: name it and let the analyst pick.
            what = "no values" if p.n_unique == 0 else f"one class only ('{p.example_values[0]}')"
            return None, (
                f"'{p.name}' looks like the target but has {what}; a model needs two classes "
                "or more. Choose the column to predict."
            )
    for j in reversed(range(len(profiles))):
        p = profiles[j]
        if p.kind == "categorical" and _can_be_target(p, 20):
            return p.name, (
                f"No column has a target-like name; '{p.name}' is the last categorical column "
                f"and has {_class_summary(df.iloc[:, j])}."
            )
    return None, "No column looks like a target (2 to 20 classes); choose the column to predict."


def _class_summary(series: pd.Series) -> str:
    shares = series.dropna().value_counts(normalize=True)
    top = ", ".join(
        f"{_truncate(str(_as_label(k)), 20)} {v:.0%}" for k, v in shares.head(3).items()
    )
    more = ", ..." if len(shares) > 3 else ""
    return f"{len(shares)} classes ({top}{more})"


def _as_label(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value) and value == round(value):
        return int(value)
    return value


def sniff_format(head: bytes, name: str = "upload.csv") -> tuple[str, str]:
    """(encoding, delimiter) from the first bytes of a file, for chunked reading.

    Scoring streams files too large to hold as one string; it applies the same detection as
    `read_csv_bytes` to the head, cut at the last line end so no character is split.
    """
    _check_not_empty(head)
    if b"\n" in head:
        head = head[: head.rfind(b"\n") + 1]
    encoding = _detect_encoding(head, name)
    sample, complete = _decoded_sample(head, encoding)
    return encoding, _detect_delimiter(sample, complete)
