"""Ensemble: several finished runs of one dataset, target and split, combined.

Two uses: a mean of FT-Transformer and LightGBM probabilities (does averaging help?), and a
stack of a text model with a tabular model for datasets that carry both kinds of columns (the
"mixed rows" model). Members are ordinary runs; the ensemble run stores only its combiner
(models.ensemble) and the member ids, and loads its members when it is loaded.

Depends on core.kinds.base only: member runs are read and loaded through the ``RunLookup``
core.runs hands in (so neither this module nor core.runs imports the other, and nothing here
depends on core.training).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.kinds.base import (
    Fit,
    FitContext,
    Kind,
    LoadedModel,
    Output,
    Queued,
    QueueRequest,
    RunLookup,
    RunSpec,
)

RULE_LABELS = {"mean": "mean of probabilities", "stack": "stacked on log-odds"}


@dataclass
class EnsembleRunModel:
    """The ``LoadedModel`` of an ensemble: its members (run, loaded model) and combiner."""

    members: list[tuple[RunSpec, LoadedModel]]
    combiner: Any
    target: Any

    @property
    def member_ids(self) -> list[int]:
        return [run.id for run, _ in self.members]

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for _, m in self.members for c in m.features))

    def member_logits(self, frame: pd.DataFrame) -> np.ndarray:
        return np.column_stack([m.predict_frame(frame, output="logit") for _, m in self.members])

    def predict_frame(self, frame: pd.DataFrame, /, *, output: Output = "proba") -> np.ndarray:
        logits = self.combiner.logit(self.member_logits(frame))
        return logits if output == "logit" else 1.0 / (1.0 + np.exp(-logits))

    def save(self, folder: Path, /) -> None:
        self.combiner.save(folder, {"members": self.member_ids})

    def tabular_parts(self) -> list[Any]:
        return [p for _, m in self.members for p in m.tabular_parts()]


class Ensemble(Kind):
    name = "ensemble"
    label = "Ensemble"
    family = "combined"
    tasks = ("binary",)
    input = "runs"
    checks_pii = False  # its members were checked when they were queued
    explainer = None  # explained per member

    def describe(self, run: RunSpec) -> str:
        members = " + ".join(f"#{m}" for m in self.member_ids(run))
        return f"{self.label} ({run.options.rule}: {members})"

    def member_ids(self, run: RunSpec) -> list[int]:
        return [int(m) for m in run.options.members]

    def check(self, request: QueueRequest) -> Queued:
        if request.rule not in RULE_LABELS:
            raise ValueError(
                f"The ensemble rule must be one of {', '.join(RULE_LABELS)}, got {request.rule!r}."
            )
        members = check_members(
            request.dataset_id, request.target, request.seed, list(request.members), request.runs
        )
        features = tuple(dict.fromkeys(c for r in members for c in r.features))
        return Queued(
            features=features,
            size=request.size,
            options={"members": [r.id for r in members], "rule": request.rule},
        )

    def fit(self, run: RunSpec, context: FitContext) -> Fit:
        from models.ensemble import fit_combiner

        started = time.perf_counter()
        target = context.target
        if target.task != "binary":
            raise ValueError("Ensembles combine binary models only (one probability each).")
        members: list[tuple[RunSpec, LoadedModel]] = []
        for member_id in self.member_ids(run):
            member = context.runs.get_run(member_id)
            if member.status != "succeeded":
                raise ValueError(
                    f"Member run #{member_id} is {member.status}; it must have succeeded."
                )
            if member.task != "binary":
                raise ValueError(
                    f"Member run #{member_id} is {member.task}; ensembles need binary runs."
                )
            members.append((member, context.runs.load_run_model(member_id)))
        handle = EnsembleRunModel(members, None, target)
        val = context.parts["val"]
        val_logits = handle.member_logits(val)
        handle.combiner = fit_combiner(
            run.options.rule,
            val_logits,
            target.encode(val[run.target]),
            seed=run.seed,
        )
        own = time.perf_counter() - started
        flops = [m.flops_per_row for m, _ in members]
        return Fit(
            model=handle,
            loop=None,
            # What it costs to have this model: the members' training plus the combiner's.
            train_seconds=own + sum(m.train_seconds or 0.0 for m, _ in members),
            params=sum(m.params or 0 for m, _ in members) + len(members) + 1,
            flops_per_row=sum(f for f in flops if f) or None,
        )

    def load(self, run: RunSpec, runs: RunLookup) -> LoadedModel:
        from models.ensemble import Combiner
        from models.tasks import TargetEncoder

        assert run.artifact_path is not None
        combiner, manifest = Combiner.load(run.artifact_path, legacy_kind=self.name)
        members = [(runs.get_run(i), runs.load_run_model(i)) for i in manifest["members"]]
        target = TargetEncoder(
            task="binary", classes=tuple(run.classes), positive_class=run.positive_class
        )
        return EnsembleRunModel(members, combiner, target)


def check_members(
    dataset_id: int, target: str, seed: int, member_ids: list[int], runs: RunLookup
) -> list[RunSpec]:
    """Members must exist, differ, and share the dataset, target and seed (so the split)."""
    if len(set(member_ids)) < 2:
        raise ValueError("An ensemble needs at least two different runs.")
    members = [runs.get_run(i) for i in member_ids]
    for run in members:
        if run.model == KIND.name:
            raise ValueError(f"Run #{run.id} is an ensemble itself; choose plain runs.")
        if (run.dataset_id, run.target, run.seed) != (dataset_id, target, seed):
            raise ValueError(
                f"Run #{run.id} was trained on another dataset, target or seed; ensemble members "
                "must share the same split."
            )
        if run.train_fraction < 1.0:
            raise ValueError(f"Run #{run.id} saw only part of the training rows.")
    return members


KIND = Ensemble()
