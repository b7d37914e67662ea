"""The leaderboard's paired comparison: the best transformer against the best baseline of a
dataset and target, on the same test rows, with a paired test.

Runs of one dataset, target and seed share the stored split (core/splits.py), so their stored
test predictions are for the same rows in the same order; the comparison checks that and
pairs them row by row:

- binary: DeLong's test of the two ROC-AUCs (models.metrics.delong_test, the fast algorithm
  of Sun & Xu 2014): the difference, its 95% normal interval and p-value;
- multiclass and regression: a paired bootstrap of the headline metric (accuracy, RMSE;
  models.metrics.paired_bootstrap_test), whose row resamples are those of the ROI verdict
  (models.metrics.paired_resamples): the same rows drawn for both models, 2,000 resamples,
  seed 0; percentile interval, centred-bootstrap p-value.

"Best" is picked on the validation rows (the headline metric of the stored validation
predictions), never on the test rows it is then judged on; regression runs keep no
validation predictions, so there the best is picked on the test rows and the comparison
says so (the winner's advantage is then flattered). Where the same model kind and size ran
with several seeds (each seed is its own split), the spread of their test metric is given
beside it: a difference smaller than that spread says little.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.kinds import registry
from core.runs import RunInfo, holdout_predictions, list_runs, validation_predictions
from core.verdict import family
from models.metrics import (
    PAIRED_BOOT,
    PairedDifference,
    classification_metrics,
    delong_test,
    higher_is_better,
    paired_bootstrap_test,
)

METRIC_WORDS = {
    "roc_auc": "ROC-AUC",
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
    "rmse": "RMSE",
    "mae": "mean absolute error",
}
METHOD_WORDS = {
    "delong": "DeLong's test for two correlated ROC-AUCs (fast algorithm, Sun & Xu 2014)",
    "paired_bootstrap": "paired bootstrap of the metric (2,000 resamples of the test rows)",
}


@dataclass(frozen=True)
class SeedSpread:
    """One model configuration (kind and size) trained with several seeds, each seed on its
    own split: the spread of its test headline metric."""

    config: str
    model: str
    size: str | None
    seeds: tuple[int, ...]
    runs: tuple[int, ...]
    metric: str
    mean: float
    sd: float
    low: float
    high: float


@dataclass(frozen=True)
class LeaderboardComparison:
    dataset_id: int
    target: str
    seed: int  # the split both runs were trained and tested on
    task: str
    transformer_run: int
    transformer: str
    baseline_run: int
    baseline: str
    picked_on: str  # "validation rows" or "test rows"
    metric: str
    higher_is_better: bool
    transformer_value: float
    baseline_value: float
    difference: float  # transformer - baseline, in the metric's units
    ci_low: float
    ci_high: float
    p_value: float
    method: str  # "delong" or "paired_bootstrap"
    rows: int
    n_boot: int | None
    outcome: str  # "transformer_better", "baseline_better" or "not_distinguishable"
    sentence: str
    spreads: tuple[SeedSpread, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def method_label(self) -> str:
        return METHOD_WORDS[self.method]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["spreads"] = [asdict(s) for s in self.spreads]
        out["notes"] = list(self.notes)
        out["method_label"] = self.method_label
        return out


def _full_runs(dataset_id: int, target: str) -> list[RunInfo]:
    return [
        r
        for r in list_runs(dataset_id)
        if r.status == "succeeded"
        and r.target == target
        and r.train_fraction == 1.0
        and r.metrics.headline
    ]


def _validation_score(run: RunInfo, metric: str) -> float | None:
    stored = validation_predictions(run.id)
    if stored is None or stored.proba is None or run.task not in ("binary", "multiclass"):
        return None
    value = classification_metrics(
        run.task, np.asarray(stored.y), np.asarray(stored.proba, dtype=float)
    ).get(metric)
    return None if value is None or not np.isfinite(value) else float(value)


def _pick_best(runs: list[RunInfo], metric: str, on_validation: bool) -> RunInfo:
    sign = 1.0 if higher_is_better(metric) else -1.0

    def score(run: RunInfo) -> tuple[float, int]:
        value = _validation_score(run, metric) if on_validation else run.metrics.values.get(metric)
        return (sign * float(value) if value is not None else -np.inf, run.id)

    return max(runs, key=score)


def seed_spreads(dataset_id: int, target: str) -> tuple[SeedSpread, ...]:
    """Per model kind and size run with two or more seeds (the latest run of each seed):
    mean, sample sd, min and max of the test headline metric."""
    groups: dict[tuple[str, str | None], dict[int, RunInfo]] = {}
    for run in _full_runs(dataset_id, target):  # newest first
        kind = registry.get_kind(run.model)
        if kind.combines_runs:
            continue
        size = run.size if kind.sizes() else None
        groups.setdefault((run.model, size), {}).setdefault(run.seed, run)
    out = []
    for (model, size), by_seed in groups.items():
        runs = sorted(by_seed.values(), key=lambda r: r.seed)
        metric = runs[0].metrics.headline or ""
        values = np.array([r.metrics.values.get(metric, np.nan) for r in runs], dtype=float)
        if len(runs) < 2 or not np.isfinite(values).all():
            continue
        label = runs[0].label.split(" ", 1)[1]  # without the "#id"
        out.append(
            SeedSpread(
                config=label,
                model=model,
                size=size,
                seeds=tuple(r.seed for r in runs),
                runs=tuple(r.id for r in runs),
                metric=metric,
                mean=float(values.mean()),
                sd=float(values.std(ddof=1)),
                low=float(values.min()),
                high=float(values.max()),
            )
        )
    return tuple(sorted(out, key=lambda s: s.config))


def _test(metric: str, task: str, a: RunInfo, b: RunInfo) -> PairedDifference:
    stored_a, stored_b = holdout_predictions(a.id), holdout_predictions(b.id)
    y_a, y_b = np.asarray(stored_a.y), np.asarray(stored_b.y)
    if y_a.size == 0 or y_a.shape != y_b.shape or not np.array_equal(y_a, y_b):
        raise ValueError(
            f"Runs #{a.id} and #{b.id} do not have stored predictions for the same test rows; "
            "a paired test needs one split (same dataset, target and seed)."
        )
    key = "prediction" if task == "regression" else "proba"
    pred_a = np.asarray(getattr(stored_a, key), dtype=float)
    pred_b = np.asarray(getattr(stored_b, key), dtype=float)
    if task == "binary" and metric == "roc_auc":
        return delong_test(y_a, pred_a, pred_b)
    return paired_bootstrap_test(metric, y_a, pred_a, pred_b, n_boot=PAIRED_BOOT, seed=0)


def _fmt(metric: str, value: float) -> str:
    return f"{value:,.4g}" if metric in ("rmse", "mae") else f"{value:.3f}"


def _sentence(c: dict[str, Any]) -> tuple[str, str]:
    metric, words = c["metric"], METRIC_WORDS.get(c["metric"], c["metric"])
    low, high, diff = c["ci_low"], c["ci_high"], c["difference"]
    better = diff > 0 if c["higher"] else diff < 0
    if low > 0 or high < 0:
        outcome = "transformer_better" if better else "baseline_better"
    else:
        outcome = "not_distinguishable"
    direction = "higher" if diff > 0 else "lower"
    first = (
        f"On the same {c['rows']:,} test rows, {c['transformer']} has {words} "
        f"{_fmt(metric, c['a'])} and {c['baseline']} {_fmt(metric, c['b'])}: "
        f"{_fmt(metric, abs(diff))} {direction} (95% interval {_fmt(metric, low)} to "
        f"{_fmt(metric, high)}, p = {c['p']:.3g})."
    )
    if outcome == "not_distinguishable":
        second = "The interval includes no difference: on these rows the two cannot be told apart."
    else:
        winner = "transformer" if outcome == "transformer_better" else "baseline"
        second = f"The interval excludes no difference: the {winner} is better on these rows."
    return outcome, f"{first} {second}"


def leaderboard_comparison(
    dataset_id: int, target: str, seed: int | None = None
) -> LeaderboardComparison | None:
    """The best transformer against the best baseline of ``dataset_id`` / ``target`` on one
    split (``seed``; None: the latest split that has both), with a paired test and the seeds'
    spread; None when no split has a finished transformer and baseline."""
    runs = _full_runs(dataset_id, target)
    splits = [
        r.seed
        for r in runs  # newest first
        if any(o.seed == r.seed and family(o) == "transformer" for o in runs)
        and any(o.seed == r.seed and family(o) == "baseline" for o in runs)
    ]
    if seed is None:
        if not splits:
            return None
        seed = splits[0]
    on_split = [r for r in runs if r.seed == seed]
    transformers = [r for r in on_split if family(r) == "transformer"]
    baselines = [r for r in on_split if family(r) == "baseline"]
    if not transformers or not baselines:
        return None
    task = on_split[0].task or ""
    metric = on_split[0].metrics.headline or ""
    notes = []
    on_validation = all(_validation_score(r, metric) is not None for r in transformers + baselines)
    if not on_validation:
        notes.append(
            "The best of each family was picked on the test rows (no validation predictions "
            "are stored for these runs), which flatters the winner a little."
        )
    transformer = _pick_best(transformers, metric, on_validation)
    baseline = _pick_best(baselines, metric, on_validation)
    tested = _test(metric, task, transformer, baseline)
    if task == "binary":
        positives = int(np.sum(holdout_predictions(transformer.id).y))
        if positives < 30:
            notes.append(
                f"Only {positives} positive test rows: the interval and p-value are rough."
            )
    outcome, sentence = _sentence(
        {
            "metric": metric,
            "higher": higher_is_better(metric),
            "rows": tested.rows,
            "transformer": transformer.label,
            "baseline": baseline.label,
            "a": tested.a,
            "b": tested.b,
            "difference": tested.difference,
            "ci_low": tested.ci_low,
            "ci_high": tested.ci_high,
            "p": tested.p_value,
        }
    )
    return LeaderboardComparison(
        dataset_id=dataset_id,
        target=target,
        seed=int(seed),
        task=task,
        transformer_run=transformer.id,
        transformer=transformer.label,
        baseline_run=baseline.id,
        baseline=baseline.label,
        picked_on="validation rows" if on_validation else "test rows",
        metric=metric,
        higher_is_better=higher_is_better(metric),
        transformer_value=tested.a,
        baseline_value=tested.b,
        difference=tested.difference,
        ci_low=tested.ci_low,
        ci_high=tested.ci_high,
        p_value=tested.p_value,
        method=tested.method,
        rows=tested.rows,
        n_boot=tested.n_boot,
        outcome=outcome,
        sentence=sentence,
        spreads=seed_spreads(dataset_id, target),
        notes=tuple(notes),
    )
