"""Counterfactuals flip the decision when the changed row is scored again through ``score``,
touch no immutable column, change at most 3 columns, use values seen in training, and say why
when no such change exists. Every model kind, the FT-Transformer included."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from core.cli import main
from core.counterfactuals import candidate_values, counterfactuals_for_file, suggest_immutable
from core.scoring import score_source
from core.training import load_run_model
from tests.fixtures import make_tabular_frame, payoff_home, register_frame, train, write_csv

THRESHOLD = 0.5


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    home = tmp_path_factory.mktemp("counterfactual_home")
    with payoff_home(home):
        dataset = register_frame(make_tabular_frame(500, seed=3), use_case="credit_scoring")
        runs = {kind: train(dataset.id, kind) for kind in ("lightgbm", "ft-transformer")}
    return SimpleNamespace(home=home, runs=runs, training=make_tabular_frame(500, seed=3))


@pytest.fixture
def shared(trained, monkeypatch: pytest.MonkeyPatch, _isolated_home: Path) -> SimpleNamespace:
    monkeypatch.setenv("PAYOFF_HOME", str(trained.home))
    return trained


def _flagged_rows(run_id: int, tmp_path: Path, count: int = 5) -> tuple[Path, float]:
    """(CSV of the first ``count`` held-out rows that ``score`` flags, the threshold): the
    threshold flags the top 30% (a tiny FT-Transformer's scores sit close together)."""
    held_out = make_tabular_frame(200, seed=11).drop(columns=["outcome"])
    source = write_csv(tmp_path / "held_out.csv", held_out)
    out = tmp_path / "scored.csv"
    score_source(run_id, source, threshold=THRESHOLD, out_path=out)
    threshold = round(float(pd.read_csv(out)["probability"].quantile(0.7)), 4)
    score_source(run_id, source, threshold=threshold, out_path=out)
    scored = pd.read_csv(out)
    flagged = held_out[scored["decision"].to_numpy() == 1].head(count)
    assert len(flagged) == count
    return write_csv(tmp_path / "flagged.csv", flagged.reset_index(drop=True)), threshold


def _rescore(
    run_id: int,
    rows: Path,
    changes: dict,
    position: int,
    tmp_path: Path,
    threshold: float = THRESHOLD,
) -> float:
    frame = pd.read_csv(rows).iloc[[position]].reset_index(drop=True)
    for column, (_, new) in changes.items():
        frame.loc[0, column] = new
    source = write_csv(tmp_path / f"changed-{position}.csv", frame)
    out = tmp_path / f"changed-{position}-scored.csv"
    score_source(run_id, source, threshold=threshold, out_path=out)
    scored = pd.read_csv(out)
    assert int(scored["decision"].iloc[0]) == int(scored["probability"].iloc[0] >= threshold)
    return float(scored["probability"].iloc[0])


def _check_flips(shared, kind: str, tmp_path: Path, capsys) -> list[dict]:
    run = shared.runs[kind]
    rows, threshold = _flagged_rows(run.id, tmp_path)
    code = main(
        [
            "counterfactual",
            "--run",
            str(run.id),
            "--csv",
            str(rows),
            "--threshold",
            str(threshold),
            "--immutable",
            "age",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    payload = json.loads(captured.out.strip().splitlines()[-1])
    results = payload["counterfactuals"]
    assert [r["row"] for r in results] == list(range(5))
    assert {"row", "found", "changes", "probability_before", "probability_after"} <= set(results[0])
    cands = candidate_values(load_run_model(run.id))
    training = shared.training
    for result in results:
        assert result["probability_before"] >= threshold
        if not result["found"]:
            assert result["reason"]
            continue
        changes = result["changes"]
        assert 1 <= len(changes) <= 3 and "age" not in changes
        for column, (_, new) in changes.items():
            if column in cands.numeric:
                assert training[column].min() <= new <= training[column].max()
            else:
                assert new in set(training[column].dropna())
        after = _rescore(run.id, rows, changes, result["row"], tmp_path, threshold)
        assert after < threshold, (result, after)
        assert after == pytest.approx(result["probability_after"], abs=1e-6)
    assert sum(r["found"] for r in results) >= 4
    return results


def test_counterfactuals_flip_flagged_rows_lightgbm(shared, tmp_path, capsys) -> None:
    _check_flips(shared, "lightgbm", tmp_path, capsys)


def test_counterfactuals_flip_flagged_rows_ft_transformer(shared, tmp_path, capsys) -> None:
    _check_flips(shared, "ft-transformer", tmp_path, capsys)


def test_a_row_that_is_not_flagged_gets_the_change_that_flags_it(shared, tmp_path) -> None:
    run = shared.runs["lightgbm"]
    rows = write_csv(tmp_path / "rows.csv", make_tabular_frame(40, seed=5).drop(columns="outcome"))
    threshold, results = counterfactuals_for_file(run.id, rows, threshold=THRESHOLD)
    calm = [r for r in results if not r.flagged_before and r.found]
    assert calm, [r.reason for r in results]
    first = calm[0]
    assert _rescore(run.id, rows, first.changes, first.row, tmp_path) >= THRESHOLD


def test_no_counterfactual_within_the_limits_says_why(shared, tmp_path) -> None:
    run = shared.runs["lightgbm"]
    rows = write_csv(tmp_path / "rows.csv", make_tabular_frame(20, seed=5).drop(columns="outcome"))
    # At threshold 0 every row is flagged and no change can bring P below 0.
    _, results = counterfactuals_for_file(run.id, rows, threshold=0.0, max_rows=2)
    assert all(not r.found and r.changes == {} for r in results)
    assert "No change of at most 3" in results[0].reason
    _, results = counterfactuals_for_file(
        run.id, rows, threshold=0.5, immutable=["age", "income", "amount", "region"], max_rows=1
    )
    assert not results[0].found and "immutable" in results[0].reason


def test_unknown_immutable_column_is_refused(shared, tmp_path, capsys) -> None:
    run = shared.runs["lightgbm"]
    rows = write_csv(tmp_path / "rows.csv", make_tabular_frame(20, seed=5))
    argv = ["counterfactual", "--run", str(run.id), "--csv", str(rows), "--immutable", "nope"]
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert "'nope'" in err and len(err.splitlines()) == 1


def test_candidates_are_training_values() -> None:
    assert suggest_immutable(["Age", "Income", "Marital", "usage", "date_of_birth"]) == [
        "Age",
        "Marital",
        "date_of_birth",
    ]


def test_candidate_grid_stays_inside_the_training_range(shared) -> None:
    model = load_run_model(shared.runs["lightgbm"].id)
    cands = candidate_values(model)
    training = shared.training
    for column in ("age", "income", "amount"):
        values = np.asarray(cands.values[column])
        assert values.min() >= training[column].min() and values.max() <= training[column].max()
    assert set(cands.values["region"]) == set(training["region"])
    assert all(float(v).is_integer() for v in cands.values["age"])  # whole years stay whole


def test_text_rows_counterfactuals_cover_the_tabular_columns(_isolated_home, tmp_path) -> None:
    from core.training import create_run, execute_run
    from tests.core.test_ensembles import make_mixed_frame

    frame = make_mixed_frame(300)
    dataset = register_frame(frame, "mixed.csv")
    text = train(dataset.id, "tfidf-logreg")
    tabular = train(dataset.id, "logreg")
    stack = execute_run(
        create_run(dataset.id, "ensemble", members=[text.id, tabular.id], rule="stack")
    )
    rows = write_csv(tmp_path / "rows.csv", frame.drop(columns="outcome").head(12))
    _, only_text = counterfactuals_for_file(text.id, rows, threshold=0.5, max_rows=2)
    assert not only_text[0].found and "tabular columns" in only_text[0].reason
    _, mixed = counterfactuals_for_file(stack.id, rows, threshold=0.5)
    found = [r for r in mixed if r.found]
    assert found, [r.reason for r in mixed]
    for result in found:
        assert set(result.changes) == {"spend"}  # the text is never edited
        after = _rescore(stack.id, rows, result.changes, result.row, tmp_path, 0.5)
        assert (after >= 0.5) != result.flagged_before
