"""kill -9 during scoring: the next start leaves a healthy ledger and no visible half-results.

(kill -9 during training is in test_jobs.py.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from core.db import get_engine
from core.records import PredictionRecord, ScoreBatchRecord
from core.scoring import batch_predictions, list_batches, score_source
from core.settings import REPO_ROOT, load_settings
from core.startup import start
from tests.fixtures import TARGET, make_tabular_frame, register_frame, train, write_csv


def _count(table) -> int:
    with get_engine().connect() as connection:
        return connection.exec_driver_sql(f"SELECT COUNT(*) FROM {table.__tablename__}").scalar()


def _writing_rows() -> int:
    with get_engine().connect() as connection:
        return connection.exec_driver_sql(
            "SELECT COUNT(*) FROM prediction JOIN score_batch ON score_batch.id = prediction.batch_id "
            "WHERE score_batch.status = 'writing'"
        ).scalar()


def test_kill_9_during_scoring_leaves_no_half_written_batch(tmp_path: Path, ledger: str) -> None:
    """On a SQLite file and on PostgreSQL."""
    dataset = register_frame(make_tabular_frame(400))
    run = train(dataset.id, "logreg")
    small = write_csv(tmp_path / "small.csv", make_tabular_frame(50, seed=3).drop(columns=[TARGET]))
    earlier = score_source(run.id, small, source_name="small.csv")
    big = make_tabular_frame(20_000, seed=4).drop(columns=[TARGET])
    big = pd.concat([big] * 15, ignore_index=True)  # 300k rows: several chunks of 50k
    big_csv = write_csv(tmp_path / "big.csv", big)
    exports = load_settings().exports_dir
    out = exports / "big-scored.csv"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core.cli",
            "score",
            "--run",
            str(run.id),
            "--csv",
            str(big_csv),
            "--out",
            str(out),
        ],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        # Kill once the first chunk is in the ledger and in the temp export.
        while _writing_rows() == 0 or not any(exports.glob(".*.partial")):
            assert process.poll() is None, "scoring ended before it could be killed"
            assert time.monotonic() < deadline, "no predictions were written in time"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert _count(ScoreBatchRecord) == 2  # the earlier batch and the killed one, still "writing"

    start()

    assert [b["batch_id"] for b in list_batches()] == [earlier.batch_id]
    assert _count(ScoreBatchRecord) == 1
    assert _count(PredictionRecord) == 50
    assert len(batch_predictions(earlier.batch_id)) == 50
    assert not out.exists() and not list(exports.glob(".*.partial"))
    if ledger == "sqlite":
        with get_engine().connect() as connection:
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    again = score_source(run.id, small, source_name="small.csv")
    assert again.rows == 50
