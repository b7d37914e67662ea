"""Text attribution benchmark: ms per text and fidelity against exact Shapley values.

A MiniLM classifier is fine-tuned on the food-reviews sample (or loaded from --model-dir, where
the first run saves it), then test reviews are explained with several settings, 1 CPU thread:

- the app's default: token budget `core.explanations.TEXT_TOKEN_BUDGET` per pass, main + total
  effects of each span (blended with 2 antithetic pairs from 12 spans on), masked texts in
  bfloat16 where the CPU has it natively; and the same in float32;
- the settings before: 1 pair (the previous default), 4 or 8 pairs, all float32; 2 pairs with
  bfloat16 masks (what the effects are compared with at equal cost);
- the fixed setting measured before the budget existed: 16 spans, 1 pair (time only: its
  32-pair reference on long reviews costs minutes).

For each setting: marginal ms per text (one batched call after a warm-up) and fidelity
(`models.text_attribution.span_fidelity`, text by text) against EXACT Shapley values of the
same game (same spans, same empty-text baseline), computed by enumerating every span
coalition; rows whose exact game
would need more than --exact-max-spans spans are compared with a 32-pair reference instead
(counted separately). References are float32 throughout: the values must explain the model
the analysts use. Texts come in three lengths: sentences (8-30 words), short reviews (40-60)
and reviews of ~100 words (80-120). A last case explains the reviews with the TF-IDF baseline,
whose games are cheap enough for exact references up to 14 spans.

    .venv/bin/python bench/text_explain_bench.py [--model-dir /tmp/minilm-food] [--json PATH]
        [--texts 2]  # a quick run: 2 texts per case
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.explanations import TEXT_TOKEN_BUDGET, TFIDF_PAIRS  # noqa: E402
from core.kinds.registry import get_kind  # noqa: E402
from models.tasks import TargetEncoder  # noqa: E402
from models.text_attribution import (  # noqa: E402
    explain_texts,
    same_game_reference,
    span_fidelity,
)
from models.text_baseline import fit_tfidf_logreg  # noqa: E402
from models.text_classifier import FittedTextModel, clean_text, fit_text  # noqa: E402

SAMPLE = ROOT / "samples" / "food_reviews_sample.csv"
SEED = 0


def main() -> None:
    args = _parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    df = pd.read_csv(SAMPLE)
    train, rest = train_test_split(df, test_size=0.4, stratify=df["score"], random_state=SEED)
    val, test = train_test_split(rest, test_size=0.5, stratify=rest["score"], random_state=SEED)
    model = _model(args, train, val)
    figures: dict[str, Any] = {
        "threads": 1,
        "native_bf16": model.native_bf16,
        "load_average_at_start": os.getloadavg()[0],
        "token_budget": TEXT_TOKEN_BUDGET,
        "cases": {},
    }
    budget = {"token_budget": TEXT_TOKEN_BUDGET}
    default = {**budget, **_default_options()}
    minilm_settings: dict[str, dict[str, Any]] = {
        "default: effects (+2 pairs from 12 spans), bf16 masks": default,
        "effects (+2 pairs from 12 spans), float32": {**default, "bf16_masks": False},
    }
    # the settings before: antithetic pairs, every text scored in float32
    minilm_settings.update(
        {
            f"budget {TEXT_TOKEN_BUDGET}, {pairs} pair(s), float32": {
                **budget,
                "n_pairs": pairs,
                "method": "auto",
                "bf16_masks": False,
            }
            for pairs in (1, 4, 8)
        }
    )
    minilm_settings[f"budget {TEXT_TOKEN_BUDGET}, 2 pairs, bf16 masks"] = {
        **budget,
        "n_pairs": 2,
        "method": "auto",
    }
    # time only: its 32-pair reference on long reviews costs minutes
    minilm_settings["16 spans, 1 pair, float32 (before the budget; time only)"] = {
        "n_pairs": 1,
        "method": "auto",
        "bf16_masks": False,
    }
    lengths = {
        "sentences 8-30 words": (8, 30),
        "short reviews 40-60 words": (40, 60),
        "reviews 80-120 words": (80, 120),
    }
    for name, (low, high) in lengths.items():
        texts = _texts_of_length(test, low, high, args.texts)
        references = _References(model, args.exact_max_spans, pairs=32)
        figures["cases"][name] = _case(model, texts, minilm_settings, references)
        figures["cases"][name]["load_average_after"] = os.getloadavg()[0]
    # TF-IDF: microseconds per masked text, so exact references up to 14 spans are cheap
    tfidf = fit_tfidf_logreg(
        train["review"].tolist(), model.target.encode(train["score"]), model.target, seed=SEED
    )
    texts = _texts_of_length(test, 80, 120, args.texts)
    tfidf_settings: dict[str, dict[str, Any]] = {
        f"TF-IDF, 16 spans, {pairs} pair(s)": {"n_pairs": pairs, "method": "auto"}
        for pairs in (TFIDF_PAIRS, 8, 1)
    }
    tfidf_settings["TF-IDF, 16 spans, effects (+2 pairs from 12 spans)"] = {"n_pairs": 2}
    references = _References(tfidf, exact_max_spans=14, pairs=256)
    figures["cases"]["TF-IDF, reviews 80-120 words"] = _case(
        tfidf, texts, tfidf_settings, references
    )
    figures["load_average_at_end"] = os.getloadavg()[0]
    figures["bench_seconds"] = round(time.perf_counter() - started, 1)
    _print(figures)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
        print(f"wrote {args.json}")


def _default_options() -> dict[str, Any]:
    """What the app passes for a text transformer at its default pairs (core.explanations)."""
    kind = get_kind("text-transformer")
    return {"n_pairs": kind.default_pairs, "method": kind.default_span_method}


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="load the fine-tuned model here, or save it here")
    parser.add_argument("--texts", type=int, default=20, help="texts per length case")
    parser.add_argument("--exact-max-spans", type=int, default=10)
    parser.add_argument("--train-budget", type=float, default=240.0, help="fine-tune seconds")
    parser.add_argument("--json", help="write the figures to this JSON file")
    return parser.parse_args()


def _model(args: argparse.Namespace, train: pd.DataFrame, val: pd.DataFrame) -> FittedTextModel:
    folder = Path(args.model_dir) if args.model_dir else None
    if folder is not None and (folder / "manifest.json").exists():
        return FittedTextModel.load(folder)
    target = TargetEncoder.fit(train["score"], task="binary", positive="other")
    fitted = fit_text(
        train_texts=train["review"].tolist(),
        y_train=train["score"],
        val_texts=val["review"].tolist(),
        y_val=val["score"],
        target=target,
        max_length=128,
        max_epochs=2,
        time_budget_s=args.train_budget,
        seed=SEED,
    )
    if folder is not None:
        fitted.model.save(folder)
    return fitted.model


def _texts_of_length(test: pd.DataFrame, low: int, high: int, n: int) -> list[str]:
    words = test["review"].map(lambda s: len(clean_text(s).split()))
    return test["review"][(words >= low) & (words <= high)].head(n).tolist()


def _case(
    model: Any, texts: list[str], settings: dict[str, dict[str, Any]], references: _References
) -> dict[str, Any]:
    case: dict[str, Any] = {
        "texts": len(texts),
        "mean_words": round(float(np.mean([len(clean_text(t).split()) for t in texts])), 1),
    }
    if hasattr(model, "token_counts"):
        case["mean_tokens"] = round(float(np.mean(model.token_counts(texts))), 1)
    explain_texts(model, texts[:2], n_pairs=1)  # warm-up: allocator, kernels (both precisions)
    explain_texts(model, texts[:2], n_pairs=1, bf16_masks=False)
    for label, options in settings.items():
        started = time.perf_counter()
        results = explain_texts(model, texts, **options)
        ms = 1000 * (time.perf_counter() - started) / len(texts)
        case[label] = {
            "ms_per_text": round(ms, 1),
            "mean_spans": round(float(np.mean([len(r.spans) for r in results])), 1),
            "additivity_error": max(r.additivity_error for r in results),
        }
        if "time only" not in label:
            case[label].update(references.compare(texts, results))
        case[label]["load_average"] = os.getloadavg()[0]
        print(f"  {label}: {case[label]}", flush=True)
    return case


class _References:
    """Reference values per (text, spans): exact where the game has at most `exact_max_spans`
    spans, else `pairs` antithetic pairs. Cached, since settings often play the same game."""

    def __init__(self, model: Any, exact_max_spans: int, pairs: int) -> None:
        self.model = model
        self.exact_max_spans = exact_max_spans
        self.pairs = pairs
        self.cache: dict[tuple[str, ...], tuple[str, np.ndarray]] = {}

    def compare(self, texts: list[str], results: list[Any]) -> dict[str, Any]:
        grouped: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        for text, result in zip(texts, results, strict=True):
            kind, reference = self._reference(text, result.spans)
            values, refs = grouped.setdefault(kind, ([], []))
            values.append(result.values)
            refs.append(reference)
        out: dict[str, Any] = {}
        for kind, (values, refs) in grouped.items():
            figures = span_fidelity(values, refs)
            out[kind] = {
                "rows": len(values),
                "spearman": round(figures["spearman"], 4),
                "max_abs_error": round(figures["max_abs_error"], 4),
            }
        return out

    def _reference(self, text: str, spans: list[str]) -> tuple[str, np.ndarray]:
        key = tuple(spans)
        if key not in self.cache:
            exact = len(spans) <= self.exact_max_spans
            values = same_game_reference(
                self.model, text, spans, exact=exact, n_pairs=self.pairs, seed=99
            )
            self.cache[key] = ("vs exact" if exact else f"vs {self.pairs} pairs", values)
        return self.cache[key]


def _print(figures: dict[str, Any]) -> None:
    print(
        f"\n1 thread; load average {figures['load_average_at_start']:.1f} -> "
        f"{figures['load_average_at_end']:.1f}; {figures['bench_seconds']} s"
    )
    for name, case in figures["cases"].items():
        print(
            f"== {name}: {case['texts']} texts, ~{case['mean_words']} words, "
            f"~{case.get('mean_tokens', '?')} tokens read"
        )
        for label, f in case.items():
            if not isinstance(f, dict):
                continue
            quality = "; ".join(
                f"{k}: spearman {v['spearman']:.3f} max err {v['max_abs_error']:.3f} "
                f"({v['rows']} texts)"
                for k, v in f.items()
                if isinstance(v, dict)
            )
            print(
                f"  {label:<28} {f['ms_per_text']:>7.1f} ms/text  {f['mean_spans']:>4} spans  "
                f"{quality}"
            )


if __name__ == "__main__":
    main()
