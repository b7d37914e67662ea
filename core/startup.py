"""What the app and the CLI do once per process before anything else."""

from __future__ import annotations

import os

from core.db import get_engine

_started_for: set[str] = set()


def start() -> None:
    """Migrate the ledger to head, re-queue or interrupt jobs whose worker died, mark runs whose
    process died as interrupted (idempotent)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    engine = get_engine()
    key = str(engine.url)
    if key in _started_for:
        return
    from core.jobs import (
        mark_dead_runs_interrupted,
        reap_dead_jobs,
        remove_stale_exports,
        remove_stale_writes,
    )
    from core.records import (
        ExplanationRecord,
        ExplanationValueRecord,
        PredictionReasonRecord,
        PredictionRecord,
        ScoreBatchRecord,
    )

    reap_dead_jobs()
    mark_dead_runs_interrupted()
    remove_stale_exports()
    remove_stale_writes(
        ScoreBatchRecord, PredictionRecord.batch_id, PredictionReasonRecord.batch_id
    )
    remove_stale_writes(ExplanationRecord, ExplanationValueRecord.explanation_id)
    _started_for.add(key)
