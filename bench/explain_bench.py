"""Explanation benchmark: Payoff's interventional SHAP vs shap's PermutationExplainer, judged
by one broad reference and compared at EQUAL settings as well as at each tool's defaults.

One FT-Transformer and the same rows for every method, per case. The judge of every method is
the same: interventional Shapley values against --reference-rows (256) random training rows,
estimated by Payoff's estimator with --reference-pairs antithetic pairs per game (small games
enumerated exactly); its own noise is shown by a second reference with another seed.

Methods (ms per explained row after a warm-up call, model evaluations per row):
- equal settings: the same 16 random training rows (uniform weights) and one permutation
  (Payoff: 1 antithetic pair per game; shap: max_evals = 2M + 1, i.e. one forward and one
  backward pass, which is what one of shap's permutations is);
- defaults: Payoff's app default (main + total effects against the training rows:
  models.shapley.explain_effects, tables built as core.explanations builds them; the one-off
  table cost is reported apart from the per-row cost) and shap's (Independent masker = 100
  sampled training rows, max_evals = 500);
- Payoff's previous default (16-row k-medoid summary, 1 pair) and a 64-row summary; full mode
  adds shap's KernelExplainer on 50 sampled rows.
A second reference against ANOTHER 256 random training rows shows how far two broad
references disagree by themselves (the floor any method is judged against).
The slow shap defaults explain only the first --shap-rows rows (the rows column says so).

Cases: the credit-scoring sample (13 columns), a synthetic 20-column table, a synthetic
85-column table (wide) and scikit-learn's breast-cancer table (30 correlated columns, a
saturated model: where the default's pairwise assumption fails); only the default, the old
default and the references run on the last two.

ms per row is bound by the model: ms/row ~= evals/row / rows_per_s (both printed), so the
figures carry over to another machine or a busier one. Load average is recorded.

Run: .venv/bin/python bench/explain_bench.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shap
import torch
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.explanations import (  # noqa: E402
    EFFECT_BACKGROUND_ROWS,
    EFFECT_PD_GRID,
    EFFECT_TABLE_EVALUATIONS,
    effect_grid,
    measure_default_choice,
)
from models.preprocessing import FeatureSpec  # noqa: E402
from models.shapley import (  # noqa: E402
    effect_tables,
    explain_effects,
    explain_interventional,
    fidelity,
    pd_points,
    summarize_background,
)
from models.tabular import FittedTabularModel, fit_tabular  # noqa: E402
from models.tasks import TargetEncoder  # noqa: E402

SAMPLE = ROOT / "samples" / "credit_scoring.csv"
CREDIT_NUMERIC = ("Seniority", "Time", "Age", "Expenses", "Income", "Assets", "Debt", "Amount")
CREDIT_NUMERIC += ("Price",)
CREDIT_CATEGORICAL = ("Home", "Marital", "Records", "Job")
Predict = Callable[[np.ndarray], np.ndarray]
_ROW = "{:<42} {:>4} {:>4} {:>9} {:>9} {:>10} {:>8} {:>8} {:>9}"


def main() -> None:
    args = _parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": args.threads,
            "load_average_at_start": os.getloadavg()[0],  # > cores: timings are inflated
        },
        "sizes": {
            "credit": args.size,
            "synthetic-20": args.synthetic_size,
            "wide-85": "small",
            "breast-cancer-30": "small",
        },
        "cases": {
            "credit": _credit_case(args),
            "synthetic-20": _synthetic_case(args),
            "wide-85": _wide_case(args),
            "breast-cancer-30": _breast_cancer_case(args),
        },
    }
    report["bench_seconds"] = round(time.perf_counter() - started, 1)
    report["machine"]["load_average_at_end"] = os.getloadavg()[0]
    print(f"\nmachine: {report['machine']}")
    for name, case in report["cases"].items():
        _print_case(name, case)
    print(f"\nwhole bench: {report['bench_seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="under a minute: 2 rows, 2 reference pairs, 5 s fits")  # fmt: skip
    parser.add_argument("--size", default="small", help="FT-Transformer preset, credit case")
    parser.add_argument("--synthetic-size", default="small", help="preset, 20-column case")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, default=8, help="rows Payoff's method explains")
    parser.add_argument("--shap-rows", type=int, default=2, help="rows shap's defaults explain")
    parser.add_argument("--train-budget", type=float, default=30.0, help="seconds per model fit")
    parser.add_argument("--reference-rows", type=int, default=256,
                        help="random training rows of the broad reference")  # fmt: skip
    parser.add_argument("--reference-pairs", type=int, default=8,
                        help="antithetic pairs per game of the broad reference")  # fmt: skip
    parser.add_argument("--wide-rows", type=int, default=4, help="rows, 85-column case")
    parser.add_argument("--wide-reference-pairs", type=int, default=1,
                        help="pairs per game of the 85- and 30-column cases' references")  # fmt: skip
    parser.add_argument("--table-evaluations", type=int, default=EFFECT_TABLE_EVALUATIONS,
                        help="model calls for the default's tables (the app's budget)")  # fmt: skip
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.shap_rows, args.reference_pairs = 2, 1, 2
        args.wide_rows, args.reference_rows = 1, 64
        args.table_evaluations = 20_000
        args.train_budget = min(args.train_budget, 5.0)
    return args


# --- cases ----------------------------------------------------------------------------------


EQUAL_BACKGROUND_ROWS = 16  # the app's default background size, as random rows for both tools


def _credit_case(args: argparse.Namespace) -> dict[str, Any]:
    df = pd.read_csv(SAMPLE)
    spec = FeatureSpec(numeric=CREDIT_NUMERIC, categorical=CREDIT_CATEGORICAL)
    model, z_train, z_test = _fit(df, "Status", "bad", spec, args.size, args)
    return _case(model, z_train, z_test, _cat_mask(spec), args)


def _synthetic_case(args: argparse.Namespace) -> dict[str, Any]:
    df, spec = _synthetic_frame(n=3000, seed=0)
    model, z_train, z_test = _fit(df, "y", "1", spec, args.synthetic_size, args)
    return _case(model, z_train, z_test, _cat_mask(spec), args)


def _case(
    model: FittedTabularModel,
    z_train: np.ndarray,
    z_test: np.ndarray,
    mask: np.ndarray,
    args: argparse.Namespace,
) -> dict[str, Any]:
    predict = _logit(model)
    rows = z_test[: args.rows]
    case = _model_facts(model, predict, z_train)
    rng = np.random.default_rng(1)
    broad = z_train[rng.choice(len(z_train), size=min(args.reference_rows, len(z_train)),
                               replace=False)]  # fmt: skip
    truth = explain_interventional(predict, rows, broad, n_pairs=args.reference_pairs, seed=7)
    label = f"reference: {len(broad)} random rows, {args.reference_pairs} pairs"
    case[label] = _figures(truth, len(rows)) | {"background_rows": len(broad)}
    again = explain_interventional(predict, rows, broad, n_pairs=args.reference_pairs, seed=8)
    case["reference, other seed (its own noise)"] = (
        _figures(again, len(rows))
        | {"background_rows": len(broad)}
        | fidelity(again.values, truth.values)
    )
    other, other_truth = _other_reference(predict, rows, z_train, args.reference_rows, args)
    case["reference B: other random rows (the floor)"] = other | fidelity(other_truth, truth.values)
    case["payoff effects (DEFAULT)"] = _effects(predict, rows, z_train, mask, args, truth.values)
    case["payoff effects (DEFAULT)"]["vs_reference_B"] = fidelity(
        case["payoff effects (DEFAULT)"].pop("values"), other_truth
    )
    m = z_train.shape[1]
    equal = z_train[
        np.random.default_rng(2).choice(len(z_train), size=EQUAL_BACKGROUND_ROWS, replace=False)
    ]
    uniform = np.full(len(equal), 1.0 / len(equal))
    case["EQUAL payoff: 16 random rows, 1 pair"] = _payoff(
        predict, rows, equal, uniform, 1, truth.values, method="antithetic"
    )
    case["EQUAL shap-permutation: 16 random rows, 1 perm"] = _shap_permutation(
        predict, equal, rows, truth.values, max_evals=2 * m + 1, max_samples=len(equal)
    )
    for k in (16, 64):
        background, weights = summarize_background(z_train, k, seed=0, categorical=mask)
        name = f"payoff k-medoid K={k}, 1 pair" + (" (old default)" if k == 16 else "")
        case[name] = _payoff(predict, rows, background, weights, 1, truth.values)
    case["shap-permutation (DEFAULTS: 100 rows, 500 evals)"] = _shap_permutation(
        predict, z_train, rows[: args.shap_rows], truth.values[: args.shap_rows]
    )
    if not args.quick:
        case["shap-kernel (50 sampled rows)"] = _shap_kernel(
            predict, z_train, rows[: args.shap_rows], truth.values[: args.shap_rows]
        )
    case = _add_model_bound(case)
    ours, theirs = (
        case["EQUAL payoff: 16 random rows, 1 pair"],
        case["EQUAL shap-permutation: 16 random rows, 1 perm"],
    )
    default_ours = case["payoff effects (DEFAULT)"]
    default_theirs = case["shap-permutation (DEFAULTS: 100 rows, 500 evals)"]
    case["speedup_equal_settings"] = round(theirs["ms_per_row"] / ours["ms_per_row"], 1)
    # the load-independent form: model evaluations per row
    case["evals_ratio_equal_settings"] = round(theirs["evals_per_row"] / ours["evals_per_row"], 2)
    case["speedup_defaults"] = round(default_theirs["ms_per_row"] / default_ours["ms_per_row"], 1)
    return case


def _wide_case(args: argparse.Namespace) -> dict[str, Any]:
    """85 columns: the default and the old default against broad references (1 pair per game
    by default: 256 games x 168 calls is already ~43k model calls per row)."""
    df, spec = _wide_frame(n=4000, seed=0)
    model, z_train, z_test = _fit(df, "y", "1", spec, "small", args)
    return _default_vs_old_case(model, z_train, z_test[: args.wide_rows], spec, args)


def _breast_cancer_case(args: argparse.Namespace) -> dict[str, Any]:
    """Real data where main + total effects struggle: scikit-learn's breast-cancer table (30
    strongly correlated measurements, 341 training rows), on which the FT-Transformer's
    log-odds saturate at about +-6, so columns interact far beyond pairs."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["target"] = frame["target"].astype(str)
    spec = FeatureSpec(numeric=tuple(c for c in frame.columns if c != "target"), categorical=())
    model, z_train, z_test = _fit(frame, "target", "0", spec, "small", args)
    return _default_vs_old_case(model, z_train, z_test[: args.rows], spec, args)


def _default_vs_old_case(
    model: FittedTabularModel,
    z_train: np.ndarray,
    rows: np.ndarray,
    spec: FeatureSpec,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The default and the old default against broad references of --wide-reference-pairs."""
    predict, mask = _logit(model), _cat_mask(spec)
    case = _model_facts(model, predict, z_train)
    pairs = args.wide_reference_pairs
    rng = np.random.default_rng(1)
    broad = z_train[rng.choice(len(z_train), size=min(args.reference_rows, len(z_train)),
                               replace=False)]  # fmt: skip
    truth = explain_interventional(predict, rows, broad, n_pairs=pairs, seed=7)
    case[f"reference: {len(broad)} random rows, {pairs} pair(s)"] = _figures(truth, len(rows)) | {
        "background_rows": len(broad)
    }
    wide_args = argparse.Namespace(**{**vars(args), "reference_pairs": pairs})
    other, other_truth = _other_reference(predict, rows, z_train, args.reference_rows, wide_args)
    case["reference B: other random rows (the floor)"] = other | fidelity(other_truth, truth.values)
    effects = _effects(predict, rows, z_train, mask, args, truth.values)
    effects["vs_reference_B"] = fidelity(effects.pop("values"), other_truth)
    case["payoff effects (DEFAULT)"] = effects
    background, weights = summarize_background(z_train, 16, seed=0, categorical=mask)
    case["payoff k-medoid K=16, 1 pair (old default)"] = _payoff(
        predict, rows, background, weights, 1, truth.values
    )
    return _add_model_bound(case)


# --- methods --------------------------------------------------------------------------------


def _other_reference(
    predict: Predict, rows: np.ndarray, z_train: np.ndarray, n: int, args: argparse.Namespace
) -> tuple[dict[str, Any], np.ndarray]:
    """The same kind of reference against other random training rows."""
    rng = np.random.default_rng(3)
    other = z_train[rng.choice(len(z_train), size=min(n, len(z_train)), replace=False)]
    result = explain_interventional(predict, rows, other, n_pairs=args.reference_pairs, seed=7)
    return _figures(result, len(rows)) | {"background_rows": len(other)}, result.values


def _effects(
    predict: Predict,
    rows: np.ndarray,
    z_train: np.ndarray,
    mask: np.ndarray,
    args: argparse.Namespace,
    reference: np.ndarray,
) -> dict[str, Any]:
    """The app's default, its tables built as core.explanations._effect_tables builds them."""
    started = time.perf_counter()
    grid = effect_grid(z_train.shape[1])
    points = pd_points(z_train, EFFECT_PD_GRID, mask, grid)
    k = int(np.clip(args.table_evaluations // max(points, 1), *EFFECT_BACKGROUND_ROWS))
    background, weights = summarize_background(
        z_train, min(k, len(z_train)), seed=0, categorical=mask
    )
    tables = effect_tables(
        predict, z_train, background, weights, categorical=mask, grid=grid,
        pd_grid=EFFECT_PD_GRID,
    )  # fmt: skip
    table_seconds = time.perf_counter() - started
    # the app's choice between effects and the sampled 16-row default, made once per run
    summary, summary_weights = summarize_background(
        z_train, min(16, len(z_train)), seed=0, categorical=mask
    )
    take = np.random.default_rng(19).choice(
        len(z_train), size=min(256, len(z_train)), replace=False
    )
    choice = measure_default_choice(
        predict, z_train, tables, summary, summary_weights, z_train[take], seed=0
    )
    explain_effects(predict, rows[:2], tables)  # warm-up
    result = explain_effects(predict, rows, tables)
    figures = _figures(result, len(rows))
    figures.update(
        background_rows=len(background),
        method=result.method,
        table_evaluations=tables.evaluations,
        table_seconds=round(table_seconds, 1),
        values=result.values,
        choice={
            "method": choice["method"],
            "rows": choice["rows"],
            "effects_spearman": round(choice["effects"]["spearman"], 3),
            "sampled_spearman": round(choice["sampled"]["spearman"], 3),
            "evaluations": choice["evaluations"],
            "seconds": round(choice["seconds"], 1),
        },
    )
    figures.update(fidelity(result.values, reference))
    return figures


def _payoff(
    predict: Predict,
    rows: np.ndarray,
    background: np.ndarray,
    weights: np.ndarray,
    n_pairs: int,
    reference: np.ndarray,
    method: str = "auto",
) -> dict[str, Any]:
    options = {"n_pairs": n_pairs, "method": method}
    explain_interventional(predict, rows[:2], background, weights, **options)  # warm-up
    result = explain_interventional(predict, rows, background, weights, **options)
    figures = _figures(result, len(rows))
    figures["background_rows"] = len(background)
    figures["method"] = result.method
    figures.update(fidelity(result.values, reference))
    return figures


def _shap_permutation(
    predict: Predict,
    data: np.ndarray,
    rows: np.ndarray,
    reference: np.ndarray,
    max_evals: int = 500,
    max_samples: int = 100,
) -> dict[str, Any]:
    """shap's PermutationExplainer; its defaults are max_evals=500 and 100 sampled rows."""
    masker = shap.maskers.Independent(data, max_samples=max_samples)
    explainer = shap.PermutationExplainer(predict, masker, seed=0)
    explainer(rows[:1], max_evals=2 * rows.shape[1] + 1)  # warm-up: the cheapest call
    calls = _CountingPredict(predict)
    explainer = shap.PermutationExplainer(calls, masker, seed=0)
    started = time.perf_counter()
    values = explainer(rows, max_evals=max_evals).values
    seconds = time.perf_counter() - started
    figures = _shap_figures(values, reference, seconds, calls.rows, len(masker.data))
    figures["permutations"] = max_evals // (2 * rows.shape[1] + 1)
    return figures


def _shap_kernel(
    predict: Predict, z_train: np.ndarray, rows: np.ndarray, reference: np.ndarray
) -> dict[str, Any]:
    background = shap.sample(z_train, 50, random_state=0)
    calls = _CountingPredict(predict)
    explainer = shap.KernelExplainer(calls, background)  # the model is warm already
    started = time.perf_counter()
    values = np.asarray(explainer.shap_values(rows, silent=True))
    seconds = time.perf_counter() - started
    return _shap_figures(values, reference, seconds, calls.rows, len(background))


class _CountingPredict:
    """Counts the rows shap sends to the model, for evaluations per explained row."""

    def __init__(self, predict: Predict) -> None:
        self.predict = predict
        self.rows = 0

    def __call__(self, z: np.ndarray) -> np.ndarray:
        self.rows += len(z)
        return self.predict(np.asarray(z, dtype=np.float64))


# --- data and model -------------------------------------------------------------------------


def _fit(
    df: pd.DataFrame,
    target_column: str,
    positive: str,
    spec: FeatureSpec,
    size: str,
    args: argparse.Namespace,
) -> tuple[FittedTabularModel, np.ndarray, np.ndarray]:
    y = df[target_column].astype(str)
    x = df.drop(columns=[target_column])
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, test_size=0.4, stratify=y, random_state=0
    )
    x_val, x_test, y_val, _ = train_test_split(
        x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=0
    )
    target = TargetEncoder.fit(y_train, task="binary", positive=positive)
    fit = fit_tabular(
        "ft_transformer",
        train_df=x_train,
        y_train=y_train,
        val_df=x_val,
        y_val=y_val,
        spec=spec,
        target=target,
        size=size,
        time_budget_s=args.train_budget,
        threads=args.threads,
    )
    pre = fit.model.preprocessor
    return fit.model, pre.encode(x_train), pre.encode(x_test)


def _logit(model: FittedTabularModel) -> Predict:
    """Explain the log-odds: additive in the model's own units, unlike the probability."""

    def predict(z: np.ndarray) -> np.ndarray:
        return model.predict_encoded(z, output="logit")  # cache-sized batches, as the app

    return predict


def _model_facts(
    model: FittedTabularModel, predict: Predict, z_train: np.ndarray
) -> dict[str, Any]:
    batch = np.tile(z_train, (max(1, 16384 // len(z_train) + 1), 1))[:16384]
    predict(batch[:1024])  # warm-up
    seconds = []
    for _ in range(3):  # best of 3: other processes on a shared machine only ever slow it
        started = time.perf_counter()
        predict(batch)
        seconds.append(time.perf_counter() - started)
    rows_per_s = len(batch) / min(seconds)
    return {
        "columns": int(z_train.shape[1]),
        "params": model.n_params(),
        "rows_per_s": round(rows_per_s),
    }


def _synthetic_frame(n: int, seed: int) -> tuple[pd.DataFrame, FeatureSpec]:
    """20 columns (14 numeric, 6 categorical) and a target with main effects, pairwise and
    three-way interactions, so exact and sampled Shapley values can differ."""
    rng = np.random.default_rng(seed)
    numeric = {f"n{j}": rng.normal(size=n) for j in range(14)}
    numeric["n3"] = rng.exponential(size=n)
    numeric["n5"][rng.random(n) < 0.1] = np.nan
    categorical = {f"c{j}": rng.choice(list("abcde")[: 3 + j % 3], size=n) for j in range(6)}
    filled = {k: np.nan_to_num(v) for k, v in numeric.items()}
    logit = (
        filled["n0"]
        - 0.8 * filled["n1"]
        + 0.6 * filled["n2"] * filled["n3"]
        + 0.5 * np.tanh(filled["n4"] * filled["n5"] * filled["n6"])
        + np.where(categorical["c0"] == "a", 1.0, -0.5)
        + 0.4 * (categorical["c1"] == "b") * filled["n7"]
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).astype(str)
    df = pd.DataFrame({**numeric, **categorical, "y": y})
    return df, FeatureSpec(numeric=tuple(numeric), categorical=tuple(categorical))


def _wide_frame(n: int, seed: int) -> tuple[pd.DataFrame, FeatureSpec]:
    """85 columns: 60 standard-normal numerics whose log-odds weights fall linearly from 0.6
    to 0.03, 25 categoricals of 2-6 levels with evenly spaced effects (largest +-0.8, falling
    by 0.025 per column), one pairwise (n0 * n1) and one three-way (tanh(n2 n3 n4)) term."""
    rng = np.random.default_rng(seed)
    numeric = {f"n{j}": rng.normal(size=n) for j in range(60)}
    categorical = {f"c{j}": rng.choice(list("abcdef")[: 2 + j % 5], size=n) for j in range(25)}
    weights = np.linspace(1.0, 0.05, 60)
    logit = 0.6 * sum(weights[j] * numeric[f"n{j}"] for j in range(60))
    logit = logit + 0.5 * numeric["n0"] * numeric["n1"]
    logit = logit + 0.4 * np.tanh(numeric["n2"] * numeric["n3"] * numeric["n4"])
    for j in range(25):
        levels = np.array(sorted(set(categorical[f"c{j}"])))
        effect = np.linspace(-1, 1, len(levels)) * (0.8 - 0.025 * j)
        logit = logit + effect[np.searchsorted(levels, categorical[f"c{j}"])]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).astype(str)
    df = pd.DataFrame({**numeric, **categorical, "y": y})
    return df, FeatureSpec(numeric=tuple(numeric), categorical=tuple(categorical))


def _cat_mask(spec: FeatureSpec) -> np.ndarray:
    return np.array([c in spec.categorical for c in spec.columns])


# --- reporting ------------------------------------------------------------------------------


def _figures(result: Any, n_rows: int) -> dict[str, Any]:
    return {
        "rows": n_rows,
        "ms_per_row": round(1000 * result.seconds / n_rows, 1),
        "evals_per_row": round(result.evaluations / n_rows),
        "additivity_error": float(f"{result.additivity_error:.2e}"),
    }


def _shap_figures(
    values: np.ndarray, reference: np.ndarray, seconds: float, evaluations: int, bg_rows: int
) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "rows": len(values),
        "ms_per_row": round(1000 * seconds / len(values), 1),
        "evals_per_row": round(evaluations / len(values)),
        "background_rows": bg_rows,
    }
    figures.update(fidelity(values, reference))
    return figures


def _add_model_bound(case: dict[str, Any]) -> dict[str, Any]:
    """ms/row the model alone needs at its best measured speed: evals/row / rows_per_s.

    Wall ms/row swings with whatever else runs on the machine; this figure does not."""
    for figures in case.values():
        if isinstance(figures, dict) and "evals_per_row" in figures:
            figures["model_ms_per_row"] = round(
                1000 * figures["evals_per_row"] / case["rows_per_s"], 1
            )
    return case


def _print_case(name: str, case: dict[str, Any]) -> None:
    facts = {k: v for k, v in case.items() if not isinstance(v, dict | str)}
    print(f"\n== {name}: {facts}")
    header = ("method", "rows", "bg", "ms/row", "model ms", "evals/row", "spearman", "max_err")
    print(_ROW.format(*header, "add_err"))
    for method, f in case.items():
        if isinstance(f, str):
            print(f"{method:<42} {f}")
        if not isinstance(f, dict):
            continue
        cells = (
            method,
            f.get("rows", ""),
            f.get("background_rows", ""),
            f.get("ms_per_row", ""),
            f.get("model_ms_per_row", ""),
            f.get("evals_per_row", ""),
            _fmt(f.get("spearman")),
            _fmt(f.get("max_abs_error")),
            f.get("additivity_error", ""),
        )
        print(_ROW.format(*cells))
        if "choice" in f:
            print(f"    the app's default for this model: {f['choice']}")


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
