"""The job queue in the ledger, on a SQLite file and on a real PostgreSQL database.

Claims are raced by threads and by real worker processes; a job's result must equal the same
work done directly; cancelling, dependencies and heartbeats behave as documented.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from core.db import session_factory
from core.explanations import explain_frame, get_explanation
from core.jobs import (
    JobContext,
    cancel_job,
    claim_next,
    get_job,
    input_path,
    list_jobs,
    reap_dead_jobs,
    run_claimed,
    store_input,
    submit,
    submit_training,
    work,
)
from core.records import JobRecord, PredictionRecord, utcnow
from core.runs import get_run
from core.scoring import batch_predictions, list_batches, score_source
from core.settings import REPO_ROOT, load_settings
from core.training import create_run, part_frame
from tests.fixtures import (
    FEATURES,
    assert_same_results,
    csv_bytes,
    make_tabular_frame,
    register_frame,
    train,
)

pytestmark = pytest.mark.usefixtures("ledger")

WORKER_TIMEOUT_S = 300  # a hang guard only: the shared machine can be slow


@pytest.fixture
def dataset():
    return register_frame(make_tabular_frame(200, seed=3), money_column="amount")


def test_racing_claimers_take_every_job_exactly_once() -> None:
    jobs = [submit("score", {"run_id": 1, "n": i}) for i in range(30)]
    claimed: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6, timeout=60)

    def claimer(index: int) -> None:
        barrier.wait()
        while (job := claim_next(f"test-host:{index}")) is not None:
            with lock:
                claimed.append(job.id)

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(claimer, range(6)))
    assert Counter(claimed) == Counter(jobs)  # every job once, none twice
    for job_id in jobs:
        job = get_job(job_id)
        assert job.status == "running" and job.attempts == 1 and job.worker.startswith("test-host")


def test_two_worker_processes_never_run_a_job_twice(dataset) -> None:
    """Two real workers drain one queue of trainings at the same time (two trainings at once
    on one ledger): every job runs once, every run succeeds."""
    models = ["logreg", "lightgbm", "logreg", "lightgbm", "logreg", "logreg"]
    runs = [create_run(dataset.id, model, seed=i) for i, model in enumerate(models)]
    jobs = submit_training(runs)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "core.cli", "worker", "--idle-exit", "3"],
            cwd=REPO_ROOT,
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=WORKER_TIMEOUT_S) for w in workers]
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    done = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    ran = [job["job_id"] for result in done for job in result["jobs"]]
    assert Counter(ran) == Counter(jobs)
    assert done[0]["worker"] != done[1]["worker"]
    for run_id, job_id in zip(runs, jobs, strict=True):
        job = get_job(job_id)
        assert job.status == "succeeded" and job.attempts == 1, job.error
        assert get_run(run_id).status == "succeeded"


def test_scoring_through_a_job_equals_direct_scoring(dataset, tmp_path: Path) -> None:
    run = train(dataset.id, "logreg")
    rows = make_tabular_frame(90, seed=12)[list(FEATURES)]
    data = csv_bytes(rows)
    direct = score_source(run.id, data, chunk_rows=25, out_path=tmp_path / "direct.csv")
    job_id = submit(
        "score",
        {
            "run_id": run.id,
            "input": store_input(data),
            "source_name": "rows.csv",
            "chunk_rows": 25,
            "export": "through-job.csv",
            "total_rows": 90,
        },
        run_id=run.id,
    )
    [job] = work(max_jobs=1, idle_exit_s=0)
    assert job.id == job_id and job.status == "succeeded", job.error
    assert job.result["rows"] == 90 and job.progress["rows"] == 90
    assert_same_results(
        batch_predictions(job.result["batch_id"]), batch_predictions(direct.batch_id)
    )
    export = Path(job.result["export"])
    assert export.parent == load_settings().exports_dir
    read = lambda p: pd.read_csv(p, dtype=str, keep_default_na=False)  # noqa: E731
    assert_same_results(read(export), read(tmp_path / "direct.csv"))
    assert job.result["report"]["drift"] == direct.drift


def test_explaining_through_a_job_equals_direct_explaining(dataset) -> None:
    run = train(dataset.id, "logreg")
    direct = explain_frame(run.id, part_frame(run.id, "test"), n_rows=12)
    submit("explain", {"run_id": run.id, "part": "test", "n_rows": 12}, run_id=run.id)
    [job] = work(max_jobs=1, idle_exit_s=0)
    assert job.status == "succeeded", job.error
    through = get_explanation(job.result["explanation_id"])
    np.testing.assert_allclose(through.values, direct.values, rtol=1e-9, atol=1e-12)
    assert through.base_value == pytest.approx(direct.base_value, rel=1e-12)


def test_a_failing_job_records_its_error_and_writes_nothing(dataset) -> None:
    run = train(dataset.id, "logreg")
    bad = make_tabular_frame(40, seed=1)[["age", "income"]]  # lacks the model's columns
    submit("score", {"run_id": run.id, "input": store_input(csv_bytes(bad))}, run_id=run.id)
    [job] = work(max_jobs=1, idle_exit_s=0)
    assert job.status == "failed" and "region" in job.error
    assert list_batches(run.id) == []


def test_cancelling_a_queued_job_and_its_run(dataset) -> None:
    run_id = create_run(dataset.id, "logreg")
    [job_id] = submit_training([run_id])
    assert cancel_job(job_id).status == "cancelled"
    assert get_run(run_id).status == "cancelled"
    assert work(max_jobs=1, idle_exit_s=0) == []  # nothing left to claim


def test_cancelling_a_running_score_job_removes_its_batch(dataset, monkeypatch) -> None:
    run = train(dataset.id, "logreg")
    data = csv_bytes(make_tabular_frame(400, seed=4)[list(FEATURES)])
    job_id = submit(
        "score", {"run_id": run.id, "input": store_input(data), "chunk_rows": 20}, run_id=run.id
    )
    job = claim_next(job_ids=[job_id])
    reports = []
    real_report = JobContext.report

    def report_then_cancel(self, progress, *, force=False):
        reports.append(progress)
        if progress.get("rows", 0) >= 100:
            cancel_job(job_id)
        return real_report(self, progress, force=True)

    monkeypatch.setattr(JobContext, "report", report_then_cancel)
    finished = run_claimed(job)
    assert finished.status == "cancelled"
    assert list_batches(run.id) == []
    with session_factory().begin() as session:
        assert session.scalar(select(func.count()).select_from(PredictionRecord)) == 0


def test_a_job_waits_for_the_jobs_it_comes_after() -> None:
    first = submit("score", {"run_id": 1})
    second = submit("score", {"run_id": 2}, after=[first])
    third = submit("score", {"run_id": 3})
    assert claim_next("w:1").id == first
    assert claim_next("w:2").id == third  # the second waits for the first
    assert claim_next("w:3") is None
    with session_factory().begin() as session:
        session.get(JobRecord, first).status = "succeeded"
    assert claim_next("w:4").id == second


def test_ensemble_training_job_waits_for_its_members(dataset) -> None:
    a = create_run(dataset.id, "logreg")
    b = create_run(dataset.id, "lightgbm")
    ensemble = create_run(dataset.id, "ensemble", members=[a, b], rule="mean")
    job_a, job_b, job_e = submit_training([a, b, ensemble])
    assert get_job(job_e).params["after"] == [job_a, job_b]
    done = work(idle_exit_s=0)
    assert [j.id for j in done] == [job_a, job_b, job_e]
    assert get_run(ensemble).status == "succeeded"


def test_heartbeats_keep_a_live_job_and_a_silent_one_is_requeued(monkeypatch) -> None:
    monkeypatch.setenv("PAYOFF_JOB_HEARTBEAT_S", "1")
    monkeypatch.setenv("PAYOFF_JOB_TIMEOUT_S", "2")
    live_id, silent_id = submit("score", {"run_id": 1}), submit("score", {"run_id": 2})
    live = claim_next("here:1")
    assert claim_next("gone:2").id == silent_id
    with JobContext(live, "here:1"):
        time.sleep(3.5)
        assert reap_dead_jobs() == [silent_id]
    assert get_job(live_id).status == "running"
    assert get_job(live_id).heartbeat_at > live.heartbeat_at
    requeued = get_job(silent_id)
    assert requeued.status == "queued" and requeued.worker is None and requeued.attempts == 1
    # Claimed again and silent again: given up, with the reason.
    assert claim_next("gone:3").id == silent_id
    with session_factory().begin() as session:
        session.get(JobRecord, silent_id).heartbeat_at = utcnow() - timedelta(minutes=1)
    assert reap_dead_jobs() == [silent_id]
    given_up = get_job(silent_id)
    assert given_up.status == "interrupted" and "gone:3" in given_up.error


def test_a_job_taken_away_stops_and_does_not_overwrite(monkeypatch) -> None:
    """A worker that was declared dead (its job re-queued) must not write a result later."""
    job_id = submit("score", {"run_id": 1})
    job = claim_next("slow:1")
    with session_factory().begin() as session:
        record = session.get(JobRecord, job_id)
        record.status, record.worker = "queued", None
    context = JobContext(job, "slow:1")
    context.beat()
    assert context.cancelled() and context.lost
    assert get_job(job_id).status == "queued"


def test_job_parameters_are_plain_values_and_inputs_stay_home(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="plain JSON"):
        submit("score", {"frame": pd.DataFrame({"a": [1]})})
    with pytest.raises(ValueError, match="Unknown job kind"):
        submit("dance", {})
    with pytest.raises(ValueError, match="under PAYOFF_HOME"):
        input_path("../../etc/passwd")
    relative = store_input(b"a,b\n1,2\n")
    assert input_path(relative).read_bytes() == b"a,b\n1,2\n"
    assert store_input(b"a,b\n1,2\n") == relative  # content-addressed
    assert list_jobs() == []


def test_a_cli_command_s_own_job_is_not_taken_by_workers_nor_requeued() -> None:
    own = submit("score", {"run_id": 1, "inline": True})
    assert claim_next("other:1") is None
    assert claim_next("cli:2", job_ids=[own]).id == own
    with session_factory().begin() as session:
        session.get(JobRecord, own).heartbeat_at = utcnow() - timedelta(minutes=5)
    assert reap_dead_jobs() == [own]
    assert get_job(own).status == "interrupted"  # no second attempt: nobody would run it


def test_only_a_cli_command_s_own_job_may_write_outside_home(dataset, tmp_path: Path) -> None:
    run = train(dataset.id, "logreg")
    data = csv_bytes(make_tabular_frame(30, seed=2)[list(FEATURES)])
    outside = tmp_path / "elsewhere.csv"
    submit("score", {"run_id": run.id, "input": store_input(data), "out_path": str(outside)})
    [job] = work(max_jobs=1, idle_exit_s=0)
    assert job.status == "failed" and "outside PAYOFF_HOME" in job.error
    assert not outside.exists()
