"""Small generated data for tests: seeded, learnable, with the awkward parts real files have.

Kept tiny on purpose (a few hundred rows, a handful of columns) so the real training, scoring
and explanation code runs in seconds on a 2-core machine. Any test module may import these.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from core.datasets import DatasetInfo, Roles, register_dataset
from core.runs import RunInfo
from core.settings import SAMPLES_DIR
from core.training import create_run, execute_run

CREDIT_SAMPLE = SAMPLES_DIR / "credit_scoring.csv"

# The generated tabular data: 4 features plus a binary target.
TARGET = "outcome"
POSITIVE = "bad"
NUMERIC_FEATURES = ("age", "income", "amount")
CATEGORICAL_FEATURES = ("region",)
FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES
REGIONS = ("north", "south", "east", "west")


def make_tabular_frame(n_rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Credit-like rows whose target depends on income, age and region (AUC well above 0.5).

    ``income`` has about 10% missing values; ``region`` is categorical with 4 levels; ``amount``
    is a positive money column. The target ``outcome`` is "bad" (the minority) or "good".
    """
    if n_rows < 20:
        raise ValueError(f"make_tabular_frame needs at least 20 rows, got {n_rows=}")
    rng = np.random.default_rng(seed)
    age = rng.integers(20, 70, n_rows).astype(float)
    income = rng.normal(50.0, 15.0, n_rows).round(1)
    amount = rng.integers(500, 5000, n_rows).astype(float)
    region = rng.choice(REGIONS, n_rows)
    region_effect = pd.Series(region).map({"north": 1.0, "south": -1.0, "east": 0.5, "west": 0.0})
    logit = -1.0 - 0.08 * (income - 50.0) - 0.04 * (age - 45.0) + region_effect.to_numpy()
    bad = rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))
    income_with_gaps = np.where(rng.random(n_rows) < 0.1, np.nan, income)
    return pd.DataFrame(
        {
            "age": age,
            "income": income_with_gaps,
            "amount": amount,
            "region": region,
            TARGET: np.where(bad, POSITIVE, "good"),
        }
    )


def make_separable_frame(n_rows: int = 200, seed: int = 0) -> pd.DataFrame:
    """A target that one numeric column splits perfectly: ``x`` < 0 is "good", > 0 is "bad".

    Any sensible model ranks every "bad" row above every "good" row, so the best threshold
    separates the classes exactly and a valuation can be checked by hand.
    """
    rng = np.random.default_rng(seed)
    half = n_rows // 2
    x = np.concatenate([rng.uniform(-5.0, -1.0, half), rng.uniform(1.0, 5.0, n_rows - half)])
    noise = rng.normal(0.0, 1.0, n_rows).round(3)
    label = np.where(x > 0, POSITIVE, "good")
    order = rng.permutation(n_rows)
    return pd.DataFrame({"x": x[order].round(3), "noise": noise[order], TARGET: label[order]})


def make_multiclass_frame(n_rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """Three classes ("low", "mid", "high") set by the range of ``value``."""
    rng = np.random.default_rng(seed)
    value = rng.uniform(0.0, 3.0, n_rows).round(3)
    other = rng.normal(0.0, 1.0, n_rows).round(3)
    label = np.array(["low", "mid", "high"])[np.minimum(value.astype(int), 2)]
    return pd.DataFrame({"value": value, "other": other, "tier": label})


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as UTF-8 CSV bytes, missing values as empty cells."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    """Write the frame as CSV at ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(csv_bytes(frame))
    return path


def register_frame(
    frame: pd.DataFrame,
    name: str = "data.csv",
    *,
    target: str = TARGET,
    positive_class: str | None = POSITIVE,
    money_column: str | None = None,
    use_case: str | None = None,
) -> DatasetInfo:
    """Register ``frame`` as an uploaded CSV with the given roles (features default)."""
    roles = Roles(target=target, positive_class=positive_class, money_column=money_column)
    return register_dataset(csv_bytes(frame), name, roles=roles, use_case=use_case)


def train(dataset_id: int, model: str, **options: object) -> RunInfo:
    """Queue and execute a run in this process; fails loudly unless it succeeded.

    FT-Transformer runs default to the "tiny" preset so a test trains in seconds.
    """
    if model == "ft-transformer":
        options.setdefault("size", "tiny")
    run = execute_run(create_run(dataset_id, model, **options))
    if run.status != "succeeded":
        raise AssertionError(f"run {run.id} ({model}) ended {run.status}: {run.error}")
    return run


@contextmanager
def payoff_home(home: Path, db_url: str | None = None) -> Iterator[Path]:
    """Point PAYOFF_HOME at ``home`` (and PAYOFF_DB_URL at ``db_url``, or the SQLite file in
    ``home`` when None) for the block, then restore the environment.

    Module-scoped fixtures use it to train once into a ledger that several tests then read
    (conftest gives every test a fresh home; such tests point PAYOFF_HOME back at ``home``).
    """
    saved = {key: os.environ.get(key) for key in ("PAYOFF_HOME", "PAYOFF_DB_URL")}
    os.environ["PAYOFF_HOME"] = str(home)
    os.environ.pop("PAYOFF_DB_URL", None)
    if db_url:
        os.environ["PAYOFF_DB_URL"] = db_url
    try:
        yield home
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# Float64 model output differs in the last bits when rows are batched differently (the order
# of floating-point reductions changes with the batch, the thread count and the device), so
# "the same result" means: every non-float cell equal, every float within this tolerance.
FLOAT_RTOL = 1e-9
FLOAT_ATOL = 1e-12


def assert_same_results(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Two result tables agree: same columns, rows and order; text and integer cells exactly,
    float cells to ``FLOAT_RTOL``. Text-read frames (CSV exports read with ``dtype=str``) have
    their numeric-looking columns compared as numbers."""
    assert list(left.columns) == list(right.columns)
    assert len(left) == len(right)
    for column in left.columns:
        a, b = left[column], right[column]
        a_num = pd.to_numeric(a.replace("", np.nan), errors="coerce")
        b_num = pd.to_numeric(b.replace("", np.nan), errors="coerce")
        numeric = a_num.notna().eq(a.replace("", np.nan).notna()).all() and a_num.notna().any()
        floats = numeric and not np.allclose(a_num.dropna() % 1, 0)
        if floats:
            np.testing.assert_allclose(
                a_num.to_numpy(dtype=float),
                b_num.to_numpy(dtype=float),
                rtol=FLOAT_RTOL,
                atol=FLOAT_ATOL,
                err_msg=f"column {column!r}",
            )
        else:
            pd.testing.assert_series_equal(a, b, obj=f"column {column!r}")
