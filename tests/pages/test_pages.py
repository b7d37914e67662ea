"""Every page through app.py's router with AppTest: no traceback, and the page does its job.

Pages are opened the way a browser session opens them (``switch_page`` then ``run``), with
the ledger empty (only the built-in samples) and with trained runs (see conftest.py).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from core.datasets import list_datasets
from core.runs import get_run, list_runs
from core.scenarios import list_scenarios
from core.scoring import list_batches
from core.settings import load_settings
from core.verdict import family
from tests.fixtures import csv_bytes, make_tabular_frame
from tests.pages.conftest import (
    CREDIT_SAMPLE_NAME,
    assert_no_failure,
    new_app,
    open_page,
    texts,
    timed_run,
    worker_runs_the_queued_jobs,
)

FOOD_SAMPLE_NAME = "Food reviews (sample)"
PAGES = ("home", "data", "train", "runs", "score", "explain", "roi", "fairness")
WORKER_TIMEOUT_S = 120

# What each page must say when nothing has been trained yet: (element, words in it).
EMPTY_LEDGER_TEXT = {
    "runs": ("info", "No training runs yet"),
    "score": ("info", "Train a model first"),
    "explain": ("info", "Train a model first"),
    "roi": ("info", "ROI needs a finished binary model"),
    "fairness": ("info", "Fairness needs a finished binary model"),
}


def _open(page: str):
    at = new_app()
    timed_run(at, "home (start)")
    if page != "home":
        open_page(at, page)
    assert_no_failure(at)
    # The sidebar status comes from app.py: the page ran inside the app's frame.
    assert any("Ledger" in c for c in texts(at.sidebar.caption)), texts(at.sidebar.caption)
    return at


def _metric(at, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no metric {label!r}; metrics: {[m.label for m in at.metric]}"
    return values[0]


def _button(at, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r}; buttons: {[b.label for b in at.button]}"
    return matches[0]


# ---- every page, both ledgers ----------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_ledger(page: str) -> None:
    at = _open(page)
    assert not list_runs()
    if page in EMPTY_LEDGER_TEXT:
        kind, words = EMPTY_LEDGER_TEXT[page]
        assert any(words in t for t in texts(getattr(at, kind))), texts(getattr(at, kind))
    elif page == "home":
        names = list(at.dataframe[0].value["name"])
        assert CREDIT_SAMPLE_NAME in names and FOOD_SAMPLE_NAME in names
        assert any("No models trained yet" in t for t in texts(at.info))
    elif page == "data":
        options = at.selectbox(key="data_dataset").options
        assert any(CREDIT_SAMPLE_NAME in o for o in options), options
        assert any(FOOD_SAMPLE_NAME in o for o in options), options
    elif page == "train":
        start = _button(at, "Start training")
        assert not start.disabled
        assert any("No runs for this dataset yet" in t for t in texts(at.info))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_runs(page: str, trained_ledger) -> None:
    at = _open(page)
    assert not at.error, texts(at.error)
    if page == "home":
        activity = at.dataframe[1].value
        assert len(activity) == len(trained_ledger.run_ids)
        assert set(activity["status"]) == {"succeeded"}
    elif page == "train":
        done = [t for t in texts(at.success) if t.startswith("roc_auc")]
        assert len(done) == min(3, len(trained_ledger.run_ids)), texts(at.success)  # latest 3
    elif page == "runs":
        board = at.dataframe[0].value
        assert len(board) == len(trained_ledger.run_ids)
        assert board["value"].between(0.5, 1.0).all(), board
    elif page == "score":
        assert any("No scores for this model yet" in t for t in texts(at.info))
    elif page == "explain":
        assert any("No explanations for this model yet" in t for t in texts(at.info))
    elif page == "roi":
        assert 0.0 <= float(_metric(at, "Operating threshold")) <= 1.0
    elif page == "fairness":
        assert 0.0 <= float(_metric(at, "Demographic parity ratio")) <= 1.0
    elif page == "data":
        assert at.selectbox(key="data_dataset").value == trained_ledger.dataset_id


# ---- Data --------------------------------------------------------------------------------------


def _upload(at, name: str, data: bytes):
    at.radio(key="data_source").set_value("Upload a new CSV")
    timed_run(at, "data (choose upload)")
    at.file_uploader[0].set_value((name, data, "text/csv"))
    return timed_run(at, "data (read upload)")


def test_data_upload_saves_a_dataset_with_its_roles() -> None:
    at = _open("data")
    before = {d.id for d in list_datasets()}
    _upload(at, "tiny loans.csv", csv_bytes(make_tabular_frame(120)))
    assert_no_failure(at)
    assert any("120 rows × 5 columns" in t for t in texts(at.success)), texts(at.success)
    _button(at, "Save dataset").click()
    timed_run(at, "data (save)")
    assert_no_failure(at)
    added = [d for d in list_datasets() if d.id not in before]
    assert len(added) == 1
    dataset = added[0]
    assert dataset.name == "tiny loans"
    assert dataset.n_rows == 120
    assert dataset.roles.target == "outcome"
    assert set(dataset.roles.features) == {"age", "income", "amount", "region"}
    assert any(f"Saved dataset #{dataset.id}" in t for t in texts(at.success))


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("garbage.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "PNG image"),
        ("nul.csv", b"a,b\n1,\x002\n3,4\n", "NUL bytes"),
        ("ragged.csv", b"a,b\n1,2\n3,4,5\n6,7\n", "Row 3 has 3 values"),
        ("header_only.csv", b"age,income,outcome\n", "no data rows"),
        ("dupes.csv", b"a,a\n1,2\n", "appears twice"),
    ],
)
def test_data_bad_csv_shows_the_problem_and_saves_nothing(name, data, words) -> None:
    at = _open("data")
    before = [d.id for d in list_datasets()]
    stored_before = sorted(load_settings().datasets_dir.rglob("*"))
    _upload(at, name, data)
    assert_no_failure(at)
    errors = texts(at.error)
    assert len(errors) == 1 and words in errors[0] and errors[0].startswith(name), errors
    assert not [b for b in at.button if b.label == "Save dataset"]
    assert [d.id for d in list_datasets()] == before
    assert sorted(load_settings().datasets_dir.rglob("*")) == stored_before


def test_data_flat_target_is_named_never_replaced_and_refused_at_save() -> None:
    import hashlib

    data = csv_bytes(make_tabular_frame(120).assign(outcome="good"))
    at = _open("data")
    before = [d.id for d in list_datasets()]
    stored_before = sorted(load_settings().datasets_dir.rglob("*"))
    _upload(at, "flat.csv", data)
    assert_no_failure(at)
    assert any(
        "'outcome' looks like the target but has one class only" in t for t in texts(at.info)
    )
    table = at.data_editor[0].value
    assert "target" not in set(table["role"])  # no other column put in its place
    row = list(table["column"]).index("outcome")
    key = f"roles_{hashlib.sha256(data).hexdigest()[:12]}"
    at.session_state[key] = {
        "edited_rows": {row: {"role": "target"}},
        "added_rows": [],
        "deleted_rows": [],
    }
    timed_run(at, "data (choose a flat target)")
    message = "The target column 'outcome' has only one class ('good'"
    assert any(message in t for t in texts(at.error)), texts(at.error)
    _button(at, "Save dataset").click()
    timed_run(at, "data (save)")
    assert_no_failure(at)
    assert any(message in t for t in texts(at.error)), texts(at.error)
    assert not [t for t in texts(at.success) if "Saved dataset" in t]
    assert [d.id for d in list_datasets()] == before
    assert sorted(load_settings().datasets_dir.rglob("*")) == stored_before


# ---- Train -------------------------------------------------------------------------------------


def _wait_for_runs(run_ids: list[int]) -> list[str]:
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while True:
        statuses = [get_run(i).status for i in run_ids]
        if all(s not in ("queued", "running") for s in statuses) or time.monotonic() > deadline:
            return statuses
        time.sleep(1.0)


def _wait_for_exit(pid: int | None) -> None:
    """The worker is this process's child; let it finish before its PAYOFF_HOME is removed."""
    if not pid:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            return
        if state == "Z":
            os.waitpid(pid, os.WNOHANG)
            return
        time.sleep(0.5)


def test_train_start_queues_a_run_that_the_worker_finishes() -> None:
    at = _open("train")
    credit = next(d for d in list_datasets() if d.name == CREDIT_SAMPLE_NAME)
    assert at.selectbox(key="train_dataset").value == credit.id
    at.checkbox(key="cand_ft-transformer").uncheck()
    at.checkbox(key="cand_lightgbm").uncheck()
    at.slider(key="budget").set_value(10)
    timed_run(at, "train (choose)")
    _button(at, "Start training").click()
    timed_run(at, "train (start)")
    assert_no_failure(at)
    runs = list_runs(credit.id)
    assert [r.model for r in runs] == ["logreg"]
    assert runs[0].status in ("queued", "running", "succeeded")
    assert runs[0].time_budget_s == 10
    statuses = _wait_for_runs([runs[0].id])
    record = get_run(runs[0].id)
    _wait_for_exit(_run_pid(runs[0].id))
    assert statuses == ["succeeded"], (statuses, record.error, record.progress.get("trace"))
    timed_run(at, "train (after)")
    assert_no_failure(at)
    assert any(t.startswith("roc_auc") for t in texts(at.success)), texts(at.success)


def test_train_page_offers_the_text_stack_when_it_wins(
    tmp_path, monkeypatch, no_local_worker
) -> None:
    from tests.core.test_stacking import (
        make_two_text_frame,
        train_text_pair,
        use_pretrained_tiny_bert,
    )
    from tests.fixtures import register_frame

    use_pretrained_tiny_bert(tmp_path, monkeypatch)
    dataset = register_frame(make_two_text_frame(), "reviews.csv")
    text, tfidf = train_text_pair(dataset.id)
    at = _open("train")
    at.selectbox(key="train_dataset").set_value(dataset.id)
    timed_run(at, "train (stack offer)")
    assert_no_failure(at)
    offer = [t for t in texts(at.info) if t.startswith("Stacking run")]
    assert offer and f"#{text.id}" in offer[0] and f"#{tfidf.id}" in offer[0], texts(at.info)
    _button(at, "Train the stack").click()
    timed_run(at, "train (stack queued)")
    assert_no_failure(at)
    (stack,) = [r for r in list_runs(dataset.id) if r.model == "ensemble"]
    assert stack.options.members == (text.id, tfidf.id) and stack.options.rule == "stack"
    timed_run(at, "train (stack offered once)")
    assert not [t for t in texts(at.info) if t.startswith("Stacking run")]


def _run_pid(run_id: int) -> int | None:
    from core.db import session_factory
    from core.records import TrainingRunRecord

    with session_factory().begin() as session:
        return session.get(TrainingRunRecord, run_id).pid


# ---- Runs --------------------------------------------------------------------------------------


def test_runs_leaderboard_and_diagnostics(trained_ledger) -> None:
    at = _open("runs")
    board = at.dataframe[0].value
    assert sorted(board["run"]) == sorted(r.label for r in list_runs(trained_ledger.dataset_id))
    assert list(board["value"]) == sorted(board["value"], reverse=True)
    assert set(board["trials"]) == {"1 (defaults)"} and board["budget"].ne("–").all()
    run_id = trained_ledger.run_ids["logreg"]
    at.selectbox(key="runs_run").set_value(run_id)
    timed_run(at, "runs (choose run)")
    at.slider(key=f"cutoff_{run_id}").set_value(0.2)
    timed_run(at, "runs (cutoff)")
    assert_no_failure(at)
    assert len(at.get("plotly_chart")) >= 4  # accuracy/time, ROC, PR, confusion (+ calibration)


def _cutoff_table(at):
    tables = [t.value for t in at.dataframe if "computed at" in t.value.columns]
    assert len(tables) == 1, [list(t.value.columns) for t in at.dataframe]
    return tables[0].set_index("metric")


def test_runs_metrics_follow_the_cutoff_and_it_can_be_saved(trained_ledger) -> None:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    from core.diagnostics import holdout_outcomes
    from core.thresholds import operating_threshold

    run_id = trained_ledger.run_ids["logreg"]
    at = _open("runs")
    at.selectbox(key="runs_run").set_value(run_id)
    timed_run(at, "runs (choose run)")
    assert_no_failure(at)
    chosen = operating_threshold(run_id)
    assert chosen.source == "validation"
    key = f"cutoff_{run_id}"
    assert at.slider(key=key).value == pytest.approx(chosen.threshold)  # starts at it
    y, proba = holdout_outcomes(get_run(run_id))
    for cutoff in (chosen.threshold, 0.1, 0.6):
        at.slider(key=key).set_value(cutoff)
        timed_run(at, "runs (cutoff)")
        assert_no_failure(at)
        table = _cutoff_table(at)
        predicted = (proba >= cutoff).astype(int)
        expected = {
            "accuracy": accuracy_score(y, predicted),
            "precision": precision_score(y, predicted, zero_division=0),
            "recall": recall_score(y, predicted, zero_division=0),
            "f1": f1_score(y, predicted, zero_division=0),
            "flagged_share": predicted.mean(),
        }
        for name, value in expected.items():
            assert table.loc[name, "value"] == pytest.approx(value), (cutoff, name)
            assert table.loc[name, "computed at"] == f"cutoff {cutoff:.3f}"
        assert table.loc["roc_auc", "computed at"] == "any cutoff"
        titles = [c.proto.spec for c in at.get("plotly_chart")]
        assert any(f"Confusion matrix at cutoff {cutoff:.3f}" in t for t in titles)
    # Ranking views: KS and Gini, deciles with a CSV download.
    assert 0 < float(_metric(at, "KS")) < 1 and 0 < float(_metric(at, "Gini")) < 1
    deciles = [t.value for t in at.dataframe if "capture" in t.value.columns]
    assert len(deciles) == 1 and len(deciles[0]) == 10
    assert deciles[0]["capture"].iloc[-1] == pytest.approx(1.0)
    # Save the slider's value as the run's threshold, then go back to the validation choice.
    _button(at, "Save as operating threshold").click()
    timed_run(at, "runs (save threshold)")
    assert_no_failure(at)
    saved = operating_threshold(run_id)
    assert (saved.source, saved.threshold) == ("user", pytest.approx(0.6))
    _button(at, "Reset to the validation choice").click()
    timed_run(at, "runs (reset threshold)")
    assert_no_failure(at)
    assert operating_threshold(run_id).source == "validation"
    assert at.slider(key=key).value == pytest.approx(chosen.threshold)


# ---- Score -------------------------------------------------------------------------------------


def test_score_a_dataset_then_edit_a_record(trained_ledger, no_local_worker) -> None:
    from core.thresholds import operating_threshold

    run_id = trained_ledger.run_ids["logreg"]
    at = _open("score")
    at.selectbox(key="score_run").set_value(run_id)
    at.radio(key="score_source").set_value("A dataset in Payoff")
    timed_run(at, "score (choose)")
    chosen = operating_threshold(run_id).threshold
    assert at.slider(key=f"score_threshold_{run_id}").value == pytest.approx(chosen)
    at.selectbox(key="score_dataset").set_value(trained_ledger.dataset_id)
    at.number_input(key="reason_rows").set_value(20)
    timed_run(at, "score (choose dataset)")
    _button(at, "Score").click()
    timed_run(at, "score (score)")
    assert_no_failure(at)
    worker_runs_the_queued_jobs(at, "score (scored)", "score")
    assert_no_failure(at)
    batches = list_batches(run_id)
    assert len(batches) == 1
    assert batches[0]["rows"] == 4454
    assert _metric(at, "Rows") == "4,454"
    assert any(f"Batch #{batches[0]['batch_id']}" in t for t in texts(at.subheader))
    assert batches[0]["threshold"] == pytest.approx(chosen)
    assert batches[0]["report"]["threshold_source"] == "validation"
    assert any("operating threshold chosen on validation rows" in t for t in texts(at.caption))
    assert any("ms per row" in t for t in texts(at.caption)), texts(at.caption)
    table = at.dataframe[0].value
    assert table["probability"].between(0, 1).all()
    assert table["reasons"].iloc[:20].str.len().gt(0).all()
    for decision, reasons in zip(table["decision"][:20], table["reasons"][:20], strict=True):
        assert ("raises" if decision else "lowers") in reasons, reasons
        assert ("lowers" if decision else "raises") not in reasons, reasons
    assert (load_settings().exports_dir).is_dir()
    assert any(load_settings().exports_dir.glob(f"score-run{run_id}-*.csv"))

    before = float(_metric(at, "P(bad)"))
    field = at.number_input(key="wi_Income_typical profile")
    field.set_value(field.value * 20 + 5000)
    at.form_submit_button[0].click()
    timed_run(at, "score (what-if)")
    assert_no_failure(at)
    assert at.get("plotly_chart"), "the what-if waterfall is missing"
    after = float(_metric(at, "P(bad)"))
    assert 0.0 <= after <= 1.0
    assert after != pytest.approx(before, abs=1e-6)


def test_score_upload_missing_a_column_is_refused(trained_ledger, no_local_worker) -> None:
    run_id = trained_ledger.run_ids["logreg"]
    at = _open("score")
    at.selectbox(key="score_run").set_value(run_id)
    timed_run(at, "score (choose)")
    data = (Path(__file__).parents[2] / "samples" / "credit_scoring.csv").read_text()
    without_income = "\n".join(
        ",".join(cells[:9] + cells[10:]) for cells in (line.split(",") for line in data.split("\n"))
    )
    at.file_uploader(key="score_upload").set_value(
        ("no_income.csv", without_income.encode(), "text/csv")
    )
    timed_run(at, "score (upload)")
    _button(at, "Score").click()
    timed_run(at, "score (score)")
    assert_no_failure(at)
    worker_runs_the_queued_jobs(at, "score (failed)", "score")
    assert_no_failure(at)
    errors = texts(at.error)
    assert any("missing 1 column" in e and "Income" in e for e in errors), errors
    assert list_batches(run_id) == []
    exports = load_settings().exports_dir
    assert not exports.exists() or not any(exports.iterdir())


def test_score_offers_ray_only_with_a_cluster(trained_ledger, monkeypatch) -> None:
    """Without PAYOFF_RAY_ADDRESS there is no engine choice; with one, the page offers Ray, and
    a cluster nobody answers at is one error naming the address, with nothing written."""
    run_id = trained_ledger.run_ids["logreg"]
    monkeypatch.delenv("PAYOFF_RAY_ADDRESS", raising=False)
    at = _open("score")
    at.selectbox(key="score_run").set_value(run_id)
    timed_run(at, "score (choose)")
    assert not [r for r in at.radio if r.key == "score_engine"]

    monkeypatch.setenv("PAYOFF_RAY_ADDRESS", "127.0.0.1:9")
    at = _open("score")
    at.selectbox(key="score_run").set_value(run_id)
    at.radio(key="score_source").set_value("A dataset in Payoff")
    timed_run(at, "score (choose)")
    at.selectbox(key="score_dataset").set_value(trained_ledger.dataset_id)
    at.radio(key="score_engine").set_value("ray")
    timed_run(at, "score (engine)")
    _button(at, "Score").click()
    timed_run(at, "score (score)")
    assert_no_failure(at)
    assert any("PAYOFF_RAY_ADDRESS=127.0.0.1:9" in e for e in texts(at.error)), texts(at.error)
    assert list_batches(run_id) == []
    from core.jobs import list_jobs

    assert list_jobs("score") == []  # refused before anything was queued


def test_explain_offers_ray_only_with_a_cluster(trained_ledger, monkeypatch) -> None:
    """Explain, like Score: no engine choice without PAYOFF_RAY_ADDRESS; with one nobody
    answers at, choosing Ray is one error naming the address and no job is queued."""
    from core.explanations import list_explanations
    from core.jobs import list_jobs

    run_id = trained_ledger.run_ids["logreg"]
    monkeypatch.delenv("PAYOFF_RAY_ADDRESS", raising=False)
    at = _open("explain")
    at.selectbox(key="explain_run").set_value(run_id)
    timed_run(at, "explain (choose)")
    assert not [r for r in at.radio if r.key == "explain_engine"]

    monkeypatch.setenv("PAYOFF_RAY_ADDRESS", "127.0.0.1:9")
    at = _open("explain")
    at.selectbox(key="explain_run").set_value(run_id)
    timed_run(at, "explain (choose)")
    at.radio(key="explain_engine").set_value("ray")
    timed_run(at, "explain (engine)")
    _button(at, "Explain").click()
    timed_run(at, "explain (ray)")
    assert_no_failure(at)
    assert any("PAYOFF_RAY_ADDRESS=127.0.0.1:9" in e for e in texts(at.error)), texts(at.error)
    assert list_jobs("explain") == [] and list_explanations(run_id) == []


# ---- Explain -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["logreg", "ft-transformer"])
def test_explain_few_rows_shows_the_quality_badge(
    model: str, trained_ledger, no_local_worker
) -> None:
    from core.explanations import list_explanations

    run_id = trained_ledger.run_ids[model]
    at = _open("explain")
    at.selectbox(key="explain_run").set_value(run_id)
    timed_run(at, "explain (choose)")
    at.slider(key="explain_rows").set_value(5)
    timed_run(at, "explain (rows)")
    _button(at, "Explain").click()
    timed_run(at, f"explain ({model})")
    assert_no_failure(at)
    worker_runs_the_queued_jobs(at, f"explain ({model}, done)", "explain")
    assert_no_failure(at)
    stored = list_explanations(run_id)
    assert len(stored) == 1 and stored[0]["rows"] == 5
    badges = [t for t in texts(at.success) + texts(at.warning) if "add up to the model" in t]
    assert len(badges) == 1, texts(at.success) + texts(at.warning)
    assert badges[0].startswith(("Trustworthy", "Check before relying on it"))
    if model == "ft-transformer":  # sampled: the badge says how many rows were checked
        assert "of 5 rows were checked against" in badges[0], badges[0]
        # ... and against the training data itself, not only against the small background
        assert "of 5 rows were also checked against interventional" in badges[0], badges[0]
        assert "random training rows" in badges[0], badges[0]
    assert _metric(at, "Rows explained") == "5"
    # A second explanation is the one shown next, though the picker already had a value.
    at.slider(key="explain_rows").set_value(7)
    if model == "ft-transformer":  # sampled: the effort slider is offered
        at.select_slider(key="explain_pairs").set_value(2)
    timed_run(at, "explain (rows)")
    _button(at, "Explain").click()
    timed_run(at, f"explain ({model})")
    assert_no_failure(at)
    worker_runs_the_queued_jobs(at, f"explain ({model}, done)", "explain")
    assert_no_failure(at)
    assert [e["rows"] for e in list_explanations(run_id)] == [7, 5]
    assert _metric(at, "Rows explained") == "7"
    assert at.selectbox(key="explain_pick").value == list_explanations(run_id)[0]["explanation_id"]


# ---- ROI ---------------------------------------------------------------------------------------


def test_roi_shows_the_verdict_of_the_transformer_against_the_best_baseline(
    trained_ledger,
) -> None:
    at = _open("roi")
    run_id = at.selectbox(key="roi_run").value
    challenger = at.selectbox(key=f"roi_challenger_{run_id}")
    champion = at.selectbox(key=f"roi_champion_{run_id}")
    # The best transformer (an ensemble with one counts) against the best baseline.
    assert family(get_run(challenger.value)) == "transformer"
    assert get_run(champion.value).model in ("logreg", "lightgbm")
    headline = [
        t for t in texts(at.success) + texts(at.error) + texts(at.warning) if "Verdict:" in t
    ]
    assert len(headline) == 1, headline
    label = next(
        w for w in ("pays for itself", "does not pay", "not distinguishable") if w in headline[0]
    )
    low, high = _metric(at, "95% interval").split(" to ")
    cost = _metric(at, "Extra cost per month")
    for figure in (low, high, cost):
        assert re.fullmatch(r"-?\$[\d,]+(\.\d+)?", figure), figure
    assert "hindsight" in " ".join(texts(at.caption)).lower()
    # One training size: the learning curve refuses to extrapolate, and says why.
    assert any("Not extrapolating" in t for t in texts(at.info)), texts(at.info)
    # Comparing with today's policy changes the champion and the headline.
    champion.set_value("status_quo")
    timed_run(at, "roi (vs status quo)")
    assert_no_failure(at)
    headline_today = [
        t for t in texts(at.success) + texts(at.error) + texts(at.warning) if "Verdict:" in t
    ]
    assert "today's policy" in headline_today[0] and label


def test_roi_sets_the_operating_threshold(trained_ledger) -> None:
    from core.thresholds import operating_threshold

    at = _open("roi")
    run_id = at.selectbox(key="roi_run").value
    at.number_input(key=f"roi_thr_{run_id}").set_value(0.9)
    _button(at, "Use this threshold").click()
    timed_run(at, "roi (set threshold)")
    assert_no_failure(at)
    assert operating_threshold(run_id).source == "user"
    assert _metric(at, "Operating threshold") == "0.900"
    _button(at, "Choose on validation rows").click()
    timed_run(at, "roi (reset threshold)")
    assert operating_threshold(run_id).source == "validation"


def test_roi_what_if_changes_value_and_saves_a_scenario(trained_ledger) -> None:
    at = _open("roi")
    assert at.selectbox(key="roi_run").value in trained_ledger.run_ids.values()
    assert 0.0 <= float(_metric(at, "Operating threshold")) <= 1.0
    before = _metric(at, "Monthly value vs today")
    volume = next(n for n in at.sidebar.number_input if n.label == "Decisions per month")
    volume.set_value(volume.value * 3)
    timed_run(at, "roi (what-if)")
    assert_no_failure(at)
    after = _metric(at, "Monthly value vs today")
    assert after != before
    assert list_scenarios() == []
    at.text_input(key="roi_scn_name").set_value("Three times the volume")
    _button(at, "Save scenario").click()
    timed_run(at, "roi (save scenario)")
    assert_no_failure(at)
    saved = list_scenarios()
    assert [s["name"] for s in saved] == ["Three times the volume"]
    assert saved[0]["assumptions"]["use_case"]["monthly_volume"] == volume.value
    assert f"{saved[0]['results']['monthly_value']:,.0f}" in after.replace("$", "")
