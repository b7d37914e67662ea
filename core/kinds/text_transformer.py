"""Text transformer: a pretrained BERT-family encoder (MiniLM by default, PAYOFF_TEXT_MODEL)
fine-tuned with a classification head (on the mean of its token states) on the text columns.

Explained by word spans masked by removal; the spans per text follow a token budget.
"""

from __future__ import annotations

from core.kinds.base import TYPICAL_TEXT_TOKENS, Fit, FitContext, LoadedModel, RunLookup, RunSpec
from core.kinds.text import TextKind, TextRunModel, rows_to_texts
from core.settings import load_settings

# Spans per text are chosen so that one pass over them (one antithetic pair, or the main and
# total effects of every span) makes the model read about this many tokens
# (models.text_attribution.spans_for_budget): ~100-word reviews get 4 spans, sentences one span
# per word (up to TEXT_SPANS). MiniLM reads ~3.5k tokens/s on one CPU core in float32, so a pass
# costs ~150 ms whatever the text's length (640 took 172-190 ms on reviews, too close to the
# 200 ms target on a busy machine).
# The default explainer (default_span_method "effects", default_pairs 2) is each span's main +
# total effect, blended with 2 antithetic pairs from 12 spans on, masked texts scored in
# bfloat16 where the CPU has it natively (bench/text_explain_bench.py; README Performance).
TEXT_TOKEN_BUDGET = 512


class TextTransformer(TextKind):
    name = "text-transformer"
    label = "Text transformer (fine-tuned MiniLM)"
    family = "transformer"
    preselected = False  # ticked only for datasets without tabular columns
    token_budget = TEXT_TOKEN_BUDGET
    default_span_method = "effects"
    default_pairs = 2  # blended with the effects in games of 12 spans or more
    exact_reference_spans = 8  # 2^8 - 2 = 254 masked texts
    explain_rows = 20

    def explain_evaluations(
        self, n_rows: int, n_columns: int, background_rows: int, n_pairs: int
    ) -> float:
        # In whole-text equivalents: each pair reads ~TEXT_TOKEN_BUDGET tokens, about four
        # texts of the usual 128-token limit (shorter texts get up to TEXT_SPANS spans and
        # read less), plus the text itself. The default reads the effects (as much as a pair)
        # and, at most (texts of 12 spans or more), its pairs too.
        per_pair = TEXT_TOKEN_BUDGET / TYPICAL_TEXT_TOKENS
        passes = n_pairs + (1 if n_pairs == self.default_pairs else 0)
        return n_rows * (passes * per_pair + 1)

    def fit(self, run: RunSpec, context: FitContext) -> Fit:
        from models.text_classifier import fit_text

        columns, parts = tuple(run.features), context.parts
        result = fit_text(
            train_texts=rows_to_texts(parts["train"], columns),
            y_train=parts["train"][run.target],
            val_texts=rows_to_texts(parts["val"], columns),
            y_val=parts["val"][run.target],
            target=context.target,
            model_name_or_path=load_settings().text_model,
            seed=run.seed,
            time_budget_s=run.time_budget_s,
            device=context.device,
            threads=context.threads,
            on_epoch=context.on_epoch,
        )
        return Fit(
            model=TextRunModel(result.model, columns),
            loop=result.loop,
            train_seconds=result.train_seconds,
            params=result.params,
            flops_per_row=result.flops_per_row,
        )

    def load(self, run: RunSpec, runs: RunLookup) -> LoadedModel:
        from models.text_classifier import FittedTextModel

        assert run.artifact_path is not None
        model = FittedTextModel.load(run.artifact_path, legacy_kind=self.name)
        return TextRunModel(model, tuple(run.features))


KIND = TextTransformer()
