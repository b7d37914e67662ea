"""The ensemble combiner: mean and stacked log-odds, saved as a verified JSON artifact."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from models.artifacts import ArtifactError
from models.ensemble import Combiner, fit_combiner


def test_mean_rule_averages_probabilities() -> None:
    logits = np.array([[0.0, 2.0], [-1.0, 1.0]])
    combiner = fit_combiner("mean", logits, np.array([0, 1]))
    expected = (expit(logits[:, 0]) + expit(logits[:, 1])) / 2
    np.testing.assert_allclose(combiner.proba(logits), expected, rtol=1e-12)


def test_stack_learns_to_trust_the_informative_member() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    informative = (2 * y - 1) * 2.0 + rng.normal(0, 1, 2000)
    noise = rng.normal(0, 1, 2000)
    combiner = fit_combiner("stack", np.column_stack([informative, noise]), y)
    assert combiner.coef[0] > 0.5
    assert abs(combiner.coef[1]) < 0.2


def test_round_trip_and_tamper_refused(tmp_path) -> None:
    combiner = Combiner("stack", (0.7, 1.3), -0.2)
    combiner.save(tmp_path / "ens", {"members": [1, 2]})
    loaded, manifest = Combiner.load(tmp_path / "ens")
    assert loaded == combiner and manifest["members"] == [1, 2]
    (tmp_path / "ens" / "combiner.json").write_text(
        '{"rule": "stack", "coef": [9, 9], "intercept": 0}'
    )
    with pytest.raises(ArtifactError, match="sha256"):
        Combiner.load(tmp_path / "ens")


def test_validation() -> None:
    with pytest.raises(ValueError, match="rule"):
        Combiner("median", (1.0, 1.0), 0.0)
    with pytest.raises(ValueError, match="two members"):
        Combiner("mean", (1.0,), 0.0)
    with pytest.raises(ValueError, match="one class"):
        fit_combiner("stack", np.zeros((4, 2)), np.zeros(4))
