"""Batch scoring: stream a CSV through a trained model, chunk by chunk.

Memory stays flat as the file grows: the input is read ``chunk_rows`` rows at a time, each
chunk is checked against the training schema, scored, written to SQLite (bulk executemany of
tuples, the fastest path measured here) and appended to the export file. The batch becomes
visible only when every chunk is in ("complete"); a failure removes the rows written so far
and the half-written export, so nothing is ever half-written from the user's point of view.

Depends on core.explanations (reasons), core.runs, core.kinds.registry and core.thresholds;
core.explanations never depends on this module (the reasons' time estimate, which reads score
batches, lives here).
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, select

from core import audit
from core.access import Actor, mask_pii
from core.datasets import pii_columns
from core.db import bulk_insert, get_or_raise, session_factory
from core.explanations import (
    list_explanations,
    measure_reason_rate,
    pairs_for,
    reason_codes,
    warm_reasons,
)
from core.exports import safe_column_name, to_safe_csv
from core.ingest import (
    IngestError,
    check_unique_names,
    clean_chunk,
    open_csv,
    parse_numbers,
    read_csv_chunks,
)
from core.kinds.base import LoadedModel
from core.kinds.registry import get_kind
from core.records import PredictionReasonRecord, PredictionRecord, ScoreBatchRecord
from core.runs import RunInfo, get_run, load_run_model
from core.thresholds import operating_threshold

DEFAULT_CHUNK_ROWS = 50_000
PSI_EPS = 1e-4
# Above this PSI a feature's distribution has moved enough to re-check the model (a common
# rule of thumb: < 0.1 stable, 0.1-0.25 some shift, > 0.25 major shift).
PSI_WARN, PSI_ALERT = 0.1, 0.25


@dataclass
class ScoreReport:
    batch_id: int
    run_id: int
    rows: int
    seconds: float
    threshold: float | None
    extra_columns: list[str]
    unseen_categories: dict[str, int]
    drift: dict[str, dict]
    output_columns: list[str]
    reasons: bool
    warnings: list[str] = field(default_factory=list)
    # "given" (the caller's), "validation" or "user" (the run's operating threshold); None
    # for runs without a decision cutoff.
    threshold_source: str | None = None
    reasons_rows: int = 0
    reasons_seconds: float = 0.0
    engine: str = "local"
    engine_details: dict[str, Any] = field(default_factory=dict)  # e.g. Ray workers' memory

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "run_id": self.run_id,
            "rows": self.rows,
            "seconds": self.seconds,
            "rows_per_second": self.rows_per_second,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "extra_columns": self.extra_columns,
            "unseen_categories": self.unseen_categories,
            "drift": self.drift,
            "output_columns": self.output_columns,
            "reasons": self.reasons,
            "reasons_rows": self.reasons_rows,
            "reasons_seconds": self.reasons_seconds,
            "warnings": self.warnings,
            "engine": self.engine,
            "engine_details": self.engine_details,
        }


# ---- reading --------------------------------------------------------------------------------


def open_chunks(
    source: bytes | str | Path, chunk_rows: int, name: str = "input"
) -> tuple[str, Iterator[pd.DataFrame]]:
    """(delimiter, text chunks): ingest's reader (``core.ingest.open_csv``) for a CSV, the
    block plan for a Parquet file or a folder. A chunk's index is the spreadsheet row number
    (header = row 1, blank lines counted); blank lines are not records."""
    if not isinstance(source, (bytes, bytearray)) and (
        Path(source).is_dir() or _is_parquet(Path(source))
    ):
        plan = plan_blocks(source, chunk_rows, name)
        return plan.delimiter, (
            chunk for block in plan.blocks for chunk in _split(read_block(block), chunk_rows)
        )
    csv_file = open_csv(source, chunk_rows=chunk_rows, name=name)
    return csv_file.delimiter, iter(csv_file)


# ---- blocks: the same reader, split so that several workers can read one input ----------
#
# A block is a byte range of a CSV file that starts and ends at record boundaries (with the
# header bytes read again in front of it), or a run of row groups of a Parquet file. Any
# process that sees the file reads a block with the reader above, so a block's rows, text
# and row numbers equal what streaming the whole file gives.

SCAN_BYTES = 8 << 20  # the boundary scan reads this much at a time
INPUT_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")
# Codecs in which every byte below 0x80 is that ASCII character: a newline or a quote byte
# is one, so record boundaries can be found on the raw bytes.
_ASCII_SAFE = ("utf-8", "utf-8-sig", "cp1252", "latin-1")


@dataclass(frozen=True)
class SourceBlock:
    path: str
    kind: str  # "csv" or "parquet"
    first_row: int  # row number of the block's first row (header = row 1; folders continue)
    rows: int  # rows the reader must find (blank lines counted); -1: not known (last block)
    start: int = 0  # csv: byte range [start, stop) after the header bytes [0, header_end)
    stop: int = 0
    header_end: int = 0
    encoding: str = "utf-8"
    delimiter: str = ","
    row_groups: tuple[int, ...] = ()  # parquet
    name: str = "input"
    in_folder: bool = False  # one of several files: errors name the file


@dataclass(frozen=True)
class BlockPlan:
    columns: list[str]
    delimiter: str
    blocks: list[SourceBlock]
    files: int


def _is_parquet(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as handle:
        return handle.read(4) == b"PAR1"


def input_files(source: str | Path) -> list[Path]:
    """The file itself, or a folder's CSV / Parquet files in name order."""
    path = Path(source)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ValueError(f"No such file or folder: {source}")
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in INPUT_SUFFIXES
    )
    if not files:
        raise ValueError(
            f"The folder {source} holds no CSV or Parquet files ({', '.join(INPUT_SUFFIXES)})."
        )
    return files


def plan_blocks(source: str | Path, rows_per_block: int, name: str = "input") -> BlockPlan:
    """Split a CSV file, a Parquet file or a folder of them into blocks of about
    ``rows_per_block`` rows. Folders: files in name order, row numbers continue from file to
    file; every file must have the same columns (and CSV files the same delimiter)."""
    if rows_per_block < 1:
        raise ValueError(f"rows_per_block must be positive, got {rows_per_block}.")
    files = input_files(source)
    blocks: list[SourceBlock] = []
    columns: list[str] | None = None
    delimiter: str | None = None
    offset = 0
    for file in files:
        label = file.name if len(files) > 1 else name
        with _naming_the_file(label if len(files) > 1 else None):
            if _is_parquet(file):
                file_columns, file_blocks, lines = _parquet_blocks(
                    file, rows_per_block, offset, label
                )
                file_delimiter = ","
            else:
                file_columns, file_delimiter, file_blocks, lines = _csv_blocks(
                    file, rows_per_block, offset, label
                )
        if len(files) > 1:
            file_blocks = [replace(b, in_folder=True) for b in file_blocks]
        if columns is None:
            columns, delimiter = file_columns, file_delimiter
        elif file_columns != columns:
            raise ValueError(
                f"{file.name} has other columns than {files[0].name}: every file of a folder "
                "must have the same columns in the same order."
            )
        elif file_delimiter != delimiter:
            raise ValueError(
                f"{file.name} separates values with {file_delimiter!r}, {files[0].name} with "
                f"{delimiter!r}: use one format for every file of a folder."
            )
        blocks += file_blocks
        offset += lines
    if not blocks:
        raise IngestError(f"The input {name} has no data rows.")
    return BlockPlan(columns or [], delimiter or ",", blocks, len(files))


def _parquet_blocks(
    path: Path, rows_per_block: int, offset: int, name: str
) -> tuple[list[str], list[SourceBlock], int]:
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(path).metadata
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise IngestError(f"The file {name} could not be read as Parquet: {exc}") from None
    columns = [str(c).strip() for c in metadata.schema.to_arrow_schema().names]
    check_unique_names(columns)
    blocks, groups, rows, done = [], [], 0, 0
    for group in range(metadata.num_row_groups):
        groups.append(group)
        rows += metadata.row_group(group).num_rows
        if rows >= rows_per_block or group == metadata.num_row_groups - 1:
            if rows:
                blocks.append(
                    SourceBlock(
                        str(path),
                        "parquet",
                        first_row=2 + offset + done,
                        rows=rows,
                        row_groups=tuple(groups),
                        name=name,
                    )
                )
            done += rows
            groups, rows = [], 0
    return columns, blocks, done


def _csv_blocks(
    path: Path, rows_per_block: int, offset: int, name: str
) -> tuple[list[str], str, list[SourceBlock], int]:
    """Blocks of ``rows_per_block`` lines cut at record boundaries: a newline outside quotes
    (an even number of quote bytes before it). Where quotes could be literal (a quote inside
    an unquoted value) or the codec is not ASCII-safe, the file stays one block; a reader
    also checks that it found exactly the rows the plan counted."""
    csv_file = open_csv(path, name=name)  # reads the header only: the format and the columns
    csv_file.close()
    encoding, delimiter, columns = csv_file.encoding, csv_file.delimiter, csv_file.columns
    base = SourceBlock(str(path), "csv", 0, 0, encoding=encoding, delimiter=delimiter, name=name)
    size = path.stat().st_size
    scan = _scan_boundaries(path, rows_per_block, delimiter) if encoding in _ASCII_SAFE else None
    if scan is None:  # one block, read whole by one worker; numbers stay unique in a folder
        with open(path, "rb") as handle:
            lines = sum(piece.count(b"\n") for piece in iter(lambda: handle.read(SCAN_BYTES), b""))
        block = replace(base, first_row=2 + offset, rows=-1, start=0, stop=size)
        return columns, delimiter, [block], lines
    cuts, lines = scan  # cuts[k]: byte after boundary k * rows_per_block (cuts[0]: header end)
    header_end = cuts[0]
    blocks = []
    for k, start in enumerate(cuts):
        stop = cuts[k + 1] if k + 1 < len(cuts) else size
        if stop <= start:
            continue
        rows = rows_per_block if k + 1 < len(cuts) else -1
        blocks.append(
            replace(
                base,
                first_row=2 + offset + k * rows_per_block,
                rows=rows,
                start=start,
                stop=stop,
                header_end=header_end,
            )
        )
    return columns, delimiter, blocks, lines


def _scan_boundaries(path: Path, every: int, delimiter: str) -> tuple[list[int], int] | None:
    """(cut offsets, lines after the header), or None when boundaries cannot be trusted."""
    quote, newline, cr = 34, 10, 13
    separators = np.frombuffer(f'{delimiter}\n\r"'.encode(), dtype=np.uint8)
    cuts: list[int] = []
    boundaries = 0  # record-ending newlines seen (the header's is number 0)
    parity = 0
    position = 0
    last_byte = newline
    trailing = False
    with open(path, "rb") as handle:
        while piece := handle.read(SCAN_BYTES):
            data = np.frombuffer(piece, dtype=np.uint8)
            is_quote = data == quote
            if is_quote.any():
                where = np.flatnonzero(is_quote)
                before = np.where(where > 0, data[np.maximum(where - 1, 0)], last_byte)
                after = np.where(
                    where + 1 < len(data), data[np.minimum(where + 1, len(data) - 1)], newline
                )
                structural = np.isin(before, separators) | np.isin(after, separators)
                if not structural.all():
                    return None  # a quote inside a value: pandas reads it literally
            lone_cr = (data == cr) & np.append(data[1:] != newline, True)
            if lone_cr[:-1].any():
                return None  # old Mac line ends: the reader splits there too
            # 1 where an odd number of quotes came before (inside a quoted value); one byte
            # per input byte, so the scan's memory stays a few times SCAN_BYTES.
            inside = np.bitwise_xor.accumulate(is_quote.view(np.uint8)) ^ np.uint8(parity)
            ends = np.flatnonzero((data == newline) & (inside == 0))
            numbers = boundaries + np.arange(len(ends))
            cuts += (position + ends[numbers % every == 0] + 1).tolist()
            boundaries += len(ends)
            parity = int(inside[-1])
            position += len(data)
            last_byte = int(data[-1])
            tail = piece[ends[-1] + 1 :] if len(ends) else piece
            trailing = bool(tail.strip()) if len(ends) else trailing or bool(piece.strip())
    if parity or not cuts:
        return None
    return cuts, boundaries - 1 + (1 if trailing else 0)


def _split(frame: pd.DataFrame, rows: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), rows):
        yield frame.iloc[start : start + rows]


def _no_rows(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="str") for c in columns})


@contextlib.contextmanager
def _naming_the_file(name: str | None) -> Iterator[None]:
    """Prefix the file's name to an IngestError (one file of a folder)."""
    try:
        yield
    except IngestError as exc:
        if name is None:
            raise
        raise IngestError(f"{name}: {exc}") from None


def read_block(block: SourceBlock) -> pd.DataFrame:
    """The block's rows as text (index: row numbers), read as ``open_chunks`` reads them."""
    with _naming_the_file(block.name if block.in_folder else None):
        return _read_block(block)


def _read_block(block: SourceBlock) -> pd.DataFrame:
    if block.kind == "parquet":
        import pyarrow.parquet as pq

        table = pq.ParquetFile(block.path).read_row_groups(list(block.row_groups))
        raw = table.to_pandas()
        found = len(raw)
        raw.index = pd.RangeIndex(block.first_row, block.first_row + found)
        chunk = clean_chunk(raw)
    else:
        with open(block.path, "rb") as handle:
            head = handle.read(block.header_end)
            handle.seek(block.start)
            data = handle.read(block.stop - block.start)
        csv_file = read_csv_chunks(
            io.BytesIO(head + data),
            block.encoding,
            block.delimiter,
            first_row=block.first_row,
            allow_empty=True,  # a block of blank lines: the plan counted them
        )
        chunks = list(csv_file)
        found = csv_file.records
        chunk = pd.concat(chunks) if chunks else _no_rows(csv_file.columns)
    if block.rows >= 0 and found != block.rows:
        raise IngestError(
            f"{block.name} could not be split for parallel reading at row {block.first_row} "
            f"(found {found} rows where {block.rows} were counted); score it with the local "
            "engine."
        )
    return chunk


# ---- checks ---------------------------------------------------------------------------------


def check_columns(run: RunInfo, columns: list[str]) -> list[str]:
    """Raise when required columns are missing; return the extra (ignored) columns."""
    missing = [c for c in run.features if c not in columns]
    if missing:
        raise ValueError(
            f"The file is missing {len(missing)} column(s) the model was trained on: "
            f"{', '.join(missing)}."
        )
    return [c for c in columns if c not in run.features and c != run.target]


def tabular_parts(model: LoadedModel | None) -> list[Any]:
    """The tabular models inside ``model``: itself, none (text), or an ensemble's members."""
    return [] if model is None else model.tabular_parts()


def _typed(chunk: pd.DataFrame, model: Any, delimiter: str) -> pd.DataFrame:
    """Numeric features as floats, read as ingest reads them (decimal commas in ";" files);
    text that is not a number raises with its spreadsheet row numbers."""
    numeric = dict.fromkeys(c for part in tabular_parts(model) for c in part.spec.numeric)
    typed = chunk.copy()
    for column in numeric:
        text = chunk[column]
        present = text.notna()
        numbers = pd.Series(np.nan, index=text.index, dtype="float64")
        if present.any():
            numbers[present] = parse_numbers(text[present], delimiter).to_numpy(dtype="float64")
        bad = present & numbers.isna()
        if bad.any():
            rows = text.index[bad.to_numpy()][:5].tolist()
            raise ValueError(
                f"Column {column!r} should hold numbers, but row(s) {', '.join(map(str, rows))} "
                f"hold text such as {text[bad].iloc[0][:40]!r}."
            )
        typed[column] = numbers.astype("float64")
    return typed


# ---- drift ----------------------------------------------------------------------------------


class DriftCounter:
    """Accumulates per-feature bin counts over chunks; PSI against the training shares."""

    def __init__(self, model: Any) -> None:
        parts = tabular_parts(model)
        self.model = parts[0] if parts else None  # an ensemble's first tabular member
        self.stats = self.model.preprocessor.training_stats if self.model else {}
        self.numeric = {c: np.zeros(10) for c in self.stats.get("numeric", {})}
        self.categorical = {
            c: np.zeros(len(s["frequencies"])) for c, s in self.stats.get("categorical", {}).items()
        }

    def state(self) -> dict:
        """Plain data (JSON-safe) another process can rebuild the counts from."""
        return {
            "stats": self.stats,
            "numeric": {c: v.tolist() for c, v in self.numeric.items()},
            "categorical": {c: v.tolist() for c, v in self.categorical.items()},
        }

    @classmethod
    def from_state(cls, state: dict) -> DriftCounter:
        counter = cls(None)
        counter.stats = state["stats"]
        counter.numeric = {c: np.asarray(v, dtype=float) for c, v in state["numeric"].items()}
        counter.categorical = {
            c: np.asarray(v, dtype=float) for c, v in state["categorical"].items()
        }
        return counter

    def merge(self, other: DriftCounter) -> DriftCounter:
        """Add another chunk's counts to these (same model); returns self."""
        for mine, theirs in ((self.numeric, other.numeric), (self.categorical, other.categorical)):
            for column, counts in theirs.items():
                mine[column] += counts
        return self

    def add(self, typed: pd.DataFrame, z: np.ndarray | None) -> None:
        """Count one chunk; ``z`` is the chunk encoded by this counter's model."""
        from models.preprocessing import decile_bins

        for column, counts in self.numeric.items():
            values = typed[column].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            edges = self.stats["numeric"][column]["deciles"]
            counts += np.bincount(decile_bins(values, edges), minlength=10)[:10]
        if self.categorical:
            assert self.model is not None and z is not None  # categories come from its codes
            spec = self.model.spec
            for column, counts in self.categorical.items():
                codes = z[:, len(spec.numeric) + spec.categorical.index(column)].astype(int)
                counts += np.bincount(codes, minlength=len(counts))[: len(counts)]

    def summary(self) -> dict[str, dict]:
        out: dict[str, dict[str, Any]] = {}
        for column, counts in self.numeric.items():
            expected = np.asarray(self.stats["numeric"][column]["decile_fractions"], dtype=float)
            out[column] = {"psi": psi(expected, counts), "kind": "numeric"}
        for column, counts in self.categorical.items():
            expected = np.asarray(self.stats["categorical"][column]["frequencies"], dtype=float)
            out[column] = {"psi": psi(expected, counts), "kind": "categorical"}
        for item in out.values():
            value = item["psi"]
            item["level"] = (
                "major shift"
                if value > PSI_ALERT
                else "some shift"
                if value > PSI_WARN
                else "stable"
            )
        return out


def psi(expected_share: np.ndarray, actual_counts: np.ndarray) -> float:
    """Population stability index: sum (a - e) * ln(a / e) over bins (shares, eps-clipped)."""
    total = actual_counts.sum()
    if total == 0 or expected_share.sum() == 0:
        return 0.0
    e = np.clip(expected_share / expected_share.sum(), PSI_EPS, None)
    a = np.clip(actual_counts / total, PSI_EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


# ---- outputs --------------------------------------------------------------------------------


def _unseen_counts(model: Any, typed: pd.DataFrame, z: np.ndarray | None) -> dict[str, int]:
    """Per categorical column: values present in the file but coded 0 (never seen in training)."""
    if model is None or z is None:
        return {}
    spec = model.spec
    return {
        column: int((typed[column].notna().to_numpy() & (z[:, len(spec.numeric) + j] == 0)).sum())
        for j, column in enumerate(spec.categorical)
    }


def prediction_columns(
    run: RunInfo, scores: np.ndarray, index: pd.Index, threshold: float | None
) -> pd.DataFrame:
    """prediction + probability (binary) / proba_<class> (multiclass) + decision."""
    out = pd.DataFrame(index=index)
    if run.task == "binary":
        cutoff = 0.5 if threshold is None else threshold
        flagged = scores >= cutoff
        out["prediction"] = np.where(flagged, run.classes[1], run.classes[0])
        out["probability"] = scores
        out["decision"] = flagged.astype(int)
    elif run.task == "multiclass":
        out["prediction"] = np.asarray(run.classes, dtype=object)[scores.argmax(axis=1)]
        for i, label in enumerate(run.classes):
            out[f"proba_{label}"] = scores[:, i]
    else:
        out["prediction"] = scores
    return out


# ---- the job --------------------------------------------------------------------------------


@dataclass
class ScoredChunk:
    """One chunk's input (text, index = row numbers) and what scoring it gave."""

    chunk: pd.DataFrame
    delimiter: str
    outputs: pd.DataFrame
    unseen: dict[str, int]
    drift: DriftCounter
    typed: pd.DataFrame | None = None  # kept by the local engine for reasons


def score_chunk(
    run: RunInfo, model: Any, chunk: pd.DataFrame, delimiter: str, threshold: float | None
) -> ScoredChunk:
    """Type, check and score one chunk: the work both engines do per chunk (Ray: in an actor)."""
    typed = _typed(chunk, model, delimiter)
    drift = DriftCounter(model)
    first_tabular = drift.model  # drift and unseen categories are read off its encoding
    # Encode once per chunk: the model, the drift counts and the unseen-category counts all
    # read the same codes.
    z = first_tabular.preprocessor.encode(typed) if first_tabular else None
    if first_tabular is not None and model is first_tabular:
        scores = first_tabular.predict_encoded(z)
    else:
        scores = model.predict_frame(typed)
    outputs = prediction_columns(run, scores, typed.index, threshold)
    drift.add(typed, z)
    unseen = _unseen_counts(first_tabular, typed, z)
    return ScoredChunk(chunk, delimiter, outputs, unseen, drift, typed)


def score_source(
    run_id: int,
    source: bytes | str | Path,
    *,
    source_name: str = "upload.csv",
    threshold: float | None = None,
    out_path: Path | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    reasons_for_rows: int = 0,
    on_progress: Callable[[int], None] | None = None,
    model: Any = None,
    actor: Actor | None = None,
) -> ScoreReport:
    """Score a CSV (or a Parquet file, or a folder of them) with the model of ``run_id`` in
    this process; see the module docstring for guarantees.

    ``threshold``: binary runs flag P(positive) >= threshold; None takes the run's operating
    threshold (core.thresholds), and the report says which one was used and where it came from.
    ``reasons_for_rows``: add the top three reasons (SHAP) to the first N rows (0 = none),
    chosen to agree with each row's decision at that same threshold.
    ``out_path``: also write a CSV with the input columns plus the outputs (formula-safe).
    """
    actor = audit.authorize(actor, "score", "run", run_id)
    check_score_options(threshold, chunk_rows)
    run = get_run(run_id)
    threshold, threshold_source = resolve_threshold(run, threshold)
    model = model if model is not None else load_run_model(run_id)

    def scored() -> Iterator[ScoredChunk]:
        delimiter, chunks = open_chunks(source, chunk_rows, source_name)
        for chunk in chunks:
            check_columns(run, list(chunk.columns))
            yield score_chunk(run, model, chunk, delimiter, threshold)

    return write_batch(
        run,
        scored(),
        source_name=source_name,
        threshold=threshold,
        threshold_source=threshold_source,
        out_path=out_path,
        reasons_for_rows=reasons_for_rows,
        reasons_model=lambda: model,
        on_progress=on_progress,
        actor=actor,
    )


def check_score_options(threshold: float | None, chunk_rows: int) -> None:
    if threshold is not None and not (0.0 <= threshold <= 1.0):
        raise ValueError(f"The threshold must be between 0 and 1, got {threshold}.")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}.")


def write_batch(
    run: RunInfo,
    scored: Iterable[ScoredChunk],
    *,
    source_name: str,
    threshold: float | None,
    threshold_source: str | None = None,
    out_path: Path | None,
    reasons_for_rows: int = 0,
    reasons_model: Callable[[], Any] | None = None,
    on_progress: Callable[[int], None] | None = None,
    engine: str = "local",
    engine_details: Callable[[], dict[str, Any]] | None = None,
    actor: Actor | None = None,
) -> ScoreReport:
    """Write scored chunks, in order, as one score batch: prediction rows into the ledger, the
    export file, and the report. All or nothing: a failure removes what was written.
    ``threshold`` is the resolved cutoff (``resolve_threshold``) and ``actor`` the user the
    batch is written for (already authorised): personal-data columns are masked in the export
    for roles that may not see them, and the batch is audited with its rows."""
    run_id = run.id
    pii = pii_columns(run.dataset_id)
    if not get_kind(run.model).explainable:
        reasons_for_rows = 0  # reasons come from one model's SHAP values; see its members
    started = time.perf_counter()
    factory = session_factory()
    with factory.begin() as session:
        batch = ScoreBatchRecord(
            run_id=run.id,
            source_name=str(source_name)[:300],
            threshold=threshold,
            status="writing",
            writer_pid=os.getpid(),
            report_json={},
        )
        session.add(batch)
        session.flush()
        batch_id = batch.id
    tmp_out = None
    if out_path is not None:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out_path.with_name(f".{out_path.name}.{os.getpid()}.partial")
    try:
        rows = reasons_rows = 0
        reasons_seconds = 0.0
        extra: list[str] | None = None
        unseen: dict[str, int] = {}
        drift: DriftCounter | None = None
        output_columns: list[str] = []
        for item in scored:
            chunk, outputs = item.chunk, item.outputs
            if extra is None:
                extra = check_columns(run, list(chunk.columns))
            if reasons_for_rows > rows:
                if reasons_model is None:
                    raise ValueError("Reasons need the model: pass reasons_model.")
                model = reasons_model()
                typed = (
                    item.typed if item.typed is not None else _typed(chunk, model, item.delimiter)
                )
                take = min(len(typed), reasons_for_rows - rows)
                reasons_started = time.perf_counter()
                reasons = reason_codes(
                    run,
                    model,
                    typed.iloc[:take],
                    threshold=threshold,
                    decisions=outputs["decision"].to_numpy()[:take]
                    if "decision" in outputs
                    else None,
                )
                reasons_seconds += time.perf_counter() - reasons_started
                reasons_rows += take
                outputs["reasons"] = pd.Series(reasons, index=typed.index[:take])
            for column, count in item.unseen.items():
                unseen[column] = unseen.get(column, 0) + count
            drift = item.drift if drift is None else drift.merge(item.drift)
            _insert_predictions(batch_id, run, outputs)
            if tmp_out is not None:
                export = mask_pii(pd.concat([chunk, outputs], axis=1), pii, actor)
                to_safe_csv(export, tmp_out, header=rows == 0, mode="a")
                output_columns = [safe_column_name(c) for c in export.columns]
            rows += len(chunk)
            if on_progress is not None:
                on_progress(rows)
        if rows == 0:
            raise IngestError(f"The input {source_name} has no data rows.")
        seconds = time.perf_counter() - started
        report = ScoreReport(
            batch_id=batch_id,
            run_id=run.id,
            rows=rows,
            seconds=seconds,
            threshold=threshold,
            extra_columns=extra or [],
            unseen_categories={k: v for k, v in unseen.items() if v},
            drift=drift.summary() if drift is not None else {},
            output_columns=output_columns,
            reasons=reasons_for_rows > 0,
            threshold_source=threshold_source,
            reasons_rows=reasons_rows,
            reasons_seconds=reasons_seconds,
            engine=engine,
            engine_details=engine_details() if engine_details is not None else {},
        )
        report.warnings = _plain_warnings(report)
        if tmp_out is not None and out_path is not None:
            os.replace(tmp_out, out_path)
        with factory.begin() as session:
            record = get_or_raise(session, ScoreBatchRecord, batch_id, "score batch")
            record.status = "complete"
            record.n_rows = rows
            record.seconds = seconds
            record.report_json = report.to_dict()
            audit.record(session, actor, "score", "score_batch", batch_id, "ok", f"run {run_id}")
        return report
    except BaseException as exc:
        with contextlib.suppress(Exception):
            audit.record_separately(actor, "score", "run", run_id, "failed", type(exc).__name__)
        with factory.begin() as session:
            session.execute(delete(PredictionRecord).where(PredictionRecord.batch_id == batch_id))
            session.execute(
                delete(PredictionReasonRecord).where(PredictionReasonRecord.batch_id == batch_id)
            )
            session.execute(delete(ScoreBatchRecord).where(ScoreBatchRecord.id == batch_id))
        if tmp_out is not None:
            tmp_out.unlink(missing_ok=True)
        raise


def resolve_threshold(run: RunInfo, threshold: float | None) -> tuple[float | None, str | None]:
    """(cutoff, where it came from): the caller's, else the run's operating threshold."""
    if run.task != "binary":
        return None, None
    if threshold is not None:
        return float(threshold), "given"
    chosen = operating_threshold(run.id)
    return chosen.threshold, chosen.source


def _nullable(values: np.ndarray) -> list:
    """A float column as a list with None for NaN (what SQLite stores as NULL)."""
    as_list = values.tolist()
    if np.isnan(values).any():
        as_list = [None if v != v else v for v in as_list]
    return as_list


def _insert_predictions(batch_id: int, run: RunInfo, outputs: pd.DataFrame) -> None:
    """Bulk insert as tuples through the driver's executemany, the fastest path measured here
    (docs/STACK.md: tuples 1.5M rows/s against 0.22M for the ORM bulk path)."""
    n = len(outputs)
    rows = (outputs.index.to_numpy() - 1).tolist()  # spreadsheet row 2 is data row 1
    if run.task == "binary":
        score = _nullable(outputs["probability"].to_numpy(dtype=float))
        label = outputs["decision"].astype(int).tolist()
    elif run.task == "multiclass":
        proba = outputs[[f"proba_{c}" for c in run.classes]].to_numpy(dtype=float)
        label = proba.argmax(axis=1)
        score = _nullable(proba[np.arange(n), label])
        label = label.tolist()
    else:
        score = _nullable(outputs["prediction"].to_numpy(dtype=float))
        label = [None] * n
    bulk_insert(
        PredictionRecord.__table__,
        zip([batch_id] * n, rows, score, label, strict=True),
        parent_checked=True,  # the batch row was created by score_source just before
    )
    if "reasons" in outputs:
        given = outputs["reasons"].dropna()
        if len(given):
            bulk_insert(
                PredictionReasonRecord.__table__,
                zip(
                    [batch_id] * len(given),
                    (given.index.to_numpy() - 1).tolist(),
                    given.tolist(),
                    strict=True,
                ),
            )


def _plain_warnings(report: ScoreReport) -> list[str]:
    warnings = []
    if report.extra_columns:
        warnings.append(
            f"{len(report.extra_columns)} column(s) the model does not use were ignored: "
            f"{', '.join(report.extra_columns[:10])}."
        )
    for column, count in report.unseen_categories.items():
        warnings.append(
            f"{count:,} value(s) in {column!r} never appeared in training; the model treats "
            "them as 'unknown'."
        )
    shifted = [c for c, d in report.drift.items() if d["psi"] > PSI_ALERT]
    if shifted:
        warnings.append(
            "These features look very different from the training data (PSI > 0.25), so the "
            f"scores may be less reliable: {', '.join(shifted)}."
        )
    return warnings


# ---- reading back ---------------------------------------------------------------------------


def list_batches(run_id: int | None = None) -> list[dict]:
    with session_factory().begin() as session:
        query = select(ScoreBatchRecord).where(ScoreBatchRecord.status == "complete")
        if run_id is not None:
            query = query.where(ScoreBatchRecord.run_id == run_id)
        return [
            {
                "batch_id": b.id,
                "run_id": b.run_id,
                "source_name": b.source_name,
                "rows": b.n_rows,
                "seconds": b.seconds,
                "threshold": b.threshold,
                "created_at": b.created_at,
                "report": b.report_json or {},
            }
            for b in session.scalars(query.order_by(ScoreBatchRecord.id.desc())).all()
        ]


def batch_predictions(batch_id: int) -> pd.DataFrame:
    """row_number, prediction (class name or value), probability, decision, reasons."""
    with session_factory().begin() as session:
        batch = get_or_raise(session, ScoreBatchRecord, batch_id, "score batch")
        run_id = batch.run_id
    run = get_run(run_id)
    engine = session_factory().kw["bind"]
    with engine.connect() as connection:
        frame = pd.read_sql(
            select(PredictionRecord.row_number, PredictionRecord.score, PredictionRecord.label)
            .where(PredictionRecord.batch_id == batch_id)
            .order_by(PredictionRecord.row_number),
            connection,
        )
        reasons = pd.read_sql(
            select(PredictionReasonRecord.row_number, PredictionReasonRecord.reasons).where(
                PredictionReasonRecord.batch_id == batch_id
            ),
            connection,
        )
    out = pd.DataFrame({"row_number": frame["row_number"]})
    if run.task == "regression":
        out["prediction"] = frame["score"]
    else:
        labels = frame["label"].fillna(0).astype(int).to_numpy()
        out["prediction"] = np.asarray(run.classes, dtype=object)[labels]
        out["probability"] = frame["score"]
        if run.task == "binary":
            out["decision"] = frame["label"].astype("Int64")
    out = out.merge(reasons, on="row_number", how="left")
    return out


# ---- reading scores without storing them ------------------------------------------------------


def read_scored(
    run_id: int,
    source: bytes | str | Path,
    *,
    source_name: str = "input.csv",
    model: Any = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """(rows as read, rows typed for the model, scores) of a whole CSV, computed exactly as
    ``score_source`` computes them (same reader, same typing, same model call), but kept in
    memory and never stored: the fairness, segment and counterfactual figures then agree
    with the ``score`` output row for row. Both frames are indexed 0..n-1 (file order)."""
    run = get_run(run_id)
    model = model if model is not None else load_run_model(run_id)
    parts = tabular_parts(model)
    first_tabular = parts[0] if parts else None
    raw, typed, scores = [], [], []
    delimiter, chunks = open_chunks(source, chunk_rows, source_name)
    for chunk in chunks:
        check_columns(run, list(chunk.columns))
        chunk_typed = _typed(chunk, model, delimiter)
        if first_tabular is not None and model is first_tabular:
            out = first_tabular.predict_encoded(first_tabular.preprocessor.encode(chunk_typed))
        else:
            out = model.predict_frame(chunk_typed)
        raw.append(chunk)
        typed.append(chunk_typed)
        scores.append(np.asarray(out, dtype=float))
    raw_frame = pd.concat(raw).reset_index(drop=True)
    typed_frame = pd.concat(typed).reset_index(drop=True)
    return raw_frame, typed_frame, np.concatenate(scores)


def predict_typed(model: Any, typed: pd.DataFrame) -> np.ndarray:
    """Scores of rows already typed for ``model`` (``read_scored``'s second frame, or edits of
    it), by the same call ``score_source`` makes."""
    return np.asarray(model.predict_frame(typed), dtype=float)


# ---- reasons' time estimate ---------------------------------------------------------------


def reasons_plan(run: RunInfo, n_rows: int, model: Any = None) -> dict:
    """Seconds that reasons for ``n_rows`` rows will take: rows x a per-row rate *measured*
    on this run, newest first: a Score batch with reasons, an explanation made with the
    Explain page's defaults (the same computation: its ms per row), else a probe timed now
    (a fixed part per call plus a per-row part). With ``model``, the one-off costs of the
    first reasons in this process (background summary, first forward pass) are paid here,
    so the estimate is for the work that is left. Inference speed alone is no guide: masked
    rows run in small batches, and each call has a fixed cost."""
    test = warm_reasons(run, model) if model is not None else None
    fixed, basis = 0.0, None
    for batch in list_batches(run.id):
        report = batch["report"]
        if report.get("reasons_rows"):
            ms = 1000.0 * report["reasons_seconds"] / report["reasons_rows"]
            rows = report["reasons_rows"]
            basis = f"measured on {rows:,} rows of Score batch #{batch['batch_id']}"
            break
    if basis is None:
        for item in list_explanations(run.id):
            quality = item.get("quality") or {}
            if quality.get("pairs") == pairs_for(run) and quality.get("default_background"):
                ms = item["ms_per_row"]
                basis = (
                    f"measured on {item['rows']:,} rows of explanation #{item['explanation_id']}"
                )
                break
    if basis is None:
        if model is None:
            raise ValueError("Measuring the reasons' speed needs the loaded model.")
        rate = measure_reason_rate(run, model, test=test)
        fixed, ms = rate["fixed_ms"], rate["ms_per_row"]
        basis = f"measured now on {rate['rows']} test rows"
    return {
        "seconds": (fixed + n_rows * ms) / 1000.0,
        "ms_per_row": float(ms),
        "fixed_ms": float(fixed),
        "basis": basis,
    }
