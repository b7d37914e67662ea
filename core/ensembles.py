"""Ensemble runs: several finished runs of one dataset, target and split, combined.

Two uses: a mean of FT-Transformer and LightGBM probabilities (does averaging help?), and a
stack of a text model with a tabular model for datasets that carry both kinds of columns (the
"mixed rows" model). Members are ordinary runs; the ensemble run stores only its combiner and
the member ids, and loads its members when it is scored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

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
    for member_id in run.options.members:
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
    handle.combiner = fit_combiner(run.options.rule, val_logits, y_val, seed=run.seed)
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
