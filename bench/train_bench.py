"""Accuracy and cost of every tabular model on the credit-scoring sample (prints figures).

    .venv/bin/python -m bench.train_bench [--seeds 0 1 2] [--json bench/results/train.json]

A seeded stratified 60/20/20 split per seed; each FT-Transformer preset, LightGBM and logistic
regression train on the same rows with `threads` CPU threads. Reported per model (mean over
seeds): test ROC-AUC, fit seconds, rows/s, inference rows/s, params, FLOPs/row, and the
achieved FLOP/s as a fraction of a measured dense fp32 matmul on the same threads.
Training FLOPs are estimated as 3x forward (forward + backward) per row processed.

On CPU every rate (rows/s, FLOP/s, the matmul peak) is per CPU-second of this process
(time.process_time), so a busy shared machine does not distort them; "fit s" is wall time
and "fit cpu s" CPU time. On CUDA rates are per wall second.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from models.ft_transformer import SIZE_PRESETS, TRAINING_DEFAULTS
from models.measure import PeakMemory, device_name, matmul_flops_per_second, resolve_device
from models.metrics import classification_metrics
from models.preprocessing import FeatureSpec
from models.tabular import fit_tabular
from models.tasks import TargetEncoder

DATA = Path(__file__).resolve().parents[1] / "samples" / "credit_scoring.csv"
TARGET, POSITIVE = "Status", "bad"
SPEC = FeatureSpec(
    numeric=("Seniority", "Time", "Age", "Expenses", "Income", "Assets", "Debt", "Amount", "Price"),
    categorical=("Home", "Marital", "Records", "Job"),
)
INFERENCE_ROWS = 20_000


def split(df: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Stratified 60/20/20 train/validation/test split."""
    train, rest = train_test_split(df, test_size=0.4, random_state=seed, stratify=df[TARGET])
    val, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=rest[TARGET])
    return train, val, test


def run_one(
    kind: str, size: str, parts: tuple, seed: int, args: argparse.Namespace, peak_flops: float
) -> dict[str, Any]:
    """Fit one model on one split and measure it."""
    train, val, test = parts
    target = TargetEncoder.fit(train[TARGET], positive=POSITIVE)
    clock_start, cpu_start = args.clock(), time.process_time()
    with PeakMemory(args.device) as memory:
        result = fit_tabular(
            kind,
            train_df=train,
            y_train=train[TARGET],
            val_df=val,
            y_val=val[TARGET],
            spec=SPEC,
            target=target,
            size=size,
            seed=seed,
            time_budget_s=args.budget,
            device=args.device,
            threads=args.threads,
        )
    cpu_seconds = time.process_time() - cpu_start
    clock_seconds = args.clock() - clock_start
    model = result.model
    z_test = model.preprocessor.encode(test)
    auc = classification_metrics(
        "binary", target.encode(test[TARGET]), model.predict_encoded(z_test)
    )
    infer_rows_s = _inference_rows_per_s(model, z_test, args.clock)
    row: dict[str, Any] = {
        "model": {"gbdt": "lightgbm", "linear": "logreg"}.get(kind, f"ft-{size}"),
        "seed": seed,
        "test_roc_auc": auc["roc_auc"],
        "train_seconds": result.train_seconds,
        "train_cpu_seconds": cpu_seconds,
        "fit_rows_per_s": len(train) / result.train_seconds,
        "infer_rows_per_s": infer_rows_s,
        "params": result.params,
        "flops_per_row": result.flops_per_row,
        "peak_rss_mb": memory.peak_rss_bytes / 2**20,
    }
    if result.loop is not None:
        loop = result.loop
        train_rows_s = loop.rows_seen / clock_seconds
        row |= {
            "epochs": loop.epochs_run,
            "best_epoch": loop.best_epoch,
            "stopped_by": loop.stopped_by,
            "train_rows_per_s": train_rows_s,
            "train_flops_fraction": 3 * result.flops_per_row * train_rows_s / peak_flops,
            "infer_flops_fraction": result.flops_per_row * infer_rows_s / peak_flops,
            "lr": TRAINING_DEFAULTS[size]["lr"],
            "batch_size": TRAINING_DEFAULTS[size]["batch_size"],
        }
    return row


def _inference_rows_per_s(model: Any, z_test: np.ndarray, clock: Callable[[], float]) -> float:
    """Best of three passes over INFERENCE_ROWS rows (the test rows repeated)."""
    z = np.tile(z_test, (int(np.ceil(INFERENCE_ROWS / len(z_test))), 1))[:INFERENCE_ROWS]
    model.predict_encoded(z[:512])  # warm-up
    best = float("inf")
    for _ in range(3):
        start = clock()
        model.predict_encoded(z)
        best = min(best, clock() - start)
    return len(z) / best


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean of every numeric figure per model, plus the ROC-AUC spread across seeds."""
    frame = pd.DataFrame(rows)
    numeric = frame.select_dtypes("number").columns.drop("seed")
    summary = frame.groupby("model", sort=False)[list(numeric)].mean()
    summary["roc_auc_std"] = frame.groupby("model", sort=False)["test_roc_auc"].std(ddof=0)
    return summary.reset_index().replace({np.nan: None}).to_dict("records")


def print_table(summary: list[dict[str, Any]]) -> None:
    """One line per model; '-' where a figure does not apply (trees have no FLOPs)."""
    columns = [
        ("model", "model", "{}"),
        ("ROC-AUC", "test_roc_auc", "{:.4f}"),
        ("± seeds", "roc_auc_std", "{:.4f}"),
        ("fit s", "train_seconds", "{:.1f}"),
        ("fit cpu s", "train_cpu_seconds", "{:.1f}"),
        ("train r/s", "train_rows_per_s", "{:,.0f}"),
        ("infer r/s", "infer_rows_per_s", "{:,.0f}"),
        ("params", "params", "{:,.0f}"),
        ("FLOPs/row", "flops_per_row", "{:,.0f}"),
        ("train %peak", "train_flops_fraction", "{:.1%}"),
        ("infer %peak", "infer_flops_fraction", "{:.1%}"),
    ]
    cells = [[title for title, _, _ in columns]]
    for r in summary:
        cells.append([fmt.format(r[k]) if r.get(k) is not None else "-" for _, k, fmt in columns])
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for n, row in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("-" * (sum(widths) + 2 * (len(widths) - 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--presets", nargs="+", default=list(SIZE_PRESETS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lr", type=float, help="override the FT presets' learning rate")
    parser.add_argument("--batch-size", type=int, help="override the FT presets' batch size")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    args.device = resolve_device(args.device)
    args.clock = time.process_time if args.device == "cpu" else time.perf_counter
    for size in args.presets:  # tuning aid: one run with other settings, nothing saved
        if args.lr:
            TRAINING_DEFAULTS[size]["lr"] = args.lr
        if args.batch_size:
            TRAINING_DEFAULTS[size]["batch_size"] = args.batch_size
    torch.set_num_threads(args.threads)
    peak = matmul_flops_per_second(threads=args.threads, device=args.device, clock=args.clock)
    df = pd.read_csv(DATA)
    # models.tabular's estimator ids (the app's kinds: ft-transformer, lightgbm, logreg)
    kinds = [("ft_transformer", s) for s in args.presets] + [("gbdt", ""), ("linear", "")]
    rows = []
    for seed in args.seeds:
        parts = split(df, seed)
        for kind, size in kinds:
            row = run_one(kind, size or "small", parts, seed, args, peak)
            rows.append(row)
            print(
                f"seed {seed} {row['model']}: ROC-AUC {row['test_roc_auc']:.4f} "
                f"in {row['train_seconds']:.1f}s",
                flush=True,
            )
    summary = summarise(rows)
    print(
        f"\ndevice: {device_name(args.device)}, threads={args.threads}, "
        f"matmul peak {peak / 1e9:.1f} GFLOP/s, seeds={args.seeds}\n"
    )
    print_table(summary)
    report = {
        "device": device_name(args.device),
        "threads": args.threads,
        "matmul_flops_per_s": peak,
        "rate_clock": args.clock.__name__,
        "torch": torch.__version__,
        "rows": {"train": int(0.6 * len(df)), "total": len(df)},
        "summary": summary,
        "runs": rows,
    }
    print(json.dumps(report, indent=2, default=float))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
