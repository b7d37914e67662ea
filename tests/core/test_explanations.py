"""SHAP explanations: additive, one value per original column, stored and read back intact."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from core import training as training_module
from core.explanations import (
    MAX_EXPLAIN_ROWS,
    explain_frame,
    get_explanation,
    list_explanations,
    reason_codes,
    row_reasons,
)
from core.runs import get_run
from core.training import create_run, load_run_model
from tests.fixtures import TARGET, make_tabular_frame, payoff_home, register_frame, train

KINDS = ("logreg", "lightgbm", "ft-transformer")
COLUMNS = ["age", "income", "region"]  # numeric first, then categorical (the model's order)
N_ROWS = 6
# shap announces a change of its LightGBM output format on every call; it is handled.
pytestmark = pytest.mark.filterwarnings("ignore:LightGBM binary classifier:UserWarning")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    home = tmp_path_factory.mktemp("explain_home")
    with payoff_home(home):
        dataset = register_frame(make_tabular_frame(), money_column="amount")
        runs = {kind: train(dataset.id, kind, time_budget_s=5) for kind in KINDS}
    return SimpleNamespace(home=home, dataset=dataset, runs=runs)


@pytest.fixture
def shared(trained: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, _isolated_home: Path):
    monkeypatch.setenv("PAYOFF_HOME", str(trained.home))
    return trained


def _rows(run_id: int) -> pd.DataFrame:
    """Test rows with a missing income among them (rows the model never trained on)."""
    rows = training_module.holdout_frame(run_id).head(N_ROWS).copy()
    rows.loc[1, "income"] = np.nan
    return rows


def _logit(run_id: int, frame: pd.DataFrame) -> np.ndarray:
    model = load_run_model(run_id)
    return model.predict_encoded(model.preprocessor.encode(frame), output="logit")


@pytest.mark.parametrize("kind", KINDS)
def test_values_add_up_to_the_model_output_per_original_column(shared, kind: str) -> None:
    run = shared.runs[kind]
    rows = _rows(run.id)
    result = explain_frame(run.id, rows, source_name="test rows")
    assert result.columns == COLUMNS  # "region" (4 levels) is one column, never one per level
    assert result.values.shape == (N_ROWS, len(COLUMNS))
    assert np.isfinite(result.values).all()
    logit = _logit(run.id, rows)
    np.testing.assert_allclose(result.output, logit, rtol=0, atol=1e-9)
    assert np.abs(result.base_value + result.values.sum(axis=1) - logit).max() < 1e-6
    assert result.additivity_error < 1e-6
    assert result.quality["additivity_max_abs_error"] == result.additivity_error
    assert result.output_space == f"log-odds of {TARGET} = bad"
    assert result.rows["row_number"].tolist() == list(range(1, N_ROWS + 1))
    pd.testing.assert_frame_equal(
        result.rows[COLUMNS], rows[COLUMNS].reset_index(drop=True), check_dtype=False
    )
    importance = result.importance()
    assert sorted(importance["column"]) == sorted(COLUMNS)
    assert importance["mean_abs"].is_monotonic_decreasing


@pytest.mark.parametrize("kind", KINDS)
def test_stored_explanation_reads_back_equal(shared, kind: str) -> None:
    run = shared.runs[kind]
    result = explain_frame(run.id, _rows(run.id), source_name="stored.csv")
    loaded = get_explanation(result.explanation_id)
    np.testing.assert_array_equal(loaded.values, result.values)
    np.testing.assert_array_equal(loaded.output, result.output)
    assert loaded.base_value == result.base_value
    assert (loaded.columns, loaded.method, loaded.kind) == (
        result.columns,
        result.method,
        "tabular",
    )
    assert loaded.quality == result.quality
    pd.testing.assert_frame_equal(loaded.rows, result.rows, check_dtype=False)
    listed = {e["explanation_id"]: e for e in list_explanations(run.id)}
    assert listed[result.explanation_id]["rows"] == N_ROWS
    assert listed[result.explanation_id]["source_name"] == "stored.csv"


def test_ft_transformer_reports_its_fidelity(shared) -> None:
    result = explain_frame(
        shared.runs["ft-transformer"].id, _rows(shared.runs["ft-transformer"].id)
    )
    # The default: main + total effects against the training rows, checked against exact
    # values on its own background (a k-medoid summary: here every training row) ...
    assert result.quality["default_method"] and "main + total effects" in result.method
    assert result.additivity_error < 1e-6
    fidelity = result.quality["fidelity"]
    assert {"spearman", "max_abs_error", "rows", "reference"} <= set(fidelity)
    assert fidelity["rows"] == 3 and "exact" in fidelity["reference"]
    assert 0.0 <= fidelity["max_abs_error"] < 0.25  # exact only for pairwise interactions
    assert result.quality["background_rows"] == _train_rows(shared)
    broad = result.quality["fidelity_broad"]  # and against the training data itself
    assert {"spearman", "max_abs_error", "rows", "reference", "reference_rows"} <= set(broad)
    assert broad["rows"] == 2 and broad["reference_rows"] == _train_rows(shared)
    assert "random training rows" in broad["reference"] and broad["reference_evaluations"] > 0


def test_default_explainer_is_built_once_and_stored_with_the_model(shared) -> None:
    from core import explanations

    run = get_run(shared.runs["ft-transformer"].id)
    explain_frame(run.id, _rows(run.id), fidelity_rows=0)
    folder = Path(run.artifact_path) / explanations.EXPLAINER_FOLDER
    stored = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert {"effects.json", "background.json", "broad_sample.json", "manifest.json"} <= set(stored)
    again = explain_frame(run.id, _rows(run.id), fidelity_rows=0)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stored  # read, not redone
    assert again.quality["default_method"]
    # no module-level cache: every process reads the stored rows
    assert not hasattr(explanations, "_DEFAULT_BACKGROUNDS")
    assert not hasattr(explanations, "_TRAINING_SAMPLES")
    # other settings are the sampled estimator on a k-medoid summary
    sampled = explain_frame(run.id, _rows(run.id), n_pairs=2, fidelity_rows=0)
    assert not sampled.quality["default_method"]
    assert sampled.method.startswith("Payoff interventional SHAP (")
    assert "effects" not in sampled.method


def _train_rows(shared) -> int:
    """The fixture has fewer than 256 training rows: the broad reference takes them all."""
    return len(training_module.part_frame(shared.runs["ft-transformer"].id, "train"))


def test_badge_is_green_only_when_the_background_stands_for_the_data(shared) -> None:
    from core.explanations import TRUST_MAX_ERROR, trustworthy

    run = shared.runs["ft-transformer"]
    assert _train_rows(shared) <= 256
    # Every training row as the background (the summary of n <= k rows is the rows
    # themselves): the same game as the broad reference, exact on 3 columns, so green.
    faithful = explain_frame(run.id, _rows(run.id), background_rows=256)
    broad = faithful.quality["fidelity_broad"]
    assert broad["max_abs_error"] < 1e-6 and broad["spearman"] == pytest.approx(1.0)
    assert trustworthy(faithful.quality, faithful.additivity_error)
    # One typical row as the background: exact for that game (the same-background check
    # passes), but far from the values against the data, and the badge says so.
    poor = explain_frame(run.id, _rows(run.id), background_rows=1)
    assert poor.quality["fidelity"]["max_abs_error"] < 1e-6
    assert poor.quality["fidelity_broad"]["max_abs_error"] > TRUST_MAX_ERROR
    assert not trustworthy(poor.quality, poor.additivity_error)
    # A background the user chose is the question asked: not judged against the data.
    chosen = training_module.part_frame(run.id, "train").iloc[:5]
    assert explain_frame(run.id, _rows(run.id), background=chosen).quality["fidelity_broad"] == {}


def test_default_estimator_is_chosen_by_measurement_and_stored(shared) -> None:
    import json
    import shutil

    from core import explanations
    from core.explanations import choose_estimator
    from models.artifacts import read_artifact, write_artifact

    good, fair, poor = (
        {"spearman": 0.99, "max_abs_error": 0.01},
        {"spearman": 0.80, "max_abs_error": 0.16},
        {"spearman": 0.41, "max_abs_error": 0.34},
    )
    assert choose_estimator({"effects": good, "sampled": good}) == "effects"
    assert choose_estimator({"effects": fair, "sampled": poor}) == "effects"
    assert choose_estimator({"effects": poor, "sampled": fair}) == "sampled"
    # a passing effects estimate is kept even when sampling ranks marginally better
    assert choose_estimator({"effects": good, "sampled": {**good, "spearman": 1.0}}) == "effects"

    run = get_run(shared.runs["ft-transformer"].id)
    rows = _rows(run.id)
    explain_frame(run.id, rows, fidelity_rows=0)  # builds and stores the defaults
    folder = Path(run.artifact_path) / explanations.EXPLAINER_FOLDER
    manifest, files = read_artifact(folder)
    choice = json.loads(files["choice.json"])
    assert choice["method"] in ("effects", "sampled") and choice["rows"] == 2
    assert {"spearman", "max_abs_error"} <= set(choice["effects"]) and choice["evaluations"] > 0
    assert choice["method"] == choose_estimator(choice)
    # A model on which sampling measured better is explained by it, at default settings,
    # on the 16-row summary, everywhere the default is used (explanations, reasons, plan).
    try:
        shutil.rmtree(folder)
        swapped = {**files, "choice.json": json.dumps({**choice, "method": "sampled"}).encode()}
        write_artifact(folder, swapped, {"kind": "explainer defaults", "run_id": run.id})
        result = explain_frame(run.id, rows, fidelity_rows=0)
        assert "chosen over main + total effects by measurement" in result.method
        assert result.quality["default_method"]
        assert result.quality["default_choice"]["method"] == "sampled"
        assert result.quality["background_rows"] == explanations.BACKGROUND_ROWS
        note = explanations.default_choice_note(result.quality) or ""
        assert "sampled column orders" in note and f"{choice['rows']} training rows" in note
        sampled = explain_frame(run.id, rows, n_pairs=explanations.DEFAULT_PAIRS + 1)
        assert "chosen" not in sampled.method  # other settings are the user's choice
        plan = explanations.plan(run, 50, 3)
        assert plan["evaluations"] == get_kind_evaluations(run, 50, 3)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        write_artifact(folder, files, {"kind": "explainer defaults", "run_id": run.id})


def get_kind_evaluations(run, n_rows: int, n_columns: int) -> int:
    from core.explanations import BACKGROUND_ROWS, DEFAULT_PAIRS
    from core.kinds.registry import get_kind

    return int(
        get_kind(run.model).explain_evaluations(n_rows, n_columns, BACKGROUND_ROWS, DEFAULT_PAIRS)
    )


def test_an_untrusted_default_explanation_names_the_setting_to_try() -> None:
    from core.explanations import next_step

    good = {"spearman": 0.99, "max_abs_error": 0.01, "rows": 2}
    poor = {"spearman": 0.51, "max_abs_error": 0.34, "rows": 2}
    default = {"default_method": True, "fidelity": good, "fidelity_broad": poor}
    assert "64 or 128" in (next_step(default, 1e-12) or "")
    assert next_step({**default, "fidelity_broad": good}, 1e-12) is None  # trusted
    # other settings already were the user's choice: no generic advice
    assert next_step({**default, "default_method": False}, 1e-12) is None
    # a text game has no background rows: its next step is more permutation pairs
    text = {"default_method": True, "default_background": True, "fidelity": poor}
    assert "8 or 32" in (next_step(text, 1e-12, "text") or "")
    assert "64 or 128" not in (next_step(text, 1e-12, "text") or "")
    assert next_step({**text, "fidelity": good}, 1e-12, "text") is None


def test_broad_reference_samples_pairs_when_exact_costs_too_much(shared, monkeypatch) -> None:
    from core import explanations

    run = shared.runs["ft-transformer"]
    monkeypatch.setattr(explanations, "BROAD_REFERENCE_EVALUATIONS", 500)
    broad = explain_frame(run.id, _rows(run.id)).quality["fidelity_broad"]
    assert "antithetic permutation pairs per game" in broad["reference"]
    assert broad["reference_pairs"] >= explanations.MIN_REFERENCE_PAIRS
    # 2 rows x ~200 games x 2 chains x 2 steps per pair do not fit 4 pairs: one row is checked
    assert broad["rows"] == 1


def test_reference_is_pairs_when_exact_values_cost_too_much(shared, monkeypatch) -> None:
    from core import explanations

    run = shared.runs["ft-transformer"]
    monkeypatch.setattr(explanations, "REFERENCE_EVALUATIONS", 50)  # below 3 rows x 16 games
    fidelity = explain_frame(run.id, _rows(run.id)).quality["fidelity"]
    assert fidelity["reference"].startswith("4 antithetic permutation pairs")  # the floor
    assert 0.0 <= fidelity["max_abs_error"] < 0.2 and fidelity["rows"] == 3
    heavier = explain_frame(run.id, _rows(run.id), n_pairs=2).quality["fidelity"]
    assert heavier["reference"].startswith("8 antithetic")  # 4x the explanation's pairs


def test_background_size_is_the_callers_choice(shared) -> None:
    run = shared.runs["ft-transformer"]
    result = explain_frame(run.id, _rows(run.id), background_rows=8, fidelity_rows=0)
    assert result.quality["background_rows"] == 8
    assert result.additivity_error < 1e-6  # float32 model: batches round differently
    with pytest.raises(ValueError, match="background rows"):
        explain_frame(run.id, _rows(run.id), background_rows=0)


@pytest.mark.parametrize("kind", ["logreg", "ft-transformer"])
def test_explicit_background_is_used_exactly(shared, kind: str) -> None:
    run = shared.runs[kind]
    background = training_module.part_frame(run.id, "train").iloc[10:17]
    result = explain_frame(run.id, _rows(run.id), background=background)
    assert result.quality["background_rows"] == len(background) == 7
    # Interventional SHAP: the base value is the mean output over the background rows.
    assert result.base_value == pytest.approx(_logit(run.id, background).mean(), abs=1e-9)


def test_explicit_background_for_lightgbm_is_used_or_refused(shared) -> None:
    run = shared.runs["lightgbm"]
    background = training_module.part_frame(run.id, "train").iloc[10:17]
    try:
        result = explain_frame(run.id, _rows(run.id), background=background)
    except ValueError:
        return
    assert result.base_value == pytest.approx(_logit(run.id, background).mean(), abs=1e-6)


_REASON = re.compile(r"^(\w+) = .+ \((raises|lowers) risk of bad, ([-+][\d.]+) log-odds\)$")


def _parsed(text: str) -> list[tuple[str, str, float]]:
    """(column, direction, value) per listed reason; [] when the row says it has none."""
    if text.startswith("No column"):
        return []
    found = [_REASON.match(part) for part in text.split("; ")]
    assert all(found), text
    return [(m.group(1), m.group(2), float(m.group(3))) for m in found]


@pytest.mark.parametrize("kind", KINDS)
def test_reason_codes_name_the_strongest_columns(shared, kind: str) -> None:
    run = get_run(shared.runs[kind].id)
    model = load_run_model(run.id)
    rows = _rows(run.id)
    reasons = reason_codes(run, model, rows, threshold=0.5)
    assert len(reasons) == N_ROWS and all(isinstance(r, str) for r in reasons)
    flagged = model.predict_frame(rows) >= 0.5
    for text, is_flagged in zip(reasons, flagged, strict=True):
        parsed = _parsed(text)
        assert len(parsed) <= 3
        assert {column for column, _, _ in parsed} <= set(COLUMNS)
        values = [value for _, _, value in parsed]
        # Flagged rows list what pushed them up, largest first; others what pushed them down
        # (the direction is read from the words: a value may round to +0.00 in the text).
        assert values == sorted(values, reverse=bool(is_flagged))
        assert all(("raises" in way) == bool(is_flagged) for _, way, _ in parsed), text
        assert all(value * (1 if is_flagged else -1) >= 0 for value in values), text
    assert len(_parsed(reason_codes(run, model, rows, top=1, threshold=0.0)[0])) <= 1
    assert reason_codes(run, model, rows.iloc[:0]) == []


@pytest.mark.parametrize("kind", KINDS)
def test_reasons_agree_with_the_decision_at_the_users_threshold(shared, kind: str) -> None:
    """At 0.1 most rows are flagged, at 0.9 few: every listed reason of a flagged row raises
    the risk, every one of a not-flagged row lowers it, or the row says it has none. Rows
    whose decision differs between the two thresholds get reasons of opposite signs."""
    run = get_run(shared.runs[kind].id)
    model = load_run_model(run.id)
    rows = training_module.holdout_frame(run.id).head(40)
    proba = model.predict_frame(rows)
    seen = {}
    for threshold in (0.1, 0.9):
        structured = row_reasons(run, model, rows, threshold=threshold)
        texts = reason_codes(run, model, rows, threshold=threshold)
        for i, (item, text) in enumerate(zip(structured, texts, strict=True)):
            assert item.flagged == bool(proba[i] >= threshold)
            parsed = _parsed(text)
            assert [round(v, 2) for _, _, v in parsed] == [round(r.value, 2) for r in item.reasons]
            if item.flagged:
                assert all(r.value > 0 for r in item.reasons), text
                assert all(d == "raises" for _, d, _ in parsed), text
                assert item.reasons or text.startswith("No column raises risk of bad"), text
            else:
                assert all(r.value < 0 for r in item.reasons), text
                assert all(d == "lowers" for _, d, _ in parsed), text
                assert item.reasons or text.startswith("No column lowers risk of bad"), text
        seen[threshold] = structured
    assert sum(r.flagged for r in seen[0.1]) > sum(r.flagged for r in seen[0.9])
    switched = [i for i in range(len(rows)) if seen[0.1][i].flagged and not seen[0.9][i].flagged]
    assert switched, proba
    assert any(seen[0.1][i].reasons and seen[0.9][i].reasons for i in switched)


def test_reasons_default_to_the_operating_threshold(shared) -> None:
    from core.thresholds import operating_threshold, set_operating_threshold

    run = get_run(shared.runs["logreg"].id)
    model = load_run_model(run.id)
    rows = training_module.holdout_frame(run.id).head(20)
    chosen = operating_threshold(run.id).threshold
    assert reason_codes(run, model, rows) == reason_codes(run, model, rows, threshold=chosen)
    try:
        set_operating_threshold(run.id, 0.05)
        flags = [r.flagged for r in row_reasons(run, model, rows)]
        assert flags == list(model.predict_frame(rows) >= 0.05)
    finally:
        from core.thresholds import reset_operating_threshold

        reset_operating_threshold(run.id)


def test_reason_time_estimate_uses_the_measured_rate(shared) -> None:
    """The Score page's estimate is rows x a measured per-row rate: the Explain page's own
    measurement when one exists with its defaults (the same computation), else a probe."""
    from core.explanations import measure_reason_rate
    from core.scoring import reasons_plan

    run = get_run(shared.runs["ft-transformer"].id)
    model = load_run_model(run.id)
    assert measure_reason_rate(run, model)["ms_per_row"] > 0  # the probe: nothing measured yet
    explained = explain_frame(run.id, training_module.holdout_frame(run.id), n_rows=12)
    estimate = reasons_plan(run, 200, model)
    assert estimate["ms_per_row"] == pytest.approx(explained.ms_per_row)
    assert f"explanation #{explained.explanation_id}" in estimate["basis"]
    assert estimate["seconds"] == pytest.approx(200 * explained.ms_per_row / 1000)
    # Explanations with other settings time another computation: not used.
    other = explain_frame(run.id, training_module.holdout_frame(run.id), n_rows=4, n_pairs=2)
    assert f"#{other.explanation_id}" not in reasons_plan(run, 200, model)["basis"]


@pytest.mark.parametrize("n_rows", [0, -1, MAX_EXPLAIN_ROWS + 1])
def test_row_count_outside_the_limits_is_refused(shared, n_rows: int) -> None:
    run = shared.runs["logreg"]
    before = len(list_explanations(run.id))
    with pytest.raises(ValueError, match="row"):
        explain_frame(run.id, _rows(run.id), n_rows=n_rows)
    assert len(list_explanations(run.id)) == before


def test_rows_without_a_model_column_are_refused(shared) -> None:
    run = shared.runs["logreg"]
    with pytest.raises(ValueError, match="income"):
        explain_frame(run.id, _rows(run.id).drop(columns="income"))


def test_a_run_without_a_model_is_refused(shared) -> None:
    queued = create_run(shared.dataset.id, "logreg")
    with pytest.raises(ValueError, match="no trained model"):
        explain_frame(queued, _rows(shared.runs["logreg"].id))


@pytest.mark.slow  # trains a text model and explains word by word
def test_text_explanation_is_stored_with_its_fidelity(_isolated_home: Path) -> None:
    from tests.core.test_ensembles import make_mixed_frame

    dataset = register_frame(make_mixed_frame(300), "mixed.csv")
    run = train(dataset.id, "tfidf-logreg")
    rows = training_module.holdout_frame(run.id).head(5)
    result = explain_frame(run.id, rows)
    assert result.kind == "text" and len(result.spans) == 5
    assert result.spans[0] == rows["comment"].iloc[0].split()  # short texts: a span per word
    assert result.additivity_error < 1e-9
    fidelity = get_explanation(result.explanation_id).quality["fidelity"]
    assert fidelity["rows"] == 2 and "exact" in fidelity["reference"]  # 8 words: exact
    assert fidelity["spearman"] >= 0.95 and fidelity["max_abs_error"] <= 0.05
    assert result.quality["background"] == "all spans masked"
    # One pair is a sampled estimate: its stored fidelity is against exact values of the same
    # spans, which this test recomputes on its own.
    from models.shapley import fidelity as agreement
    from models.text_attribution import explain_texts

    sampled = explain_frame(run.id, rows, n_pairs=1)
    texts = rows["comment"].tolist()[:2]
    exact = explain_texts(load_run_model(run.id).model, texts, method="exact")
    values = np.array([sampled.values[i, : len(e.values)] for i, e in enumerate(exact)])
    expected = agreement(values, np.array([e.values for e in exact]))
    stored = sampled.quality["fidelity"]
    assert stored["spearman"] == pytest.approx(expected["spearman"])
    assert stored["max_abs_error"] == pytest.approx(expected["max_abs_error"])
    assert stored["max_abs_error"] > 0  # sampled, so not exact: the check has teeth
    # Background rows have no meaning for a text game: the explanation says they went unused.
    with_background = explain_frame(run.id, rows, background=rows, fidelity_rows=0)
    assert "tabular models only" in with_background.quality["background"]


def test_plan_prices_the_model_evaluations_an_explanation_needs(shared) -> None:
    from core import explanations
    from core.economics import DEVICE_CATALOG
    from core.explanations import (
        BACKGROUND_ROWS,
        BROAD_REFERENCE_EVALUATIONS,
        REFERENCE_EVALUATIONS,
        plan,
    )
    from models.shapley import estimate_evaluations

    run = get_run(shared.runs["ft-transformer"].id)
    default = plan(run, 50, 3)  # main + total effects: grid calls per row, tables once
    stored = explanations._stored_explainer(run).get("effects.json")
    per_row = explanations._effect_calls_per_row(stored, 3)
    assert default["evaluations"] == 50 * per_row + explanations._effect_tables_cost(stored, 3)
    one, two = plan(run, 50, 3, n_pairs=2), plan(run, 50, 3, n_pairs=4)
    assert one["evaluations"] == estimate_evaluations(50, 3, BACKGROUND_ROWS, "auto", 2)
    assert one["seconds"] == pytest.approx(one["evaluations"] / run.infer_rows_per_s)
    price = DEVICE_CATALOG[one["device"]].dollars_per_hour
    assert one["dollars"] == pytest.approx(one["seconds"] * price / 3600) and one["dollars"] > 0
    checked = REFERENCE_EVALUATIONS + BROAD_REFERENCE_EVALUATIONS  # same background + broad
    assert one["check_seconds"] == pytest.approx(checked / run.infer_rows_per_s)
    # 3 columns: every game is enumerated exactly, so 4 pairs cost what 2 do
    assert two["evaluations"] == one["evaluations"]
    assert plan(run, 50, 20, n_pairs=4)["evaluations"] > plan(run, 50, 20, n_pairs=2)["evaluations"]
    assert plan(get_run(shared.runs["lightgbm"].id), 50, 3)["evaluations"] == 50
    wide = plan(run, 50, 20, n_pairs=1, background_rows=64)["evaluations"]
    assert wide == estimate_evaluations(50, 20, 64, "auto", 1)
