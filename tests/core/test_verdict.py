"""The verdict: a transformer against the best baseline on the same test rows, each at its
own operating threshold, with a paired bootstrap interval checked against plain numpy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from core import runs as runs_module
from core.runs import get_run
from core.training import part_frame
from core.usecases import get_use_case
from core.verdict import (
    LABELS,
    evaluate,
    paired_bootstrap,
    report_html,
    roi_summary,
    setting_from,
    validation_value,
    verdict_for,
)
from tests.fixtures import make_tabular_frame, payoff_home, register_frame, train

PAYOFF = {"tp": 0.0, "fp": -50.0, "tn": 100.0, "fn": -600.0}
KINDS = ("logreg", "lightgbm", "ft-transformer")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    home = tmp_path_factory.mktemp("verdict_home")
    with payoff_home(home):
        dataset = register_frame(make_tabular_frame(400, seed=3), use_case="credit_scoring")
        runs = {kind: train(dataset.id, kind, time_budget_s=5) for kind in KINDS}
    return SimpleNamespace(home=home, dataset=dataset, runs=runs)


@pytest.fixture
def shared(trained: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, _isolated_home: Path):
    monkeypatch.setenv("PAYOFF_HOME", str(trained.home))
    return trained


def _numpy_paired_bootstrap(a, b, n_boot=4000, seed=123):
    """An independent paired bootstrap: the same resampled rows for both models."""
    rng = np.random.default_rng(seed)
    n = len(a)
    idx = rng.integers(0, n, size=(n_boot, n))
    means = (a[idx] - b[idx]).mean(axis=1)
    return a.mean() - b.mean(), *np.percentile(means, [2.5, 97.5])


def _row_values(y, proba, threshold, payoff):
    flagged = proba >= threshold
    return np.select(
        [flagged & (y == 1), flagged & (y == 0), ~flagged & (y == 0), ~flagged & (y == 1)],
        [payoff["tp"], payoff["fp"], payoff["tn"], payoff["fn"]],
    )


def test_paired_bootstrap_matches_an_independent_numpy_one() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(5.0, 20.0, 500)
    b = a - rng.normal(1.0, 3.0, 500)  # strongly paired: the pairing narrows the interval
    mean, low, high = paired_bootstrap(a, b)
    ref_mean, ref_low, ref_high = _numpy_paired_bootstrap(a, b)
    width = ref_high - ref_low
    assert mean == pytest.approx(ref_mean)
    assert abs(low - ref_low) < 0.2 * width and abs(high - ref_high) < 0.2 * width
    # An unpaired interval would be far wider: the pairing is what is resampled.
    assert width < 0.5 * 1.96 * 2 * np.sqrt(a.var() / 500 + b.var() / 500)
    assert paired_bootstrap(a, a) == (0.0, 0.0, 0.0)


def test_verdict_against_the_best_baseline_recomputed_by_hand(shared) -> None:
    ft = shared.runs["ft-transformer"].id
    summary = roi_summary(ft, "credit_scoring", assumptions={"payoff": PAYOFF})
    verdict = summary["verdict"]
    setting = setting_from("credit_scoring", {"payoff": PAYOFF})
    # Champion: the baseline worth most on *validation* rows at its own threshold.
    baselines = [get_run(shared.runs[k].id) for k in ("logreg", "lightgbm")]
    best = max(baselines, key=lambda r: validation_value(r, setting))
    assert verdict["champion_run"] == best.id == summary["baseline_run_id"]
    assert verdict["challenger_run"] == ft
    # Extra value from the stored test predictions, each model at its own threshold.
    ft_rows = runs_module.holdout_predictions(ft)
    champ_rows = runs_module.holdout_predictions(best.id)
    y = np.asarray(ft_rows.y)
    assert np.array_equal(y, champ_rows.y)  # the same rows, in the same order
    a = _row_values(y, np.asarray(ft_rows.proba), summary["threshold"], PAYOFF)
    b = _row_values(y, np.asarray(champ_rows.proba), verdict["champion_threshold"], PAYOFF)
    volume = get_use_case("credit_scoring").monthly_volume
    assert verdict["extra_value_per_month"] == pytest.approx((a.mean() - b.mean()) * volume)
    _, ref_low, ref_high = _numpy_paired_bootstrap(a, b)
    width = (ref_high - ref_low) * volume
    assert abs(verdict["ci_low"] - ref_low * volume) <= 0.2 * width
    assert abs(verdict["ci_high"] - ref_high * volume) <= 0.2 * width
    # Net, label and cost add up.
    assert verdict["net_per_month"] == pytest.approx(
        verdict["extra_value_per_month"] - verdict["extra_cost_per_month"]
    )
    costs = verdict["costs"]
    assert verdict["extra_cost_per_month"] == pytest.approx(
        sum(costs["challenger"].values()) - sum(costs["champion"].values())
    )
    _assert_label_matches_interval(verdict)


def _assert_label_matches_interval(verdict: dict) -> None:
    low = verdict["ci_low"] - verdict["extra_cost_per_month"]
    high = verdict["ci_high"] - verdict["extra_cost_per_month"]
    expected = "pays" if low > 0 else "does_not_pay" if high < 0 else "not_distinguishable"
    assert verdict["label"] == expected, verdict
    assert LABELS[verdict["label"]] in verdict["headline"]


def test_against_todays_policy_the_extra_value_is_the_monthly_value(shared) -> None:
    ft = shared.runs["ft-transformer"].id
    summary = roi_summary(ft, "credit_scoring", assumptions={"payoff": PAYOFF}, vs="status_quo")
    verdict = summary["verdict"]
    assert verdict["champion_run"] is None and "today's policy" in verdict["champion"]
    assert verdict["extra_value_per_month"] == pytest.approx(summary["monthly_value"])
    # No model today: the whole cost of the model is extra, one-off spread over the horizon.
    horizon = get_use_case("credit_scoring").horizon_months
    assert verdict["extra_cost_per_month"] == pytest.approx(
        summary["monthly_cost"] + summary["one_off_cost"] / horizon
    )
    _assert_label_matches_interval(verdict)


def test_the_label_follows_the_interval_after_cost(shared) -> None:
    ft = shared.runs["ft-transformer"].id
    cheap = roi_summary(ft, "credit_scoring", vs="status_quo")["verdict"]
    # Credit default: approving everyone loses money, so a model clearly pays against it.
    assert cheap["label"] == "pays" and cheap["ci_low"] > cheap["extra_cost_per_month"]
    costly = roi_summary(
        ft,
        "credit_scoring",
        vs="status_quo",
        assumptions={"challenger_extra_maintenance_per_year": 1e12},
    )["verdict"]
    assert costly["label"] == "does_not_pay"
    assert costly["ci_high"] < costly["extra_cost_per_month"]
    assert "could pay at about" in costly["sentence"] or "no volume" in costly["sentence"]


def test_at_the_break_even_volume_the_net_is_zero(shared) -> None:
    ft = shared.runs["ft-transformer"].id
    verdict = roi_summary(ft, "credit_scoring", vs="status_quo")["verdict"]
    volume = verdict["break_even_monthly_volume"]
    assert volume is not None and volume > 0
    at_break_even = roi_summary(
        ft, "credit_scoring", vs="status_quo", assumptions={"monthly_volume": volume}
    )["verdict"]
    assert at_break_even["net_per_month"] == pytest.approx(0.0, abs=1e-6 * volume)


def test_two_chosen_runs_and_a_status_quo_column(shared) -> None:
    logreg, lightgbm = shared.runs["logreg"].id, shared.runs["lightgbm"].id
    summary = roi_summary(logreg, "credit_scoring", vs=lightgbm, assumptions={"payoff": PAYOFF})
    assert summary["verdict"]["champion_run"] == lightgbm
    # Today's decision held in a column of a labelled file: flag every third row.
    frame = part_frame(logreg, "test")
    today = np.arange(len(frame)) % 3 == 0
    frame = frame.assign(today=np.where(today, "decline", "approve"))
    on_file = roi_summary(
        logreg,
        "credit_scoring",
        frame=frame,
        vs="status_quo",
        assumptions={"payoff": PAYOFF, "status_quo_column": "today"},
    )
    y = np.asarray(runs_module.holdout_predictions(logreg).y)
    expected = _row_values(y, today.astype(float), 0.5, PAYOFF).mean()
    assert on_file["status_quo_value_per_decision"] == pytest.approx(expected)
    assert "today" in on_file["verdict"]["champion"]
    with pytest.raises(ValueError, match="another dataset|different"):
        roi_summary(logreg, "credit_scoring", vs=logreg)


def test_the_report_is_self_contained_formatted_and_prints_to_pdf(shared, tmp_path) -> None:
    setting = setting_from("credit_scoring")
    challenger = evaluate(get_run(shared.runs["ft-transformer"].id), setting)
    verdict, champion = verdict_for(challenger, setting)
    html = report_html(challenger, setting, verdict, champion)
    assert "<h2>Verdict</h2>" in html and LABELS[verdict.label] in html
    money = f"${verdict.extra_value_per_month:,.2f}".replace("$-", "-$")
    if verdict.extra_value_per_month < 0:
        money = f"-${-verdict.extra_value_per_month:,.2f}"
    assert money in html
    for section in ("Payoff matrix", "Costs ($ per month)", "Operating threshold", "Assumptions"):
        assert f"<h2>{section}" in html
    assert "chosen on" in html and "hindsight" in html
    assert "approve_all: lend to every applicant" in html  # assumptions carry their sources
    assert "<svg" in html and "<script" not in html and "http" not in html
    assert "e-0" not in html and "{'" not in html  # no scientific notation, no raw dicts
    roi = challenger.valuation.roi
    assert f"{100 * roi:,.0f}%" in html
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian chromium is not installed")
    page = tmp_path / "report.html"
    page.write_text(html)
    pdf = tmp_path / "report.pdf"
    subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}", page.as_uri(),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5000


@pytest.mark.slow  # trains 11 models
def test_a_learning_curve_trains_on_one_split_and_prices_twice_the_data(shared) -> None:
    from core.training import execute_run
    from core.valuation import (
        LEARNING_FRACTIONS,
        learning_curve_points,
        queue_learning_curve,
        train_rows_of,
        value_of_twice_the_data,
    )

    run = get_run(shared.runs["logreg"].id)
    fractions = LEARNING_FRACTIONS[1:]  # 4 shares + the full run: the least it extrapolates from
    ids = queue_learning_curve(run, fractions=fractions, repeats=1)
    assert len(ids) == len(fractions)
    for run_id in ids:
        assert execute_run(run_id).status == "succeeded"
    points = learning_curve_points(run)
    assert points["fraction"].nunique() == len(fractions) + 1  # and the full run
    train_rows = train_rows_of(run)
    assert train_rows == len(part_frame(run.id, "train"))  # the split's rows, not n x 0.6
    try:
        more = value_of_twice_the_data(run, points, train_rows, 10_000.0, n_boot=50)
    except ValueError as exc:  # a flat or falling curve: refused, with the reason
        assert "Not extrapolating" in str(exc)
    else:
        assert more["sizes"] == 5 and more["runs"] == len(points)
        assert more["ci_low"] is None  # one run per size: no interval, and it says so
        assert "no interval" in more["interval_note"]
