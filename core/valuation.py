"""What a trained model is worth for a use case: the glue between runs and the pure maths.

``value_run`` joins a run's predictions (test part, or a labelled file), a use case's payoff
and volumes, and the run's measured compute priced on a chosen device, into one
``Valuation``: best threshold, value per decision, monthly value against the status quo,
monthly cost, ROI / payback / NPV. Everything is recomputed from plain inputs, so the what-if
controls can change any assumption without retraining.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from core import economics as eco
from core.training import (
    RunInfo,
    compute_validation_predictions,
    get_run,
    holdout_predictions,
    list_runs,
    load_run_model,
    predict_frame,
    validation_predictions,
)
from core.usecases import UseCase, get_use_case

BASELINE_KINDS = ("logreg", "lightgbm", "tfidf-logreg")
CPU_DEVICE = "cpu-2core"
# Decisions explained per month, as a share of the volume (reason codes on flagged cases).
DEFAULT_EXPLAIN_SHARE = 0.0


@dataclass(frozen=True)
class Outcomes:
    """Labels (1 = positive class), scores P(positive) and optional per-row money."""

    y: np.ndarray
    score: np.ndarray
    money: np.ndarray | None
    source: str


@dataclass(frozen=True)
class Valuation:
    run_id: int
    use_case: str
    device: str
    best_threshold: float
    flagged_share: float
    value_per_decision: float
    status_quo_value_per_decision: float
    monthly_value: float
    monthly_compute_cost: float
    monthly_people_cost: float
    monthly_cost: float
    one_off_cost: float
    returns: eco.RoiResult  # roi, payback, NPV over the use case's horizon
    cost: dict
    money_weighted: bool
    capacity_limited: bool
    outcomes_source: str

    @property
    def roi(self) -> float | None:
        return self.returns.roi

    @property
    def payback_months(self) -> float | None:
        return self.returns.payback_months

    @property
    def npv(self) -> float:
        return self.returns.npv

    @property
    def total_cost(self) -> float:
        return self.returns.total_cost

    @property
    def cumulative_net(self) -> tuple[float, ...]:
        return self.returns.cumulative_net

    def to_dict(self) -> dict[str, Any]:
        """Flat and JSON-safe: the ROI figures sit beside the others."""
        flat = asdict(self)
        flat.update(flat.pop("returns"))
        return flat


# ---- inputs ---------------------------------------------------------------------------------


def run_outcomes(run: RunInfo) -> Outcomes:
    """The run's stored test-part predictions."""
    if run.task != "binary":
        raise ValueError(
            f"ROI needs a binary model (a decision to flag or not); run #{run.id} is {run.task}."
        )
    stored = holdout_predictions(run.id)
    if "proba" not in stored:
        raise ValueError(f"Run #{run.id} has no stored test predictions.")
    money = np.asarray(stored["money"], dtype=float) if "money" in stored else None
    return Outcomes(
        np.asarray(stored["y"], dtype=int),
        np.asarray(stored["proba"], dtype=float),
        money,
        "test part",
    )


def labelled_outcomes(
    run: RunInfo, frame: pd.DataFrame, money_column: str | None = None, model: Any = None
) -> Outcomes:
    """Score labelled rows with the run's model (rows without a label are left out)."""
    if run.task != "binary":
        raise ValueError(f"ROI needs a binary model; run #{run.id} is {run.task}.")
    if run.target not in frame.columns:
        raise ValueError(f"The labelled file has no {run.target!r} column (the run's target).")
    labels = frame[run.target].astype("string").str.strip()
    known = labels.isin(list(run.classes))
    unknown = labels.notna() & ~known
    if unknown.any():
        raise ValueError(
            f"The labelled file has {int(unknown.sum())} value(s) of {run.target!r} that are "
            f"not one of the classes {list(run.classes)}, e.g. {labels[unknown].iloc[0]!r}."
        )
    rows = frame.loc[known.to_numpy()].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"The labelled file has no rows with a {run.target!r} value.")
    model = model if model is not None else load_run_model(run.id)
    score = np.asarray(predict_frame(model, rows), dtype=float)
    y = (labels[known].to_numpy() == run.positive_class).astype(int)
    money = None
    if money_column and money_column in rows.columns:
        money = pd.to_numeric(rows[money_column], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    return Outcomes(y, score, money, "labelled file")


def device_for_run(run: RunInfo) -> eco.DeviceSpec:
    """The catalog entry that matches the device a run was measured on."""
    name = (run.device_name or "").upper()
    if run.device == "cuda":
        for key in ("H200", "H100", "A100", "A10G", "L4", "T4"):
            if key in name:
                return next(d for k, d in eco.DEVICE_CATALOG.items() if k.startswith(key))
    return eco.DEVICE_CATALOG[CPU_DEVICE]


def _seconds_on(
    target: eco.DeviceSpec, measured: eco.DeviceSpec, seconds: float, flops: float | None
) -> float:
    """Scale a measured time to another device by FLOPs; models without FLOPs (trees) stay
    on the measured time, since they do not run on accelerators here."""
    if not flops or seconds <= 0 or target.name == measured.name:
        return seconds
    try:
        return eco.estimate_seconds_on(target, seconds, measured, flops)
    except ValueError:
        return seconds


def compute_cost_for(
    run: RunInfo,
    use_case: UseCase,
    device: eco.DeviceSpec,
    explain_share: float = DEFAULT_EXPLAIN_SHARE,
    explain_ms_per_row: float | None = None,
) -> eco.CostBreakdown:
    """Monthly compute $ from the run's measured training seconds and inference rows/s."""
    measured = device_for_run(run)
    if run.flops_per_row is None or run.model in BASELINE_KINDS:
        device = eco.DEVICE_CATALOG[CPU_DEVICE]  # cheap baselines run on a CPU
    train_seconds = run.train_seconds or 0.0
    rows_seen = (run.train_rows_per_s or 0.0) * train_seconds
    train_flops = 3.0 * (run.flops_per_row or 0.0) * rows_seen  # forward + backward ~ 3x forward
    train_s = _seconds_on(device, measured, train_seconds, train_flops)
    speed = run.infer_rows_per_s or 1.0
    one_second_flops = (run.flops_per_row or 0.0) * speed
    infer_scale = _seconds_on(device, measured, 1.0, one_second_flops) if one_second_flops else 1.0
    explain_ms = explain_ms_per_row if explain_ms_per_row is not None else 0.0
    return eco.compute_cost(
        train_seconds=train_s,
        retrains_per_year=use_case.running_costs.retrains_per_year,
        rows_per_month=use_case.monthly_volume,
        inference_rows_per_second=speed / max(infer_scale, 1e-12),
        explain_rows_per_month=use_case.monthly_volume * explain_share,
        explain_ms_per_row=explain_ms * infer_scale,
        device=device,
    )


def validation_outcomes(run: RunInfo) -> Outcomes:
    """The run's validation-part predictions: the rows a threshold is chosen on."""
    if run.task != "binary":
        raise ValueError(f"A decision threshold needs a binary model; run #{run.id} is {run.task}.")
    stored = validation_predictions(run.id)
    if not stored or "proba" not in stored:
        stored = compute_validation_predictions(run.id)
    money = np.asarray(stored["money"], dtype=float) if "money" in stored else None
    return Outcomes(
        np.asarray(stored["y"], dtype=int),
        np.asarray(stored["proba"], dtype=float),
        money,
        "validation part",
    )


# ---- the valuation --------------------------------------------------------------------------


def _payoff_terms(use_case: UseCase, outcomes: Outcomes, use_money: bool):
    """(row weights, payoff matrix, fixed part): money-weighted when the use case and rows
    allow it, else the per-decision payoff."""
    weights = outcomes.money if (use_money and use_case.money_multipliers is not None) else None
    payoff = use_case.money_multipliers if weights is not None else use_case.payoff
    fixed = use_case.money_fixed if weights is not None else None
    return weights, payoff, fixed


def choose_operating_point(
    use_case: UseCase, outcomes: Outcomes, use_money: bool = True
) -> tuple[dict, bool]:
    """The value-maximising threshold on ``outcomes`` (within the review capacity, if the
    use case has one): (the profit-curve row as a dict, whether capacity limited it)."""
    weights, payoff, fixed = _payoff_terms(use_case, outcomes, use_money)
    if use_case.review_capacity and use_case.monthly_volume > 0:
        share = min(1.0, use_case.review_capacity / use_case.monthly_volume)
        best = eco.best_under_capacity(
            outcomes.y, outcomes.score, payoff, capacity_share=share, weights=weights, fixed=fixed
        )
        return best, share < 1.0
    curve = eco.profit_curve(outcomes.y, outcomes.score, payoff, weights, fixed=fixed)
    return eco.best_threshold(curve), False


def value_run(
    run: RunInfo,
    use_case: UseCase,
    outcomes: Outcomes,
    *,
    device: eco.DeviceSpec | None = None,
    use_money: bool = True,
    explain_share: float = DEFAULT_EXPLAIN_SHARE,
    explain_ms_per_row: float | None = None,
) -> Valuation:
    weights, payoff, fixed = _payoff_terms(use_case, outcomes, use_money)
    best, capacity_limited = choose_operating_point(use_case, outcomes, use_money)
    status_quo = eco.status_quo_value(
        outcomes.y,
        payoff,
        use_case.status_quo.policy,
        weights=weights,
        manual_cost=use_case.status_quo.cost_per_decision,
        fixed=fixed,
    )
    monthly = eco.monthly_value(best["value_per_decision"], status_quo, use_case.monthly_volume)
    device = device or eco.DEVICE_CATALOG[CPU_DEVICE]
    cost = compute_cost_for(run, use_case, device, explain_share, explain_ms_per_row)
    people = use_case.running_costs.per_month
    monthly_cost = cost.total_per_month + people
    one_off = use_case.one_off_costs.total + cost.first_training
    result = eco.roi(
        monthly, monthly_cost, one_off, use_case.horizon_months, use_case.discount_rate_per_year
    )
    return Valuation(
        run_id=run.id,
        use_case=use_case.key,
        device=cost.device,
        best_threshold=float(best["threshold"]),
        flagged_share=float(best["flagged_share"]),
        value_per_decision=float(best["value_per_decision"]),
        status_quo_value_per_decision=float(status_quo),
        monthly_value=float(monthly),
        monthly_compute_cost=float(cost.total_per_month),
        monthly_people_cost=float(people),
        monthly_cost=float(monthly_cost),
        one_off_cost=float(one_off),
        returns=result,
        cost=asdict(cost),
        money_weighted=weights is not None,
        capacity_limited=capacity_limited,
        outcomes_source=outcomes.source,
    )


def profit_curve_for(use_case: UseCase, outcomes: Outcomes, use_money: bool = True) -> pd.DataFrame:
    weights = outcomes.money if (use_money and use_case.money_multipliers is not None) else None
    payoff = use_case.money_multipliers if weights is not None else use_case.payoff
    fixed = use_case.money_fixed if weights is not None else None
    return eco.profit_curve(outcomes.y, outcomes.score, payoff, weights, fixed=fixed)


def apply_assumptions(use_case: UseCase, assumptions: dict[str, Any]) -> tuple[UseCase, dict]:
    """Split a user's assumptions into use-case overrides and valuation options.

    An explicit ``payoff`` is a per-decision matrix, so it switches money weighting off unless
    ``use_money_column`` is given too.
    """
    options_keys = ("device", "use_money_column", "explain_share", "dollars_per_hour")
    overrides = {k: v for k, v in assumptions.items() if k not in options_keys}
    options = {k: assumptions[k] for k in options_keys if k in assumptions}
    if "payoff" in overrides and "use_money_column" not in options:
        options["use_money_column"] = False
    if isinstance(overrides.get("payoff"), dict):
        unknown = set(overrides["payoff"]) - {"tp", "fp", "tn", "fn"}
        if unknown:
            raise ValueError(f"payoff keys must be tp, fp, tn, fn; got {sorted(unknown)}.")
    return (use_case.with_overrides(**overrides) if overrides else use_case), options


def device_from_options(options: dict) -> eco.DeviceSpec:
    name = options.get("device", CPU_DEVICE)
    if name not in eco.DEVICE_CATALOG:
        raise ValueError(f"Unknown device {name!r}; choose one of {', '.join(eco.DEVICE_CATALOG)}.")
    device = eco.DEVICE_CATALOG[name]
    if "dollars_per_hour" in options:
        device = replace(device, dollars_per_hour=float(options["dollars_per_hour"]))
    return device


def compare_runs(
    dataset_id: int,
    use_case: UseCase,
    *,
    target: str,
    device: eco.DeviceSpec | None = None,
    use_money: bool = True,
) -> pd.DataFrame:
    """Every succeeded binary run of a dataset and target, valued the same way; Pareto front
    on monthly cost vs headline metric and vs monthly net value; incremental ROI of each run
    over the cheapest baseline."""
    rows = []
    valuations = {}
    for run in list_runs(dataset_id):
        if run.status != "succeeded" or run.task != "binary" or run.target != target:
            continue
        if run.train_fraction < 1.0:
            continue  # learning-curve points are not candidates
        valuation = value_run(run, use_case, run_outcomes(run), device=device, use_money=use_money)
        valuations[run.id] = (run, valuation)
    if not valuations:
        return pd.DataFrame()
    baselines = [v for r, v in valuations.values() if r.model in BASELINE_KINDS]
    cheapest = min(baselines, key=lambda v: v.total_cost) if baselines else None
    for run, v in valuations.values():
        incremental = None
        if cheapest is not None and v.run_id != cheapest.run_id:
            incremental = _incremental(v, cheapest)
        rows.append(
            {
                "run_id": run.id,
                "run": run.label,
                "model": run.model,
                "metric": run.headline[1],
                "monthly_compute_cost": v.monthly_compute_cost,
                "monthly_cost": v.monthly_cost,
                "monthly_value": v.monthly_value,
                "monthly_net": v.monthly_value - v.monthly_cost,
                "roi": v.roi,
                "npv": v.npv,
                "payback_months": v.payback_months,
                "best_threshold": v.best_threshold,
                "incremental_roi_vs_baseline": incremental,
                "baseline_run_id": cheapest.run_id if cheapest else None,
            }
        )
    frame = pd.DataFrame(rows)
    frame["pareto_accuracy"] = eco.pareto_front(frame["monthly_cost"], frame["metric"].fillna(0))
    frame["pareto_profit"] = eco.pareto_front(frame["monthly_cost"], frame["monthly_net"])
    return frame


def _incremental(model: Valuation, baseline: Valuation) -> float | None:
    return eco.incremental_roi(model.returns, baseline.returns)


def incremental_vs_cheapest_baseline(
    run: RunInfo, use_case: UseCase, valuation: Valuation, device, use_money
) -> tuple[float | None, int | None]:
    frame = compare_runs(
        run.dataset_id, use_case, target=run.target, device=device, use_money=use_money
    )
    if frame.empty:
        return None, None
    row = frame.loc[frame["run_id"] == run.id]
    if row.empty or pd.isna(row["baseline_run_id"].iloc[0]):
        return None, None
    value = row["incremental_roi_vs_baseline"].iloc[0]
    return (None if pd.isna(value) else float(value)), int(row["baseline_run_id"].iloc[0])


def sensitivity_for(
    run: RunInfo,
    use_case: UseCase,
    outcomes: Outcomes,
    device: eco.DeviceSpec,
    use_money: bool,
    delta: float = 0.2,
) -> pd.DataFrame:
    """Tornado data: NPV when each numeric assumption moves by ±delta."""
    base = _numeric_assumptions(use_case, device)

    def evaluate(values: dict[str, float]) -> float:
        edited, dev = _rebuild(use_case, device, values)
        return value_run(run, edited, outcomes, device=dev, use_money=use_money).npv

    return eco.sensitivity(evaluate, base, delta)


def monte_carlo_for(
    run: RunInfo,
    use_case: UseCase,
    outcomes: Outcomes,
    device: eco.DeviceSpec,
    use_money: bool,
    spread: float = 0.3,
    n: int = 300,
    seed: int = 0,
) -> dict:
    """P(NPV > 0) when volume, payoff cells and costs each vary uniformly by ±spread."""
    base = _numeric_assumptions(use_case, device)
    ranges = {
        k: tuple(sorted((v * (1 - spread), v * (1 + spread)))) for k, v in base.items() if v != 0
    }

    def evaluate(values: dict[str, float]) -> float:
        edited, dev = _rebuild(use_case, device, {**base, **values})
        return value_run(run, edited, outcomes, device=dev, use_money=use_money).npv

    return eco.monte_carlo(evaluate, ranges, n=n, seed=seed)


def _numeric_assumptions(use_case: UseCase, device: eco.DeviceSpec) -> dict[str, float]:
    keys = ["monthly_volume", "one_off_costs.integration", "running_costs.maintenance_per_year"]
    keys += [f"payoff.{c}" for c in ("tp", "fp", "tn", "fn")]
    if use_case.money_multipliers is not None:
        keys += [f"money_multipliers.{c}" for c in ("tp", "fp", "tn", "fn")]
    flat = use_case.assumptions()
    values = {k: float(flat[k]) for k in keys if flat.get(k) is not None}
    values["device.dollars_per_hour"] = device.dollars_per_hour
    return values


def _rebuild(
    use_case: UseCase, device: eco.DeviceSpec, values: dict[str, float]
) -> tuple[UseCase, eco.DeviceSpec]:
    changes = {k: v for k, v in values.items() if not k.startswith("device.")}
    if "monthly_volume" in changes:
        changes["monthly_volume"] = max(0.0, changes["monthly_volume"])
    for key in ("one_off_costs.integration", "running_costs.maintenance_per_year"):
        if key in changes:
            changes[key] = max(0.0, changes[key])
    edited = use_case.with_overrides(**changes)
    price = max(0.0, values.get("device.dollars_per_hour", device.dollars_per_hour))
    return edited, replace(device, dollars_per_hour=price)


def default_use_case_for(run: RunInfo) -> UseCase:
    from core.datasets import get_dataset

    key = get_dataset(run.dataset_id).use_case or "credit_scoring"
    return get_use_case(key)


def roi_summary(
    run_id: int,
    use_case_key: str,
    *,
    frame: pd.DataFrame | None = None,
    assumptions: dict | None = None,
) -> dict:
    """The CLI's ``roi`` answer."""
    from core.datasets import get_dataset

    run = get_run(run_id)
    use_case, options = apply_assumptions(get_use_case(use_case_key), assumptions or {})
    device = device_from_options(options)
    use_money = bool(options.get("use_money_column", True))
    money_column = get_dataset(run.dataset_id).roles.money_column
    outcomes = run_outcomes(run) if frame is None else labelled_outcomes(run, frame, money_column)
    valuation = value_run(
        run,
        use_case,
        outcomes,
        device=device,
        use_money=use_money,
        explain_share=float(options.get("explain_share", DEFAULT_EXPLAIN_SHARE)),
    )
    incremental, baseline_id = incremental_vs_cheapest_baseline(
        run, use_case, valuation, device, use_money
    )
    out = valuation.to_dict()
    out.pop("cumulative_net")
    out.update(
        rows=int(len(outcomes.y)),
        incremental_roi_vs_baseline=incremental,
        baseline_run_id=baseline_id,
        payoff=(
            use_case.money_multipliers if valuation.money_weighted else use_case.payoff
        ).to_dict(),
        monthly_volume=use_case.monthly_volume,
    )
    return out


def learning_curve_points(run: RunInfo) -> pd.DataFrame:
    """Runs of the same dataset, target, model and size trained on different shares of rows."""
    rows = []
    for other in list_runs(run.dataset_id):
        if (
            other.status == "succeeded"
            and other.target == run.target
            and other.model == run.model
            and other.size == run.size
            and other.seed == run.seed
        ):
            rows.append(
                {"run_id": other.id, "fraction": other.train_fraction, "metric": other.headline[1]}
            )
    frame = pd.DataFrame(rows, columns=["run_id", "fraction", "metric"])
    return frame.sort_values(["fraction", "run_id"]).drop_duplicates("fraction", keep="last")


def value_of_twice_the_data(
    run: RunInfo, points: pd.DataFrame, train_rows_full: int, monthly_value_now: float
) -> dict:
    """Fit metric = a - b n^-c to the learning-curve points; the $ of twice the rows."""
    if len(points) < 3:
        raise ValueError("Need runs on at least 3 shares of the rows (e.g. 25%, 50%, 100%).")
    sizes = points["fraction"].to_numpy(dtype=float) * train_rows_full
    params = eco.fit_learning_curve(sizes, points["metric"].to_numpy(dtype=float))
    auc_now = float(points.loc[points["fraction"] == points["fraction"].max(), "metric"].iloc[0])
    result = eco.value_of_more_data(params, float(train_rows_full), auc_now, monthly_value_now)
    result.update(a=params.a, b=params.b, c=params.c, fitted=params.fitted, reason=params.reason)
    return result
