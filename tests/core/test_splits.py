"""core.splits: one stored 60/20/20 split per dataset, target and seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.db import session_factory
from core.splits import (
    TEST,
    TRAIN,
    VALIDATION,
    get_or_create_split,
    make_assignment,
    part_sizes,
)
from core.startup import start
from tests.fixtures import make_tabular_frame, register_frame

Y = pd.Series(["bad"] * 60 + ["good"] * 140)


def test_parts_are_60_20_20_and_stratified() -> None:
    assignment = make_assignment(Y, seed=0, stratify=True)
    assert np.bincount(assignment, minlength=3).tolist() == [120, 40, 40]
    for part in (TRAIN, VALIDATION, TEST):
        share = (Y[assignment == part] == "bad").mean()
        assert share == pytest.approx(0.3, abs=0.01), part


def test_the_seed_decides_the_rows() -> None:
    same = make_assignment(Y, seed=3, stratify=True)
    np.testing.assert_array_equal(same, make_assignment(Y, seed=3, stratify=True))
    assert (same != make_assignment(Y, seed=4, stratify=True)).any()


def test_rows_without_a_target_are_left_out() -> None:
    y = Y.copy().astype(object)
    y[[0, 5, 199]] = None
    assignment = make_assignment(y, seed=0, stratify=True)
    assert assignment[[0, 5, 199]].tolist() == [255, 255, 255]
    assert int((assignment != 255).sum()) == 197


def test_a_class_too_small_to_stratify_still_splits() -> None:
    y = pd.Series(["rare"] * 2 + ["common"] * 48)
    assignment = make_assignment(y, seed=0, stratify=True)
    assert np.bincount(assignment, minlength=3).tolist() == [30, 10, 10]


def test_fewer_than_ten_labelled_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 10 rows.*found 9"):
        make_assignment(pd.Series(["a", "b"] * 4 + ["a"] + [None] * 5), seed=0, stratify=False)


def test_the_split_is_stored_once_and_reused(ledger) -> None:
    start()
    frame = make_tabular_frame(100)
    dataset = register_frame(frame)
    y = frame["outcome"]
    with session_factory().begin() as session:
        assert part_sizes(session, dataset.id, "outcome", seed=0) is None
        first = get_or_create_split(session, dataset.id, "outcome", y, seed=0, stratify=True)
    with session_factory().begin() as session:
        # Stored, so another stratify choice (or a library upgrade) cannot move rows.
        again = get_or_create_split(session, dataset.id, "outcome", y, seed=0, stratify=False)
        assert part_sizes(session, dataset.id, "outcome", seed=0) == {
            "train": 60,
            "validation": 20,
            "test": 20,
        }
        other_seed = get_or_create_split(session, dataset.id, "outcome", y, seed=1, stratify=True)
    np.testing.assert_array_equal(first, again)
    assert (first != other_seed).any()
    with session_factory().begin() as session, pytest.raises(ValueError, match="file changed"):
        get_or_create_split(session, dataset.id, "outcome", y.head(90), seed=0, stratify=True)
