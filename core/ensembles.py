"""Ensemble runs: several finished runs of one dataset, target and split, combined.

Two uses: a mean of FT-Transformer and LightGBM probabilities (does averaging help?), and a
stack of a text model with a tabular model for datasets that carry both kinds of columns (the
"mixed rows" model). Members are ordinary runs; the ensemble run stores only its combiner and
the member ids, and loads its members when it is scored.

`suggest_text_stack` offers the stack of a fine-tuned text model and the TF-IDF baseline when
it wins on the validation rows: the combiner is cross-validated there (each fold's rows scored
by a combiner fitted on the other folds), so the comparison is not flattered by fitting and
scoring on the same rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# the pair `suggest_text_stack` looks for: a fine-tuned encoder and the cheap text baseline
TEXT_STACK_PAIR = ("text-transformer", "tfidf-logreg")
_STACK_FOLDS = 5
RULE_LABELS = {"mean": "mean of probabilities", "stack": "stacked on log-odds"}


@dataclass
class EnsembleRunModel:
    members: list[tuple[Any, Any]]  # (RunInfo, loaded model)
    combiner: Any
    target: Any

    @property
    def member_ids(self) -> list[int]:
        return [run.id for run, _ in self.members]

    def member_logits(self, frame: pd.DataFrame) -> np.ndarray:
        from core.training import predict_frame

        return np.column_stack([predict_frame(m, frame, output="logit") for _, m in self.members])

    def predict(self, frame: pd.DataFrame, output: str = "proba") -> np.ndarray:
        logits = self.combiner.logit(self.member_logits(frame))
        return logits if output == "logit" else 1.0 / (1.0 + np.exp(-logits))

    def save(self, folder) -> None:
        self.combiner.save(folder, {"members": self.member_ids})


@dataclass(frozen=True)
class _EnsembleFit:
    model: EnsembleRunModel
    loop: Any
    train_seconds: float
    params: int
    flops_per_row: float | None


def is_ensemble(model: Any) -> bool:
    return isinstance(model, EnsembleRunModel)


def check_members(dataset_id: int, target: str, seed: int, member_ids: list[int]) -> list[Any]:
    """Members must exist, differ, and share the dataset, target and seed (so the split)."""
    from core.runs import get_run

    if len(set(member_ids)) < 2:
        raise ValueError("An ensemble needs at least two different runs.")
    members = [get_run(i) for i in member_ids]
    for run in members:
        if run.model == "ensemble":
            raise ValueError(f"Run #{run.id} is an ensemble itself; choose plain runs.")
        if (run.dataset_id, run.target, run.seed) != (dataset_id, target, seed):
            raise ValueError(
                f"Run #{run.id} was trained on another dataset, target or seed; ensemble members "
                "must share the same split."
            )
        if run.train_fraction < 1.0:
            raise ValueError(f"Run #{run.id} saw only part of the training rows.")
    return members


def fit_ensemble_run(run, parts: dict, target_encoder) -> _EnsembleFit:
    from core.runs import get_run
    from core.training import load_run_model
    from models.ensemble import fit_combiner

    started = time.perf_counter()
    if target_encoder.task != "binary":
        raise ValueError("Ensembles combine binary models only (one probability each).")
    members = []
    for member_id in run.options.get("members", []):
        member = get_run(member_id)
        if member.status != "succeeded":
            raise ValueError(f"Member run #{member_id} is {member.status}; it must have succeeded.")
        if member.task != "binary":
            raise ValueError(
                f"Member run #{member_id} is {member.task}; ensembles need binary runs."
            )
        members.append((member, load_run_model(member_id)))
    handle = EnsembleRunModel(members, None, target_encoder)
    val_logits = handle.member_logits(parts["val"])
    y_val = target_encoder.encode(parts["val"][run.target])
    handle.combiner = fit_combiner(
        run.options.get("rule", "stack"), val_logits, y_val, seed=run.seed
    )
    own = time.perf_counter() - started
    flops = [m.flops_per_row for m, _ in members]
    return _EnsembleFit(
        model=handle,
        loop=None,
        # What it costs to have this model: the members' training plus the combiner's.
        train_seconds=own + sum(m.train_seconds or 0.0 for m, _ in members),
        params=sum(m.params or 0 for m, _ in members) + len(members) + 1,
        flops_per_row=sum(f for f in flops if f) or None,
    )


def load_ensemble(run) -> EnsembleRunModel:
    from core.runs import get_run
    from core.training import load_run_model
    from models.ensemble import Combiner
    from models.tasks import TargetEncoder

    combiner, manifest = Combiner.load(run.artifact_path)
    members = [(get_run(i), load_run_model(i)) for i in manifest["members"]]
    target = TargetEncoder(
        task="binary", classes=tuple(run.classes), positive_class=run.positive_class
    )
    return EnsembleRunModel(members, combiner, target)


@dataclass(frozen=True)
class StackSuggestion:
    """A text + TF-IDF stack that beats both members on the validation rows.

    member_ids: (text transformer run, TF-IDF run); *_val_auc: ROC-AUC on the validation rows,
    the stack's cross-validated (`_STACK_FOLDS` folds).
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
        text_id, tfidf_id = self.member_ids
        return (
            f"Stacking run #{text_id} (text transformer) with run #{tfidf_id} (TF-IDF) scores "
            f"ROC-AUC {self.stack_val_auc:.3f} on the validation rows (cross-validated), "
            f"against {self.member_val_auc[0]:.3f} and {self.member_val_auc[1]:.3f} alone "
            f"(+{self.gain:.3f}). Train the stack to see it on the test rows."
        )


def cross_validated_stack_auc(
    member_logits: np.ndarray, y: np.ndarray, folds: int = _STACK_FOLDS, seed: int = 0
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
        combiner = fit_combiner("stack", member_logits[fit_rows], y[fit_rows], seed=seed)
        out[score_rows] = combiner.logit(member_logits[score_rows])
    return float(roc_auc_score(y, out))


def suggest_text_stack(dataset_id: int) -> StackSuggestion | None:
    """The stack of the latest finished text-transformer run and a TF-IDF run of its target
    and seed (so its split; one reading the same columns first) when, on the validation rows,
    its cross-validated ROC-AUC beats both members; None when there is no such pair, it does
    not win, or that stack exists already (trained or queued)."""
    from sklearn.metrics import roc_auc_score

    from core.runs import list_runs, validation_predictions

    every = list_runs(dataset_id)  # newest first
    stacked = {  # stacks trained, training or queued already
        frozenset(r.options.get("members", []))
        for r in every
        if r.model == "ensemble"
        and r.options.get("rule") == "stack"
        and r.status in ("queued", "running", "succeeded")
    }
    runs = [
        r
        for r in every
        if r.status == "succeeded" and r.task == "binary" and r.train_fraction == 1.0
    ]
    text_kind, tfidf_kind = TEXT_STACK_PAIR
    for text in (r for r in runs if r.model == text_kind):
        same_split = [
            r
            for r in runs
            if r.model == tfidf_kind and (r.target, r.seed) == (text.target, text.seed)
        ]
        # the TF-IDF run reading the same text columns, else the newest of that split
        tfidf = next((r for r in same_split if r.features == text.features), None)
        tfidf = tfidf or next(iter(same_split), None)
        if tfidf is None:
            continue
        if frozenset((text.id, tfidf.id)) in stacked:
            return None
        stored = [validation_predictions(text.id), validation_predictions(tfidf.id)]
        parts = [p for p in stored if p is not None and "proba" in p]
        if len(parts) < 2 or parts[0]["y"] != parts[1]["y"]:
            continue  # runs from before validation predictions were stored, or another split
        y = np.asarray(parts[0]["y"], dtype=np.int64)
        if len(np.unique(y)) < 2:
            return None
        probas = [np.clip(np.asarray(p["proba"], dtype=np.float64), 1e-7, 1 - 1e-7) for p in parts]
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
            member_ids=(text.id, tfidf.id),
            member_val_auc=member_auc,
            stack_val_auc=stack_auc,
        )
    return None
