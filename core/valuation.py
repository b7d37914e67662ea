"""What a trained model is worth for a use case: the one valuation path.

``value_run`` joins a run's predictions (test part, or a labelled file), a use case's payoff
and volumes, the run's *operating threshold* (chosen on validation rows or set by the user,
never on the rows valued here) and the run's measured compute priced on a chosen device,
into one ``Valuation``. The page, the CLI, the tornado, the Monte Carlo, the comparison table,
the verdict (core/verdict.py) and the report all call it.

Formulas (documented in README "How a run is valued"):

- flagged_i = score_i >= threshold; each row falls in one cell c_i of tp / fp / tn / fn.
- value_i = payoff[c_i] (per-decision payoff), or, money-weighted (the use case has money
  multipliers and the dataset a money column), value_i = multiplier[c_i] x money_i + fixed[c_i].
- value_per_decision = mean_i value_i (the same number economics.profit_curve gives at that
  threshold, divided by the rows).
- status quo per decision: the same sum for today's policy (approve all = flag none, flag all,
  a perfect manual review minus its cost per decision, or a column holding today's decision).
- monthly_value = (value_per_decision - status_quo_per_decision) x monthly_volume.
- monthly_cost = compute (retraining amortised, scoring, explaining) + people (maintenance +
  retrains x cost per retrain) / 12; one-off = integration + labelling + the first training.
- roi / payback / npv: economics.roi over the use case's horizon and discount rate.
- "hindsight": the best threshold of the evaluation rows themselves, shown apart; it is an
  in-sample optimum and always flatters the model.

Depends on core.runs, core.training (validation predictions, learning-curve runs),
core.kinds.registry (a baseline is priced on a CPU), core.economics and core.usecases.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from core import audit
from core import economics as eco
from core.access import Actor
from core.datasets import get_dataset
from core.db import session_factory
from core.jobs import launch_worker_for
from core.kinds.registry import get_kind
from core.runs import (
    RunInfo,
    holdout_predictions,
    list_runs,
    load_run_model,
    validation_predictions,
)
from core.splits import part_sizes
from core.training import compute_validation_predictions, create_run
from core.usecases import UseCase, get_use_case

CPU_DEVICE = "cpu-2core"
# Explanations per month when the analyst gives none, as a share of the monthly volume.
DEFAULT_EXPLAIN_SHARE = 0.1
EXPLAIN_SHARE_SOURCE = (
    "10% of decisions get reason codes (declines, referrals, disputes) — assumption, edit"
)
# Guardrails: said on the page, the CLI and the report when tripped.
MIN_POSITIVES = 30
MAX_FLAGGED_SHARE = 0.5
NEGLIGIBLE_COMPUTE_SHARE = 0.001


@dataclass(frozen=True)
class Outcomes:
    """Labels (1 = positive class), scores P(positive) and optional per-row money."""

    y: np.ndarray
    score: np.ndarray
    money: np.ndarray | None
    source: str


# ---- inputs ---------------------------------------------------------------------------------


def run_outcomes(run: RunInfo) -> Outcomes:
    """The run's stored test-part predictions."""
    if run.task != "binary":
        raise ValueError(
            f"ROI needs a binary model (a decision to flag or not); run #{run.id} is {run.task}."
        )
    stored = holdout_predictions(run.id)
    if stored.proba is None:
        raise ValueError(f"Run #{run.id} has no stored test predictions.")
    money = np.asarray(stored.money, dtype=float) if stored.money is not None else None
    return Outcomes(
        np.asarray(stored.y, dtype=int),
        np.asarray(stored.proba, dtype=float),
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
    score = np.asarray(model.predict_frame(rows), dtype=float)
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
    explanations_per_month: float = 0.0,
    explain_ms_per_row: float | None = None,
) -> eco.CostBreakdown:
    """Monthly compute $ from the run's measured training seconds and inference rows/s."""
    measured = device_for_run(run)
    cheap = run.flops_per_row is None or get_kind(run.model).priced_on_cpu
    if cheap and device.name != CPU_DEVICE:
        device = eco.DEVICE_CATALOG[CPU_DEVICE]  # cheap baselines run on a CPU (at its price)
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
        explain_rows_per_month=explanations_per_month,
        explain_ms_per_row=explain_ms * infer_scale,
        device=device,
    )


def validation_outcomes(run: RunInfo) -> Outcomes:
    """The run's validation-part predictions: the rows a threshold is chosen on."""
    if run.task != "binary":
        raise ValueError(f"A decision threshold needs a binary model; run #{run.id} is {run.task}.")
    stored = validation_predictions(run.id)
    if stored is None or stored.proba is None:
        stored = compute_validation_predictions(run.id)
    money = np.asarray(stored.money, dtype=float) if stored.money is not None else None
    return Outcomes(
        np.asarray(stored.y, dtype=int),
        np.asarray(stored.proba, dtype=float),
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


def row_values(
    use_case: UseCase, outcomes: Outcomes, flags: np.ndarray, use_money: bool = True
) -> np.ndarray:
    """Money each decision brings, row by row (its mean is the value per decision).

    value_i = payoff[cell_i], or money-weighted: multiplier[cell_i] x money_i + fixed[cell_i].
    """
    weights, payoff, fixed = _payoff_terms(use_case, outcomes, use_money)
    y = np.asarray(outcomes.y, dtype=int)
    flags = np.asarray(flags, dtype=bool)
    if flags.shape != y.shape:
        raise ValueError(f"flags has {flags.size} rows but the outcomes have {y.size}.")
    cells = [flags & (y == 1), flags & (y == 0), ~flags & (y == 0), ~flags & (y == 1)]
    names = ("tp", "fp", "tn", "fn")
    values = np.select(cells, [getattr(payoff, c) for c in names], 0.0)
    if weights is not None:
        values = values * np.asarray(weights, dtype=float)
        values = values + np.select(cells, [getattr(fixed, c) for c in names], 0.0)
    return values.astype(float)


def model_row_values(
    use_case: UseCase, outcomes: Outcomes, threshold: float, use_money: bool = True
) -> np.ndarray:
    """Row values of the rule "flag when P(positive) >= threshold"."""
    return row_values(use_case, outcomes, outcomes.score >= float(threshold), use_money)


def status_quo_row_values(
    use_case: UseCase,
    outcomes: Outcomes,
    use_money: bool = True,
    status_quo_flags: np.ndarray | None = None,
) -> np.ndarray:
    """Row values of today's policy on the same rows: approve all (flag none), flag all, a
    perfect manual review minus its cost per decision, or today's decisions given as flags
    (a column of the data; policy "rule")."""
    policy = use_case.status_quo.policy
    y = np.asarray(outcomes.y, dtype=int)
    if status_quo_flags is not None:
        flags = np.asarray(status_quo_flags, dtype=bool)
    elif policy == "flag_all":
        flags = np.ones(y.size, dtype=bool)
    elif policy == "manual_review":
        flags = y == 1
    elif policy == "rule":
        raise ValueError(
            "The status quo is 'rule' but no column of today's decisions was given "
            "(assumption status_quo_column)."
        )
    else:
        flags = np.zeros(y.size, dtype=bool)
    values = row_values(use_case, outcomes, flags, use_money)
    if policy == "manual_review" and status_quo_flags is None:
        values = values - use_case.status_quo.cost_per_decision
    return values


@dataclass(frozen=True)
class Valuation:
    run_id: int
    use_case: str
    device: str
    threshold: float  # the operating threshold the run is valued at
    threshold_chosen_on: str  # "validation" or "user"
    flagged_share: float
    positives: int
    rows: int
    value_per_decision: float
    status_quo_value_per_decision: float
    hindsight_best_threshold: float  # in-sample optimum of these rows: shown apart
    hindsight_value_per_decision: float
    monthly_value: float
    monthly_compute_cost: float
    monthly_people_cost: float
    monthly_cost: float
    one_off_cost: float
    returns: eco.RoiResult  # roi, payback, NPV over the use case's horizon
    cost: dict
    explanations_per_month: float
    explain_ms_per_row: float
    money_weighted: bool
    capacity_limited: bool
    outcomes_source: str
    warnings: tuple[str, ...]

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

    @property
    def best_threshold(self) -> float:
        """Kept for old readers: the hindsight optimum (never the operating point)."""
        return self.hindsight_best_threshold

    def to_dict(self) -> dict[str, Any]:
        """Flat and JSON-safe: the ROI figures sit beside the others."""
        flat = asdict(self)
        flat.update(flat.pop("returns"))
        flat["warnings"] = list(self.warnings)
        flat["best_threshold"] = self.hindsight_best_threshold
        return flat


def guardrail_warnings(
    *,
    status_quo_per_decision: float,
    flagged_share: float,
    positives: int,
    monthly_compute_cost: float,
    monthly_value: float,
    rows_source: str,
) -> list[str]:
    """Plain warnings when a figure should not be trusted as it stands."""
    out = []
    if status_quo_per_decision < 0:
        out.append(
            f"Today's policy loses money (-${-status_quo_per_decision:,.2f} per decision): any "
            "model looks huge against it. Judge the model against the best cheap model (the "
            "verdict), not against today."
        )
    if flagged_share > MAX_FLAGGED_SHARE:
        out.append(
            f"The model flags {flagged_share:.0%} of cases (more than half): check the payoff "
            "matrix and whether the business can act on that many."
        )
    if positives < MIN_POSITIVES:
        out.append(
            f"Only {positives} positive case(s) in the {rows_source}: the value is too noisy "
            f"to trust (need at least {MIN_POSITIVES}); label more rows."
        )
    if abs(monthly_value) > 0 and monthly_compute_cost < NEGLIGIBLE_COMPUTE_SHARE * abs(
        monthly_value
    ):
        out.append(
            f"Compute (${monthly_compute_cost:,.2f} a month) is under 0.1% of the value: the "
            "device choice does not matter here."
        )
    return out


def _hindsight(use_case: UseCase, outcomes: Outcomes, use_money: bool) -> tuple[dict, bool]:
    """The evaluation rows' own optimum over every distinct score (exact, not a grid)."""
    if use_case.review_capacity and use_case.monthly_volume > 0:
        return choose_operating_point(use_case, outcomes, use_money)
    weights, payoff, fixed = _payoff_terms(use_case, outcomes, use_money)
    cuts = np.unique(np.concatenate(([0.0], outcomes.score, [np.nextafter(1.0, 2.0)])))
    curve = eco.profit_curve(outcomes.y, outcomes.score, payoff, weights, cuts, fixed=fixed)
    return eco.best_threshold(curve), False


def value_run(
    run: RunInfo,
    use_case: UseCase,
    outcomes: Outcomes,
    *,
    threshold: float,
    threshold_chosen_on: str = "validation",
    device: eco.DeviceSpec | None = None,
    use_money: bool = True,
    explanations_per_month: float | None = None,
    explain_ms_per_row: float | None = None,
    status_quo_flags: np.ndarray | None = None,
) -> Valuation:
    """The one valuation: the run at ``threshold`` on ``outcomes`` (see the module doc)."""
    weights, _, _ = _payoff_terms(use_case, outcomes, use_money)
    flags = outcomes.score >= float(threshold)
    values = row_values(use_case, outcomes, flags, use_money)
    status_quo = float(
        status_quo_row_values(use_case, outcomes, use_money, status_quo_flags).mean()
    )
    value = float(values.mean())
    hindsight, capacity_limited = _hindsight(use_case, outcomes, use_money)
    monthly = eco.monthly_value(value, status_quo, use_case.monthly_volume)
    device = device or eco.DEVICE_CATALOG[CPU_DEVICE]
    explained = (
        use_case.monthly_volume * DEFAULT_EXPLAIN_SHARE
        if explanations_per_month is None
        else eco.check_number(explanations_per_month, "explanations_per_month", low=0.0)
    )
    ms = float(explain_ms_per_row or 0.0)
    cost = compute_cost_for(run, use_case, device, explained, ms)
    people = use_case.running_costs.per_month
    monthly_cost = cost.total_per_month + people
    one_off = use_case.one_off_costs.total + cost.first_training
    result = eco.roi(
        monthly, monthly_cost, one_off, use_case.horizon_months, use_case.discount_rate_per_year
    )
    positives = int(np.asarray(outcomes.y).sum())
    warnings = guardrail_warnings(
        status_quo_per_decision=status_quo,
        flagged_share=float(flags.mean()),
        positives=positives,
        monthly_compute_cost=cost.total_per_month,
        monthly_value=monthly,
        rows_source=outcomes.source,
    )
    return Valuation(
        run_id=run.id,
        use_case=use_case.key,
        device=cost.device,
        threshold=float(threshold),
        threshold_chosen_on=threshold_chosen_on,
        flagged_share=float(flags.mean()),
        positives=positives,
        rows=int(flags.size),
        value_per_decision=value,
        status_quo_value_per_decision=status_quo,
        hindsight_best_threshold=float(hindsight["threshold"]),
        hindsight_value_per_decision=float(hindsight["value_per_decision"]),
        monthly_value=float(monthly),
        monthly_compute_cost=float(cost.total_per_month),
        monthly_people_cost=float(people),
        monthly_cost=float(monthly_cost),
        one_off_cost=float(one_off),
        returns=result,
        cost=asdict(cost),
        explanations_per_month=float(explained),
        explain_ms_per_row=ms,
        money_weighted=weights is not None,
        capacity_limited=capacity_limited,
        outcomes_source=outcomes.source,
        warnings=tuple(warnings),
    )


def profit_curve_for(use_case: UseCase, outcomes: Outcomes, use_money: bool = True) -> pd.DataFrame:
    weights, payoff, fixed = _payoff_terms(use_case, outcomes, use_money)
    return eco.profit_curve(outcomes.y, outcomes.score, payoff, weights, fixed=fixed)


# Valuation options an assumptions file may hold beside the use-case fields.
OPTION_KEYS = (
    "device",
    "dollars_per_hour",
    "use_money_column",
    "explain_share",
    "explanations_per_month",
    "status_quo_column",
    "status_quo_flag_value",
    "challenger_extra_integration",
    "challenger_extra_maintenance_per_year",
    "n_boot",
)


def apply_assumptions(use_case: UseCase, assumptions: dict[str, Any]) -> tuple[UseCase, dict]:
    """Split a user's assumptions into use-case overrides and valuation options.

    An explicit ``payoff`` is a per-decision matrix, so it switches money weighting off unless
    ``use_money_column`` is given too. ``explain_share`` (old spelling) becomes
    ``explanations_per_month`` = share x monthly volume.
    """
    overrides = {k: v for k, v in assumptions.items() if k not in OPTION_KEYS}
    options = {k: assumptions[k] for k in OPTION_KEYS if k in assumptions}
    if "payoff" in overrides and "use_money_column" not in options:
        options["use_money_column"] = False
    if isinstance(overrides.get("payoff"), dict):
        unknown = set(overrides["payoff"]) - {"tp", "fp", "tn", "fn"}
        if unknown:
            raise ValueError(f"payoff keys must be tp, fp, tn, fn; got {sorted(unknown)}.")
    edited = use_case.with_overrides(**overrides) if overrides else use_case
    if "explain_share" in options and "explanations_per_month" not in options:
        share = eco.check_number(options.pop("explain_share"), "explain_share", low=0.0)
        options["explanations_per_month"] = share * edited.monthly_volume
    for key in (
        "explanations_per_month",
        "challenger_extra_integration",
        "challenger_extra_maintenance_per_year",
    ):
        if key in options:
            options[key] = eco.check_number(options[key], key, low=0.0)
    return edited, options


def device_from_options(options: dict) -> eco.DeviceSpec:
    name = options.get("device", CPU_DEVICE)
    if name not in eco.DEVICE_CATALOG:
        raise ValueError(f"Unknown device {name!r}; choose one of {', '.join(eco.DEVICE_CATALOG)}.")
    device = eco.DEVICE_CATALOG[name]
    if "dollars_per_hour" in options:
        price = eco.check_number(options["dollars_per_hour"], "dollars_per_hour", low=0.0)
        device = replace(device, dollars_per_hour=price)
    return device


def sensitivity_for(
    run: RunInfo,
    use_case: UseCase,
    outcomes: Outcomes,
    device: eco.DeviceSpec,
    use_money: bool,
    *,
    threshold: float,
    explanations_per_month: float | None = None,
    explain_ms_per_row: float | None = None,
    delta: float = 0.2,
) -> pd.DataFrame:
    """Tornado data: NPV (at the operating threshold) when each numeric assumption moves by
    ±delta, explanation cost included."""
    base = _numeric_assumptions(use_case, device, explanations_per_month)
    evaluate = _npv_with(run, use_case, outcomes, device, use_money, threshold, explain_ms_per_row)
    return eco.sensitivity(evaluate, base, delta)


def monte_carlo_for(
    run: RunInfo,
    use_case: UseCase,
    outcomes: Outcomes,
    device: eco.DeviceSpec,
    use_money: bool,
    *,
    threshold: float,
    explanations_per_month: float | None = None,
    explain_ms_per_row: float | None = None,
    spread: float = 0.3,
    n: int = 300,
    seed: int = 0,
) -> dict:
    """P(NPV > 0) when volume, payoff cells and costs each vary uniformly by ±spread."""
    base = _numeric_assumptions(use_case, device, explanations_per_month)
    ranges = {
        k: tuple(sorted((v * (1 - spread), v * (1 + spread)))) for k, v in base.items() if v != 0
    }

    evaluate = _npv_with(run, use_case, outcomes, device, use_money, threshold, explain_ms_per_row)
    return eco.monte_carlo(lambda values: evaluate({**base, **values}), ranges, n=n, seed=seed)


def _npv_with(
    run: RunInfo,
    use_case: UseCase,
    outcomes: Outcomes,
    device: eco.DeviceSpec,
    use_money: bool,
    threshold: float,
    explain_ms_per_row: float | None,
):
    """NPV as a function of edited numeric assumptions (one valuation path for the tornado
    and the Monte Carlo: the run's threshold, explanation cost included)."""

    def evaluate(values: dict[str, float]) -> float:
        edited, dev, explained = _rebuild(use_case, device, values)
        return value_run(
            run,
            edited,
            outcomes,
            threshold=threshold,
            device=dev,
            use_money=use_money,
            explanations_per_month=explained,
            explain_ms_per_row=explain_ms_per_row,
        ).npv

    return evaluate


_NON_NEGATIVE = (
    "monthly_volume",
    "one_off_costs.integration",
    "running_costs.maintenance_per_year",
    "running_costs.cost_per_retrain",
    "running_costs.retrains_per_year",
)


def _numeric_assumptions(
    use_case: UseCase, device: eco.DeviceSpec, explanations_per_month: float | None
) -> dict[str, float]:
    keys = ["monthly_volume", *_NON_NEGATIVE[1:]]
    keys += [f"payoff.{c}" for c in ("tp", "fp", "tn", "fn")]
    if use_case.money_multipliers is not None:
        keys += [f"money_multipliers.{c}" for c in ("tp", "fp", "tn", "fn")]
    flat = use_case.assumptions()
    values = {k: float(flat[k]) for k in keys if flat.get(k) is not None}
    values["device.dollars_per_hour"] = device.dollars_per_hour
    values["explanations_per_month"] = (
        use_case.monthly_volume * DEFAULT_EXPLAIN_SHARE
        if explanations_per_month is None
        else float(explanations_per_month)
    )
    return values


def _rebuild(
    use_case: UseCase, device: eco.DeviceSpec, values: dict[str, float]
) -> tuple[UseCase, eco.DeviceSpec, float]:
    changes = {
        k: v
        for k, v in values.items()
        if not k.startswith("device.") and k != "explanations_per_month"
    }
    for key in _NON_NEGATIVE:
        if key in changes:
            changes[key] = max(0.0, changes[key])
    edited = use_case.with_overrides(**changes)
    price = max(0.0, values.get("device.dollars_per_hour", device.dollars_per_hour))
    explained = max(0.0, values.get("explanations_per_month", 0.0))
    return edited, replace(device, dollars_per_hour=price), explained


def default_use_case_for(run: RunInfo) -> UseCase:
    key = get_dataset(run.dataset_id).use_case or "credit_scoring"
    return get_use_case(key)


# ---- learning curve -------------------------------------------------------------------------

# Shares of the training rows a learning curve trains on (the full run is the last point).
LEARNING_FRACTIONS = (0.1, 0.2, 0.35, 0.5, 0.75)
MIN_LEARNING_SIZES = 5


def train_rows_of(run: RunInfo) -> int:
    """Training rows of the run's stored split (before any learning-curve subsample)."""
    with session_factory().begin() as session:
        sizes = part_sizes(session, run.dataset_id, run.target, run.seed)
    if sizes is None:
        raise ValueError(f"Run #{run.id} has no stored split; train it first.")
    return sizes["train"]


def learning_curve_points(run: RunInfo) -> pd.DataFrame:
    """Runs of the same dataset, target, model, size and split trained on shares of the
    training rows (several subsample seeds per share), plus the full run."""
    rows = []
    for other in list_runs(run.dataset_id):
        if (
            other.status == "succeeded"
            and other.target == run.target
            and other.model == run.model
            and other.size == run.size
            and other.seed == run.seed
            and (other.train_fraction < 1.0 or other.id == run.id)
        ):
            rows.append(
                {
                    "run_id": other.id,
                    "fraction": other.train_fraction,
                    "subsample_seed": other.subsample_seed,
                    "metric": other.headline[1],
                }
            )
    frame = pd.DataFrame(rows, columns=["run_id", "fraction", "subsample_seed", "metric"])
    frame = frame.dropna(subset=["metric"])
    return frame.sort_values(["fraction", "run_id"]).reset_index(drop=True)


def launch_learning_curve(
    run: RunInfo,
    fractions: tuple[float, ...] = LEARNING_FRACTIONS,
    repeats: int = 2,
    *,
    actor: Actor | None = None,
) -> list[int]:
    """Queue the learning-curve runs (``queue_learning_curve``) and start one background
    worker for them. Returns the new run ids."""
    ids = queue_learning_curve(run, fractions, repeats, actor=actor)
    if ids:
        launch_worker_for(ids)
    return ids


def learning_curve_possible(run: RunInfo) -> bool:
    """A learning curve retrains one model on shares of its rows: not a combination of runs."""
    return not get_kind(run.model).combines_runs


def queue_learning_curve(
    run: RunInfo,
    fractions: tuple[float, ...] = LEARNING_FRACTIONS,
    repeats: int = 2,
    *,
    actor: Actor | None = None,
) -> list[int]:
    """Queue the same model on ``fractions`` of the training rows, ``repeats`` subsamples
    each (subsample seeds run.seed, run.seed + 1, ...; same split, so validation and test
    rows stay whole), skipping points that exist. Returns the new run ids."""
    if run.status != "succeeded" or run.train_fraction < 1.0:
        raise ValueError("A learning curve starts from a finished run trained on all its rows.")
    if not learning_curve_possible(run):
        raise ValueError("A learning curve needs a single model, not an ensemble.")
    if not 1 <= int(repeats) <= 5:
        raise ValueError(f"Repeats must be between 1 and 5, got {repeats}.")
    # Authorised before the transaction opens (a refusal is written in one of its own), then
    # every point is queued with its audit event in one transaction: all of them or none.
    actor = audit.authorize(actor, "train", "dataset", run.dataset_id)
    have = {
        (other.train_fraction, other.subsample_seed)
        for other in list_runs(run.dataset_id)
        if other.status in ("queued", "running", "succeeded")
        and (other.target, other.model, other.size, other.seed)
        == (run.target, run.model, run.size, run.seed)
    }
    ids = []
    with session_factory().begin() as session:
        for fraction in fractions:
            for repeat in range(int(repeats)):
                subsample_seed = run.seed + repeat
                if (float(fraction), subsample_seed) in have:
                    continue
                ids.append(
                    create_run(
                        run.dataset_id,
                        run.model,
                        target=run.target,
                        features=list(run.features),
                        positive_class=run.positive_class,
                        size=run.size,
                        seed=run.seed,
                        time_budget_s=run.time_budget_s,
                        train_fraction=float(fraction),
                        subsample_seed=subsample_seed,
                        allow_pii=bool(run.options.allow_pii),
                        actor=actor,
                        session=session,
                    )
                )
    return ids


def value_of_twice_the_data(
    run: RunInfo,
    points: pd.DataFrame,
    train_rows_full: int,
    monthly_value_now: float,
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> dict:
    """Fit metric = a - b n^-c to the mean metric per training size; the $ a month of twice
    the rows, with a 95% interval from resampling the repeated runs within each size.

    Refuses (ValueError) with fewer than 5 distinct sizes: three parameters on three or four
    points fit anything, so an extrapolation from them would be a guess dressed as a figure.
    """
    sizes_seen = points["fraction"].nunique()
    if sizes_seen < MIN_LEARNING_SIZES:
        raise ValueError(
            f"Not extrapolating: {sizes_seen} training size(s), need at least "
            f"{MIN_LEARNING_SIZES} to fit a 3-parameter curve with anything left to check it."
        )
    frame = points.assign(rows=points["fraction"] * train_rows_full)
    auc_now = float(frame.loc[frame["fraction"] == frame["fraction"].max(), "metric"].mean())

    def delta_for(sample: pd.DataFrame) -> tuple[dict, eco.LearningCurve]:
        means = sample.groupby("rows")["metric"].mean()
        params = eco.fit_learning_curve(means.index.to_numpy(float), means.to_numpy(float))
        result = eco.value_of_more_data(params, float(train_rows_full), auc_now, monthly_value_now)
        return result, params

    result, params = delta_for(frame)
    if not params.fitted:
        raise ValueError(f"Not extrapolating: {params.reason}.")
    rng = np.random.default_rng(seed)
    groups = [g for _, g in frame.groupby("rows")]
    repeated = any(len(g) > 1 for g in groups)
    deltas = []
    for _ in range(n_boot if repeated else 0):
        sample = pd.concat([g.iloc[rng.integers(0, len(g), len(g))] for g in groups])
        draw, fit = delta_for(sample)
        deltas.append(draw["delta_monthly_value"] if fit.fitted else 0.0)
    low, high = np.percentile(deltas, [2.5, 97.5]) if deltas else (None, None)
    result.update(
        a=params.a,
        b=params.b,
        c=params.c,
        fitted=params.fitted,
        reason=params.reason,
        rmse=params.rmse,
        sizes=int(sizes_seen),
        runs=int(len(frame)),
        ci_low=None if low is None else float(low),
        ci_high=None if high is None else float(high),
        interval_note=(
            "95% interval from resampling the repeated subsamples at each size"
            if repeated
            else "no interval: each size has one run; train repeats to get one"
        ),
    )
    return result
