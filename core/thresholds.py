"""The operating threshold: the one decision cutoff of a binary run that every page uses.

It is chosen on the run's *validation* rows (the value-maximising cutoff for the dataset's use
case), never on the test rows or the analyst's file it is then valued on, so the value shown
is not an in-sample optimum. The analyst may set it instead; either way it is stored on the run
and Runs, Score, reasons, fairness and ROI read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import audit
from core.access import Actor
from core.db import get_or_raise, session_factory
from core.records import TrainingRunRecord
from core.runs import RunInfo, get_run
from core.usecases import UseCase
from core.valuation import choose_operating_point, default_use_case_for, validation_outcomes

SOURCES = ("validation", "user")
# Multiclass and regression runs have no single cutoff; pages show 0.5 only for binary runs.
DEFAULT_CUTOFF = 0.5


@dataclass(frozen=True)
class OperatingThreshold:
    run_id: int
    threshold: float
    source: str  # "validation" (chosen on validation rows) or "user"
    validation_rows: int | None  # rows it was chosen on (None when set by the user)

    def describe(self) -> str:
        if self.source == "user":
            return f"{self.threshold:.3f}, set by the user"
        return f"{self.threshold:.3f}, chosen on {self.validation_rows:,} validation rows"


def choose_on_validation(
    run: RunInfo, use_case: UseCase, use_money: bool = True
) -> tuple[float, int]:
    """(threshold, rows): the value-maximising cutoff on the run's validation rows."""
    outcomes = validation_outcomes(run)
    best, _ = choose_operating_point(use_case, outcomes, use_money)
    return float(best["threshold"]), int(outcomes.y.size)


def _check_binary(run: RunInfo) -> None:
    if run.status != "succeeded":
        raise ValueError(f"Run #{run.id} has not finished (status: {run.status}).")
    if run.task != "binary":
        raise ValueError(
            f"Run #{run.id} is a {run.task} model; only binary models have a decision threshold."
        )


def _store(
    run_id: int,
    threshold: float | None,
    source: str | None,
    actor: Actor | None = None,
    detail: str | None = None,
) -> None:
    """Write the threshold; a user's change (``actor`` given) is audited in the same
    transaction, the automatic choice on validation rows is derived data and is not."""
    with session_factory().begin() as session:
        record = get_or_raise(session, TrainingRunRecord, run_id)
        record.operating_threshold = threshold
        record.threshold_source = source
        if actor is not None:
            detail = detail or f"{threshold:.6g}"
            audit.record(session, actor, "edit", "run", run_id, "ok", f"threshold {detail}")


def operating_threshold(run_id: int) -> OperatingThreshold:
    """The run's stored threshold; chosen on validation rows (and stored) on first use."""
    run = get_run(run_id)
    _check_binary(run)
    if run.operating_threshold is not None and run.threshold_source == "user":
        return OperatingThreshold(run.id, run.operating_threshold, "user", None)
    threshold, rows = choose_on_validation(run, default_use_case_for(run))
    if run.operating_threshold != threshold or run.threshold_source != "validation":
        _store(run.id, threshold, "validation")
    return OperatingThreshold(run.id, threshold, "validation", rows)


def run_threshold_or_default(run: RunInfo) -> float:
    """The operating threshold of a succeeded binary run, else 0.5 (for display defaults)."""
    if run.status == "succeeded" and run.task == "binary":
        return operating_threshold(run.id).threshold
    return DEFAULT_CUTOFF


def set_operating_threshold(
    run_id: int, threshold: float, *, actor: Actor | None = None
) -> OperatingThreshold:
    """The analyst's own cutoff: P(positive) >= threshold is flagged."""
    actor = audit.authorize(actor, "edit", "run", run_id)
    run = get_run(run_id)
    _check_binary(run)
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"The threshold must be between 0 and 1, got {threshold}.")
    _store(run_id, float(threshold), "user", actor)
    return OperatingThreshold(run_id, float(threshold), "user", None)


def reset_operating_threshold(run_id: int, *, actor: Actor | None = None) -> OperatingThreshold:
    """Forget a user-set cutoff and choose on validation rows again."""
    actor = audit.authorize(actor, "edit", "run", run_id)
    run = get_run(run_id)
    _check_binary(run)
    # Chosen first, then written with the audit event in one transaction.
    threshold, rows = choose_on_validation(run, default_use_case_for(run))
    _store(run_id, threshold, "validation", actor, "reset to the validation choice")
    return OperatingThreshold(run_id, threshold, "validation", rows)
