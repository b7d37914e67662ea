"""The operating threshold is chosen on validation rows, stored on the run, and user-settable."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from core import runs as runs_module
from core import training as training_module
from core.db import session_factory
from core.records import TrainingRunRecord
from core.runs import get_run
from core.thresholds import (
    operating_threshold,
    reset_operating_threshold,
    run_threshold_or_default,
    set_operating_threshold,
)
from core.usecases import get_use_case
from tests.fixtures import (
    make_multiclass_frame,
    make_tabular_frame,
    payoff_home,
    register_frame,
    train,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    home = tmp_path_factory.mktemp("thresholds_home")
    with payoff_home(home):
        dataset = register_frame(make_tabular_frame(400), use_case="fraud")
        binary = train(dataset.id, "logreg")
        multi_data = register_frame(
            make_multiclass_frame(), "multi.csv", target="tier", positive_class=None
        )
        multi = train(multi_data.id, "logreg")
    return SimpleNamespace(home=home, binary=binary, multi=multi)


@pytest.fixture
def shared(trained: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, _isolated_home: Path):
    monkeypatch.setenv("PAYOFF_HOME", str(trained.home))
    reset_operating_threshold(trained.binary.id)
    return trained


def _brute_force_best(y: np.ndarray, p: np.ndarray, payoff: dict) -> tuple[float, float]:
    """Every candidate cutoff tried by hand: (best value per decision, its highest cutoff)."""
    best_value, best_cut = -np.inf, None
    for cut in sorted(set(p.tolist()) | {1.0 + 1e-9}):
        flag = p >= cut
        value = (
            payoff["tp"] * np.sum(flag & (y == 1))
            + payoff["fp"] * np.sum(flag & (y == 0))
            + payoff["tn"] * np.sum(~flag & (y == 0))
            + payoff["fn"] * np.sum(~flag & (y == 1))
        ) / y.size
        if value >= best_value - 1e-12:  # ties go to the higher cutoff, as in economics
            best_value, best_cut = max(value, best_value), cut
    return best_value, best_cut


def test_training_stores_validation_predictions(shared) -> None:
    run = shared.binary
    stored = runs_module.validation_predictions(run.id)
    val = training_module.part_frame(run.id, "val")
    assert len(stored.y) == len(stored.proba) == len(val) > 0
    fresh = training_module.predict_frame(training_module.load_run_model(run.id), val)
    np.testing.assert_allclose(stored.proba, fresh, rtol=1e-9, atol=1e-12)
    assert stored.y == (val["outcome"] == "bad").astype(int).tolist()


def test_threshold_is_the_value_maximising_cutoff_on_validation_rows(shared) -> None:
    run = shared.binary
    choice = operating_threshold(run.id)
    assert choice.source == "validation"
    stored = runs_module.validation_predictions(run.id)
    y, p = np.asarray(stored.y), np.asarray(stored.proba)
    assert choice.validation_rows == y.size
    payoff = get_use_case("fraud").payoff.to_dict()
    best_value, _ = _brute_force_best(y, p, payoff)
    flag = p >= choice.threshold
    chosen_value = (
        payoff["tp"] * np.sum(flag & (y == 1))
        + payoff["fp"] * np.sum(flag & (y == 0))
        + payoff["tn"] * np.sum(~flag & (y == 0))
        + payoff["fn"] * np.sum(~flag & (y == 1))
    ) / y.size
    assert chosen_value == pytest.approx(best_value, abs=1e-9)
    assert get_run(run.id).operating_threshold == pytest.approx(choice.threshold)
    assert run_threshold_or_default(get_run(run.id)) == pytest.approx(choice.threshold)
    assert "validation rows" in choice.describe()


def test_user_threshold_wins_until_reset(shared) -> None:
    run_id = shared.binary.id
    chosen = operating_threshold(run_id).threshold
    set_operating_threshold(run_id, 0.3)
    assert operating_threshold(run_id).threshold == pytest.approx(0.3)
    assert operating_threshold(run_id).source == "user"
    assert get_run(run_id).threshold_source == "user"
    again = reset_operating_threshold(run_id)
    assert again.source == "validation" and again.threshold == pytest.approx(chosen)


@pytest.mark.parametrize("bad", [-0.1, 1.2])
def test_threshold_outside_0_1_is_refused_and_nothing_changes(shared, bad: float) -> None:
    before = operating_threshold(shared.binary.id)
    with pytest.raises(ValueError, match="between 0 and 1"):
        set_operating_threshold(shared.binary.id, bad)
    assert operating_threshold(shared.binary.id) == before


def test_multiclass_runs_have_no_threshold(shared) -> None:
    with pytest.raises(ValueError, match="only binary models"):
        operating_threshold(shared.multi.id)
    assert run_threshold_or_default(get_run(shared.multi.id)) == 0.5


def test_older_runs_get_validation_predictions_on_first_use(shared) -> None:
    run_id = shared.binary.id
    chosen = operating_threshold(run_id).threshold
    with session_factory().begin() as session:
        record = session.get(TrainingRunRecord, run_id)
        record.validation_json = None
        record.operating_threshold = None
        record.threshold_source = None
    assert runs_module.validation_predictions(run_id) is None
    assert operating_threshold(run_id).threshold == pytest.approx(chosen)
    assert runs_module.validation_predictions(run_id) is not None


def test_unknown_run_is_refused(shared) -> None:
    with pytest.raises(ValueError, match="no training run with id 999"):
        set_operating_threshold(999, 0.5)
