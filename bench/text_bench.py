"""Text benchmark: fine-tuned MiniLM vs TF-IDF + logistic regression on the food reviews.

Prints test ROC-AUC of both and of their stack (a logistic regression on their log-odds fitted
on the validation part, as the app's ensemble does, with its cross-validated validation AUC:
what `core.stacking.suggest_text_stack` compares), the share of training reviews truncated,
training time and texts/s, inference texts/s by batch size and max_length, and attribution
ms/text. CPU threads are always set explicitly; the machine's load average is printed too,
because a busy neighbour halves these figures.

`--recipe earlier` fine-tunes as Payoff did before issue 15 (128 tokens cut at the end,
constant lr 5e-5, at most 4 epochs, the transformers head on [CLS]); `current` uses fit_text's
defaults (mean-pooled head, max_length from the length distribution, head+tail cut, warm-up + decay fitted to the budget, layer-wise lr decay).

    .venv/bin/python bench/text_bench.py [--quick] [--json PATH] [--budget S]
        [--recipe current|earlier] [--threads N] [--fit-only] [--seed N] [--pooling mean|cls]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.explanations import DEFAULT_PAIRS, TEXT_TOKEN_BUDGET, TFIDF_PAIRS  # noqa: E402
from core.stacking import cross_validated_stack_auc  # noqa: E402
from models.ensemble import fit_combiner  # noqa: E402
from models.measure import matmul_flops_per_second  # noqa: E402
from models.metrics import classification_metrics  # noqa: E402
from models.tasks import TargetEncoder  # noqa: E402
from models.text_attribution import explain_texts  # noqa: E402
from models.text_baseline import fit_tfidf_logreg  # noqa: E402
from models.text_classifier import (  # noqa: E402
    POOLINGS,
    FittedTextModel,
    clean_text,
    fit_text,
)

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "food_reviews_sample.csv"
SEED = 0
# fit_text options of each recipe (see the module doc); "current" takes fit_text's defaults
RECIPES: dict[str, dict[str, Any]] = {
    "current": {},
    "earlier": {
        "max_length": 128,
        "truncation": "head",
        "pooling": "cls",
        "lr": 5e-5,
        "layer_lr_decay": 1.0,
        "lr_schedule": "constant",
        "max_epochs": 4,
    },
}


def split(df: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Stratified 60/20/20 train/validation/test split."""
    train, rest = train_test_split(df, test_size=0.4, stratify=df["score"], random_state=seed)
    val, test = train_test_split(rest, test_size=0.5, stratify=rest["score"], random_state=seed)
    return train, val, test


def auc(target: TargetEncoder, y: pd.Series, proba: np.ndarray) -> float:
    return classification_metrics("binary", target.encode(y), proba)["roc_auc"]


def probe_threads(
    train: pd.DataFrame, val: pd.DataFrame, target: TargetEncoder, max_length: int
) -> dict[int, float]:
    """Training texts/s with 1 and 2 threads on a short run (one epoch of 96 texts)."""
    speeds = {}
    for threads in (1, 2):
        result = fit_text(
            train_texts=train["review"].head(96).tolist(),
            y_train=train["score"].head(96),
            val_texts=val["review"].head(16).tolist(),
            y_val=val["score"].head(16),
            target=target,
            max_length=max_length,
            max_epochs=1,
            threads=threads,
        )
        speeds[threads] = result.loop.rows_seen / result.loop.train_seconds
    return speeds


def inference_grid(
    model: FittedTextModel, texts: list[str], batch_sizes: list[int], lengths: list[int]
) -> list[dict[str, float]]:
    """Texts/s for each (max_length, batch size), on the same encoder weights."""
    rows = []
    for length in lengths:
        sized = FittedTextModel(model.model, model.tokenizer, model.target, length, "bench")
        sized.predict_texts(texts[:8], batch_size=8)  # warm-up: allocator, kernels
        for batch_size in batch_sizes:
            started = time.perf_counter()
            sized.predict_texts(texts, batch_size=batch_size)
            seconds = time.perf_counter() - started
            rows.append(
                {
                    "max_length": length,
                    "batch_size": batch_size,
                    "texts_per_s": len(texts) / seconds,
                }
            )
    return rows


def attribution_ms(model: Any, texts: list[str], **options: Any) -> float:
    """Milliseconds per text for explain_texts over `texts` (one batched call)."""
    started = time.perf_counter()
    results = explain_texts(model, texts, **options)
    worst = max(r.additivity_error for r in results)
    if worst > 1e-4:
        raise AssertionError(f"attributions do not add up: {worst=}")
    return 1000 * (time.perf_counter() - started) / len(texts)


def reviews_of_about(test: pd.DataFrame, words: int, n: int) -> list[str]:
    """Up to n test reviews of words +- 20% words (the attribution target is stated at ~100)."""
    count = test["review"].map(lambda s: len(clean_text(s).split()))
    chosen = test["review"][(count >= 0.8 * words) & (count <= 1.2 * words)]
    return chosen.head(n).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="400 rows, 1 epoch, small grid")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--lr", type=float, help="fine-tuning learning rate (else the recipe's)")
    parser.add_argument(
        "--budget",
        type=float,
        help="fine-tuning seconds (default 600 as in the text target, quick 60; 0: no limit)",
    )
    parser.add_argument(
        "--epochs", type=int, help="max epochs (else the recipe's); with --budget 0 a step budget"
    )
    parser.add_argument("--layer-lr-decay", type=float, help="else the recipe's")
    parser.add_argument("--seed", type=int, default=SEED, help="split and training seed")
    parser.add_argument("--pooling", choices=POOLINGS, help="else the recipe's")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="current")
    parser.add_argument("--threads", type=int, help="torch threads (default: probe 1 and 2)")
    parser.add_argument(
        "--fit-only", action="store_true", help="skip the inference grid and attribution timing"
    )
    args = parser.parse_args()
    quick = args.quick
    seed = args.seed
    options = dict(RECIPES[args.recipe])
    if args.lr is not None:
        options["lr"] = args.lr
    if quick:  # a small model of the recipe: short texts, one pass
        options.update(max_length=64, max_epochs=1)
    if args.epochs is not None:
        options["max_epochs"] = args.epochs
    if args.layer_lr_decay is not None:
        options["layer_lr_decay"] = args.layer_lr_decay
    if args.pooling is not None:
        options["pooling"] = args.pooling
    budget = args.budget if args.budget is not None else (60 if quick else 600)
    budget = budget or None  # 0: no time limit (compare recipes on the same steps)

    df = pd.read_csv(SAMPLE)
    if quick:
        df = df.groupby("score", group_keys=False).sample(frac=0.2, random_state=seed)
    train, val, test = split(df, seed)
    target = TargetEncoder.fit(df["score"], task="binary", positive="other")
    figures: dict[str, Any] = {
        "rows": {"train": len(train), "val": len(val), "test": len(test)},
        "load_average_start": os.getloadavg()[0],
        "recipe": args.recipe,
        "seed": seed,
        "options": options,
        "time_budget_s": budget,
        # what one core reaches on dense fp32 matmuls: the ceiling for every figure below
        "cpu_matmul_gflops_1_thread": matmul_flops_per_second(threads=1) / 1e9,
    }

    if args.threads is None:
        speeds = probe_threads(train, val, target, 64 if quick else 128)
        threads = max(speeds, key=lambda t: speeds[t])
        figures["probe_train_texts_per_s_by_threads"] = speeds
        print(f"thread probe (train texts/s): {speeds} -> threads={threads}", flush=True)
    else:
        threads = args.threads
    figures["threads"] = threads

    fitted = fit_text(
        train_texts=train["review"].tolist(),
        y_train=train["score"],
        val_texts=val["review"].tolist(),
        y_val=val["score"],
        target=target,
        batch_size=32,
        time_budget_s=budget,
        threads=threads,
        seed=seed,
        **options,
        on_epoch=lambda r: print(
            f"  epoch {r.epoch}: train loss {r.train_loss:.4f} val loss {r.val_loss:.4f} "
            f"val auc {r.val_metric:.4f} ({r.elapsed_s:.0f} s)",
            flush=True,
        ),
    )
    model = fitted.model
    figures["max_length"] = model.max_length
    test_texts = test["review"].tolist()
    started = time.perf_counter()
    logit = model.predict_texts(test_texts, output="logit")
    test_infer_s = time.perf_counter() - started
    val_logit = model.predict_texts(val["review"].tolist(), output="logit")
    figures["minilm"] = {
        "test_roc_auc": auc(target, test["score"], _sigmoid(logit)),
        "val_roc_auc": auc(target, val["score"], _sigmoid(val_logit)),
        "truncation": model.truncation,
        "pooling": model.pooling,
        "max_length": model.max_length,
        "steps": fitted.loop.steps,
        "planned_steps": fitted.loop.planned_steps,
        "train_seconds": fitted.train_seconds,
        "loop_seconds": fitted.loop.train_seconds,
        "epochs_run": fitted.loop.epochs_run,
        "best_epoch": fitted.loop.best_epoch,
        "stopped_by": fitted.loop.stopped_by,
        "train_texts_per_s_incl_validation": fitted.loop.rows_seen / fitted.loop.train_seconds,
        "test_inference_texts_per_s": len(test_texts) / test_infer_s,
        "params": fitted.params,
        "gflops_per_text": fitted.flops_per_row / 1e9,
        "truncated_share": fitted.truncated_share,
    }

    started = time.perf_counter()
    tfidf = fit_tfidf_logreg(
        train["review"].tolist(), target.encode(train["score"]), target, seed=seed
    )
    tfidf_seconds = time.perf_counter() - started
    started = time.perf_counter()
    tfidf_logit = tfidf.predict_texts(test_texts, output="logit")
    tfidf_val_logit = tfidf.predict_texts(val["review"].tolist(), output="logit")
    figures["tfidf"] = {
        "test_roc_auc": auc(target, test["score"], _sigmoid(tfidf_logit)),
        "val_roc_auc": auc(target, val["score"], _sigmoid(tfidf_val_logit)),
        "train_seconds": tfidf_seconds,
        "test_inference_texts_per_s": len(test_texts) / (time.perf_counter() - started),
        "chosen_c": tfidf.c,
        "terms": len(tfidf.terms),
    }
    figures["auc_gain"] = figures["minilm"]["test_roc_auc"] - figures["tfidf"]["test_roc_auc"]
    val_pair = np.column_stack([val_logit, tfidf_val_logit])
    y_val = target.encode(val["score"])
    combiner = fit_combiner("stack", val_pair, y_val, seed=seed)
    stack_proba = combiner.proba(np.column_stack([logit, tfidf_logit]))
    figures["stack"] = {
        "test_roc_auc": auc(target, test["score"], stack_proba),
        "val_roc_auc_cross_validated": cross_validated_stack_auc(val_pair, y_val, seed=seed),
        "coef": list(combiner.coef),
    }
    print(
        f"test ROC-AUC: MiniLM {figures['minilm']['test_roc_auc']:.4f} vs TF-IDF "
        f"{figures['tfidf']['test_roc_auc']:.4f} (gain {figures['auc_gain']:+.4f}); stack "
        f"{figures['stack']['test_roc_auc']:.4f}",
        flush=True,
    )
    if args.fit_only:
        figures["load_average_end"] = os.getloadavg()[0]
        report(figures)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2, default=float))
        return

    torch.set_num_threads(threads)
    grid_texts = test_texts[: 64 if quick else 256]
    figures["inference_grid"] = inference_grid(
        model, grid_texts, [32] if quick else [8, 32, 64], [64] if quick else [64, 128, 256]
    )

    torch.set_num_threads(1)  # the attribution target is stated for one CPU thread
    attr_texts = reviews_of_about(test, 100, 4 if quick else 20)
    figures["attribution"] = {
        "texts": len(attr_texts),
        "mean_words": float(np.mean([len(clean_text(t).split()) for t in attr_texts])),
        "threads": 1,
        # the app's settings (core.explanations); bench/text_explain_bench.py adds fidelity
        "minilm_ms_per_text": attribution_ms(
            model, attr_texts, n_pairs=DEFAULT_PAIRS, token_budget=TEXT_TOKEN_BUDGET
        ),
        "tfidf_ms_per_text": attribution_ms(tfidf, attr_texts, n_pairs=TFIDF_PAIRS),
    }
    figures["load_average_end"] = os.getloadavg()[0]
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=float))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def report(figures: dict[str, Any]) -> None:
    m, t, k = figures["minilm"], figures["tfidf"], figures["stack"]
    print(
        f"split rows {figures['rows']}; threads {figures['threads']}; max_length "
        f"{figures['max_length']}; load average {figures['load_average_start']:.1f} -> "
        f"{figures['load_average_end']:.1f}; 1-thread matmul "
        f"{figures['cpu_matmul_gflops_1_thread']:.0f} GFLOP/s"
    )
    print(
        f"MiniLM : test AUC {m['test_roc_auc']:.4f}; fit {m['train_seconds']:.0f} s "
        f"({m['epochs_run']} epochs, best {m['best_epoch']}, {m['stopped_by']}); "
        f"train {m['train_texts_per_s_incl_validation']:.1f} texts/s incl. validation; "
        f"{m['gflops_per_text']:.2f} GFLOP/text; truncated {m['truncated_share']:.1%} "
        f"({m['truncation']}); {m['steps']} steps (plan {m['planned_steps']})"
    )
    print(
        f"TF-IDF : test AUC {t['test_roc_auc']:.4f}; fit {t['train_seconds']:.1f} s "
        f"(C={t['chosen_c']}, {t['terms']} terms); {t['test_inference_texts_per_s']:.0f} texts/s"
    )
    print(f"AUC gain of fine-tuning: {figures['auc_gain']:+.4f} (target >= +0.03)")
    print(
        f"stack  : test AUC {k['test_roc_auc']:.4f}; validation AUC (cross-validated) "
        f"{k['val_roc_auc_cross_validated']:.4f} vs MiniLM {m['val_roc_auc']:.4f}, TF-IDF "
        f"{t['val_roc_auc']:.4f}"
    )
    if "attribution" not in figures:
        return
    a = figures["attribution"]
    print("inference texts/s (max_length x batch size):")
    for row in figures["inference_grid"]:
        print(f"  L={row['max_length']:>3} B={row['batch_size']:>2}: {row['texts_per_s']:.1f}")
    print(
        f"attribution ({a['texts']} reviews, ~{a['mean_words']:.0f} words, 1 thread): "
        f"MiniLM {a['minilm_ms_per_text']:.0f} ms/text; TF-IDF {a['tfidf_ms_per_text']:.1f} "
        "ms/text (the app's settings)"
    )


if __name__ == "__main__":
    main()
