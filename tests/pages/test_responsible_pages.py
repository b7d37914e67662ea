"""Fairness & segments page, the Explain page's readable views and the what-if editor's
counterfactual, through app.py's router with AppTest."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from core.explanations import get_explanation, list_explanations, shap_table
from core.fairness import MISSING_GROUP
from tests.pages.conftest import (
    assert_no_failure,
    new_app,
    open_page,
    texts,
    timed_run,
    worker_runs_the_queued_jobs,
)


def _open(page: str):
    at = new_app()
    timed_run(at, "home (start)")
    open_page(at, page)
    assert_no_failure(at)
    return at


def _metric(at, label: str) -> str:
    values = [m.value for m in at.metric if m.label.startswith(label)]
    assert values, f"no metric {label!r}; metrics: {[m.label for m in at.metric]}"
    return values[0]


def test_fairness_page_groups_prices_and_segments(trained_ledger) -> None:
    at = _open("fairness")
    at.selectbox(key="fairness_run").set_value(trained_ledger.run_ids["lightgbm"])
    timed_run(at, "fairness (run)")
    # Age is suggested as the group column (age-like) and banded into four ranges.
    assert at.selectbox(key="fairness_column").value == "Age"
    assert_no_failure(at)
    groups = at.dataframe[0].value["group"].tolist()
    assert len(groups) == 4 and "to under" in groups[0], groups
    assert 0.0 <= float(_metric(at, "Demographic parity ratio")) <= 1.0
    assert any("four-fifths rule" in t for t in texts(at.success) + texts(at.warning))
    assert _metric(at, "Price of fairness per month").startswith(("$", "-$"))
    segments = at.dataframe[2].value
    assert len(segments) == 4
    at.selectbox(key="fairness_column").set_value("Home")
    timed_run(at, "fairness (column)")
    assert_no_failure(at)
    homes = at.dataframe[0].value["group"].tolist()
    assert "rent" in homes and "owner" in homes
    # A column with one value is refused with a message, not a traceback.
    at.number_input(key="fairness_bands").set_value(0)
    at.selectbox(key="fairness_column").set_value("Expenses")
    timed_run(at, "fairness (no bands)")
    assert_no_failure(at)
    assert any("Band it into ranges" in t for t in texts(at.error)), texts(at.error)


def test_fairness_page_on_an_uploaded_file_with_missing_groups(trained_ledger) -> None:
    sample = pd.read_csv("samples/credit_scoring.csv").head(400)
    sample.loc[:39, "Marital"] = None
    buffer = io.StringIO()
    sample.to_csv(buffer, index=False)
    at = _open("fairness")
    at.selectbox(key="fairness_run").set_value(trained_ledger.run_ids["logreg"])
    at.radio(key="fairness_source").set_value("Upload a labelled CSV")
    timed_run(at, "fairness (upload)")
    at.file_uploader(key="fairness_upload").set_value(
        ("labelled.csv", buffer.getvalue().encode(), "text/csv")
    )
    timed_run(at, "fairness (read)")
    at.selectbox(key="fairness_column").set_value("Marital")
    timed_run(at, "fairness (marital)")
    assert_no_failure(at)
    table = at.dataframe[0].value
    missing = table[table["group"] == MISSING_GROUP]
    assert int(missing["rows"].iloc[0]) == 40


def test_explain_page_reads_in_plain_words(trained_ledger, no_local_worker) -> None:
    run_id = trained_ledger.run_ids["lightgbm"]
    at = _open("explain")
    at.selectbox(key="explain_run").set_value(run_id)
    timed_run(at, "explain (choose)")
    at.slider(key="explain_rows").set_value(12)
    timed_run(at, "explain (rows)")
    [b for b in at.button if b.label == "Explain"][0].click()
    timed_run(at, "explain (lightgbm)")
    assert_no_failure(at)
    worker_runs_the_queued_jobs(at, "explain (lightgbm, done)", "explain")
    assert_no_failure(at)
    labels = [e.label for e in at.expander]
    assert "Technical terms" in labels
    assert at.segmented_control(key="explain_scale").value == "probability"
    charts = at.get("plotly_chart")
    assert len(charts) >= 5  # importance, beeswarm, dependence, partial dependence, waterfall
    # Side by side with the logistic regression, on the same row.
    at.selectbox(key="explain_compare").set_value(trained_ledger.run_ids["logreg"])
    at.number_input(key="waterfall_row_number").set_value(3)
    timed_run(at, "explain (compare)")
    assert_no_failure(at)
    assert len(at.get("plotly_chart")) == len(charts) + 1
    at.segmented_control(key="explain_scale").set_value("log-odds (exact)")
    timed_run(at, "explain (log-odds)")
    assert_no_failure(at)


def test_shap_download_joins_back_to_the_data(trained_ledger) -> None:
    from core.explanations import explain_frame
    from core.training import part_frame

    run_id = trained_ledger.run_ids["lightgbm"]
    frame = part_frame(run_id, "test")
    explain_frame(run_id, frame, n_rows=6)
    exp = get_explanation(list_explanations(run_id)[0]["explanation_id"])
    table = shap_table(exp)
    assert list(table["row_number"]) == [1, 2, 3, 4, 5, 6]
    for column in exp.columns:
        assert column in table and f"shap_{column}" in table
    joined = frame.iloc[:6].reset_index(drop=True)
    np.testing.assert_allclose(table["Income"].astype(float), joined["Income"].astype(float))
    shap_sum = table[[f"shap_{c}" for c in exp.columns]].sum(axis=1) + table["base_value"]
    np.testing.assert_allclose(shap_sum, table["output"], atol=1e-6)


def test_what_if_shows_edits_decision_and_the_change_that_flips_it(
    trained_ledger, no_local_worker
) -> None:
    run_id = trained_ledger.run_ids["lightgbm"]
    at = _open("score")
    at.selectbox(key="score_run").set_value(run_id)
    at.radio(key="score_source").set_value("A dataset in Payoff")
    timed_run(at, "score (choose)")
    at.selectbox(key="score_dataset").set_value(trained_ledger.dataset_id)
    at.number_input(key="reason_rows").set_value(0)
    timed_run(at, "score (choose dataset)")
    [b for b in at.button if b.label == "Score"][0].click()
    timed_run(at, "score (score)")
    assert_no_failure(at)
    worker_runs_the_queued_jobs(at, "score (scored)", "score")
    assert_no_failure(at)
    assert any("No field changed yet" in t for t in texts(at.caption))
    decisions = [t for t in texts(at.error) + texts(at.success) if "the threshold" in t]
    assert len(decisions) == 1 and "lagged" in decisions[0], decisions
    field = at.number_input(key="wi_Income_typical profile")
    field.set_value(field.value + 250)
    at.form_submit_button[0].click()
    timed_run(at, "score (what-if)")
    assert_no_failure(at)
    assert any("1 field(s) changed" in t for t in texts(at.caption)), texts(at.caption)
    assert "Age" in at.multiselect(key="whatif_immutable").value  # suggested, shown
    [b for b in at.button if b.key == "whatif_counterfactual"][0].click()
    timed_run(at, "score (counterfactual)")
    assert_no_failure(at)
    flipped = [t for t in texts(at.caption) if "would go from" in t]
    reasons = [t for t in texts(at.warning) if "No change of at most" in t]
    assert flipped or reasons, texts(at.caption) + texts(at.warning)
    if flipped:
        table = [d.value for d in at.dataframe if "change to" in d.value.columns][0]
        assert 1 <= len(table) <= 3 and "Age" not in set(table["column"])
