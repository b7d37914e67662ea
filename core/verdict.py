"""The verdict: does the challenger (a transformer) pay for itself against the champion (the
best cheap model, or today's policy)?

Both models are valued by core.valuation on the *same* evaluation rows (the run's test part
or the analyst's labelled file), each at its own operating threshold (chosen on validation
rows, or set by the user). Per row i, d_i = value_i(challenger) - value_i(champion); then

- extra_value_per_month = mean(d) x monthly_volume;
- ci_low, ci_high: 2.5% and 97.5% percentiles of mean(d*) x monthly_volume over a paired
  bootstrap (the same resampled rows for both models: models.metrics.paired_resamples, which
  the leaderboard's comparison uses too; percentile method, 2,000 resamples, seed 0);
- extra_cost_per_month = challenger's minus champion's (retraining compute, scoring and
  explaining compute, maintenance + retrain sign-off, and one-off costs — integration,
  labelling, first training — spread evenly over the horizon); today's policy costs 0;
- net_per_month = extra_value_per_month - extra_cost_per_month;
- label: "pays" when ci_low - extra cost > 0, "does_not_pay" when ci_high - extra cost < 0,
  else "not_distinguishable";
- payback_months = extra one-off / (extra value - extra running cost) per month;
- break_even_monthly_volume = fixed extra cost / (extra value per decision - extra scoring and
  explaining cost per decision): the volume at which the point estimate covers the cost.

Depends on core.valuation, core.explanations (explanation cost), core.runs and
core.kinds.registry (families); pages and the CLI depend on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core import economics as eco
from core.datasets import get_dataset
from core.explanations import get_explanation, list_explanations, plan
from core.kinds import registry
from core.runs import LOOKUP, RunInfo, get_run, list_runs, load_run_model
from core.scenarios import html_report, svg_bars, svg_lines
from core.thresholds import choose_on_validation
from core.training import holdout_frame
from core.usecases import UseCase, get_use_case
from core.valuation import (
    DEFAULT_EXPLAIN_SHARE,
    EXPLAIN_SHARE_SOURCE,
    MIN_POSITIVES,
    Outcomes,
    Valuation,
    apply_assumptions,
    device_from_options,
    labelled_outcomes,
    model_row_values,
    profit_curve_for,
    run_outcomes,
    status_quo_row_values,
    validation_outcomes,
    value_run,
)
from models.metrics import paired_resamples

STATUS_QUO = "status_quo"
LABELS = {
    "pays": "pays for itself",
    "does_not_pay": "does not pay",
    "not_distinguishable": "not distinguishable",
}
N_BOOT = 2000
EXTRA_SOURCE = (
    "0: same team, pipeline and serving for both models — assumption; add what the "
    "transformer needs on top (GPU serving, MLOps)"
)
_TRUE = {"1", "true", "yes", "y", "flag", "flagged", "decline", "declined", "reject", "block"}
_FALSE = {"0", "false", "no", "n", "approve", "approved", "accept", "accepted", "pass", "allow"}


# ---- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """Every assumption of a valuation: the use case (payoff, volume, costs, horizon, discount
    rate, status quo policy) plus the options that are not use-case fields."""

    use_case: UseCase
    device: eco.DeviceSpec
    use_money: bool = True
    explanations_per_month: float | None = None  # None: DEFAULT_EXPLAIN_SHARE x volume
    status_quo_column: str | None = None
    status_quo_flag_value: str | None = None
    challenger_extra_integration: float = 0.0
    challenger_extra_maintenance_per_year: float = 0.0
    n_boot: int = N_BOOT

    @property
    def explanations(self) -> float:
        if self.explanations_per_month is None:
            return self.use_case.monthly_volume * DEFAULT_EXPLAIN_SHARE
        return float(self.explanations_per_month)

    def assumptions(self) -> dict[str, Any]:
        """Every assumption as {name: value}, JSON-safe (for scenarios and the report)."""
        out = dict(self.use_case.assumptions())
        out.update(
            device=self.device.name,
            dollars_per_hour=self.device.dollars_per_hour,
            use_money_column=self.use_money,
            explanations_per_month=self.explanations,
            status_quo_column=self.status_quo_column,
            challenger_extra_integration=self.challenger_extra_integration,
            challenger_extra_maintenance_per_year=self.challenger_extra_maintenance_per_year,
        )
        return out

    def sources(self) -> dict[str, str]:
        """Where each assumption comes from (use-case sources plus the options')."""
        out = dict(self.use_case.sources)
        out.setdefault("device", self.device.source)
        out.setdefault("dollars_per_hour", self.device.source)
        out.setdefault(
            "explanations_per_month",
            EXPLAIN_SHARE_SOURCE if self.explanations_per_month is None else "set by the analyst",
        )
        out.setdefault("challenger_extra_integration", EXTRA_SOURCE)
        out.setdefault("challenger_extra_maintenance_per_year", EXTRA_SOURCE)
        out.setdefault(
            "use_money_column",
            "value scales with each row's amount when the use case has money multipliers and "
            "the dataset a money column",
        )
        return out


def setting_from(use_case_key: str, assumptions: dict | None = None) -> Setting:
    """A Setting from a use-case key and an assumptions mapping (the CLI's JSON file)."""
    use_case, options = apply_assumptions(get_use_case(use_case_key), assumptions or {})
    n_boot = int(options.get("n_boot", N_BOOT))
    if not 100 <= n_boot <= 20000:
        raise ValueError(f"n_boot must be between 100 and 20,000, got {n_boot}.")
    return Setting(
        use_case=use_case,
        device=device_from_options(options),
        use_money=bool(options.get("use_money_column", True)),
        explanations_per_month=options.get("explanations_per_month"),
        status_quo_column=options.get("status_quo_column"),
        status_quo_flag_value=options.get("status_quo_flag_value"),
        challenger_extra_integration=float(options.get("challenger_extra_integration", 0.0)),
        challenger_extra_maintenance_per_year=float(
            options.get("challenger_extra_maintenance_per_year", 0.0)
        ),
        n_boot=n_boot,
    )


# ---- runs -----------------------------------------------------------------------------------


def family(run: RunInfo) -> str:
    """The model's family: "transformer" (FT-Transformer, text transformer, or an ensemble
    containing one), "baseline" (logistic regression, LightGBM, TF-IDF + logistic
    regression), or "other"."""
    return registry.family_of(run, LOOKUP)


def comparable_runs(run: RunInfo) -> list[RunInfo]:
    """Succeeded binary runs on the same dataset, target and split, trained on all rows."""
    return [
        r
        for r in list_runs(run.dataset_id)
        if r.status == "succeeded"
        and r.task == "binary"
        and r.target == run.target
        and r.seed == run.seed
        and r.train_fraction == 1.0
    ]


@dataclass(frozen=True)
class Threshold:
    threshold: float
    chosen_on: str  # "validation" or "user"
    rows: int | None

    def describe(self) -> str:
        if self.chosen_on == "user":
            return f"{self.threshold:.3f}, set by the user"
        return f"{self.threshold:.3f}, chosen on {self.rows:,} validation rows"


def threshold_for(run: RunInfo, setting: Setting) -> Threshold:
    """The run's operating threshold for these assumptions: the user's cutoff when set, else
    the value-maximising cutoff on the run's validation rows (never the rows valued)."""
    run = get_run(run.id)
    if run.threshold_source == "user" and run.operating_threshold is not None:
        return Threshold(float(run.operating_threshold), "user", None)
    threshold, rows = choose_on_validation(run, setting.use_case, setting.use_money)
    return Threshold(threshold, "validation", rows)


def validation_value(run: RunInfo, setting: Setting) -> float:
    """Value per decision on the run's validation rows at its operating threshold: how the
    default challenger and champion are picked (never on the rows they are judged on)."""
    outcomes = validation_outcomes(run)
    t = threshold_for(run, setting).threshold
    return float(model_row_values(setting.use_case, outcomes, t, setting.use_money).mean())


def best_of(runs: list[RunInfo], setting: Setting) -> RunInfo | None:
    scored = [(validation_value(r, setting), -r.id, r) for r in runs]
    return max(scored, key=lambda x: (x[0], x[1]))[2] if scored else None


def default_pair(run: RunInfo, setting: Setting) -> tuple[RunInfo | None, RunInfo | None]:
    """(best transformer, best baseline) among the runs comparable with ``run``."""
    pool = comparable_runs(run)
    return (
        best_of([r for r in pool if family(r) == "transformer"], setting),
        best_of([r for r in pool if family(r) == "baseline"], setting),
    )


def default_champion(challenger: RunInfo, setting: Setting) -> RunInfo | None:
    """The best baseline comparable with ``challenger`` (not the challenger itself)."""
    pool = [r for r in comparable_runs(challenger) if r.id != challenger.id]
    return best_of([r for r in pool if family(r) == "baseline"], setting)


# ---- evaluation -----------------------------------------------------------------------------


def explain_cost_of(run: RunInfo) -> tuple[float, str]:
    """(ms per explained row, where the figure comes from): the run's latest measured
    explanation, else the explanation plan's estimate from its inference speed."""
    measured = [e for e in list_explanations(run.id) if e.get("ms_per_row")]
    if measured:
        latest = measured[0]
        return float(latest["ms_per_row"]), (
            f"measured: explanation #{latest['explanation_id']} on {latest['rows']:,} rows"
        )
    estimate = plan(run, 1, max(1, len(run.features)))
    return float(estimate["seconds"]) * 1000.0, (
        "estimated from the run's inference speed (no explanation measured yet)"
    )


def _decision_flags(values: pd.Series, flag_value: str | None) -> np.ndarray:
    text = values.astype("string").str.strip()
    if text.isna().any():
        raise ValueError("The column of today's decisions has empty cells.")
    if flag_value is not None:
        return (text == str(flag_value).strip()).to_numpy(dtype=bool)
    lower = text.str.lower()
    unknown = ~lower.isin(_TRUE | _FALSE)
    if unknown.any():
        number = pd.to_numeric(text, errors="coerce")
        if number.notna().all():
            return (number != 0).to_numpy(dtype=bool)
        raise ValueError(
            f"Cannot read today's decision {text[unknown].iloc[0]!r}; use 1/0, yes/no, "
            "flag/approve, or give status_quo_flag_value (the value that means flagged)."
        )
    return lower.isin(_TRUE).to_numpy(dtype=bool)


def _labelled(run: RunInfo, frame: pd.DataFrame) -> pd.DataFrame:
    labels = frame[run.target].astype("string").str.strip() if run.target in frame else None
    if labels is None:
        return frame
    return frame.loc[labels.isin(list(run.classes)).to_numpy()].reset_index(drop=True)


def status_quo_flags(
    run: RunInfo, setting: Setting, frame: pd.DataFrame | None, n: int
) -> np.ndarray | None:
    """Today's decisions on the evaluation rows, from the status-quo column (or None)."""
    column = setting.status_quo_column
    if not column:
        return None
    rows = _labelled(run, frame) if frame is not None else holdout_frame(run.id)
    if column not in rows.columns:
        raise ValueError(f"The status-quo column {column!r} is not in the evaluation rows.")
    return _decision_flags(
        rows[column].iloc[:n].reset_index(drop=True), setting.status_quo_flag_value
    )


@dataclass(frozen=True)
class Evaluated:
    run: RunInfo
    threshold: Threshold
    outcomes: Outcomes
    values: np.ndarray  # per evaluation row, at the operating threshold
    valuation: Valuation
    explain_source: str
    status_quo_flags: np.ndarray | None  # today's decisions from a column, when given


def evaluate(
    run: RunInfo, setting: Setting, frame: pd.DataFrame | None = None, model: Any = None
) -> Evaluated:
    """One run through the one valuation path, at its operating threshold."""
    if run.task != "binary":
        raise ValueError(f"ROI needs a binary model; run #{run.id} is {run.task}.")
    if frame is None:
        outcomes = run_outcomes(run)
    else:
        money_column = get_dataset(run.dataset_id).roles.money_column
        outcomes = labelled_outcomes(run, frame, money_column, model=model)
    threshold = threshold_for(run, setting)
    ms, source = explain_cost_of(run)
    today = status_quo_flags(run, setting, frame, len(outcomes.y))
    valuation = value_run(
        run,
        setting.use_case,
        outcomes,
        threshold=threshold.threshold,
        threshold_chosen_on=threshold.chosen_on,
        device=setting.device,
        use_money=setting.use_money,
        explanations_per_month=setting.explanations,
        explain_ms_per_row=ms,
        status_quo_flags=today,
    )
    values = model_row_values(setting.use_case, outcomes, threshold.threshold, setting.use_money)
    return Evaluated(run, threshold, outcomes, values, valuation, source, today)


# ---- the verdict ----------------------------------------------------------------------------


def paired_bootstrap(
    challenger: np.ndarray, champion: np.ndarray, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, 2.5%, 97.5%) of mean(challenger - champion) over rows resampled together: the
    row resamples of models.metrics.paired_resamples, the leaderboard comparison's too."""
    diff = np.asarray(challenger, dtype=float) - np.asarray(champion, dtype=float)
    if diff.size < 2 or np.ptp(diff) == 0:
        mean = float(diff.mean()) if diff.size else 0.0
        return mean, mean, mean
    means = np.concatenate(
        [diff[idx].mean(axis=1) for idx in paired_resamples(diff.size, n_boot, seed)]
    )
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


def cost_lines(valuation: Valuation | None, horizon: int, extra: dict | None = None) -> dict:
    """$ per month by part; one-off costs spread evenly over the horizon. None: no model."""
    if valuation is None:
        return dict.fromkeys(_COST_PARTS, 0.0)
    cost = valuation.cost
    extra = extra or {}
    return {
        "retraining compute": cost["training_per_month"],
        "scoring compute": cost["scoring_per_month"],
        "explaining compute": cost["explaining_per_month"] + cost["idle_per_month"],
        "maintenance and retrain sign-off": valuation.monthly_people_cost
        + extra.get("maintenance_per_year", 0.0) / 12,
        "one-off (integration, labelling, first training) / horizon": (
            valuation.one_off_cost + extra.get("integration", 0.0)
        )
        / horizon,
    }


_COST_PARTS = (
    "retraining compute",
    "scoring compute",
    "explaining compute",
    "maintenance and retrain sign-off",
    "one-off (integration, labelling, first training) / horizon",
)
_VARIABLE_PARTS = ("scoring compute", "explaining compute")


@dataclass(frozen=True)
class Verdict:
    label: str | None
    headline: str
    sentence: str
    challenger_run: int | None
    champion_run: int | None  # None: today's policy (or no champion at all)
    champion: str  # a run label, or today's policy in words
    challenger_threshold: float | None = None
    challenger_threshold_chosen_on: str | None = None
    champion_threshold: float | None = None
    champion_threshold_chosen_on: str | None = None
    rows: int = 0
    positives: int = 0
    rows_source: str = ""
    extra_value_per_decision: float | None = None
    extra_value_per_month: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    extra_cost_per_month: float | None = None
    extra_one_off: float | None = None
    net_per_month: float | None = None
    net_ci_low: float | None = None
    net_ci_high: float | None = None
    payback_months: float | None = None
    break_even_monthly_volume: float | None = None
    costs: dict = field(default_factory=dict)  # {"challenger": {...}, "champion": {...}}
    n_boot: int = N_BOOT
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["warnings"] = list(self.warnings)
        return out


def no_champion(challenger: RunInfo | None, why: str) -> Verdict:
    return Verdict(
        label=None,
        headline="No verdict",
        sentence=why,
        challenger_run=challenger.id if challenger else None,
        champion_run=None,
        champion="none",
    )


def _money(x: float) -> str:
    return f"-${-x:,.0f}" if x < 0 else f"${x:,.0f}"


def _volume_for(fixed: float, per_decision: float, variable: float) -> float | None:
    """Monthly volume at which per_decision x V = fixed + variable x V (None: never)."""
    margin = per_decision - variable
    if margin <= 0:
        return None
    return max(0.0, fixed / margin)


def judge(
    challenger: Evaluated, champion: Evaluated | None, setting: Setting, status_quo_name: str = ""
) -> Verdict:
    """The verdict of ``challenger`` against ``champion`` (None: today's policy)."""
    use_case = setting.use_case
    y = challenger.outcomes.y
    if champion is not None:
        if champion.outcomes.y.shape != y.shape or not np.array_equal(champion.outcomes.y, y):
            raise ValueError(
                f"Runs #{challenger.run.id} and #{champion.run.id} were not evaluated on the "
                "same rows (different dataset, target or split); pick two runs of one split."
            )
        base_values = champion.values
    else:
        base_values = status_quo_row_values(
            use_case, challenger.outcomes, setting.use_money, challenger.status_quo_flags
        )
    volume = use_case.monthly_volume
    mean, low, high = paired_bootstrap(challenger.values, base_values, setting.n_boot)
    horizon = use_case.horizon_months
    extra = {
        "integration": setting.challenger_extra_integration,
        "maintenance_per_year": setting.challenger_extra_maintenance_per_year,
    }
    costs = {
        "challenger": cost_lines(challenger.valuation, horizon, extra),
        "champion": cost_lines(champion.valuation if champion else None, horizon),
    }
    extra_cost = sum(costs["challenger"].values()) - sum(costs["champion"].values())
    variable = sum(costs["challenger"][p] - costs["champion"][p] for p in _VARIABLE_PARTS)
    fixed = extra_cost - variable
    extra_one_off = (
        challenger.valuation.one_off_cost
        + setting.challenger_extra_integration
        - (champion.valuation.one_off_cost if champion else 0.0)
    )
    value_month, low_month, high_month = mean * volume, low * volume, high * volume
    net = value_month - extra_cost
    running = extra_cost - extra_one_off / horizon
    monthly_gain = value_month - running
    if monthly_gain > 0:
        payback = max(0.0, extra_one_off) / monthly_gain
    else:
        payback = None
    per_var = variable / volume if volume > 0 else 0.0
    break_even = _volume_for(fixed, mean, per_var)
    if low_month - extra_cost > 0:
        label = "pays"
    elif high_month - extra_cost < 0:
        label = "does_not_pay"
    else:
        label = "not_distinguishable"
    champion_name = champion.run.label if champion else status_quo_name or "today's policy"
    positives = int(np.asarray(y).sum())
    sentence = _sentence(
        label,
        low_month,
        high_month,
        extra_cost,
        fixed,
        low,
        high,
        per_var,
        volume,
        len(y),
        positives,
    )
    warnings = []
    if positives < MIN_POSITIVES:
        warnings.append(
            f"Only {positives} positive case(s) in the evaluation rows: the interval is "
            f"unreliable (need at least {MIN_POSITIVES})."
        )
    warnings += [
        w
        for w in challenger.valuation.warnings
        if "device choice" not in w and "positive case" not in w
    ]
    return Verdict(
        label=label,
        headline=(
            f"{challenger.run.label} vs {champion_name}: {LABELS[label]} — "
            f"{_money(net)} a month net ({_money(value_month)} extra value, 95% interval "
            f"{_money(low_month)} to {_money(high_month)}; {_money(extra_cost)} extra cost)"
        ),
        sentence=sentence,
        challenger_run=challenger.run.id,
        champion_run=champion.run.id if champion else None,
        champion=champion_name,
        challenger_threshold=challenger.threshold.threshold,
        challenger_threshold_chosen_on=challenger.threshold.chosen_on,
        champion_threshold=champion.threshold.threshold if champion else None,
        champion_threshold_chosen_on=champion.threshold.chosen_on if champion else None,
        rows=int(len(y)),
        positives=positives,
        rows_source=challenger.outcomes.source,
        extra_value_per_decision=mean,
        extra_value_per_month=value_month,
        ci_low=low_month,
        ci_high=high_month,
        extra_cost_per_month=extra_cost,
        extra_one_off=extra_one_off,
        net_per_month=net,
        net_ci_low=low_month - extra_cost,
        net_ci_high=high_month - extra_cost,
        payback_months=payback,
        break_even_monthly_volume=break_even,
        costs=costs,
        n_boot=setting.n_boot,
        warnings=tuple(dict.fromkeys(warnings)),
    )


def _sentence(
    label: str,
    low_month: float,
    high_month: float,
    extra_cost: float,
    fixed: float,
    low: float,
    high: float,
    per_var: float,
    volume: float,
    rows: int,
    positives: int,
) -> str:
    more_rows = f"label more evaluation rows (now {rows:,}, {positives:,} positive) to narrow it"
    if label == "pays":
        floor = _volume_for(fixed, low, per_var)
        where = (
            f"; it would stop being sure below about {floor:,.0f} decisions a month"
            if floor is not None and floor >= 1
            else "; the extra cost is negligible, so only a worse model (or fewer good rows "
            "in the interval) would change this, not the volume"
        )
        return (
            f"Even the low end of the interval ({_money(low_month)} a month) covers the extra "
            f"cost ({_money(extra_cost)}){where}."
        )
    if label == "does_not_pay":
        needed = _volume_for(fixed, high, per_var)
        if high <= per_var:
            return (
                f"Even the high end of the interval ({_money(high_month)} a month) does not "
                "cover the extra cost, and no volume would change that: the challenger is not "
                "better per decision. A better model or a cheaper deployment would."
            )
        return (
            f"Even the high end of the interval ({_money(high_month)} a month) is below the "
            f"extra cost ({_money(extra_cost)}); it could pay at about {needed:,.0f} decisions "
            f"a month (now {volume:,.0f}), or with a lower extra cost."
        )
    needed = _volume_for(fixed, low, per_var)
    if needed is not None:
        return (
            f"The interval ({_money(low_month)} to {_money(high_month)} a month, against "
            f"{_money(extra_cost)} extra cost) crosses zero: it would be sure to pay at about "
            f"{needed:,.0f} decisions a month (now {volume:,.0f}), or {more_rows}."
        )
    return (
        f"The interval ({_money(low_month)} to {_money(high_month)} a month, against "
        f"{_money(extra_cost)} extra cost) crosses zero and its low end is not above zero per "
        f"decision, so no volume settles it: {more_rows}, or improve the challenger."
    )


# ---- use cases: page, CLI, report -----------------------------------------------------------


def status_quo_name(setting: Setting) -> str:
    if setting.status_quo_column:
        return f"today's decisions (column {setting.status_quo_column!r})"
    policy = setting.use_case.status_quo.policy
    return {
        "approve_all": f"today's policy: {setting.use_case.negative_decision} everyone",
        "flag_all": f"today's policy: {setting.use_case.positive_decision} everyone",
        "manual_review": "today's policy: manual review of every case",
    }.get(policy, f"today's policy ({policy})")


def _check_comparable(challenger: RunInfo, champion: RunInfo) -> None:
    if (challenger.dataset_id, challenger.target, challenger.seed) != (
        champion.dataset_id,
        champion.target,
        champion.seed,
    ):
        raise ValueError(
            f"Run #{champion.id} was trained on another dataset, target or split than run "
            f"#{challenger.id}; a paired comparison needs the same evaluation rows."
        )
    if champion.status != "succeeded" or champion.task != "binary":
        raise ValueError(f"Run #{champion.id} is not a finished binary model.")


def verdict_for(
    challenger: Evaluated,
    setting: Setting,
    vs: int | str | None = None,
    frame: pd.DataFrame | None = None,
) -> tuple[Verdict, Evaluated | None]:
    """The verdict of an evaluated run against ``vs``: a run id, ``"status_quo"`` (today's
    policy), or None (the best baseline of the same dataset, target and split)."""
    run = challenger.run
    if vs == STATUS_QUO:
        return judge(challenger, None, setting, status_quo_name(setting)), None
    if vs is None:
        champion_run = default_champion(run, setting)
        if champion_run is None:
            return no_champion(
                run,
                "There is no champion: no baseline run (logistic regression, LightGBM, "
                "TF-IDF) on the same dataset, target and split. Train one, or compare with "
                "today's policy.",
            ), None
    else:
        champion_run = get_run(int(vs))
        _check_comparable(run, champion_run)
        if champion_run.id == run.id:
            raise ValueError("Pick two different runs to compare.")
    model = load_run_model(champion_run.id) if frame is not None else None
    champion = evaluate(champion_run, setting, frame, model)
    return judge(challenger, champion, setting), champion


def parse_vs(value: str | None) -> int | str | None:
    if value is None:
        return None
    text = str(value).strip().lower().replace("-", "_")
    if text in (STATUS_QUO, "today", "status_quo_policy"):
        return STATUS_QUO
    if text.isdigit():
        return int(text)
    raise ValueError(f"--vs must be a run id or 'status_quo', got {value!r}.")


def roi_summary(
    run_id: int,
    use_case_key: str,
    *,
    frame: pd.DataFrame | None = None,
    assumptions: dict | None = None,
    vs: int | str | None = None,
) -> dict:
    """The CLI's ``roi`` answer: the run valued at its operating threshold, the hindsight
    optimum apart, and the verdict against a champion."""
    setting = setting_from(use_case_key, assumptions)
    run = get_run(run_id)
    model = load_run_model(run.id) if frame is not None else None
    challenger = evaluate(run, setting, frame, model)
    verdict, champion = verdict_for(challenger, setting, vs, frame)
    valuation = challenger.valuation
    use_case = setting.use_case
    out = valuation.to_dict()
    out.pop("cumulative_net")
    matrix = use_case.money_multipliers if valuation.money_weighted else use_case.payoff
    assert matrix is not None  # a money-weighted valuation has its multipliers
    out.update(
        threshold_source=challenger.threshold.describe(),
        explain_ms_source=challenger.explain_source,
        baseline_run_id=verdict.champion_run,
        payoff=matrix.to_dict(),
        monthly_volume=use_case.monthly_volume,
        verdict=verdict.to_dict(),
        champion_threshold=verdict.champion_threshold,
    )
    return out


def compare_table(
    run: RunInfo, setting: Setting, champion: Evaluated | None = None
) -> pd.DataFrame:
    """Every comparable run valued the same way (each at its own operating threshold, on the
    same test rows), with money differences from the champion; Pareto fronts on monthly cost
    vs test metric and vs monthly net. No ratios: a difference of micro-dollars of compute
    must not become a huge "incremental ROI"."""
    rows = []
    for other in comparable_runs(run):
        ev = evaluate(other, setting)
        v = ev.valuation
        monthly_all_in = v.monthly_cost + v.one_off_cost / setting.use_case.horizon_months
        rows.append(
            {
                "run_id": other.id,
                "run": other.label,
                "family": family(other),
                "metric": other.headline[1],
                "threshold": v.threshold,
                "threshold_chosen_on": v.threshold_chosen_on,
                "value_per_decision": v.value_per_decision,
                "monthly_value": v.monthly_value,
                "monthly_compute_cost": v.monthly_compute_cost,
                "monthly_cost": monthly_all_in,
                "monthly_net": v.monthly_value - monthly_all_in,
                "npv": v.npv,
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    if champion is not None:
        base = frame.loc[frame["run_id"] == champion.run.id, "monthly_net"]
        frame["net_vs_champion"] = frame["monthly_net"] - (base.iloc[0] if len(base) else np.nan)
    frame["pareto_accuracy"] = eco.pareto_front(frame["monthly_cost"], frame["metric"].fillna(0))
    frame["pareto_profit"] = eco.pareto_front(frame["monthly_cost"], frame["monthly_net"])
    return frame


# ---- the report -----------------------------------------------------------------------------


def explanation_quality(run: RunInfo) -> tuple[dict | None, pd.DataFrame | None]:
    """The latest explanation's quality figures and global importance (None when none)."""
    explained = list_explanations(run.id)
    if not explained:
        return None, None
    latest = get_explanation(explained[0]["explanation_id"])
    fidelity = latest.quality.get("fidelity") or {}
    quality = {
        "method": latest.method,
        "explained rows": len(latest.output),
        "explain ms_per_row": latest.ms_per_row,
        "additivity max error (log-odds)": latest.additivity_error,
        "fidelity Spearman vs reference": fidelity.get("spearman"),
        "fidelity max error (share of total)": fidelity.get("max_abs_error"),
        "fidelity reference": fidelity.get("reference"),
    }
    broad = latest.quality.get("fidelity_broad") or {}
    if broad:
        quality.update(
            {
                "fidelity Spearman vs the data": broad.get("spearman"),
                "fidelity max error vs the data (share of total)": broad.get("max_abs_error"),
                "fidelity reference (the data)": broad.get("reference"),
            }
        )
    return quality, latest.importance()


def _metrics_with_interval(run: RunInfo) -> dict:
    out: dict = {k: v for k, v in run.metrics.figures().items() if k != "test_rows"}
    name, value, interval = run.headline
    if interval:
        out[f"{name} 95% interval"] = f"{interval[0]:.3f} to {interval[1]:.3f}"
    out["test rows"] = f"{run.metrics.test_rows or 0:,}"
    return out


def report_html(
    challenger: Evaluated,
    setting: Setting,
    verdict: Verdict | None = None,
    champion: Evaluated | None = None,
    table: pd.DataFrame | None = None,
) -> str:
    """The audit report of a valuation: verdict, payoff, costs, threshold, models, explanation
    quality, assumptions with sources, inline SVG charts (core.scenarios.html_report)."""
    run, v, use_case = challenger.run, challenger.valuation, setting.use_case
    dataset = get_dataset(run.dataset_id)
    quality, importance = explanation_quality(run)
    if quality is not None:
        quality["explain ms_per_row source"] = challenger.explain_source
    threshold = {
        "operating threshold": v.threshold,
        "chosen on": challenger.threshold.describe(),
        "flagged share at the operating threshold": v.flagged_share,
        "value_per_decision there": v.value_per_decision,
        "hindsight best threshold (in-sample, not used)": v.hindsight_best_threshold,
        "hindsight value_per_decision (in-sample, it flatters)": v.hindsight_value_per_decision,
        "evaluation rows": f"{v.rows:,} ({v.outcomes_source}), {v.positives:,} positive",
    }
    if champion is not None:
        threshold["champion threshold"] = champion.threshold.threshold
        threshold["champion threshold chosen on"] = champion.threshold.describe()
    results = {
        k: v.to_dict()[k]
        for k in (
            "value_per_decision",
            "status_quo_value_per_decision",
            "monthly_value",
            "monthly_compute_cost",
            "monthly_people_cost",
            "monthly_cost",
            "one_off_cost",
            "roi",
            "payback_months",
            "npv",
        )
    }
    matrix = (
        (use_case.money_multipliers or use_case.payoff) if v.money_weighted else use_case.payoff
    )
    payoff = {
        k: (f"x {x:g} of the amount" if v.money_weighted else x)
        for k, x in matrix.to_dict().items()
    }
    if v.money_weighted and use_case.money_fixed is not None:
        payoff.update({f"{k} fixed": x for k, x in use_case.money_fixed.to_dict().items()})
    costs = (
        verdict.costs
        if verdict is not None and verdict.costs
        else {"this model": cost_lines(v, use_case.horizon_months)}
    )
    figures = [_profit_svg(challenger, champion, setting, profit_curve_for), ""]
    lines = [(f"{who}: {part}", x) for who, parts in costs.items() for part, x in parts.items()]
    figures.append(svg_bars(lines, title="Cost $ per month by part"))
    if verdict is not None and verdict.label is not None:
        figures.append(
            svg_bars(
                [
                    (name, float(value))
                    for name, value in (
                        ("extra value, 95% low", verdict.ci_low),
                        ("extra value, estimate", verdict.extra_value_per_month),
                        ("extra value, 95% high", verdict.ci_high),
                        ("extra cost", verdict.extra_cost_per_month),
                        ("net", verdict.net_per_month),
                    )
                    if value is not None
                ],
                title="Verdict $ per month",
            )
        )
    models = None
    if table is not None and not table.empty:
        keep = [
            c
            for c in (
                "run",
                "metric",
                "threshold",
                "value_per_decision",
                "monthly_value",
                "monthly_cost",
                "monthly_net",
                "net_vs_champion",
            )
            if c in table.columns
        ]
        models = table[keep]
    return html_report(
        dataset={
            "name": dataset.name,
            "rows": dataset.n_rows,
            "columns": dataset.n_columns,
            "target": run.target,
        },
        run={
            "run": run.label,
            "device": run.device_name,
            "train seconds": f"{run.train_seconds or 0:,.1f} s",
            "parameters": run.params,
            "FLOPs per row": f"{run.flops_per_row or 0:,.0f}",
            "inference rows/s": f"{run.infer_rows_per_s or 0:,.0f}",
        },
        metrics=_metrics_with_interval(run),
        importance=importance,
        assumptions=setting.assumptions(),
        sources=setting.sources(),
        results=results,
        figures_html=figures,
        verdict=verdict.to_dict() if verdict is not None and verdict.label else None,
        payoff=payoff,
        costs=costs,
        threshold=threshold,
        models=models,
        explanation=quality,
        warnings=list(dict.fromkeys([*(verdict.warnings if verdict else ()), *v.warnings])),
    )


def _profit_svg(challenger: Evaluated, champion: Evaluated | None, setting: Setting, curve_of):
    series, vlines = [], []
    for who, ev in (("challenger", challenger), ("champion", champion)):
        if ev is None:
            continue
        curve = curve_of(setting.use_case, ev.outcomes, setting.use_money)
        curve = curve[curve["threshold"] <= 1.0]
        series.append(
            (
                f"{who} {ev.run.label}",
                curve["threshold"].tolist(),
                curve["value_per_decision"].tolist(),
            )
        )
        vlines.append((f"{who} operating", ev.threshold.threshold))
    vlines.append(("hindsight", challenger.valuation.hindsight_best_threshold))
    return svg_lines(
        series,
        title="Value per decision by threshold (evaluation rows)",
        x_label="threshold: flag when P(positive) >= threshold",
        y_label="$ per decision",
        vlines=vlines,
        hlines=[("today", challenger.valuation.status_quo_value_per_decision)],
    )
