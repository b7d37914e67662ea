"""Business maths: payoff matrix -> profit curve -> threshold -> monthly value -> cost -> ROI.

Pure functions over numpy/pandas/scipy, so pages, the CLI and tests share one implementation
and every figure shown to an analyst can be checked by hand. All money is in one currency unit,
written "$" in these docs.

Payoff convention: each cell of a `Payoff` is the money one decision brings on one case,
measured against a reference that does not depend on the decision (for credit: not lending;
for churn: not contacting). Only the differences between cells move the best threshold; the
level sets the value per decision. Never count one effect twice (e.g. "loss avoided" on a true
positive *and* "loss" on a false negative): that doubles every difference between policies.
A "positive" prediction is the flagged decision (decline, block, call, refer, inspect, route).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit

Precision = Literal["fp32", "bf16"]
StatusQuoPolicy = Literal["approve_all", "flag_all", "manual_review", "rule"]
STATUS_QUO_POLICIES: tuple[str, ...] = ("approve_all", "flag_all", "manual_review", "rule")

MAX_DEFAULT_THRESHOLDS = 1000
HOURS_PER_MONTH = 8760 / 12  # 730: a calendar-average month, so 12 months make one year
CURVE_COLUMNS = (
    "threshold",
    "flagged",
    "flagged_share",
    "tp",
    "fp",
    "tn",
    "fn",
    "value_total",
    "value_per_decision",
)
# Values closer than this (relative to the best) count as ties, so float noise from cumulative
# sums cannot decide between two thresholds that are worth the same.
_TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Payoff:
    """Money per decision for each outcome (or, with a money column, a multiplier of it)."""

    tp: float
    fp: float
    tn: float
    fn: float

    def __post_init__(self) -> None:
        for name in ("tp", "fp", "tn", "fn"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ValueError(f"Payoff.{name} must be a number; got {name}={value!r}")
            if not math.isfinite(value):
                raise ValueError(f"Payoff.{name} must be finite; got {name}={value!r}")
            # Plain floats keep the dataclass JSON-safe even when numpy scalars come in.
            object.__setattr__(self, name, float(value))

    def to_dict(self) -> dict[str, float]:
        """JSON-safe form, for saved scenarios."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Payoff:
        """Inverse of `to_dict`; unknown or missing keys raise ValueError."""
        expected = {"tp", "fp", "tn", "fn"}
        if set(data) != expected:
            raise ValueError(f"Payoff needs exactly keys {sorted(expected)}; got {sorted(data)=}")
        return cls(**data)


# --------------------------------------------------------------------------- input checks


def _as_float_array(values: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric; could not read it as numbers ({exc})") from exc
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty; need at least one row")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
    return array


def _check_labels(labels: Any, name: str = "y_true") -> np.ndarray:
    y = _as_float_array(labels, name)
    bad = y[(y != 0) & (y != 1)]
    if bad.size:
        raise ValueError(f"{name} must contain only 0 and 1; found {np.unique(bad)[:5].tolist()}")
    return y.astype(np.int64)


def _check_scores(score: Any, n: int) -> np.ndarray:
    s = _as_float_array(score, "score")
    if s.size != n:
        raise ValueError(f"score has {s.size} rows but y_true has {n}; lengths must match")
    if s.min() < 0 or s.max() > 1:
        raise ValueError(f"score must lie in [0, 1]; got min={s.min()!r}, max={s.max()!r}")
    return s


def _check_weights(weights: Any, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = _as_float_array(weights, "weights")
    if w.size != n:
        raise ValueError(f"weights has {w.size} rows but y_true has {n}; lengths must match")
    if w.min() < 0:
        raise ValueError(f"weights must be >= 0 (money per row); got min={w.min()!r}")
    return w


def _check_fixed(fixed: Payoff | None, weights: np.ndarray | None) -> None:
    if fixed is not None and weights is None:
        raise ValueError("fixed is only meaningful with weights (it adds to the multipliers)")


def check_number(value: Any, name: str, *, low: float | None = None) -> float:
    """A finite real number (not a bool), at least ``low``; ValueError naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{name} must be a number; got {name}={value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {name}={value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}; got {name}={value!r}")
    return float(value)


# --------------------------------------------------------------------------- profit curve


def _default_thresholds(score: np.ndarray) -> np.ndarray:
    """Unique scores (or ~1000 score quantiles), plus 0 (flag all) and just above 1 (none)."""
    unique = np.unique(score)
    if unique.size > MAX_DEFAULT_THRESHOLDS:
        # "lower" keeps every threshold an observed score, so each is an exact breakpoint.
        grid = np.linspace(0.0, 1.0, MAX_DEFAULT_THRESHOLDS)
        unique = np.unique(np.quantile(score, grid, method="lower"))
    return np.unique(np.concatenate(([0.0], unique, [np.nextafter(1.0, 2.0)])))


def _cell_totals(
    y: np.ndarray, score: np.ndarray, weights: np.ndarray | None, thresholds: np.ndarray
) -> dict[str, np.ndarray]:
    """Counts and money per confusion cell at each threshold, from one sort.

    Sorting scores high to low makes "flag when score >= t" the first k rows, so every
    threshold's cells are prefix sums. Tied scores are all in or all out, so their order
    within the sort never matters.
    """
    order = np.argsort(-score, kind="stable")
    pos = y[order]
    w = np.ones(y.size) if weights is None else weights[order]
    flagged = y.size - np.searchsorted(score[order][::-1], thresholds, side="left")
    tp = np.concatenate(([0], np.cumsum(pos)))[flagged]
    tp_w = np.concatenate(([0.0], np.cumsum(w * pos)))[flagged]
    fp_w = np.concatenate(([0.0], np.cumsum(w * (1 - pos))))[flagged]
    pos_total = int(pos.sum())
    pos_w_total, neg_w_total = float((w * pos).sum()), float((w * (1 - pos)).sum())
    return {
        "flagged": flagged,
        "tp": tp,
        "fp": flagged - tp,
        "fn": pos_total - tp,
        "tn": (y.size - pos_total) - (flagged - tp),
        "tp_w": tp_w,
        "fp_w": fp_w,
        "fn_w": pos_w_total - tp_w,
        "tn_w": neg_w_total - fp_w,
    }


def _value(cells: Mapping[str, Any], payoff: Payoff, fixed: Payoff | None) -> Any:
    """Money of a set of decisions: payoff x (money or counts) + optional fixed x counts."""
    total = sum(getattr(payoff, c) * cells[f"{c}_w"] for c in ("tp", "fp", "tn", "fn"))
    if fixed is not None:
        total = total + sum(getattr(fixed, c) * cells[c] for c in ("tp", "fp", "tn", "fn"))
    return total


def _curve_frame(
    cells: dict[str, np.ndarray], thresholds: np.ndarray, n: int, value: Any
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "threshold": thresholds,
            "flagged": cells["flagged"],
            "flagged_share": cells["flagged"] / n,
            "tp": cells["tp"],
            "fp": cells["fp"],
            "tn": cells["tn"],
            "fn": cells["fn"],
            "value_total": value,
            "value_per_decision": value / n,
        }
    )


def profit_curve(
    y_true: Any,
    score: Any,
    payoff: Payoff,
    weights: Any | None = None,
    thresholds: Any | None = None,
    fixed: Payoff | None = None,
) -> pd.DataFrame:
    """Value of the rule "flag when score >= threshold" at each threshold.

    Columns: threshold, flagged (count), flagged_share, tp, fp, tn, fn (counts), value_total,
    value_per_decision (= value_total / rows). Without weights, value_total =
    payoff.tp*tp + payoff.fp*fp + payoff.tn*tn + payoff.fn*fn. With per-row money `weights`,
    payoff entries are multipliers: value_total = payoff.tp * (sum of weights of the true
    positives) + ...; `fixed` (only with weights) adds a per-decision amount on top, e.g. a $20
    offer cost while the saved revenue scales with each customer's value.

    Default thresholds: the unique scores (capped to 1000 score quantiles), plus 0 (flag all)
    and the float just above 1 (flag none). One sort and cumulative sums: 1M rows is fast.
    """
    y = _check_labels(y_true)
    s = _check_scores(score, y.size)
    w = _check_weights(weights, y.size)
    _check_fixed(fixed, w)
    if thresholds is None:
        t = _default_thresholds(s)
    else:
        t = np.unique(_as_float_array(thresholds, "thresholds"))
    cells = _cell_totals(y, s, w, t)
    return _curve_frame(cells, t, y.size, _value(cells, payoff, fixed))


def _pick_best(values: np.ndarray, thresholds: np.ndarray) -> int:
    """Index of the highest value; near-ties go to the higher threshold (flags fewer cases)."""
    best = values.max()
    tied = values >= best - _TIE_TOLERANCE * max(1.0, abs(best))
    return int(np.flatnonzero(tied)[np.argmax(thresholds[tied])])


_COUNT_COLUMNS = ("flagged", "tp", "fp", "tn", "fn")


def _row_dict(frame: pd.DataFrame, index: int) -> dict[str, float | int]:
    row = frame.iloc[index]
    return {c: int(row[c]) if c in _COUNT_COLUMNS else float(row[c]) for c in CURVE_COLUMNS}


def best_threshold(curve: pd.DataFrame) -> dict[str, float | int]:
    """The curve row with the highest value_total, as a plain dict; ties -> higher threshold."""
    missing = [c for c in CURVE_COLUMNS if c not in curve.columns]
    if missing:
        raise ValueError(f"curve lacks columns {missing}; pass the output of profit_curve")
    if curve.empty:
        raise ValueError("curve is empty; it needs at least one threshold")
    values = curve["value_total"].to_numpy(dtype=float)
    index = _pick_best(values, curve["threshold"].to_numpy(dtype=float))
    return _row_dict(curve.reset_index(drop=True), index)


def _capacity_limit(n: int, capacity_share: float | None, top_k: int | None) -> int:
    if (capacity_share is None) == (top_k is None):
        raise ValueError(
            f"give exactly one of capacity_share or top_k; got {capacity_share=}, {top_k=}"
        )
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0; got {top_k=}")
        return int(top_k)
    share = check_number(capacity_share, "capacity_share", low=0.0)
    if share > 1:
        raise ValueError(f"capacity_share must be in [0, 1]; got {capacity_share=}")
    return math.floor(share * n)


def best_under_capacity(
    y_true: Any,
    score: Any,
    payoff: Payoff,
    *,
    capacity_share: float | None = None,
    top_k: int | None = None,
    weights: Any | None = None,
    fixed: Payoff | None = None,
) -> dict[str, float | int]:
    """Best threshold among those that flag at most K rows (K = top_k or capacity_share * n).

    Every distinct score is tried (not the 1000-quantile grid), so the answer is exact. It may
    flag fewer than K rows: when flagging more would lose money, or when rows tied on one score
    straddle the limit (a threshold rule cannot flag half of a tie). Returns the curve row as a
    dict plus "max_flagged" (K).
    """
    y = _check_labels(y_true)
    s = _check_scores(score, y.size)
    w = _check_weights(weights, y.size)
    _check_fixed(fixed, w)
    limit = _capacity_limit(y.size, capacity_share, top_k)
    t = np.unique(np.concatenate((s, [np.nextafter(1.0, 2.0)])))
    cells = _cell_totals(y, s, w, t)
    # The flag-none threshold (just above 1) is always feasible, so the subset is never empty.
    keep = np.flatnonzero(cells["flagged"] <= limit)
    kept = {name: column[keep] for name, column in cells.items()}
    frame = _curve_frame(kept, t[keep], y.size, _value(kept, payoff, fixed))
    return {**best_threshold(frame), "max_flagged": limit}


def status_quo_value(
    y_true: Any,
    payoff: Payoff,
    policy: StatusQuoPolicy,
    weights: Any | None = None,
    manual_cost: float = 0.0,
    rule_flags: Any | None = None,
    fixed: Payoff | None = None,
) -> float:
    """Value per decision of today's policy, on the same rows and payoff as the model.

    - "approve_all": flag nobody (take the negative decision for every case).
    - "flag_all": flag everybody.
    - "manual_review": a person decides every case *perfectly* (tp on positives, tn on
      negatives) at `manual_cost` $ per decision. Perfect reviewers are an upper bound on
      today's value, so the model's advantage over them is a lower bound.
    - "rule": an existing rule whose 0/1 decisions are given in `rule_flags`.
    `manual_cost` is a plain $ per decision even when weights are given.
    """
    y = _check_labels(y_true)
    w = _check_weights(weights, y.size)
    _check_fixed(fixed, w)
    cost = check_number(manual_cost, "manual_cost", low=0.0)
    flags = _policy_flags(y, policy, rule_flags)
    money = np.ones(y.size) if w is None else w
    masks = {
        "tp": flags & (y == 1),
        "fp": flags & (y == 0),
        "tn": ~flags & (y == 0),
        "fn": ~flags & (y == 1),
    }
    cells: dict[str, float] = {cell: int(mask.sum()) for cell, mask in masks.items()}
    cells.update({f"{cell}_w": float(money[mask].sum()) for cell, mask in masks.items()})
    review = cost if policy == "manual_review" else 0.0
    return float(_value(cells, payoff, fixed)) / y.size - review


def _policy_flags(y: np.ndarray, policy: str, rule_flags: Any | None) -> np.ndarray:
    if policy not in STATUS_QUO_POLICIES:
        raise ValueError(f"policy must be one of {STATUS_QUO_POLICIES}; got {policy=}")
    if (policy == "rule") != (rule_flags is not None):
        raise ValueError(f"rule_flags must be given exactly when policy='rule'; got {policy=}")
    if policy == "approve_all":
        return np.zeros(y.size, dtype=bool)
    if policy == "flag_all":
        return np.ones(y.size, dtype=bool)
    if policy == "manual_review":
        return y == 1  # a perfect reviewer flags exactly the positives
    flags = _check_labels(rule_flags, "rule_flags")
    if flags.size != y.size:
        raise ValueError(f"rule_flags has {flags.size} rows but y_true has {y.size}")
    return flags == 1


def monthly_value(
    value_per_decision_model: float, value_per_decision_status_quo: float, monthly_volume: float
) -> float:
    """Extra $ per month from the model: (model - status quo) value per decision x volume."""
    model = check_number(value_per_decision_model, "value_per_decision_model")
    today = check_number(value_per_decision_status_quo, "value_per_decision_status_quo")
    volume = check_number(monthly_volume, "monthly_volume", low=0.0)
    return (model - today) * volume


# --------------------------------------------------------------------------- compute cost

_PRICE_NOTE = "typical on-demand list price, 2026, edit"


@dataclass(frozen=True)
class DeviceSpec:
    """A machine to price compute on. Peaks are dense (no sparsity) vendor datasheet figures.

    `peak_bf16_tflops` is None where the device has no bf16 path (T4, a plain CPU); work asked
    to run in bf16 there is priced on the fp32 peak, as the training code falls back to fp32.
    """

    name: str
    dollars_per_hour: float
    peak_fp32_tflops: float
    peak_bf16_tflops: float | None
    source: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError(f"DeviceSpec.name must not be empty; got {self.name=}")
        check_number(self.dollars_per_hour, "dollars_per_hour", low=0.0)
        if check_number(self.peak_fp32_tflops, "peak_fp32_tflops") <= 0:
            raise ValueError(f"peak_fp32_tflops must be > 0; got {self.peak_fp32_tflops=}")
        if self.peak_bf16_tflops is not None and (
            check_number(self.peak_bf16_tflops, "peak_bf16_tflops") <= 0
        ):
            raise ValueError(f"peak_bf16_tflops must be > 0 or None; got {self.peak_bf16_tflops=}")

    def peak_tflops(self, precision: Precision) -> float:
        """Peak for `precision`; bf16 falls back to fp32 on devices without it."""
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16'; got {precision=}")
        if precision == "bf16" and self.peak_bf16_tflops is not None:
            return self.peak_bf16_tflops
        return self.peak_fp32_tflops


DEVICE_CATALOG: dict[str, DeviceSpec] = {
    spec.name: spec
    for spec in (
        DeviceSpec(
            "cpu-2core",
            0.10,
            0.2,
            None,
            f"small cloud VM ~$0.10/h ({_PRICE_NOTE}); peak is an assumption: 2 cores x 2 "
            "256-bit FMA pipes x 8 fp32 lanes x 2 FLOP x ~3 GHz = ~0.2 TFLOP/s (a torch fp32 "
            "matmul reached 47 GFLOP/s on 1 thread of a busy 2-core AMD EPYC VM, 2026-11-28); "
            "bf16 left out: the app uses bf16 only on CUDA",
        ),
        DeviceSpec(
            "T4",
            0.35,
            8.1,
            None,
            f"~$0.35/h ({_PRICE_NOTE}); NVIDIA T4 datasheet: FP32 8.1 TFLOPS; Turing has no "
            "bf16 (FP16 tensor cores 65 TFLOPS are not used by bf16 autocast)",
        ),
        DeviceSpec(
            "L4",
            0.80,
            30.3,
            121.0,
            f"~$0.80/h ({_PRICE_NOTE}); NVIDIA L4 datasheet: FP32 30.3 TFLOPS, BF16 tensor "
            "242 TFLOPS with sparsity = 121 dense",
        ),
        DeviceSpec(
            "A10G",
            1.00,
            31.2,
            125.0,
            f"~$1.00/h ({_PRICE_NOTE}); NVIDIA A10 datasheet: FP32 31.2, BF16 tensor 125 dense "
            "(250 sparse); assumption: AWS's A10G variant matches A10 (no separate sheet)",
        ),
        DeviceSpec(
            "A100-80GB",
            3.00,
            19.5,
            312.0,
            f"~$3.00/h ({_PRICE_NOTE}); NVIDIA A100 datasheet: FP32 19.5 TFLOPS, BF16 tensor "
            "312 dense (624 sparse)",
        ),
        DeviceSpec(
            "H100",
            4.00,
            67.0,
            989.0,
            f"~$4.00/h ({_PRICE_NOTE}); NVIDIA H100 SXM datasheet: FP32 67 TFLOPS, BF16 tensor "
            "1,979 with sparsity = 989 dense",
        ),
        DeviceSpec(
            "H200",
            5.00,
            67.0,
            989.0,
            f"~$5.00/h ({_PRICE_NOTE}); NVIDIA H200 SXM datasheet: FP32 67 TFLOPS, BF16 tensor "
            "1,979 with sparsity = 989 dense (same compute as H100, more memory)",
        ),
    )
}


def achieved_efficiency(
    measured_seconds: float,
    measured_device: DeviceSpec,
    flops: float,
    precision: Precision = "fp32",
) -> float:
    """Share of the device's peak a measured run achieved: flops / seconds / peak FLOP/s.

    Raises ValueError above 1: a run cannot beat the datasheet peak, so the FLOP count or the
    device is wrong.
    """
    seconds = check_number(measured_seconds, "measured_seconds")
    work = check_number(flops, "flops")
    if seconds <= 0 or work <= 0:
        raise ValueError(f"measured_seconds and flops must be > 0; got {seconds=}, {work=}")
    efficiency = work / seconds / (measured_device.peak_tflops(precision) * 1e12)
    if efficiency > 1:
        raise ValueError(
            f"{work:.3g} FLOP in {seconds:.3g} s exceeds the {measured_device.name} peak "
            f"({efficiency=:.2f}); check the FLOP count and the measured device"
        )
    return efficiency


def estimate_seconds_on(
    device: DeviceSpec,
    measured_seconds: float,
    measured_device: DeviceSpec,
    flops: float,
    *,
    measured_precision: Precision = "fp32",
    target_precision: Precision = "fp32",
) -> float:
    """Seconds the same work would take on `device`, from a run measured on another one.

    efficiency = flops / measured_seconds / measured peak; estimate = flops / (efficiency x
    target peak), which simplifies to measured_seconds x measured peak / target peak.
    Assumption: the run reaches the same share of peak on both devices. That is optimistic for
    small models on large GPUs, whose batches cannot fill the chip (kernel launches and memory
    traffic dominate), so treat the result as a lower bound on time and prefer a run measured
    on the target device when there is one.
    """
    efficiency = achieved_efficiency(measured_seconds, measured_device, flops, measured_precision)
    return flops / (efficiency * device.peak_tflops(target_precision) * 1e12)


@dataclass(frozen=True)
class CostBreakdown:
    """Compute $ per month by activity; `first_training` is the one-off initial fit."""

    device: str
    training_per_month: float
    scoring_per_month: float
    explaining_per_month: float
    idle_per_month: float
    total_per_month: float
    first_training: float


def compute_cost(
    train_seconds: float,
    retrains_per_year: float,
    rows_per_month: float,
    inference_rows_per_second: float,
    explain_rows_per_month: float,
    explain_ms_per_row: float,
    device: DeviceSpec,
    *,
    always_on: bool = False,
) -> CostBreakdown:
    """Compute $ per month on `device` at its hourly price.

    training = train_seconds x retrains_per_year / 12 / 3600 x $/h (retraining amortised per
    month; the first fit is reported apart as `first_training`); scoring = rows_per_month /
    inference_rows_per_second / 3600 x $/h; explaining = explain_rows_per_month x
    explain_ms_per_row / 1000 / 3600 x $/h. By default only busy seconds are billed (per-second
    billing or a shared machine). With always_on, scoring and explaining run on dedicated
    machines billed 730 h/month each (as many as the busy hours need): the unused hours are
    `idle_per_month`.
    """
    per_second = check_number(device.dollars_per_hour, "dollars_per_hour", low=0.0) / 3600
    train = check_number(train_seconds, "train_seconds", low=0.0)
    retrains = check_number(retrains_per_year, "retrains_per_year", low=0.0)
    rows = check_number(rows_per_month, "rows_per_month", low=0.0)
    speed = check_number(inference_rows_per_second, "inference_rows_per_second", low=0.0)
    explained = check_number(explain_rows_per_month, "explain_rows_per_month", low=0.0)
    ms_per_row = check_number(explain_ms_per_row, "explain_ms_per_row", low=0.0)
    if rows > 0 and speed == 0:
        raise ValueError(f"inference_rows_per_second must be > 0 to score rows; got {speed=}")
    scoring_s = rows / speed if rows > 0 else 0.0
    serving_s = scoring_s + explained * ms_per_row / 1000
    idle_s = _idle_seconds(serving_s) if always_on else 0.0
    training = train * retrains / 12 * per_second
    parts = (training, scoring_s * per_second, (serving_s - scoring_s) * per_second)
    return CostBreakdown(
        device=device.name,
        training_per_month=parts[0],
        scoring_per_month=parts[1],
        explaining_per_month=parts[2],
        idle_per_month=idle_s * per_second,
        total_per_month=sum(parts) + idle_s * per_second,
        first_training=train * per_second,
    )


def _idle_seconds(busy_seconds: float) -> float:
    """Billed-but-unused seconds when serving needs whole always-on machines (at least one)."""
    month = HOURS_PER_MONTH * 3600
    machines = max(1, math.ceil(busy_seconds / month))
    return machines * month - busy_seconds


# --------------------------------------------------------------------------- ROI


@dataclass(frozen=True)
class RoiResult:
    """Discounted return over a horizon; see `roi` for the formulas.

    `cumulative_net[m]` is the discounted net cash position at the end of month m (index 0 is
    the one-off cost), for payback charts.
    """

    roi: float | None
    payback_months: float | None
    npv: float
    total_benefit: float
    total_cost: float
    cumulative_net: tuple[float, ...]


def monthly_discount_factors(discount_rate_per_year: float, horizon_months: int) -> np.ndarray:
    """d_t = (1 + r_m)^-t for t = 1..horizon, with r_m = (1 + r_year)^(1/12) - 1."""
    rate = check_number(discount_rate_per_year, "discount_rate_per_year", low=0.0)
    if rate >= 1:
        raise ValueError(f"discount_rate_per_year must be in [0, 1); got {rate=}")
    if isinstance(horizon_months, bool) or not isinstance(horizon_months, int | np.integer):
        raise ValueError(f"horizon_months must be an integer; got {horizon_months=}")
    if horizon_months < 1:
        raise ValueError(f"horizon_months must be >= 1; got {horizon_months=}")
    monthly = (1 + rate) ** (1 / 12) - 1
    return (1 + monthly) ** -np.arange(1, int(horizon_months) + 1, dtype=float)


def roi(
    monthly_value: float,
    monthly_cost: float,
    one_off_cost: float,
    horizon_months: int = 36,
    discount_rate_per_year: float = 0.0,
) -> RoiResult:
    """ROI, payback and NPV of constant monthly flows after a one-off cost.

    Cash flows: -one_off_cost at month 0 (not discounted); at the end of each month t = 1..H,
    +monthly_value and -monthly_cost, discounted by d_t = (1 + r_m)^-t with
    r_m = (1 + discount_rate_per_year)^(1/12) - 1.
    total_benefit = sum_t monthly_value x d_t; total_cost = one_off_cost + sum_t monthly_cost x
    d_t; npv = total_benefit - total_cost; roi = npv / total_cost (None when total_cost is 0:
    a return on nothing spent is undefined).
    payback_months: first time the cumulative discounted net reaches 0, linearly interpolated
    within the month: (m - 1) + deficit at m-1 / net of month m; 0 when there is no one-off cost
    and each month gains; None when it is not reached within the horizon.
    """
    value = check_number(monthly_value, "monthly_value")
    cost = check_number(monthly_cost, "monthly_cost", low=0.0)
    upfront = check_number(one_off_cost, "one_off_cost", low=0.0)
    discount = monthly_discount_factors(discount_rate_per_year, horizon_months)
    benefit = float(value * discount.sum())
    total_cost = float(upfront + cost * discount.sum())
    cumulative = np.concatenate(([-upfront], -upfront + np.cumsum((value - cost) * discount)))
    return RoiResult(
        roi=(benefit - total_cost) / total_cost if total_cost > 0 else None,
        payback_months=_payback(cumulative, value - cost),
        npv=benefit - total_cost,
        total_benefit=benefit,
        total_cost=total_cost,
        cumulative_net=tuple(float(x) for x in cumulative),
    )


def _payback(cumulative: np.ndarray, monthly_net: float) -> float | None:
    if monthly_net <= 0:
        return None  # constant flows: the deficit never shrinks
    reached = np.flatnonzero(cumulative >= 0)
    if reached.size == 0:
        return None
    month = int(reached[0])
    if month == 0:
        return 0.0
    before, after = cumulative[month - 1], cumulative[month]
    return (month - 1) + float(-before / (after - before))


# --------------------------------------------------------------------------- uncertainty


def _evaluate_checked(
    evaluate: Callable[[dict[str, float]], float], inputs: dict[str, float]
) -> float:
    result = evaluate(inputs)
    if (
        result is None
        or not isinstance(result, int | float | np.number)
        or not math.isfinite(result)
    ):
        raise ValueError(
            f"evaluate returned {result!r} for {inputs=}; it must return a finite number"
        )
    return float(result)


def sensitivity(
    evaluate: Callable[[dict[str, float]], float],
    assumptions: Mapping[str, float],
    delta: float = 0.2,
) -> pd.DataFrame:
    """Tornado data: the output when each assumption alone moves by -delta and +delta.

    Columns: assumption, base_input, low_input (x (1 - delta)), high_input (x (1 + delta)),
    base_output, low_output, high_output, swing (= |high_output - low_output|); sorted by swing,
    largest first (ties by name). An assumption of 0 has no swing: a relative change of 0 is 0.
    """
    step = check_number(delta, "delta")
    if not 0 < step <= 1:
        raise ValueError(f"delta must be in (0, 1]; got {delta=}")
    if not assumptions:
        raise ValueError("assumptions is empty; give at least one number to vary")
    base = {
        name: check_number(value, f"assumptions[{name!r}]") for name, value in assumptions.items()
    }
    base_output = _evaluate_checked(evaluate, dict(base))
    rows = []
    for name, value in base.items():
        low_in, high_in = value * (1 - step), value * (1 + step)
        low = _evaluate_checked(evaluate, {**base, name: low_in})
        high = _evaluate_checked(evaluate, {**base, name: high_in})
        rows.append((name, value, low_in, high_in, base_output, low, high, abs(high - low)))
    columns = [
        "assumption",
        "base_input",
        "low_input",
        "high_input",
        "base_output",
        "low_output",
        "high_output",
        "swing",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["swing", "assumption"], ascending=[False, True], ignore_index=True)


def _draw(rng: np.random.Generator, name: str, spec: Sequence[float], n: int) -> np.ndarray:
    """Uniform for (low, high); triangular for (low, mode, high)."""
    if len(spec) not in (2, 3):
        raise ValueError(f"ranges[{name!r}] must be (low, high) or (low, mode, high); got {spec!r}")
    values = [check_number(v, f"ranges[{name!r}]") for v in spec]
    if values != sorted(values):
        raise ValueError(f"ranges[{name!r}] must be in increasing order; got {spec!r}")
    if values[0] == values[-1]:
        return np.full(n, values[0])
    if len(values) == 2:
        return rng.uniform(values[0], values[1], n)
    return rng.triangular(values[0], values[1], values[2], n)


def monte_carlo(
    evaluate: Callable[[dict[str, float]], float],
    ranges: Mapping[str, Sequence[float]],
    n: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Draw every uncertain assumption, evaluate each draw, summarise the spread.

    Each range is (low, high) for a uniform draw or (low, mode, high) for a triangular one;
    draws are independent. Returns n, mean, std, p05, p25, p50, p75, p95, prob_positive
    (share of draws with output > 0, e.g. the chance that ROI is positive) and samples.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be an integer >= 1; got {n=}")
    if not ranges:
        raise ValueError("ranges is empty; give at least one assumption to vary")
    rng = np.random.default_rng(seed)
    draws = {name: _draw(rng, name, spec, n) for name, spec in ranges.items()}
    samples = np.array(
        [_evaluate_checked(evaluate, {k: float(v[i]) for k, v in draws.items()}) for i in range(n)]
    )
    percentiles = np.percentile(samples, [5, 25, 50, 75, 95])
    return {
        "n": int(n),
        "mean": float(samples.mean()),
        "std": float(samples.std()),
        **{f"p{q:02d}": float(p) for q, p in zip((5, 25, 50, 75, 95), percentiles, strict=True)},
        "prob_positive": float((samples > 0).mean()),
        "samples": samples,
    }


# --------------------------------------------------------------------------- learning curve


@dataclass(frozen=True)
class LearningCurve:
    """metric(n) = a - b x n^-c, fitted on (training size, metric) pairs.

    `fitted` is False when the power law could not be fitted; the fallback is flat at the
    metric of the largest size (b = 0), i.e. no gain from more data is promised, and `reason`
    says why.
    """

    a: float
    b: float
    c: float
    fitted: bool
    reason: str
    rmse: float


_FLAT_GAIN = 1e-6


def _power_law(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a - b * np.power(n, -c)


def fit_learning_curve(
    sizes: Sequence[float], metric_values: Sequence[float], max_metric: float | None = 1.0
) -> LearningCurve:
    """Fit metric = a - b x n^-c with scipy's curve_fit and bounds.

    Bounds: min(metric) <= a <= max_metric (1.0 suits AUC/accuracy; None for no ceiling),
    b >= 0 (more data never hurts in the model), 0 <= c <= 3. Sizes are scaled by the largest
    one while fitting so b stays of order one; b is reported for unscaled n. Needs at least
    three distinct sizes (three parameters).
    """
    n = _as_float_array(sizes, "sizes")
    y = _as_float_array(metric_values, "metric_values")
    if n.size != y.size:
        raise ValueError(f"sizes has {n.size} values but metric_values has {y.size}")
    if n.min() <= 0:
        raise ValueError(f"sizes must be > 0; got {n.min()=}")
    ceiling = np.inf if max_metric is None else check_number(max_metric, "max_metric")
    if y.max() > ceiling:
        raise ValueError(f"metric_values exceed max_metric; got {y.max()=}, {max_metric=}")
    if np.unique(n).size < 3:
        return _flat_curve(n, y, "fewer than 3 distinct sizes: a 3-parameter curve needs 3")
    return _fit_power_law(n, y, ceiling)


def _fit_power_law(n: np.ndarray, y: np.ndarray, ceiling: float) -> LearningCurve:
    scale = n.max()
    low_a = float(y.min())
    if low_a >= ceiling:
        return _flat_curve(n, y, "every metric is already at max_metric: nothing left to gain")
    start = (float(np.clip(y.max() + 0.01, low_a, ceiling)), max(float(np.ptp(y)), 1e-3), 0.5)
    try:
        (a, b, c), _ = curve_fit(
            _power_law,
            n / scale,
            y,
            p0=start,
            bounds=([low_a, 0.0, 0.0], [ceiling, np.inf, 3.0]),
            maxfev=20000,
        )
    except (RuntimeError, ValueError) as exc:
        return _flat_curve(n, y, f"power law did not converge: {exc}")
    # b' (1 - 2^-c) is the gain from doubling the largest size; below 1e-6 the curve is flat
    # (or the data fall with size) and a, b, c are no longer separately meaningful.
    if b * (1 - 2.0**-c) < _FLAT_GAIN:
        return _flat_curve(n, y, "the metric does not rise with training size in these points")
    # metric = a - b' (n/scale)^-c = a - (b' scale^c) n^-c
    b_unscaled = float(b * scale**c)
    rmse = float(np.sqrt(np.mean((_power_law(n, a, b_unscaled, c) - y) ** 2)))
    return LearningCurve(float(a), b_unscaled, float(c), True, "", rmse)


def _flat_curve(n: np.ndarray, y: np.ndarray, reason: str) -> LearningCurve:
    last = float(y[np.argmax(n)])
    return LearningCurve(last, 0.0, 0.0, False, reason, float(np.sqrt(np.mean((y - last) ** 2))))


def predict_metric(params: LearningCurve, n: float | np.ndarray) -> float | np.ndarray:
    """The curve at training size n (> 0); an array in gives an array out."""
    sizes = np.asarray(n, dtype=float)
    if not np.isfinite(sizes).all() or (sizes <= 0).any():
        raise ValueError(f"n must be finite and > 0; got {n=}")
    result = _power_law(sizes, params.a, params.b, params.c)
    return float(result) if result.ndim == 0 else result


def value_of_more_data(
    params: LearningCurve,
    current_size: float,
    current_auc: float,
    monthly_value_now: float,
    factor: float = 2.0,
    monthly_value_at_random: float = 0.0,
) -> dict[str, float | bool]:
    """Extra $ per month expected from `factor` x more training rows.

    AUC gain = predict_metric(factor x n) - predict_metric(n) from the fitted curve, added to
    the observed AUC (capped at 1). Rough rule, stated plainly: monthly value is linear in
    (AUC - 0.5), passing through `monthly_value_at_random` at AUC 0.5 (a no-skill model: the
    best of flag-all / flag-none against the status quo; 0 when that is the status quo) and
    through `monthly_value_now` at the current AUC.
    """
    size = check_number(current_size, "current_size")
    auc = check_number(current_auc, "current_auc")
    more = check_number(factor, "factor")
    if size <= 0 or more <= 1:
        raise ValueError(f"need current_size > 0 and factor > 1; got {current_size=}, {factor=}")
    if not 0.5 < auc <= 1:
        raise ValueError(f"current_auc must be in (0.5, 1] for the linear rule; got {current_auc=}")
    now = check_number(monthly_value_now, "monthly_value_now")
    floor = check_number(monthly_value_at_random, "monthly_value_at_random")
    gain = float(predict_metric(params, size * more)) - float(predict_metric(params, size))
    auc_more = min(auc + gain, 1.0)
    value_more = floor + (now - floor) * (auc_more - 0.5) / (auc - 0.5)
    return {
        "auc_now": auc,
        "auc_more": auc_more,
        "delta_auc": auc_more - auc,
        "monthly_value_now": now,
        "monthly_value_more": value_more,
        "delta_monthly_value": value_more - now,
        "fitted": params.fitted,
    }


# --------------------------------------------------------------------------- comparison


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> np.ndarray:
    """True for points no other point dominates (cost <= and score >=, one of them strictly).

    Exact duplicates do not dominate each other, so both stay on the front. Pairwise O(n^2),
    meant for leaderboards of tens to a few thousand models.
    """
    cost = _as_float_array(costs, "costs")
    score = _as_float_array(scores, "scores")
    if cost.size != score.size:
        raise ValueError(f"costs has {cost.size} values but scores has {score.size}")
    no_worse = (cost[:, None] <= cost[None, :]) & (score[:, None] >= score[None, :])
    better = (cost[:, None] < cost[None, :]) | (score[:, None] > score[None, :])
    return np.asarray(~(no_worse & better).any(axis=0), dtype=bool)


# --------------------------------------------------------------------------- any decisions


def decisions_value(
    y_true: Any,
    flags: Any,
    payoff: Payoff,
    weights: Any | None = None,
    fixed: Payoff | None = None,
) -> float:
    """Total value of any set of 0/1 decisions (not only "score >= one threshold"), with the
    same rule as ``profit_curve``: payoff.tp * (count, or sum of weights, of the true
    positives) + ... over the four cells, plus ``fixed`` x counts when weights are given.
    Used for group-specific thresholds (core/fairness.py)."""
    y = _check_labels(y_true)
    f = _check_labels(flags, "flags").astype(bool)
    if f.size != y.size:
        raise ValueError(f"flags has {f.size} rows but y_true has {y.size}")
    w = _check_weights(weights, y.size)
    _check_fixed(fixed, w)
    money = np.ones(y.size) if w is None else w
    masks = {"tp": f & (y == 1), "fp": f & (y == 0), "tn": ~f & (y == 0), "fn": ~f & (y == 1)}
    cells: dict[str, float] = {cell: int(mask.sum()) for cell, mask in masks.items()}
    cells.update({f"{cell}_w": float(money[mask].sum()) for cell, mask in masks.items()})
    return float(_value(cells, payoff, fixed))
