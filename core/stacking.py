"""Which stack to offer: a fine-tuned text model stacked with the cheap text baseline, when the
stack beats both on the validation rows.

The combiner is cross-validated there (each fold's rows scored by a combiner fitted on the
other folds), so the comparison is not flattered by fitting and scoring on the same rows. The
pair comes from the registry: the transformer and the baseline that read text.

Depends on core.runs and core.kinds; models (sklearn, the combiner) inside functions only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.access import Actor
from core.kinds import registry
from core.runs import list_runs, validation_predictions
from core.training import create_run

STACK_FOLDS = 5
STACK_RULE = "stack"


@dataclass(frozen=True)
class StackSuggestion:
    """A text + TF-IDF stack that beats both members on the validation rows.

    member_ids: (text transformer run, text baseline run); *_val_auc: ROC-AUC on the validation
    rows, the stack's cross-validated (STACK_FOLDS folds).
    """

    dataset_id: int
    target: str
    seed: int
    member_ids: tuple[int, int]
    member_val_auc: tuple[float, float]
    stack_val_auc: float

    @property
    def gain(self) -> float:
        return self.stack_val_auc - max(self.member_val_auc)

    @property
    def message(self) -> str:
        text_id, baseline_id = self.member_ids
        return (
            f"Stacking run #{text_id} (text transformer) with run #{baseline_id} (TF-IDF) scores "
            f"ROC-AUC {self.stack_val_auc:.3f} on the validation rows (cross-validated), "
            f"against {self.member_val_auc[0]:.3f} and {self.member_val_auc[1]:.3f} alone "
            f"(+{self.gain:.3f}). Train the stack to see it on the test rows."
        )


def cross_validated_stack_auc(
    member_logits: np.ndarray, y: np.ndarray, folds: int = STACK_FOLDS, seed: int = 0
) -> float:
    """ROC-AUC of the logistic stack on rows it was not fitted on (stratified k-fold)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    from models.ensemble import fit_combiner

    y = np.asarray(y)
    counts = np.bincount(y.astype(int), minlength=2)
    folds = min(folds, int(counts.min()))
    if folds < 2:
        raise ValueError("the validation rows hold fewer than 2 of a class; nothing to compare")
    out = np.empty(len(y), dtype=np.float64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_rows, score_rows in splitter.split(member_logits, y):
        combiner = fit_combiner(STACK_RULE, member_logits[fit_rows], y[fit_rows], seed=seed)
        out[score_rows] = combiner.logit(member_logits[score_rows])
    return float(roc_auc_score(y, out))


def _text_pair() -> tuple[str, str] | None:
    """(the text transformer kind, the text baseline kind) from the registry."""
    text = [k for k in registry.for_input("text")]
    transformer = next((k.name for k in text if k.family == "transformer"), None)
    baseline = next((k.name for k in text if k.family == "baseline"), None)
    return (transformer, baseline) if transformer and baseline else None


def suggest_text_stack(dataset_id: int) -> StackSuggestion | None:
    """The stack of the latest finished text-transformer run and a text-baseline run of its
    target and seed (so its split; one reading the same columns first) when, on the validation
    rows, its cross-validated ROC-AUC beats both members; None when there is no such pair, it
    does not win, or that stack exists already (trained or queued)."""
    from sklearn.metrics import roc_auc_score

    pair = _text_pair()
    if pair is None:
        return None
    text_kind, baseline_kind = pair
    combiner = registry.combiner()
    every = list_runs(dataset_id)  # newest first
    stacked = {  # stacks trained, training or queued already
        frozenset(r.options.members)
        for r in every
        if r.model == combiner.name
        and r.options.rule == STACK_RULE
        and r.status in ("queued", "running", "succeeded")
    }
    runs = [
        r
        for r in every
        if r.status == "succeeded" and r.task == "binary" and r.train_fraction == 1.0
    ]
    for text in (r for r in runs if r.model == text_kind):
        same_split = [
            r
            for r in runs
            if r.model == baseline_kind and (r.target, r.seed) == (text.target, text.seed)
        ]
        # the baseline reading the same text columns, else the newest of that split
        baseline = next((r for r in same_split if r.features == text.features), None)
        baseline = baseline or next(iter(same_split), None)
        if baseline is None:
            continue
        if frozenset((text.id, baseline.id)) in stacked:
            return None
        stored = [validation_predictions(text.id), validation_predictions(baseline.id)]
        parts = [p for p in stored if p is not None and p.proba is not None]
        if len(parts) < 2 or parts[0].y != parts[1].y:
            continue  # runs from before validation predictions were stored, or another split
        y = np.asarray(parts[0].y, dtype=np.int64)
        if len(np.unique(y)) < 2:
            return None
        probas = [np.clip(np.asarray(p.proba, dtype=np.float64), 1e-7, 1 - 1e-7) for p in parts]
        logits = np.column_stack([np.log(p / (1 - p)) for p in probas])
        member_auc = (float(roc_auc_score(y, probas[0])), float(roc_auc_score(y, probas[1])))
        try:
            stack_auc = cross_validated_stack_auc(logits, y, seed=text.seed)
        except ValueError:
            return None
        if stack_auc <= max(member_auc):
            return None
        return StackSuggestion(
            dataset_id=dataset_id,
            target=text.target,
            seed=text.seed,
            member_ids=(text.id, baseline.id),
            member_val_auc=member_auc,
            stack_val_auc=stack_auc,
        )
    return None


def queue_suggested_stack(suggestion: StackSuggestion, *, actor: Actor | None = None) -> int:
    """Queue the suggested stack as a run of the combining kind; returns its id."""
    return create_run(
        suggestion.dataset_id,
        registry.combiner().name,
        target=suggestion.target,
        seed=suggestion.seed,
        members=list(suggestion.member_ids),
        rule=STACK_RULE,
        actor=actor,
    )
