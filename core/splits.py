"""Deterministic train/validation/test splits stored with the dataset.

Every model trained on a dataset with the same target and seed sees the same rows, so the
leaderboard compares like with like. The assignment is stored once (one byte per row) rather
than recomputed, so a library upgrade can never silently move rows between parts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.records import DatasetSplitRecord

TRAIN, VALIDATION, TEST = 0, 1, 2
FRACTIONS = (0.6, 0.2, 0.2)
PART_NAMES = {TRAIN: "train", VALIDATION: "validation", TEST: "test"}


def make_assignment(y: pd.Series, seed: int, stratify: bool) -> np.ndarray:
    """One of TRAIN / VALIDATION / TEST per row; rows with a missing target get 255 (unused)."""
    assignment = np.full(len(y), 255, dtype=np.uint8)
    labelled = np.flatnonzero(y.notna().to_numpy())
    if len(labelled) < 10:
        raise ValueError(
            f"Need at least 10 rows with a target value to train, found {len(labelled)}."
        )
    labels = y.iloc[labelled].astype(str).to_numpy() if stratify else None
    if labels is not None and pd.Series(labels).value_counts().min() < 3:
        labels = None  # a class with fewer than 3 rows cannot be stratified into 3 parts
    rest, test = train_test_split(
        labelled, test_size=FRACTIONS[2], random_state=seed, stratify=labels
    )
    rest_labels = None
    if labels is not None:
        position = {row: i for i, row in enumerate(labelled)}
        rest_labels = labels[[position[r] for r in rest]]
    train, val = train_test_split(
        rest,
        test_size=FRACTIONS[1] / (FRACTIONS[0] + FRACTIONS[1]),
        random_state=seed,
        stratify=rest_labels,
    )
    assignment[train] = TRAIN
    assignment[val] = VALIDATION
    assignment[test] = TEST
    return assignment


def get_or_create_split(
    session: Session, dataset_id: int, target: str, y: pd.Series, seed: int, stratify: bool
) -> np.ndarray:
    record = session.scalar(
        select(DatasetSplitRecord).where(
            DatasetSplitRecord.dataset_id == dataset_id,
            DatasetSplitRecord.target == target,
            DatasetSplitRecord.seed == seed,
        )
    )
    if record is not None:
        assignment = np.frombuffer(record.assignment, dtype=np.uint8)
        if len(assignment) == len(y):
            return assignment
        raise ValueError(
            f"The stored split of dataset {dataset_id} has {len(assignment)} rows but the data "
            f"has {len(y)}; the file changed."
        )
    assignment = make_assignment(y, seed, stratify)
    try:
        # A savepoint: if another training created the same split meanwhile, use theirs.
        with session.begin_nested():
            session.add(
                DatasetSplitRecord(
                    dataset_id=dataset_id, target=target, seed=seed, assignment=assignment.tobytes()
                )
            )
    except IntegrityError:
        record = session.scalar(
            select(DatasetSplitRecord).where(
                DatasetSplitRecord.dataset_id == dataset_id,
                DatasetSplitRecord.target == target,
                DatasetSplitRecord.seed == seed,
            )
        )
        if record is None:  # not a split written meanwhile: another integrity error
            raise
        return np.frombuffer(record.assignment, dtype=np.uint8)
    return assignment


def part_sizes(session: Session, dataset_id: int, target: str, seed: int) -> dict[str, int] | None:
    """Rows in each part of a stored split ({"train": n, "validation": n, "test": n}), or None
    when the split has not been made yet."""
    record = session.scalar(
        select(DatasetSplitRecord).where(
            DatasetSplitRecord.dataset_id == dataset_id,
            DatasetSplitRecord.target == target,
            DatasetSplitRecord.seed == seed,
        )
    )
    if record is None:
        return None
    assignment = np.frombuffer(record.assignment, dtype=np.uint8)
    return {name: int((assignment == code).sum()) for code, name in PART_NAMES.items()}
