"""Before / after the step budgets and equal-budget tuning (issue 15, items 1-2).

On public data sets shipped inside pip packages (scikit-learn's breast cancer, diabetes,
wine, digits) and the credit-scoring sample: one 80/20 split (stratified for classes);
Payoff's models see the 80% as 75% training + 25% validation (Payoff's 60/20/20), and a
reference LightGBM is tuned by 5-fold CV on the whole 80% over num_leaves {7, 15, 31, 63} x
learning_rate {0.03, 0.1} x n_estimators {100, 300, 1000} (the grid of issue 15). Every
figure is on the same 20% test rows: ROC-AUC (binary), macro-F1 (multiclass), RMSE.

Variants (each in its own process, 1 thread):
- before: the code at --before-root (e.g. `git archive <commit> models | tar -x -C DIR`),
  untuned, as Payoff trained before this change;
- after: this checkout, untuned (FT-Transformer with step budgets);
- tuned: this checkout with tune=True (the whole budget per family).

    python bench/tuning_bench.py --quick   # breast cancer, "tiny", 5 s budgets, in-process
    python bench/tuning_bench.py --budget 30 --before-root /tmp/before --out bench/results/tuning.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CREDIT = ROOT / "samples" / "credit_scoring.csv"
DATASETS = ("breast_cancer", "diabetes", "wine", "credit", "digits")
GRID = {
    "num_leaves": [7, 15, 31, 63],
    "learning_rate": [0.03, 0.1],
    "n_estimators": [100, 300, 1000],
}
QUICK_GRID = {"num_leaves": [7, 31], "learning_rate": [0.1], "n_estimators": [100]}


def load(name: str):
    """(frame, target series, task) of a data set."""
    import pandas as pd
    from sklearn import datasets

    if name == "credit":
        frame = pd.read_csv(CREDIT)
        return frame.drop(columns=["Status"]), frame["Status"], "binary"
    loader = {
        "breast_cancer": (datasets.load_breast_cancer, "binary"),
        "diabetes": (datasets.load_diabetes, "regression"),
        "wine": (datasets.load_wine, "multiclass"),
        "digits": (datasets.load_digits, "multiclass"),
    }[name]
    bunch = loader[0](as_frame=True)
    frame = bunch.frame.drop(columns=["target"])
    frame.columns = [str(c) for c in frame.columns]
    y = bunch.frame["target"]
    if loader[1] != "regression":
        y = y.astype(str)
    return frame, y, loader[1]


def split(name: str):
    from sklearn.model_selection import train_test_split

    frame, y, task = load(name)
    strat = y if task != "regression" else None
    x_full, x_test, y_full, y_test = train_test_split(
        frame, y, test_size=0.2, stratify=strat, random_state=0
    )
    strat = y_full if task != "regression" else None
    x_tr, x_val, y_tr, y_val = train_test_split(
        x_full, y_full, test_size=0.25, stratify=strat, random_state=0
    )
    parts = [
        p.reset_index(drop=True) for p in (x_full, y_full, x_tr, y_tr, x_val, y_val, x_test, y_test)
    ]
    return task, parts


def score(task: str, y_true, prediction, classes=None) -> float:
    import numpy as np
    from sklearn.metrics import f1_score, roc_auc_score

    if task == "regression":
        return float(np.sqrt(np.mean((np.asarray(y_true, float) - prediction) ** 2)))
    if task == "binary":
        return float(roc_auc_score(y_true, prediction))
    predicted = np.asarray(classes)[np.asarray(prediction).argmax(axis=1)]
    return float(f1_score(y_true, predicted, average="macro"))


def worker(name: str, variant: str, kind: str, budget: float, size: str = "small") -> dict:
    """Train one Payoff model (code from PYTHONPATH) and score it on the test rows."""
    import inspect

    from models.preprocessing import FeatureSpec
    from models.tabular import fit_tabular
    from models.tasks import TargetEncoder

    task, (_, _, x_tr, y_tr, x_val, y_val, x_test, y_test) = split(name)
    positive = "bad" if name == "credit" else ("1" if task == "binary" else None)
    target = TargetEncoder.fit(y_tr, task=task, positive=positive)
    numeric = tuple(c for c in x_tr.columns if x_tr[c].dtype.kind in "if")
    spec = FeatureSpec(
        numeric=numeric, categorical=tuple(c for c in x_tr.columns if c not in numeric)
    )
    options = {"size": size, "seed": 0, "time_budget_s": budget, "threads": 1}
    if variant == "tuned":
        options["tune"] = True
    if "tune" not in inspect.signature(fit_tabular).parameters:
        options.pop("tune", None)
    try:  # the registry maps the app's kind to models.tabular's estimator id
        from core.kinds.registry import get_kind

        estimator = getattr(get_kind(kind), "estimator", kind)
    except ImportError:  # code from before the registry took the kind itself
        estimator = kind
    started = time.perf_counter()
    result = fit_tabular(
        estimator,
        train_df=x_tr,
        y_train=y_tr,
        val_df=x_val,
        y_val=y_val,
        spec=spec,
        target=target,
        **options,
    )
    seconds = time.perf_counter() - started
    prediction = result.model.predict_frame(x_test)
    # ROC-AUC of P(positive) against 1 = the positive class (not sklearn's label order).
    truth = (
        (y_test.astype(str) == target.positive_class).astype(int) if task == "binary" else y_test
    )
    tuning = getattr(result, "tuning", None)
    loop = result.loop
    return {
        "dataset": name,
        "variant": variant,
        "model": kind,
        "task": task,
        "metric": {"binary": "roc_auc", "multiclass": "macro_f1", "regression": "rmse"}[task],
        "value": score(task, truth, prediction, target.classes),
        "seconds": seconds,
        "trials": tuning["trials"] if tuning else 1,
        "trials_detail": {k: tuning[k] for k in ("completed", "pruned", "failed")}
        if tuning
        else None,
        "best_params": tuning["best_params"] if tuning else None,
        "steps": getattr(loop, "steps", None) if loop else None,
        "stopped_by": loop.stopped_by if loop else None,
    }


def cv_lightgbm(name: str, quick: bool) -> dict:
    """The reference: LightGBM tuned by 5-fold CV on the 80% (grid above), refit, test."""
    import lightgbm as lgb
    from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

    task, (x_full, y_full, *_rest) = split(name)
    x_test, y_test = _rest[-2], _rest[-1]
    x_full, x_test = x_full.copy(), x_test.copy()
    for column in x_full.columns:
        if x_full[column].dtype.kind not in "if":
            cats = sorted(x_full[column].dropna().astype(str).unique())
            x_full[column] = x_full[column].astype(str).astype("category").cat.set_categories(cats)
            x_test[column] = x_test[column].astype(str).astype("category").cat.set_categories(cats)
    common = {"n_jobs": 1, "verbose": -1, "random_state": 0}
    if task == "regression":
        model, scoring, cv = (
            lgb.LGBMRegressor(**common),
            "neg_root_mean_squared_error",
            KFold(5, shuffle=True, random_state=0),
        )
    else:
        model, cv = lgb.LGBMClassifier(**common), StratifiedKFold(5, shuffle=True, random_state=0)
        scoring = "roc_auc" if task == "binary" else "f1_macro"
    started = time.perf_counter()
    search = GridSearchCV(model, QUICK_GRID if quick else GRID, scoring=scoring, cv=cv, n_jobs=1)
    search.fit(x_full, y_full)
    seconds = time.perf_counter() - started
    best = search.best_estimator_
    if task == "regression":
        prediction = best.predict(x_test)
    elif task == "binary":
        positive = "bad" if name == "credit" else "1"
        prediction = best.predict_proba(x_test)[:, list(best.classes_).index(positive)]
        y_test = (y_test == positive).astype(int)
    else:
        prediction = best.predict_proba(x_test)
    return {
        "dataset": name,
        "variant": "cv-tuned reference",
        "model": "lightgbm",
        "task": task,
        "value": score(
            task, y_test, prediction, list(best.classes_) if task == "multiclass" else None
        ),
        "seconds": seconds,
        "trials": len(search.cv_results_["params"]) * 5,
        "best_params": search.best_params_,
    }


def run_worker(root: Path, name: str, variant: str, kind: str, budget: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, __file__, "--worker", name, variant, kind, str(budget)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"dataset": name, "variant": variant, "model": kind, "error": done.stderr[-600:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget", type=float, default=30.0)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS[:4]), choices=DATASETS)
    parser.add_argument("--before-root", type=Path, help="a checkout of the code before")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--only", nargs="+", help="VARIANT:KIND pairs to run (no reference)")
    parser.add_argument("--worker", nargs=4, metavar=("DATASET", "VARIANT", "KIND", "BUDGET"))
    args = parser.parse_args()
    if args.worker:
        name, variant, kind, budget = args.worker
        print(json.dumps(worker(name, variant, kind, float(budget)), default=str))
        return
    names = ["breast_cancer"] if args.quick else args.datasets
    if args.quick:
        sys.path.insert(0, str(ROOT))
    budget = 5.0 if args.quick else args.budget
    jobs = []
    for name in names:
        if args.before_root and not args.quick:
            jobs += [
                (args.before_root, name, "before", k)
                for k in ("ft-transformer", "lightgbm", "logreg")
            ]
        jobs.append((ROOT, name, "after", "ft-transformer"))
        tuned = ("lightgbm", "logreg") if args.quick else ("ft-transformer", "lightgbm", "logreg")
        jobs += [(ROOT, name, "tuned", k) for k in tuned]
    if args.only:
        jobs = [j for j in jobs if f"{j[2]}:{j[3]}" in args.only]
    results = []
    for root, name, variant, kind in jobs:
        if args.quick:  # in this process: no interpreter start-ups
            results.append(worker(name, variant, kind, budget, size="tiny"))
        else:
            results.append(run_worker(root, name, variant, kind, budget))
        print(json.dumps(results[-1], default=str), flush=True)
    for name in [] if args.only else names:
        results.append(cv_lightgbm(name, args.quick))
        print(json.dumps(results[-1], default=str), flush=True)
    summary = {"budget_s": budget, "threads": 1, "load_before": os.getloadavg(), "results": results}
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(json.dumps({"results": len(results), "budget_s": budget}))


if __name__ == "__main__":
    main()
