"""TF-IDF + logistic regression on the text columns: the cheap text baseline.

Explained by the same span masking as the text transformer; it scores a masked text in
microseconds, so every text keeps TEXT_SPANS spans and gets many pairs.
"""

from __future__ import annotations

import time

from core.kinds.base import TEXT_SPANS, Fit, FitContext, LoadedModel, RunLookup, RunSpec
from core.kinds.text import TextKind, TextRunModel, rows_to_texts

# It needs many pairs: its L2-normalised word weights make every word interact (a repeated
# word and its copy are substitutes). Food reviews, 16 spans, against a 256-pair reference:
# 1 pair Spearman 0.94 / max error 14%, 8 pairs 0.986 / 3.2%, 32 pairs 0.992 / 1.9% at 40 ms
# per text (bench/text_explain_bench.py).
TFIDF_PAIRS = 32


class TfidfLogreg(TextKind):
    name = "tfidf-logreg"
    label = "TF-IDF + logistic regression (baseline)"
    family = "baseline"
    default_pairs = TFIDF_PAIRS
    exact_reference_spans = 12  # it scores thousands of masked texts in milliseconds

    def explain_evaluations(
        self, n_rows: int, n_columns: int, background_rows: int, n_pairs: int
    ) -> float:
        # Up to TEXT_SPANS spans per text; each pair walks them twice.
        return n_rows * (2 * TEXT_SPANS * n_pairs + 1)

    def fit(self, run: RunSpec, context: FitContext) -> Fit:
        from models.text_baseline import fit_tfidf_logreg

        columns, parts, target = tuple(run.features), context.parts, context.target
        started = time.perf_counter()
        model = fit_tfidf_logreg(
            rows_to_texts(parts["train"], columns),
            target.encode(parts["train"][run.target]),
            target,
            run.seed,
        )
        return Fit(
            model=TextRunModel(model, columns),
            loop=None,
            train_seconds=time.perf_counter() - started,
            params=model.n_params(),
            flops_per_row=None,
        )

    def load(self, run: RunSpec, runs: RunLookup) -> LoadedModel:
        from models.text_baseline import FittedTfidfModel

        assert run.artifact_path is not None
        model = FittedTfidfModel.load(run.artifact_path, legacy_kind=self.name)
        return TextRunModel(model, tuple(run.features))


KIND = TfidfLogreg()
