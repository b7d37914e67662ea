"""Counterfactuals: the smallest change to a row that flips its decision.

For a flagged row (P(positive) >= threshold) the search looks for changes that bring it below
the threshold; for a row that is not flagged, changes that bring it to or above it. Rules:

- only *actionable* columns change: the model's tabular columns minus the ones the analyst
  marks immutable (``suggest_immutable`` proposes age-like and protected columns; nothing is
  assumed silently). Text columns never change: for text rows the counterfactual covers the
  tabular columns only;
- only values seen in training: categories of the training vocabulary, numbers inside the
  observed training range (its deciles, their midpoints, min and max; whole numbers where
  training held whole numbers);
- at most ``max_changes`` (3) columns.

Search: every single-column change is scored in one batch; then pairs and triples: the
BEAM combinations that moved the probability furthest in the wanted direction, each extended
by every single change on another column, plus combinations of the columns (and values) with
the largest single moves, again in batches. Every model kind works: candidates go through the same
model call as ``score`` (``core.scoring.predict_typed``). The minimal counterfactual changes
the fewest columns, then has the smallest normalised distance (numeric change / training
range, 1 per changed category).

Depends on core.scoring (the same reader and model call as ``score``), core.runs,
core.thresholds and core.kinds.tabular (training values); nothing in core depends on it.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.kinds.tabular import Candidates, candidate_values
from core.runs import get_run, load_run_model
from core.scoring import predict_typed, read_scored
from core.thresholds import operating_threshold

__all__ = [
    "Counterfactual",
    "WhatIfRecord",
    "candidate_values",
    "counterfactuals",
    "counterfactuals_for_file",
    "suggest_immutable",
    "whatif_record",
]

MAX_CHANGES = 3
# A candidate: (column, new value) changes, at most one per column.
Combo = tuple[tuple[str, Any], ...]
# Greedy widening: the columns with the largest single moves, and per column its best values.
TOP_COLUMNS = 6
TOP_VALUES = 3
# Beam: the combinations of one level that moved the probability furthest are extended by
# every single change at the next level.
BEAM = 8
# A flip must clear the threshold by this much, so that rescoring the written-out row (whose
# float batches may differ in the last bits) gives the same decision.
MARGIN = 1e-6
IMMUTABLE_HINTS = re.compile(
    r"(^|[^a-z])(age|sex|gender|race|ethnic\w*|birth\w*|dob|nationality|religion|marital)"
    r"([^a-z]|$)",
    re.IGNORECASE,
)


def suggest_immutable(columns: list[str] | tuple[str, ...]) -> list[str]:
    """Columns a person usually cannot or must not change (age, sex, ...): a suggestion the
    analyst confirms, never applied on its own."""
    return [c for c in columns if IMMUTABLE_HINTS.search(str(c))]


@dataclass(frozen=True)
class Counterfactual:
    row: int  # 0-based position in the rows given
    found: bool
    changes: dict[str, list]  # column -> [from, to]
    probability_before: float
    probability_after: float | None
    reason: str = ""
    flagged_before: bool = False
    distance: float | None = None
    tried: int = 0  # candidate rows scored

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WhatIfRecord:
    """The Score page's editable record for a tabular model: its columns in model order, the
    training vocabulary of each categorical one, and the values to start from."""

    columns: list[str]
    choices: dict[str, list[str]]
    start: dict[str, Any]


def whatif_record(model: Any, picked: pd.Series | None = None) -> WhatIfRecord:
    """The typical training row of ``model``'s first tabular part (median numbers, most
    frequent categories), with the present values of ``picked`` (a row of a scored file)
    written over it; categories as text."""
    parts = model.tabular_parts()
    if not parts:
        raise ValueError("This model reads text only: there is no record of columns to edit.")
    tabular = parts[0]
    typical = dict(tabular.preprocessor.typical_row())
    vocab = tabular.preprocessor.vocabularies
    columns = list(tabular.spec.columns)
    if picked is not None:
        for column in columns:
            value = picked.get(column)
            if value is not None and not pd.isna(value):
                typical[column] = str(value) if column in vocab else value
    return WhatIfRecord(columns, {c: list(vocab[c]) for c in columns if c in vocab}, typical)


def _same(a: Any, b: Any) -> bool:
    if a is None or (not isinstance(a, str) and pd.isna(a)):
        return False
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def _plain(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    return str(value)


def _distance(column: str, old: Any, new: Any, cands: Candidates) -> float:
    if column in cands.numeric:
        try:
            old_f = float(old)
        except (TypeError, ValueError):
            return 1.0
        if np.isnan(old_f):
            return 1.0
        return abs(float(new) - old_f) / cands.spans[column]
    return 1.0


def _variants(row: pd.DataFrame, combos: list[Combo]) -> pd.DataFrame:
    frame = pd.concat([row] * len(combos), ignore_index=True)
    for i, combo in enumerate(combos):
        for column, value in combo:
            frame.at[i, column] = value
    return frame


def _search_row(
    model: Any,
    row: pd.DataFrame,
    before: float,
    threshold: float,
    cands: Candidates,
    actionable: list[str],
    max_changes: int,
    position: int,
) -> Counterfactual:
    flagged = before >= threshold
    # The wanted direction as a sign: a flagged row must go down, another up.
    sign = -1.0 if flagged else 1.0

    def flips(p: np.ndarray) -> np.ndarray:
        return p < threshold - MARGIN if flagged else p >= threshold + MARGIN

    current = row.iloc[0]
    singles: list[Combo] = [
        ((c, v),) for c in actionable for v in cands.values.get(c, []) if not _same(current[c], v)
    ]
    if not singles:
        return Counterfactual(
            position,
            False,
            {},
            before,
            None,
            "No actionable column has another value seen in training.",
            flagged,
        )
    tried = 0
    best_move: dict[str, list[tuple[float, Any]]] = {}
    found: list[tuple[int, float, tuple, float]] = []  # (changes, distance, combo, p)
    closest: tuple[float, tuple, float] | None = None
    beam: list[Combo] = []  # the previous level's combinations that moved P furthest
    for size in range(1, max_changes + 1):
        combos: list[tuple] = singles if size == 1 else _extend(beam, singles, best_move, size)
        if not combos:
            break
        probability = predict_typed(model, _variants(row, combos))
        tried += len(combos)
        hit = flips(probability)
        moves = sign * (probability - before)
        beam = [combos[k] for k in np.argsort(-moves, kind="stable")[:BEAM]]
        for combo, p, ok in zip(combos, probability, hit, strict=True):
            move = sign * (p - before)
            if closest is None or move > closest[0]:
                closest = (move, combo, float(p))
            if size == 1:
                column, value = combo[0]
                best_move.setdefault(column, []).append((move, value))
            if ok:
                distance = sum(_distance(c, current[c], v, cands) for c, v in combo)
                found.append((size, distance, combo, float(p)))
        if found:
            break
    if found:
        size, distance, combo, p = min(found, key=lambda f: (f[0], f[1]))
        changes = {c: [_plain(current[c]), _plain(v)] for c, v in combo}
        return Counterfactual(
            position, True, changes, before, p, "", flagged, float(distance), tried
        )
    move, combo, p = closest if closest else (0.0, (), before)
    near = ", ".join(f"{c} to {_plain(v)}" for c, v in combo) or "nothing"
    goal = "below" if flagged else "to or above"
    reason = (
        f"No change of at most {max_changes} actionable column(s), using values seen in "
        f"training, brings P from {before:.3f} {goal} the threshold {threshold:.3f}; the "
        f"closest reached P = {p:.3f} (changing {near})."
    )
    return Counterfactual(position, False, {}, before, None, reason, flagged, None, tried)


def _extend(
    beam: list[Combo],
    singles: list[Combo],
    best_move: dict[str, list[tuple[float, Any]]],
    size: int,
) -> list[Combo]:
    """Combinations of ``size`` changes: the beam (best of the previous level) extended by
    every single change on another column, plus the greedy widening of the best columns."""
    seen: set[frozenset] = set()
    out: list[Combo] = []
    extended: list[Combo] = [
        (*combo, single[0])
        for combo in beam
        for single in singles
        if single[0][0] not in {c for c, _ in combo}
    ]
    for combo in extended + _widen(best_move, size):
        key = frozenset((c, str(v)) for c, v in combo)
        if len(combo) == size and key not in seen:
            seen.add(key)
            out.append(combo)
    return out


def _widen(best_move: dict[str, list[tuple[float, Any]]], size: int) -> list[Combo]:
    """Combinations of ``size`` columns among those with the largest single moves, each with
    its TOP_VALUES best values."""
    ranked = sorted(best_move, key=lambda c: -max(m for m, _ in best_move[c]))[:TOP_COLUMNS]
    tops = {
        c: [v for _, v in sorted(best_move[c], key=lambda mv: -mv[0])[:TOP_VALUES]] for c in ranked
    }
    combos = []
    for columns in itertools.combinations(ranked, size):
        for values in itertools.product(*(tops[c] for c in columns)):
            combos.append(tuple(zip(columns, values, strict=True)))
    return combos


def counterfactuals(
    run_id: int,
    typed_rows: pd.DataFrame,
    scores: np.ndarray,
    threshold: float,
    *,
    immutable: list[str] | tuple[str, ...] = (),
    max_changes: int = MAX_CHANGES,
    model: Any = None,
) -> list[Counterfactual]:
    """One counterfactual per row of ``typed_rows`` (rows typed as ``score`` types them, with
    their ``scores``); see the module docstring for the rules."""
    run = get_run(run_id)
    if run.task != "binary":
        raise ValueError(
            f"Counterfactuals flip a flag / not-flag decision; run #{run_id} is {run.task}."
        )
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"The threshold must be between 0 and 1, got {threshold}.")
    if not 1 <= int(max_changes) <= MAX_CHANGES:
        raise ValueError(f"Change 1 to {MAX_CHANGES} columns at most, got {max_changes}.")
    unknown = [c for c in immutable if c not in run.features]
    if unknown:
        raise ValueError(
            f"Immutable column(s) {', '.join(map(repr, unknown))} are not model columns; "
            f"the model uses: {', '.join(run.features)}."
        )
    model = model if model is not None else load_run_model(run_id)
    tabular = {c for part in model.tabular_parts() for c in part.spec.columns}
    actionable = [c for c in run.features if c in tabular and c not in set(immutable)]
    cands = candidate_values(model, actionable)
    scores = np.asarray(scores, dtype=float)
    out = []
    for i in range(len(typed_rows)):
        before = float(scores[i])
        if not tabular:
            out.append(
                Counterfactual(
                    i,
                    False,
                    {},
                    before,
                    None,
                    "This model reads only text; counterfactuals cover the tabular columns, "
                    "and it has none.",
                    before >= threshold,
                )
            )
            continue
        if not actionable:
            out.append(
                Counterfactual(
                    i,
                    False,
                    {},
                    before,
                    None,
                    "Every tabular column is marked immutable: nothing may change.",
                    before >= threshold,
                )
            )
            continue
        row = typed_rows.iloc[[i]].reset_index(drop=True)
        out.append(_search_row(model, row, before, threshold, cands, actionable, max_changes, i))
    return out


def counterfactuals_for_file(
    run_id: int,
    source: bytes | str | Path,
    *,
    source_name: str = "rows.csv",
    threshold: float | None = None,
    immutable: list[str] | tuple[str, ...] = (),
    max_rows: int | None = None,
    model: Any = None,
) -> tuple[float, list[Counterfactual]]:
    """(threshold used, counterfactuals) for the rows of a CSV read and scored as ``score``
    does; the threshold is the run's operating threshold unless given."""
    model = model if model is not None else load_run_model(run_id)
    _, typed, scores = read_scored(run_id, source, source_name=source_name, model=model)
    if max_rows is not None:
        typed, scores = typed.iloc[:max_rows], scores[:max_rows]
    cut = operating_threshold(run_id).threshold if threshold is None else float(threshold)
    return cut, counterfactuals(run_id, typed, scores, cut, immutable=immutable, model=model)
