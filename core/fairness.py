"""Responsible use: how a binary run treats groups, what fairness costs, where it loses money.

Everything is computed at one decision rule, the one every page uses: a row is *flagged* when
P(positive) >= threshold (the run's operating threshold unless the caller gives one).

- ``fairness_report``: per group of one column (numeric columns cut into quantile bands,
  missing values a group of their own, "(missing)"): n, selection rate (share flagged), true
  and false positive rates, positive rate (share of actual positives) and ROC-AUC, computed
  with fairlearn's ``MetricFrame``; the demographic parity ratio (lowest selection rate /
  highest, fairlearn's ``demographic_parity_ratio``; the "four-fifths rule" asks >= 0.8) and the
  equalized-odds difference (the largest gap between groups in TPR or FPR, fairlearn's
  ``equalized_odds_difference``).
- ``price_of_fairness``: the monthly value at the one threshold against the best value with
  one threshold per group chosen so that the parity ratio stays >= a target (searched on the
  run's validation rows, reported on the analyst's rows), in the ROI page's money.
- ``segment_table``: the same figures plus value per segment of any column, sorted so the
  segments where the model loses money against today's policy come first.

Scores of a CSV come from ``core.scoring.read_scored``, the reader and model call of
``score``, so every figure here can be recomputed from the ``score`` output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from core import economics as eco
from core.usecases import UseCase
from core.valuation import Outcomes, _payoff_terms

MISSING_GROUP = "(missing)"
MAX_GROUPS = 50
DEFAULT_BANDS = 4
# A numeric column with at most this many distinct values is used as it is (a 0/1 flag, a
# rating); more values are cut into quantile bands.
MAX_UNBANDED_NUMERIC = 10
FOUR_FIFTHS = 0.8
# Per group, at most this many candidate thresholds (score quantiles) in the fairness search.
MAX_CANDIDATES = 120


# ---- groups ---------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


@dataclass(frozen=True)
class Grouping:
    """How the values of one column become group labels; applies the same cut to any rows."""

    column: str
    edges: tuple[float, ...] | None  # quantile band edges (numeric columns), else None
    order: tuple[str, ...]  # labels in display order
    numeric: bool = False  # unbanded numbers are labelled "1", "2.5" whether read as text or not

    @property
    def banded(self) -> bool:
        return self.edges is not None

    def band_range(self, label: str) -> tuple[float | None, float | None]:
        """(low, high) of a band: low <= value < high; the last band includes its high, the
        first and last also take values beyond the edges. (None, None) for other groups."""
        if self.edges is None or label not in _band_labels(self.edges):
            return None, None
        i = _band_labels(self.edges).index(label)
        return float(self.edges[i]), float(self.edges[i + 1])

    def apply(self, values: pd.Series) -> pd.Series:
        if self.edges is None and self.numeric:
            numbers = pd.to_numeric(values, errors="coerce")
            labels = [MISSING_GROUP if pd.isna(v) else f"{float(v):.10g}" for v in numbers]
            return pd.Series(labels, dtype=object)
        if self.edges is None:
            labels = values.astype("string").str.strip()
            labels = labels.mask(labels.eq(""))
            return labels.fillna(MISSING_GROUP).astype(object).reset_index(drop=True)
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        inner = np.asarray(self.edges[1:-1], dtype=float)
        band = np.searchsorted(inner, numbers, side="right")
        names = np.asarray(_band_labels(self.edges), dtype=object)
        out = names[np.clip(band, 0, len(names) - 1)]
        out[np.isnan(numbers)] = MISSING_GROUP
        return pd.Series(out, dtype=object)


def _band_labels(edges: tuple[float, ...]) -> list[str]:
    """Readable band names: "20 to under 35", ..., "50 to 69" (the last band is closed)."""
    names = []
    for i in range(len(edges) - 1):
        low, high = _fmt(edges[i]), _fmt(edges[i + 1])
        last = i == len(edges) - 2
        names.append(f"{low} to {high}" if last else f"{low} to under {high}")
    return names


def _as_numbers(values: pd.Series) -> np.ndarray | None:
    """The column as floats when every present value is a number, else None."""
    present = values.dropna()
    if present.empty:
        return None
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    numbers = pd.to_numeric(present.astype("string").str.strip(), errors="coerce")
    if numbers.isna().any():
        return None
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def make_grouping(values: pd.Series, column: str, bands: int = DEFAULT_BANDS) -> Grouping:
    """Group labels for ``column``: categories as they are, numeric columns with more than
    MAX_UNBANDED_NUMERIC distinct values cut into ``bands`` quantile bands (0 = never band).

    Refuses (ValueError) a column with one group, or with more than MAX_GROUPS."""
    numbers = _as_numbers(values)
    edges = None
    if numbers is not None and bands > 0:
        finite = numbers[np.isfinite(numbers)]
        if np.unique(finite).size > MAX_UNBANDED_NUMERIC:
            cut = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bands + 1)))
            if cut.size >= 2:
                edges = tuple(float(e) for e in cut)
    grouping = Grouping(column, edges, (), numbers is not None)
    labels = grouping.apply(values)
    if edges is not None:
        order = [n for n in _band_labels(edges) if n in set(labels)]
    elif numbers is not None:
        keys = sorted({v for v in labels if v != MISSING_GROUP}, key=lambda v: float(v))
        order = keys
    else:
        order = sorted({v for v in labels if v != MISSING_GROUP})
    if (labels == MISSING_GROUP).any():
        order.append(MISSING_GROUP)
    if len(order) < 2:
        raise ValueError(
            f"Column {column!r} has only one value here ({order[0] if order else 'none'!r}), so "
            "there are no groups to compare. Pick another column"
            + (" or band it into ranges." if numbers is not None else ".")
        )
    if len(order) > MAX_GROUPS:
        hint = (
            "Band it into ranges (a number of bands of 2 or more) instead."
            if numbers is not None
            else "Group its values into fewer categories (band it) before uploading, or pick "
            "another column."
        )
        raise ValueError(
            f"Column {column!r} has {len(order)} different values; at most {MAX_GROUPS} groups "
            f"can be compared. {hint}"
        )
    return Grouping(column, edges, tuple(order), numbers is not None)


# ---- the group table ------------------------------------------------------------------------


def _positive_rate(y_true, y_pred) -> float:
    return float(np.mean(y_true)) if len(y_true) else float("nan")


def _roc_auc(y_true, y_score) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y_true)) < 2:
        return float("nan")  # AUC needs both classes in the group
    return float(roc_auc_score(y_true, y_score))


def _none_if_nan(value: Any) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


@dataclass(frozen=True)
class FairnessReport:
    group_column: str
    threshold: float
    banded: bool
    rows: int
    groups: list[dict]  # group, n, selection_rate, tpr, fpr, positive_rate, roc_auc
    demographic_parity_ratio: float | None
    equalized_odds_difference: float | None
    four_fifths_ok: bool | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.groups)


def group_metrics(
    y: np.ndarray, score: np.ndarray, groups: pd.Series, threshold: float, order: list[str]
) -> pd.DataFrame:
    """Per group (rows in ``order``): n, selection_rate, tpr, fpr, positive_rate, roc_auc.

    selection_rate = flagged / n; tpr = flagged positives / positives (None without
    positives); fpr = flagged negatives / negatives (None without negatives); positive_rate =
    positives / n; flagged = score >= threshold. Computed by fairlearn's MetricFrame."""
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    y = np.asarray(y, dtype=int)
    score = np.asarray(score, dtype=float)
    flags = (score >= threshold).astype(int)
    sensitive = np.asarray(groups, dtype=object)
    on_flags = MetricFrame(
        metrics={
            "n": count,
            "selection_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
        },
        y_true=y,
        y_pred=flags,
        sensitive_features=sensitive,
    ).by_group
    on_scores = MetricFrame(
        metrics={"positive_rate": _positive_rate, "roc_auc": _roc_auc},
        y_true=y,
        y_pred=score,
        sensitive_features=sensitive,
    ).by_group
    table = on_flags.join(on_scores).reindex(order)
    positives = pd.Series(y).groupby(sensitive).sum().reindex(order)
    negatives = pd.Series(1 - y).groupby(sensitive).sum().reindex(order)
    # fairlearn reports 0 for a rate whose denominator is empty; it is undefined.
    table.loc[positives.to_numpy() == 0, "tpr"] = np.nan
    table.loc[negatives.to_numpy() == 0, "fpr"] = np.nan
    table = table.reset_index(drop=True)
    table.insert(0, "group", list(order))
    table["n"] = table["n"].astype(int)
    return table


def parity_figures(
    y: np.ndarray, flags: np.ndarray, groups: pd.Series, table: pd.DataFrame
) -> tuple[float | None, float | None]:
    """(demographic parity ratio, equalized-odds difference) by fairlearn's functions.

    Groups whose TPR (or FPR) is undefined (no actual positives, or negatives) are left out
    of that gap; fairlearn would count them as 0, so then the gap is read off the table."""
    from fairlearn.metrics import demographic_parity_ratio, equalized_odds_difference

    sensitive = np.asarray(groups, dtype=object)
    rates = table["selection_rate"].to_numpy(dtype=float)
    ratio = (
        float(demographic_parity_ratio(y, flags, sensitive_features=sensitive))
        if rates.max() > 0
        else None  # nobody flagged anywhere: no ratio (0 / 0)
    )
    tpr, fpr = table["tpr"].to_numpy(dtype=float), table["fpr"].to_numpy(dtype=float)
    gap: float | None
    if np.isfinite(tpr).all() and np.isfinite(fpr).all():
        gap = float(equalized_odds_difference(y, flags, sensitive_features=sensitive))
    else:
        gaps = [np.nanmax(r) - np.nanmin(r) for r in (tpr, fpr) if np.isfinite(r).sum() >= 2]
        gap = float(max(gaps)) if gaps else None
    return ratio, gap


def fairness_report(
    y: np.ndarray,
    score: np.ndarray,
    values: pd.Series,
    column: str,
    threshold: float,
    bands: int = DEFAULT_BANDS,
) -> FairnessReport:
    """The group table and the two summary figures for one column (see the module doc)."""
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"The threshold must be between 0 and 1, got {threshold}.")
    grouping = make_grouping(values, column, bands)
    groups = grouping.apply(values)
    y = np.asarray(y, dtype=int)
    flags = (np.asarray(score, dtype=float) >= threshold).astype(int)
    table = group_metrics(y, score, groups, threshold, list(grouping.order))
    ratio, gap = parity_figures(y, flags, groups, table)
    records: list[dict[str, Any]] = [
        {k: (_none_if_nan(v) if k not in ("group", "n") else v) for k, v in row.items()}
        for row in table.to_dict("records")
    ]
    if grouping.banded:  # the band's edges, so any figure can be recomputed from raw values
        for record in records:
            record["low"], record["high"] = grouping.band_range(str(record["group"]))
    return FairnessReport(
        group_column=column,
        threshold=float(threshold),
        banded=grouping.banded,
        rows=int(y.size),
        groups=records,
        demographic_parity_ratio=ratio,
        equalized_odds_difference=gap,
        four_fifths_ok=None if ratio is None else ratio >= FOUR_FIFTHS,
    )


# ---- value ----------------------------------------------------------------------------------


def _value_per_decision(
    use_case: UseCase, outcomes: Outcomes, flags: np.ndarray, use_money: bool
) -> tuple[float, float]:
    """(model value per decision, status-quo value per decision) with the ROI page's economics
    (core.valuation._payoff_terms: money-weighted when the use case and rows allow it)."""
    weights, payoff, fixed = _payoff_terms(use_case, outcomes, use_money)
    n = outcomes.y.size
    model = eco.decisions_value(outcomes.y, flags, payoff, weights, fixed) / n
    today = eco.status_quo_value(
        outcomes.y,
        payoff,
        cast(eco.StatusQuoPolicy, use_case.status_quo.policy),
        weights=weights,
        manual_cost=use_case.status_quo.cost_per_decision,
        fixed=fixed,
    )
    return float(model), float(today)


def _subset(outcomes: Outcomes, mask: np.ndarray) -> Outcomes:
    money = None if outcomes.money is None else outcomes.money[mask]
    return Outcomes(outcomes.y[mask], outcomes.score[mask], money, outcomes.source)


def _selection_ratio(flags: np.ndarray, groups: np.ndarray) -> float | None:
    rates = pd.Series(flags.astype(float)).groupby(groups).mean()
    return None if rates.max() <= 0 else float(rates.min() / rates.max())


def _group_candidates(
    use_case: UseCase, outcomes: Outcomes, use_money: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, selection rates, value totals) of one group's rows: its score quantiles
    plus flag-everyone (0) and flag-nobody (just above 1)."""
    weights, payoff, fixed = _payoff_terms(use_case, outcomes, use_money)
    scores = np.unique(outcomes.score)
    if scores.size > MAX_CANDIDATES:
        scores = np.unique(np.quantile(scores, np.linspace(0, 1, MAX_CANDIDATES), method="lower"))
    thresholds = np.unique(np.concatenate(([0.0], scores, [np.nextafter(1.0, 2.0)])))
    curve = eco.profit_curve(
        outcomes.y, outcomes.score, payoff, weights, thresholds=thresholds, fixed=fixed
    )
    return (
        curve["threshold"].to_numpy(dtype=float),
        curve["flagged_share"].to_numpy(dtype=float),
        curve["value_total"].to_numpy(dtype=float),
    )


def fair_thresholds(
    use_case: UseCase,
    outcomes: Outcomes,
    groups: pd.Series,
    min_ratio: float,
    use_money: bool = True,
) -> dict[str, float]:
    """One threshold per group maximising the total value on ``outcomes`` subject to
    (lowest group selection rate) / (highest) >= ``min_ratio``.

    Exact over each group's candidate thresholds: a feasible choice has some lowest rate L,
    and then every group's rate lies in [L, L / min_ratio]; for each L among the achievable
    rates every group independently takes its best threshold inside that window, and the best
    total over all L wins (near-ties go to the higher threshold)."""
    if not 0.0 < float(min_ratio) <= 1.0:
        raise ValueError(f"The parity target must be above 0 and at most 1, got {min_ratio}.")
    labels = np.asarray(groups, dtype=object)
    names = list(dict.fromkeys(labels))
    per_group = [
        _group_candidates(use_case, _subset(outcomes, labels == g), use_money) for g in names
    ]
    levels = np.unique(np.concatenate([rate[rate > 0] for _, rate, _ in per_group]))
    eps = 1e-12
    best_total, best_choice = -np.inf, None
    # [levels x candidates] per group: the best feasible value at each level.
    totals = np.zeros(levels.size)
    choice = np.zeros((len(names), levels.size), dtype=int)
    feasible_all = np.ones(levels.size, dtype=bool)
    for g, (thresholds, rate, value) in enumerate(per_group):
        inside = (rate[None, :] >= levels[:, None] - eps) & (
            rate[None, :] <= levels[:, None] / min_ratio + eps
        )
        masked = np.where(inside, value[None, :], -np.inf)
        top = masked.max(axis=1)
        feasible_all &= np.isfinite(top)
        # Near-ties go to the highest threshold (flags fewer cases), as in best_threshold.
        tied = masked >= (top - 1e-9 * np.maximum(1.0, np.abs(top)))[:, None]
        choice[g] = np.where(tied, np.arange(thresholds.size)[None, :], -1).max(axis=1)
        totals += np.where(np.isfinite(top), top, 0.0)
    totals[~feasible_all] = -np.inf
    if np.isfinite(totals).any():
        k = int(np.argmax(totals))
        best_total, best_choice = totals[k], choice[:, k]
    if best_choice is None or not np.isfinite(best_total):
        raise ValueError("No group thresholds meet the parity target on these rows.")
    return {g: float(per_group[i][0][best_choice[i]]) for i, g in enumerate(names)}


def best_group_thresholds(
    use_case: UseCase, outcomes: Outcomes, groups: pd.Series, use_money: bool = True
) -> dict[str, float]:
    """One threshold per group, each the value-maximising one for its group, with no parity
    target (what group thresholds gain before fairness is asked of them)."""
    labels = np.asarray(groups, dtype=object)
    out = {}
    for name in dict.fromkeys(labels):
        thresholds, _, value = _group_candidates(
            use_case, _subset(outcomes, labels == name), use_money
        )
        top = value.max()
        tied = value >= top - 1e-9 * max(1.0, abs(top))
        out[name] = float(thresholds[np.flatnonzero(tied)].max())
    return out


def _apply_thresholds(
    score: np.ndarray, groups: np.ndarray, thresholds: dict[str, float], default: float
) -> np.ndarray:
    cut = np.array([thresholds.get(g, default) for g in groups], dtype=float)
    return score >= cut


def price_of_fairness(
    use_case: UseCase,
    report: Outcomes,
    report_values: pd.Series,
    column: str,
    threshold: float,
    min_ratio: float = FOUR_FIFTHS,
    *,
    search: Outcomes | None = None,
    search_values: pd.Series | None = None,
    bands: int = DEFAULT_BANDS,
    use_money: bool = True,
) -> dict[str, Any]:
    """Monthly value at the one threshold vs with per-group thresholds that keep the
    demographic parity ratio >= ``min_ratio``.

    The group thresholds are searched on ``search`` rows (the run's validation rows; the
    analyst's rows themselves when ``search`` is None) and both policies are valued on the
    ``report`` rows. Formulas (as on the ROI page): value per decision = total payoff of the
    decisions / rows; monthly value = (value per decision - status quo's value per decision)
    x the use case's monthly volume; price per month = monthly value at the one threshold -
    monthly value with the group thresholds (negative: group thresholds gain more than the
    target costs). Keys: ``unconstrained`` (the one threshold), ``constrained`` (group
    thresholds under the target), ``group_best`` (each group's own best threshold, no
    target), each with value_per_decision, monthly_value, parity_ratio, flagged_share;
    ``group_thresholds``; ``price_per_month``; ``price_of_target_per_month``."""
    grouping = make_grouping(report_values, column, bands)
    report_groups = np.asarray(grouping.apply(report_values), dtype=object)
    in_sample = search is None or search_values is None
    if search is None or search_values is None:
        search, search_groups = report, report_groups
    else:
        search_groups = np.asarray(grouping.apply(search_values), dtype=object)
    group_cut = fair_thresholds(use_case, search, pd.Series(search_groups), min_ratio, use_money)
    free_cut = best_group_thresholds(use_case, search, pd.Series(search_groups), use_money)
    single = report.score >= threshold
    fair = _apply_thresholds(report.score, report_groups, group_cut, threshold)
    free = _apply_thresholds(report.score, report_groups, free_cut, threshold)
    volume = use_case.monthly_volume
    figures: dict[str, dict[str, Any]] = {}
    for name, flags in (("unconstrained", single), ("constrained", fair), ("group_best", free)):
        model, today = _value_per_decision(use_case, report, flags, use_money)
        figures[name] = {
            "value_per_decision": model,
            "monthly_value": (model - today) * volume,
            "parity_ratio": _selection_ratio(flags, report_groups),
            "flagged_share": float(flags.mean()),
        }
    search_fair = _apply_thresholds(search.score, search_groups, group_cut, threshold)
    return {
        "group_column": column,
        "min_ratio": float(min_ratio),
        "threshold": float(threshold),
        "group_thresholds": {g: group_cut[g] for g in grouping.order if g in group_cut},
        "search_rows": int(search.y.size),
        "searched_on": "the same rows (in-sample)" if in_sample else "validation rows",
        "search_parity_ratio": _selection_ratio(search_fair, search_groups),
        "report_rows": int(report.y.size),
        "monthly_volume": float(volume),
        **figures,
        "price_per_month": figures["unconstrained"]["monthly_value"]
        - figures["constrained"]["monthly_value"],
        # Group thresholds have more freedom than one threshold, so the price above can be
        # negative; the price of the parity target itself compares group thresholds with
        # and without it.
        "price_of_target_per_month": figures["group_best"]["monthly_value"]
        - figures["constrained"]["monthly_value"],
    }


# ---- segments -------------------------------------------------------------------------------


def segment_table(
    use_case: UseCase,
    outcomes: Outcomes,
    values: pd.Series,
    column: str,
    threshold: float,
    bands: int = DEFAULT_BANDS,
    use_money: bool = True,
) -> pd.DataFrame:
    """Per segment: the group figures plus value. value_per_decision and
    status_quo_per_decision are the segment's own; monthly_value = (segment's model value -
    segment's status-quo value) / all rows x monthly volume, the segment's share of the
    run's monthly value (the segments add up to it). Sorted: the biggest money loser first."""
    grouping = make_grouping(values, column, bands)
    groups = grouping.apply(values)
    labels = np.asarray(groups, dtype=object)
    table = group_metrics(outcomes.y, outcomes.score, groups, threshold, list(grouping.order))
    flags = outcomes.score >= threshold
    n_all = outcomes.y.size
    model_col, today_col, monthly = [], [], []
    for name in table["group"]:
        mask = labels == name
        model, today = _value_per_decision(
            use_case, _subset(outcomes, mask), flags[mask], use_money
        )
        model_col.append(model)
        today_col.append(today)
        monthly.append((model - today) * mask.sum() / n_all * use_case.monthly_volume)
    table["value_per_decision"] = model_col
    table["status_quo_per_decision"] = today_col
    table["monthly_value"] = monthly
    return table.sort_values("monthly_value", kind="stable").reset_index(drop=True)


# ---- rows for a run -------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledRows:
    """Labelled rows of one run with their scores: ``rows`` as the analyst sees them (every
    column of the file, in file order, rows without a known label left out)."""

    rows: pd.DataFrame
    outcomes: Outcomes
    source: str


def _money(run_id: int, rows: pd.DataFrame) -> np.ndarray | None:
    from core.datasets import get_dataset
    from core.runs import get_run

    column = get_dataset(get_run(run_id).dataset_id).roles.money_column
    if not column or column not in rows.columns:
        return None
    return pd.to_numeric(rows[column], errors="coerce").fillna(0.0).to_numpy(dtype=float)


def labelled_rows(
    run_id: int,
    source: bytes | str | Path | None = None,
    *,
    source_name: str = "labelled.csv",
    model: Any = None,
) -> LabelledRows:
    """The run's test part (``source`` None: its stored predictions) or a labelled CSV
    scored exactly as ``score`` scores it."""
    from core.runs import get_run, holdout_predictions
    from core.scoring import read_scored
    from core.training import holdout_frame

    run = get_run(run_id)
    if run.task != "binary":
        raise ValueError(
            f"Fairness and segments need a binary model (flag or not); run #{run_id} is {run.task}."
        )
    if source is None:
        stored = holdout_predictions(run_id)
        if stored.proba is None:
            raise ValueError(f"Run #{run_id} has no stored test predictions.")
        y = np.asarray(stored.y, dtype=int)
        rows = holdout_frame(run_id).iloc[: y.size].reset_index(drop=True)
        money = np.asarray(stored.money, dtype=float) if stored.money is not None else None
        outcomes = Outcomes(y, np.asarray(stored.proba, dtype=float), money, "test part")
        return LabelledRows(rows, outcomes, "test part")
    raw, typed, scores = read_scored(run_id, source, source_name=source_name, model=model)
    if run.target not in raw.columns:
        raise ValueError(
            f"The file has no {run.target!r} column (the run's target): fairness needs labels."
        )
    labels = raw[run.target].astype("string").str.strip()
    known = labels.isin(list(run.classes)).fillna(False).to_numpy(dtype=bool)
    unknown = labels.notna().to_numpy() & ~known
    if unknown.any():
        raise ValueError(
            f"The file has {int(unknown.sum())} value(s) of {run.target!r} that are not one of "
            f"the classes {list(run.classes)}, e.g. {labels[unknown].iloc[0]!r}."
        )
    if not known.any():
        raise ValueError(f"The file has no rows with a {run.target!r} value.")
    rows = typed.loc[known].reset_index(drop=True)
    y = (labels[known].to_numpy() == run.positive_class).astype(int)
    outcomes = Outcomes(y, scores[known], _money(run_id, rows), source_name)
    return LabelledRows(rows, outcomes, source_name)


def validation_rows(run_id: int) -> LabelledRows:
    """The run's validation rows and predictions: where group thresholds are searched."""
    from core.runs import get_run
    from core.training import part_frame
    from core.valuation import validation_outcomes

    outcomes = validation_outcomes(get_run(run_id))
    rows = part_frame(run_id, "val").iloc[: outcomes.y.size].reset_index(drop=True)
    return LabelledRows(rows, outcomes, "validation part")


def run_fairness(
    run_id: int,
    column: str,
    *,
    source: bytes | str | Path | None = None,
    source_name: str = "labelled.csv",
    threshold: float | None = None,
    bands: int = DEFAULT_BANDS,
    model: Any = None,
) -> FairnessReport:
    """``fairness_report`` for a run's labelled rows at its operating threshold (or
    ``threshold``)."""
    from core.thresholds import operating_threshold

    data = labelled_rows(run_id, source, source_name=source_name, model=model)
    if column not in data.rows.columns:
        raise ValueError(
            f"There is no column {column!r} in the rows; columns: {', '.join(data.rows.columns)}."
        )
    cut = operating_threshold(run_id).threshold if threshold is None else float(threshold)
    return fairness_report(
        data.outcomes.y, data.outcomes.score, data.rows[column], column, cut, bands
    )
