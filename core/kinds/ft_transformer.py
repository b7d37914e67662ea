"""FT-Transformer: a transformer over tabular rows (rtdl_revisiting_models), in size presets.

At its default settings explained by main + total effects against all training rows
(models.shapley.explain_effects, tables stored with the run); with other settings by Payoff's
interventional Shapley estimator against a k-medoid summary of the training rows. Both are
checked against 256 random training rows too (the "broad" check).
"""

from __future__ import annotations

from core.kinds.base import BROAD_REFERENCE_EVALUATIONS, REFERENCE_EVALUATIONS, RunSpec
from core.kinds.tabular import TabularKind


class FTTransformer(TabularKind):
    name = "ft-transformer"
    label = "FT-Transformer"
    family = "transformer"
    estimator = "ft_transformer"
    default_size = "small"
    explainer = "interventional"
    background = "summary"
    explains_by_effects = True

    def sizes(self) -> tuple[str, ...]:
        from models.ft_transformer import SIZE_PRESETS

        return tuple(SIZE_PRESETS)

    def resolve_size(self, size: str | None) -> str | None:
        return size or self.default_size

    def describe(self, run: RunSpec) -> str:
        return f"{self.label} {run.size}" if run.size else self.label

    def explain_evaluations(
        self, n_rows: int, n_columns: int, background_rows: int, n_pairs: int
    ) -> float:
        from models.shapley import estimate_evaluations

        return float(estimate_evaluations(n_rows, n_columns, background_rows, "auto", n_pairs))

    def check_evaluations(self) -> float:
        return float(REFERENCE_EVALUATIONS + BROAD_REFERENCE_EVALUATIONS)


KIND = FTTransformer()
