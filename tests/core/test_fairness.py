"""Fairness by group, the price of fairness and segments: every figure recomputed by hand (and
by fairlearn's own functions) from the ``score`` output at the same threshold."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_ratio, equalized_odds_difference

from core import economics as eco
from core.cli import main
from core.fairness import (
    MISSING_GROUP,
    fair_thresholds,
    fairness_report,
    labelled_rows,
    make_grouping,
    price_of_fairness,
    segment_table,
)
from core.thresholds import operating_threshold
from core.usecases import get_use_case
from core.valuation import Outcomes
from tests.fixtures import make_tabular_frame, payoff_home, register_frame, train, write_csv

TOL = 1e-6


def _held_out(seed: int = 7) -> pd.DataFrame:
    frame = make_tabular_frame(300, seed=seed)
    rng = np.random.default_rng(seed)
    frame.loc[rng.random(len(frame)) < 0.08, "region"] = np.nan  # a "(missing)" group
    frame["segment"] = rng.choice(["retail", "online", "branch"], len(frame))
    frame["customer"] = [f"c{i:04d}" for i in range(len(frame))]  # 300 groups: refused
    frame["constant"] = "same"
    return frame


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    home = tmp_path_factory.mktemp("fairness_home")
    with payoff_home(home):
        dataset = register_frame(make_tabular_frame(500, seed=3), use_case="credit_scoring")
        run = train(dataset.id, "lightgbm")
    csv = write_csv(home / "held_out.csv", _held_out())
    return SimpleNamespace(home=home, run=run, csv=csv)


@pytest.fixture
def shared(trained, monkeypatch: pytest.MonkeyPatch, _isolated_home: Path) -> SimpleNamespace:
    monkeypatch.setenv("PAYOFF_HOME", str(trained.home))
    return trained


def _cli(argv: list[str], capsys) -> dict:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out.strip().splitlines()[-1])


def _cli_error(argv: list[str], capsys) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code != 0 and "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def _scored(shared, capsys, threshold: float, tmp_path: Path) -> pd.DataFrame:
    out = tmp_path / "scored.csv"
    argv = ["score", "--run", str(shared.run.id), "--csv", str(shared.csv)]
    _cli([*argv, "--out", str(out), "--threshold", str(threshold)], capsys)
    return pd.read_csv(out, keep_default_na=False, na_values=[""])


def _by_hand(y: np.ndarray, p: np.ndarray, mask: np.ndarray, t: float) -> dict:
    flag = p[mask] >= t
    yy = y[mask]
    return {
        "n": int(mask.sum()),
        "selection_rate": flag.mean(),
        "tpr": flag[yy == 1].mean() if (yy == 1).any() else None,
        "fpr": flag[yy == 0].mean() if (yy == 0).any() else None,
        "positive_rate": yy.mean(),
    }


def test_group_figures_match_the_score_output(shared, capsys, tmp_path) -> None:
    threshold = 0.4
    report = _cli(
        [
            "fairness",
            "--run",
            str(shared.run.id),
            "--csv",
            str(shared.csv),
            "--group",
            "segment",
            "--threshold",
            str(threshold),
        ],
        capsys,
    )
    assert set(report) >= {
        "group_column",
        "threshold",
        "groups",
        "demographic_parity_ratio",
        "equalized_odds_difference",
    }
    assert report["group_column"] == "segment" and report["threshold"] == threshold
    scored = _scored(shared, capsys, threshold, tmp_path)
    y = (scored["outcome"] == "bad").to_numpy(dtype=int)
    p = scored["probability"].to_numpy(dtype=float)
    assert ((p >= threshold) == scored["decision"].astype(bool)).all()
    from sklearn.metrics import roc_auc_score

    groups = {g["group"]: g for g in report["groups"]}
    assert set(groups) == {"retail", "online", "branch"}
    for name, figures in groups.items():
        mask = (scored["segment"] == name).to_numpy()
        expected = _by_hand(y, p, mask, threshold)
        assert figures["n"] == expected["n"]
        for key in ("selection_rate", "tpr", "fpr", "positive_rate"):
            assert abs(figures[key] - expected[key]) < TOL, (name, key)
        assert abs(figures["roc_auc"] - roc_auc_score(y[mask], p[mask])) < TOL
    flags = (p >= threshold).astype(int)
    rates = [g["selection_rate"] for g in report["groups"]]
    tprs = [g["tpr"] for g in report["groups"]]
    fprs = [g["fpr"] for g in report["groups"]]
    ratio = demographic_parity_ratio(y, flags, sensitive_features=scored["segment"])
    gap = equalized_odds_difference(y, flags, sensitive_features=scored["segment"])
    assert abs(report["demographic_parity_ratio"] - min(rates) / max(rates)) < TOL
    assert abs(report["demographic_parity_ratio"] - ratio) < TOL
    by_hand_gap = max(max(tprs) - min(tprs), max(fprs) - min(fprs))
    assert abs(report["equalized_odds_difference"] - by_hand_gap) < TOL
    assert abs(report["equalized_odds_difference"] - gap) < TOL
    assert report["four_fifths_ok"] == (ratio >= 0.8)


def test_without_a_threshold_the_run_threshold_is_used(shared, capsys) -> None:
    argv = ["fairness", "--run", str(shared.run.id), "--csv", str(shared.csv)]
    report = _cli([*argv, "--group", "segment"], capsys)
    assert report["threshold"] == pytest.approx(operating_threshold(shared.run.id).threshold)


def test_missing_values_form_their_own_group(shared, capsys, tmp_path) -> None:
    argv = ["fairness", "--run", str(shared.run.id), "--csv", str(shared.csv)]
    report = _cli([*argv, "--group", "region", "--threshold", "0.3"], capsys)
    groups = {g["group"]: g for g in report["groups"]}
    frame = _held_out()
    assert groups[MISSING_GROUP]["n"] == int(frame["region"].isna().sum()) > 0
    assert report["groups"][-1]["group"] == MISSING_GROUP
    scored = _scored(shared, capsys, 0.3, tmp_path)
    mask = scored["region"].isna().to_numpy()
    y = (scored["outcome"] == "bad").to_numpy(dtype=int)
    expected = _by_hand(y, scored["probability"].to_numpy(), mask, 0.3)
    assert abs(groups[MISSING_GROUP]["selection_rate"] - expected["selection_rate"]) < TOL


def test_numeric_columns_are_banded_with_readable_labels(shared) -> None:
    data = labelled_rows(shared.run.id, shared.csv)
    report = fairness_report(
        data.outcomes.y, data.outcomes.score, data.rows["income"], "income", 0.4
    )
    names = [g["group"] for g in report.groups]
    assert report.banded and len(names) == 5  # four quartile bands and "(missing)"
    assert "to under" in names[0] and names[-1] == MISSING_GROUP
    assert sum(g["n"] for g in report.groups) == data.outcomes.y.size
    income = pd.to_numeric(data.rows["income"])
    for k, group in enumerate(report.groups[:4]):  # recomputed from the raw values and edges
        inside = income.ge(group["low"]) if k else income.notna()
        inside &= income.lt(group["high"]) if k < 3 else income.notna()
        assert group["n"] == int(inside.sum()), group
    assert abs(report.groups[0]["n"] - int((income < income.quantile(0.25)).sum())) <= 2


@pytest.mark.parametrize(
    ("column", "bands", "words"),
    [
        ("constant", 4, "only one value"),
        ("customer", 4, "band it"),
        ("amount", 0, "Band it into ranges"),
    ],
)
def test_one_value_or_too_many_groups_is_refused(shared, capsys, column, bands, words) -> None:
    argv = ["fairness", "--run", str(shared.run.id), "--csv", str(shared.csv), "--group", column]
    message = _cli_error([*argv, "--bands", str(bands)], capsys)
    assert words in message, message


def test_unknown_group_column_is_a_clear_error(shared, capsys) -> None:
    argv = ["fairness", "--run", str(shared.run.id), "--csv", str(shared.csv)]
    assert "no column 'nope'" in _cli_error([*argv, "--group", "nope"], capsys)


# ---- price of fairness ----------------------------------------------------------------------


def _toy(seed: int = 0, n: int = 40) -> tuple[Outcomes, pd.Series]:
    rng = np.random.default_rng(seed)
    groups = np.where(np.arange(n) < n // 2, "a", "b")
    y = (rng.random(n) < np.where(groups == "a", 0.6, 0.2)).astype(int)
    score = np.clip(0.5 * y + np.where(groups == "a", 0.3, 0.0) + rng.random(n) * 0.4, 0, 1)
    return Outcomes(y, score.round(3), None, "toy"), pd.Series(groups)


def _total(use_case, outcomes: Outcomes, flags: np.ndarray) -> float:
    payoff = use_case.payoff
    y = outcomes.y
    return (
        payoff.tp * np.sum(flags & (y == 1))
        + payoff.fp * np.sum(flags & (y == 0))
        + payoff.tn * np.sum(~flags & (y == 0))
        + payoff.fn * np.sum(~flags & (y == 1))
    )


def _ratio(flags: np.ndarray, groups: np.ndarray) -> float:
    rates = [flags[groups == g].mean() for g in np.unique(groups)]
    return min(rates) / max(rates) if max(rates) > 0 else np.nan


def test_group_thresholds_meet_the_target_and_are_the_best_that_do() -> None:
    use_case = get_use_case("credit_scoring")
    outcomes, groups = _toy()
    labels = groups.to_numpy()
    cut = fair_thresholds(use_case, outcomes, groups, 0.8, use_money=False)
    flags = outcomes.score >= np.array([cut[g] for g in labels])
    assert _ratio(flags, labels) >= 0.8 - 1e-12
    # Brute force over every pair of cutoffs (each group's scores plus flag-none).
    best = -np.inf
    candidates = {g: sorted(set(outcomes.score[labels == g]) | {0.0, 1.1}) for g in ("a", "b")}
    for ta, tb in itertools.product(candidates["a"], candidates["b"]):
        f = outcomes.score >= np.where(labels == "a", ta, tb)
        if f.any() and _ratio(f, labels) >= 0.8 - 1e-12:
            best = max(best, _total(use_case, outcomes, f))
    assert _total(use_case, outcomes, flags) == pytest.approx(best)


def test_price_of_fairness_is_the_monthly_value_difference_by_hand() -> None:
    use_case = get_use_case("credit_scoring")
    outcomes, groups = _toy(seed=1)
    threshold = 0.5
    result = price_of_fairness(use_case, outcomes, groups, "g", threshold, 0.9, use_money=False)
    labels = groups.to_numpy()
    cut = result["group_thresholds"]
    fair = outcomes.score >= np.array([cut[g] for g in labels])
    single = outcomes.score >= threshold
    assert result["search_parity_ratio"] >= 0.9 - 1e-12
    assert result["group_thresholds"] and result["searched_on"].startswith("the same rows")
    today = eco.status_quo_value(
        outcomes.y,
        use_case.payoff,
        use_case.status_quo.policy,
        manual_cost=use_case.status_quo.cost_per_decision,
    )
    n, volume = outcomes.y.size, use_case.monthly_volume
    monthly_single = (_total(use_case, outcomes, single) / n - today) * volume
    monthly_fair = (_total(use_case, outcomes, fair) / n - today) * volume
    assert result["unconstrained"]["monthly_value"] == pytest.approx(monthly_single)
    assert result["group_thresholds"] and result["group_thresholds"]["a"] >= 0
    assert result["price_per_month"] == pytest.approx(monthly_single - monthly_fair)
    # In-sample, each group's own best threshold can only beat the constrained choice.
    assert result["price_of_target_per_month"] >= -1e-6
    assert result["group_best"]["monthly_value"] >= result["unconstrained"]["monthly_value"] - 1e-6
    assert result["unconstrained"]["parity_ratio"] == pytest.approx(_ratio(single, labels))


def test_price_searched_on_validation_rows_is_reported_on_the_file(shared) -> None:
    from core.fairness import validation_rows
    from core.valuation import default_use_case_for

    run = shared.run
    data = labelled_rows(run.id, shared.csv)
    val = validation_rows(run.id)
    result = price_of_fairness(
        default_use_case_for(run),
        data.outcomes,
        data.rows["region"],
        "region",
        operating_threshold(run.id).threshold,
        0.8,
        search=val.outcomes,
        search_values=val.rows["region"],
    )
    assert result["searched_on"] == "validation rows"
    assert result["search_parity_ratio"] >= 0.8 - 1e-12
    assert result["report_rows"] == data.outcomes.y.size
    assert np.isfinite(result["price_per_month"])


# ---- segments -------------------------------------------------------------------------------


def test_segments_add_up_to_the_monthly_value_and_losers_come_first(shared) -> None:
    from core.valuation import default_use_case_for

    run = shared.run
    use_case = default_use_case_for(run)
    data = labelled_rows(run.id, shared.csv)
    threshold = 0.4
    table = segment_table(use_case, data.outcomes, data.rows["segment"], "segment", threshold)
    assert list(table["monthly_value"]) == sorted(table["monthly_value"])
    flags = data.outcomes.score >= threshold
    n = data.outcomes.y.size
    today = eco.status_quo_value(
        data.outcomes.y,
        use_case.payoff,
        use_case.status_quo.policy,
        manual_cost=use_case.status_quo.cost_per_decision,
    )
    total = (_total(use_case, data.outcomes, flags) / n - today) * use_case.monthly_volume
    assert table["monthly_value"].sum() == pytest.approx(total)
    one = table.iloc[0]
    mask = (data.rows["segment"] == one["group"]).to_numpy()
    sub = Outcomes(data.outcomes.y[mask], data.outcomes.score[mask], None, "")
    assert one["value_per_decision"] == pytest.approx(
        _total(use_case, sub, flags[mask]) / mask.sum()
    )


def test_few_numbers_are_groups_as_they_are_whether_read_as_text_or_numbers() -> None:
    as_text = make_grouping(pd.Series(["1", "0", "1", None]), "flag")
    as_numbers = make_grouping(pd.Series([1.0, 0.0, 1.0, np.nan]), "flag")
    assert as_text.order == as_numbers.order == ("0", "1", MISSING_GROUP)
    assert list(as_text.apply(pd.Series(["1", "0"]))) == ["1", "0"]


def test_grouping_applies_the_same_bands_to_other_rows() -> None:
    grouping = make_grouping(pd.Series(np.arange(100.0)), "x", bands=4)
    other = grouping.apply(pd.Series([0.0, 99.0, 500.0, np.nan]))
    assert list(other) == [grouping.order[0], grouping.order[3], grouping.order[3], MISSING_GROUP]
