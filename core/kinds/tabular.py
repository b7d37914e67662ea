"""What the three tabular kinds (FT-Transformer, LightGBM, logistic regression) share: they
read numeric and categorical columns, fit through ``models.tabular.fit_tabular`` under
their own estimator id, and load as ``TabularRunModel`` (core/kinds/tabular_model.py).

Also the training values of a tabular model's columns (``candidate_values``), which both the
partial-dependence grid (core/explanations.py) and the counterfactual search
(core/counterfactuals.py) walk.

Depends on core.kinds.base; models (torch) only inside functions.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.kinds.base import (
    Fit,
    FitContext,
    Kind,
    LoadedModel,
    Queued,
    QueueRequest,
    RunLookup,
    RunSpec,
)

TABULAR_COLUMN_KINDS = ("numeric", "categorical")


class TabularKind(Kind):
    input = "tabular"
    estimator: str = ""  # models.tabular's estimator id
    tunable = True

    def check(self, request: QueueRequest) -> Queued:
        chosen = tuple(
            c for c in request.features if request.column_kinds.get(c) in TABULAR_COLUMN_KINDS
        )
        if not chosen:
            raise ValueError(
                "Choose at least one numeric or categorical feature for a tabular model "
                "(text columns need the text transformer)."
            )
        return Queued(features=chosen, size=self.resolve_size(request.size))

    def resolve_size(self, size: str | None) -> str | None:
        return size

    def fit(self, run: RunSpec, context: FitContext) -> Fit:
        from core.kinds.tabular_model import TabularRunModel
        from models.preprocessing import FeatureSpec
        from models.tabular import fit_tabular

        kinds = context.column_kinds
        spec = FeatureSpec(
            numeric=tuple(c for c in run.features if kinds[c] == "numeric"),
            categorical=tuple(c for c in run.features if kinds[c] == "categorical"),
        )
        parts = context.parts
        result = fit_tabular(
            self.estimator,
            train_df=parts["train"],
            y_train=parts["train"][run.target],
            val_df=parts["val"],
            y_val=parts["val"][run.target],
            spec=spec,
            target=context.target,
            size=run.size or self.default_size or "",
            seed=run.seed,
            time_budget_s=run.time_budget_s,
            device=context.device,
            threads=context.threads,
            on_epoch=context.on_epoch,
            tune=run.options.tune,
            should_stop=context.should_stop,
        )
        return Fit(
            model=TabularRunModel.adopt(result.model),
            loop=result.loop,
            train_seconds=result.train_seconds,
            params=result.params,
            flops_per_row=result.flops_per_row,
            tuning=result.tuning,
        )

    def load(self, run: RunSpec, runs: RunLookup) -> LoadedModel:
        from core.kinds.tabular_model import TabularRunModel

        assert run.artifact_path is not None
        return TabularRunModel.load_run(run.artifact_path, self.estimator)


# ---- training values ------------------------------------------------------------------------


@dataclass
class Candidates:
    """Per tabular column: values seen in training, and its range for distances."""

    values: dict[str, list] = field(default_factory=dict)
    spans: dict[str, float] = field(default_factory=dict)
    numeric: set[str] = field(default_factory=set)


def _whole(values: list[float]) -> bool:
    return all(float(v).is_integer() for v in values)


def candidate_values(model: LoadedModel | Any, columns: list[str] | None = None) -> Candidates:
    """Training values per tabular column of ``model`` (its first tabular part): numbers as
    deciles, their midpoints, min and max (whole where training held whole numbers over a
    wide range); every category of the training vocabulary."""
    parts = model.tabular_parts()
    out = Candidates()
    if not parts:
        return out
    pre = parts[0].preprocessor
    stats = pre.training_stats
    vocab = pre.vocabularies
    for column in parts[0].spec.numeric:
        if columns is not None and column not in columns:
            continue
        s = stats["numeric"].get(column) or {}
        deciles = [float(v) for v in s.get("deciles") or []]
        if not deciles:
            continue
        low, high = float(s["min"]), float(s["max"])
        mids = [(a + b) / 2 for a, b in itertools.pairwise(deciles)]
        # Four significant digits read better than 63.160000000000004; clipped to the range.
        grid = np.asarray([float(f"{v:.4g}") for v in (*deciles, *mids)])
        # Whole-number ends over a wide range (ages, amounts): candidates stay whole too
        # (deciles interpolate, so they are not a test).
        if _whole([low, high]) and high - low >= 10:
            grid = np.round(grid)
        grid = np.unique(np.clip(np.concatenate(([low, high], grid)), low, high))
        out.values[column] = [float(v) for v in grid]
        out.spans[column] = max(high - low, 1e-12)
        out.numeric.add(column)
    for column in parts[0].spec.categorical:
        if columns is not None and column not in columns:
            continue
        if vocab.get(column):
            out.values[column] = list(vocab[column])
            out.spans[column] = 1.0
    return out
