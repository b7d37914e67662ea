"""The command-line contract: ``python -m core.cli ...`` as a real subprocess.

Contract (core/cli.py): the last stdout line of every command is one JSON object; an error is
ONE stderr line starting "error:", a non-zero exit status, never a traceback.

Each command costs a Python start with torch imports (seconds on this machine), so the
module runs them once, in stages, with independent commands of a stage in parallel; the
tests then read the recorded results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from core.cli import main
from core.db import get_engine
from core.settings import REPO_ROOT
from core.training import load_run_model
from tests.fixtures import (
    FEATURES,
    TARGET,
    make_multiclass_frame,
    make_tabular_frame,
    payoff_home,
    register_frame,
    train,
    write_csv,
)

TIMEOUT_S = 300


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def payload(self) -> dict:
        lines = self.stdout.strip().splitlines()
        assert lines, f"no stdout from {self.args}; stderr: {self.stderr}"
        return json.loads(lines[-1])


def _run_all(home: Path, commands: dict[str, list[str]]) -> dict[str, Result]:
    """Start every command at once (they are independent) and wait for all of them."""
    env = {**os.environ, "PAYOFF_HOME": str(home), "PAYOFF_THREADS": "1"}
    env.pop("PAYOFF_DB_URL", None)
    started = {
        key: subprocess.Popen(
            [sys.executable, "-m", "core.cli", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for key, args in commands.items()
    }
    results = {}
    for key, process in started.items():
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
        results[key] = Result(tuple(commands[key]), process.returncode, stdout, stderr)
    return results


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    home = tmp_path_factory.mktemp("cli_home")
    files = tmp_path_factory.mktemp("cli_files")
    loans = write_csv(files / "loans.csv", make_tabular_frame(300, seed=0))
    applications = write_csv(files / "applications.csv", make_tabular_frame(300, seed=1))
    new_loans = write_csv(files / "new_loans.csv", make_tabular_frame(40, seed=21))
    tiers = write_csv(files / "tiers.csv", make_multiclass_frame())
    assumptions = files / "assumptions.json"
    assumptions.write_text(json.dumps({"payoff": {"tp": 0, "fp": -50, "tn": 300, "fn": -3000}}))
    with payoff_home(home):
        get_engine()  # migrate once before the parallel processes start
        multi = register_frame(
            make_multiclass_frame(), "tiers.csv", target="tier", positive_class=None
        )
        multi_id = train(
            multi.id, "logreg"
        ).id  # trained in-process: only its scoring is under test
    train_args = ["train", "--csv", str(applications), "--target", TARGET, "--model", "logreg"]
    first = _run_all(
        home,
        {
            "add": ["datasets", "add", str(loans), "--target", TARGET],
            "train": train_args,
            "missing_file": ["train", "--csv", str(files / "nope.csv"), *train_args[3:]],
            "bad_target": ["train", "--csv", str(loans), "--target", "nope", "--model", "logreg"],
            "unknown_run": ["roi", "--run", "999", "--use-case", "credit_scoring"],
        },
    )
    run_id = first["train"].payload["run_id"]
    outputs = SimpleNamespace(
        scored=files / "scored.csv",
        scored_multi=files / "scored_multi.csv",
        explained=files / "explained.csv",
    )
    run = ["--run", str(run_id)]
    second = _run_all(
        home,
        {
            "list": ["datasets", "list"],
            "runs": ["runs", "list"],
            "score": ["score", *run, "--csv", str(new_loans), "--out", str(outputs.scored)],
            "score_multi": [
                "score", "--run", str(multi_id), "--csv", str(tiers), "--out",
                str(outputs.scored_multi),
            ],
            "explain": [
                "explain", *run, "--csv", str(new_loans), "--rows", "5", "--out",
                str(outputs.explained),
            ],
            "roi": [
                "roi", *run, "--use-case", "credit_scoring", "--assumptions", str(assumptions),
            ],
        },
    )  # fmt: skip
    return SimpleNamespace(
        home=home,
        files=files,
        new_loans=new_loans,
        tiers=tiers,
        run_id=run_id,
        multi_id=multi_id,
        out=outputs,
        results={**first, **second},
    )


@pytest.fixture
def in_cli_home(cli: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, _isolated_home: Path):
    """For in-process ``main()`` calls on the module's ledger (cheaper than a subprocess)."""
    monkeypatch.setenv("PAYOFF_HOME", str(cli.home))
    return cli


def _main(argv: list[str], capsys: pytest.CaptureFixture) -> Result:
    code = main(argv)
    captured = capsys.readouterr()
    return Result(tuple(argv), code, captured.out, captured.err)


@pytest.fixture
def results(cli: SimpleNamespace) -> dict[str, Result]:
    return cli.results


def _ok(result: Result) -> dict:
    assert result.code == 0, f"{result.args} failed: {result.stderr}"
    return result.payload


def test_datasets_add_prints_the_dataset(results) -> None:
    payload = _ok(results["add"])
    assert set(payload) >= {"dataset_id", "name", "rows", "columns"}
    assert (payload["name"], payload["rows"], payload["columns"]) == ("loans.csv", 300, 5)


def test_datasets_list_shows_every_dataset(results) -> None:
    listed = _ok(results["list"])["datasets"]
    by_name = {d["name"]: d for d in listed}
    assert set(by_name) == {"loans.csv", "applications.csv", "tiers.csv"}
    assert by_name["loans.csv"]["dataset_id"] == results["add"].payload["dataset_id"]
    assert by_name["loans.csv"]["target"] == TARGET and by_name["loans.csv"]["runs"] == 0
    assert by_name["applications.csv"]["runs"] == 1 and by_name["tiers.csv"]["target"] == "tier"


def test_train_prints_the_run(results) -> None:
    payload = _ok(results["train"])
    assert set(payload) >= {
        "run_id", "task", "positive_class", "classes", "metrics", "device", "train_seconds",
        "params", "flops_per_row",
    }  # fmt: skip
    assert payload["task"] == "binary" and payload["positive_class"] == "bad"
    assert sorted(payload["classes"]) == ["bad", "good"]
    assert 0.6 < payload["metrics"]["roc_auc"] <= 1 and len(payload["metrics"]["interval"]) == 2
    assert payload["device"] == "cpu" and payload["train_seconds"] > 0
    assert payload["params"] > 0 and payload["flops_per_row"] > 0
    assert payload["dataset_id"] != results["add"].payload["dataset_id"]  # another file


def test_score_writes_inputs_plus_predictions(results, cli) -> None:
    payload = _ok(results["score"])
    assert payload["rows"] == 40 and payload["out"] == str(cli.out.scored)
    scored = pd.read_csv(cli.out.scored)
    given = pd.read_csv(cli.new_loans)
    assert list(scored.columns)[: len(given.columns)] == list(given.columns)
    assert {"prediction", "probability"} <= set(scored.columns)
    pd.testing.assert_frame_equal(scored[given.columns], given)
    assert scored["probability"].between(0, 1).all()
    assert set(scored["prediction"]) <= {"bad", "good"}


def test_score_multiclass_has_one_probability_per_class(results, cli) -> None:
    _ok(results["score_multi"])
    scored = pd.read_csv(cli.out.scored_multi)
    classes = ["high", "low", "mid"]
    proba = [f"proba_{c}" for c in classes]
    assert set(proba) <= set(scored.columns) and "probability" not in scored.columns
    np.testing.assert_allclose(scored[proba].sum(axis=1), 1.0, atol=1e-9)
    best = scored[proba].to_numpy().argmax(axis=1)
    assert scored["prediction"].tolist() == [classes[i] for i in best]
    assert scored["prediction"].nunique() == 3


def test_runs_list_shows_both_runs(results, cli) -> None:
    runs = {r["run_id"]: r for r in _ok(results["runs"])["runs"]}
    assert set(runs) == {cli.run_id, cli.multi_id}
    assert runs[cli.run_id]["status"] == "succeeded"
    assert runs[cli.run_id]["headline_metric"] == "roc_auc"
    assert runs[cli.multi_id]["task"] == "multiclass"


def test_explain_writes_one_column_per_feature_in_input_order(results, cli) -> None:
    payload = _ok(results["explain"])
    assert set(payload) >= {
        "explanation_id", "rows", "seconds", "ms_per_row", "output",
        "additivity_max_abs_error", "fidelity",
    }  # fmt: skip
    assert {"spearman", "max_abs_error"} <= set(payload["fidelity"])
    assert payload["rows"] == 5 and payload["additivity_max_abs_error"] < 1e-6
    explained = pd.read_csv(cli.out.explained)
    # `train` without roles uses every usable column, the money-like "amount" included.
    assert sorted(explained.columns) == sorted([*FEATURES, "base_value"])
    assert len(explained) == 5
    # Rows in input order: each row's values add up to the model output for that input row.
    with payoff_home(cli.home):
        model = load_run_model(cli.run_id)
    rows = pd.read_csv(cli.new_loans).head(5)
    logit = model.predict_encoded(model.preprocessor.encode(rows), output="logit")
    total = explained["base_value"] + explained[list(FEATURES)].sum(axis=1)
    np.testing.assert_allclose(total, logit, atol=1e-6)


def test_roi_prints_the_business_case(results) -> None:
    payload = _ok(results["roi"])
    assert set(payload) >= {
        "best_threshold", "value_per_decision", "monthly_value", "monthly_cost", "roi",
        "payback_months", "npv", "threshold", "threshold_chosen_on",
        "hindsight_best_threshold", "hindsight_value_per_decision", "verdict",
    }  # fmt: skip
    assert "incremental_roi_vs_baseline" not in payload  # a ratio of micro-dollars: dropped
    assert payload["payoff"] == {"tp": 0, "fp": -50, "tn": 300, "fn": -3000}
    assert payload["money_weighted"] is False and 0 <= payload["threshold"] <= 1
    assert payload["threshold_chosen_on"] == "validation"
    assert payload["hindsight_value_per_decision"] >= payload["value_per_decision"] - 1e-9
    verdict = payload["verdict"]
    assert set(verdict) >= {
        "label", "challenger_run", "champion_run", "champion_threshold",
        "extra_value_per_month", "ci_low", "ci_high", "extra_cost_per_month",
        "net_per_month", "break_even_monthly_volume",
    }  # fmt: skip
    # The only run of its dataset: no baseline to compare with, said in words.
    assert verdict["label"] is None and "no champion" in verdict["sentence"].lower()


def test_roi_against_todays_policy_gives_a_labelled_verdict(in_cli_home, capsys) -> None:
    argv = ["roi", "--run", str(in_cli_home.run_id), "--use-case", "credit_scoring"]
    result = _main([*argv, "--vs", "status_quo", "--csv", str(in_cli_home.new_loans)], capsys)
    payload = _ok(result)
    assert payload["outcomes_source"] == "labelled file" and payload["rows"] == 40
    verdict = payload["verdict"]
    assert verdict["label"] in ("pays", "does_not_pay", "not_distinguishable")
    assert verdict["champion_run"] is None and verdict["challenger_run"] == in_cli_home.run_id
    assert verdict["ci_low"] <= verdict["extra_value_per_month"] <= verdict["ci_high"]
    assert verdict["net_per_month"] == pytest.approx(
        verdict["extra_value_per_month"] - verdict["extra_cost_per_month"]
    )
    assert len(result.stdout.strip().splitlines()) == 1  # one JSON object
    _assert_one_line_error(_main([*argv, "--vs", "yesterday"], capsys), "--vs")


def _assert_one_line_error(result: Result, message: str) -> None:
    assert result.code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.parametrize(
    ("key", "message"),
    [("missing_file", "No such file"), ("bad_target", "'nope'"), ("unknown_run", "999")],
)
def test_errors_are_one_line_without_traceback(results, key: str, message: str) -> None:
    _assert_one_line_error(results[key], message)


def test_unreadable_assumptions_are_one_line_errors(in_cli_home, capsys) -> None:
    broken = in_cli_home.files / "broken.json"
    broken.write_text("{not json")
    argv = ["roi", "--run", str(in_cli_home.run_id), "--use-case", "credit_scoring"]
    _assert_one_line_error(_main([*argv, "--assumptions", str(broken)], capsys), "assumptions")
    bad_key = in_cli_home.files / "bad_key.json"
    bad_key.write_text(json.dumps({"payoff": {"tp": 1, "oops": 2}}))
    _assert_one_line_error(_main([*argv, "--assumptions", str(bad_key)], capsys), "oops")


def test_scoring_a_file_without_the_model_columns_fails_cleanly(in_cli_home, capsys) -> None:
    out = in_cli_home.files / "never.csv"
    argv = ["score", "--run", str(in_cli_home.run_id), "--csv", str(in_cli_home.tiers)]
    _assert_one_line_error(_main([*argv, "--out", str(out)], capsys), "missing")
    assert not out.exists()


def test_unexpected_errors_are_one_line(monkeypatch, capsys) -> None:
    import core.datasets

    def broken(*_args, **_kwargs):
        raise RuntimeError("UNIQUE constraint failed\n[SQL: INSERT INTO dataset ...]")

    monkeypatch.setattr(core.datasets, "register_dataset", broken)
    result = _main(["datasets", "add", str(REPO_ROOT / "samples" / "credit_scoring.csv")], capsys)
    _assert_one_line_error(result, "UNIQUE")


def test_argument_errors_follow_the_contract(capsys) -> None:
    argv = ["train", "--csv", "x.csv", "--target", TARGET, "--model", "xgb"]
    try:
        result = _main(argv, capsys)
    except SystemExit as exc:  # argparse exits by itself
        result = Result(tuple(argv), exc.code, *capsys.readouterr())
    _assert_one_line_error(result, "xgb")


def test_explain_zero_rows_is_refused(in_cli_home, capsys) -> None:
    out = in_cli_home.files / "explained_zero.csv"
    argv = ["explain", "--run", str(in_cli_home.run_id), "--csv", str(in_cli_home.new_loans)]
    result = _main([*argv, "--rows", "0", "--out", str(out)], capsys)
    _assert_one_line_error(result, "row")


def test_score_defaults_to_the_operating_threshold(results, in_cli_home, capsys) -> None:
    from core.thresholds import operating_threshold

    payload = _ok(results["score"])
    chosen = operating_threshold(in_cli_home.run_id)
    assert payload["threshold"] == pytest.approx(chosen.threshold)
    assert payload["threshold_source"] == "validation"
    scored = pd.read_csv(in_cli_home.out.scored)
    assert (
        scored["decision"].tolist()
        == (scored["probability"] >= chosen.threshold).astype(int).tolist()
    )
    out = in_cli_home.files / "scored_at_03.csv"
    argv = ["score", "--run", str(in_cli_home.run_id), "--csv", str(in_cli_home.new_loans)]
    given = _ok(_main([*argv, "--out", str(out), "--threshold", "0.3"], capsys))
    assert (given["threshold"], given["threshold_source"]) == (0.3, "--threshold")
    multi = _ok(results["score_multi"])
    assert multi["threshold"] is None and multi["threshold_source"] is None


@pytest.mark.parametrize("value", ["good", ""], ids=["one-class", "all-missing"])
def test_a_flat_target_is_refused_by_add_and_train(in_cli_home, capsys, value: str) -> None:
    from core.datasets import list_datasets

    frame = make_tabular_frame(100, seed=9).assign(**{TARGET: value})
    path = write_csv(in_cli_home.files / f"flat_{value or 'missing'}.csv", frame)
    before = [d.id for d in list_datasets()]
    add = _main(["datasets", "add", str(path), "--target", TARGET], capsys)
    _assert_one_line_error(add, f"target column '{TARGET}'")
    train = _main(["train", "--csv", str(path), "--target", TARGET, "--model", "logreg"], capsys)
    _assert_one_line_error(train, f"target column '{TARGET}'")
    assert [d.id for d in list_datasets()] == before
