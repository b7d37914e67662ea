"""The Runs page's paired comparison: plain words first (what core.comparison says), the test
and the seeds' spread in the expander."""

from __future__ import annotations

import pytest

from core.comparison import leaderboard_comparison
from core.runs import get_run
from core.training import create_run, execute_run
from tests.pages.conftest import assert_no_failure, new_app, open_page, texts, timed_run


def test_runs_page_shows_the_transformer_against_the_best_baseline(trained_ledger) -> None:
    # A second seed of logistic regression (its own split): the seeds' spread appears.
    again = execute_run(create_run(trained_ledger.dataset_id, "logreg", seed=1, time_budget_s=5))
    assert again.status == "succeeded", again.error
    target = get_run(trained_ledger.run_ids["logreg"]).target
    expected = leaderboard_comparison(trained_ledger.dataset_id, target)
    assert expected is not None and expected.method == "delong"

    at = new_app()
    timed_run(at, "home (start)")
    open_page(at, "runs")
    assert_no_failure(at)
    assert f"Transformer vs baseline: {target}" in texts(at.subheader)
    shown = [t for t in texts([*at.success, *at.warning, *at.info]) if "test rows" in t]
    assert len(shown) == 1 and expected.sentence in shown[0], shown
    assert f"p = {expected.p_value:.3g}" in shown[0]
    expander = next(e for e in at.expander if e.label == "How this is tested")
    details = " ".join(texts(expander.markdown))
    assert "DeLong" in details and f"{expected.p_value:.4g}" in details
    spread = next(t.value for t in expander.dataframe)
    row = spread.set_index("model").loc["Logistic regression (baseline)"]
    logreg = expected.spreads[0]
    assert row["seeds"] == "0, 1"
    assert row["mean"] == pytest.approx(logreg.mean) and row["sd"] == pytest.approx(logreg.sd)
