"""What the Explain page reads: the download joins back by row number and id, probability
steps add up, and partial dependence is the mean of rows scored at each training value."""

from __future__ import annotations

import numpy as np
import pytest

from core.datasets import Roles, register_dataset
from core.explanations import (
    explain_frame,
    id_column_of,
    partial_dependence,
    probability_path,
    shap_table,
)
from core.training import holdout_frame, load_run_model, predict_frame
from tests.fixtures import csv_bytes, make_tabular_frame, train


def test_download_carries_row_number_id_and_feature_values(_isolated_home) -> None:
    frame = make_tabular_frame(300, seed=4)
    frame.insert(0, "customer_id", [f"C{i:05d}" for i in range(len(frame))])
    dataset = register_dataset(
        csv_bytes(frame),
        "with_ids.csv",
        roles=Roles(target="outcome", positive_class="bad", id_column="customer_id"),
    )
    run = train(dataset.id, "logreg")
    assert "customer_id" not in run.features
    rows = holdout_frame(run.id).head(5)
    exp = explain_frame(run.id, rows)
    assert id_column_of(exp) == "customer_id"
    table = shap_table(exp)
    assert list(table.columns[:2]) == ["row_number", "customer_id"]
    assert list(table["customer_id"]) == list(rows["customer_id"].astype(str))
    assert list(table["row_number"]) == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(table["age"].astype(float), rows["age"].astype(float))
    shap = table[[f"shap_{c}" for c in exp.columns]].sum(axis=1) + table["base_value"]
    np.testing.assert_allclose(shap, table["output"], atol=1e-6)

    # Probability steps: start at sigmoid(base), add up to sigmoid(output), in any order.
    values = exp.values[0]
    for order in (np.argsort(-np.abs(values)), np.arange(values.size)):
        start, steps, end = probability_path(exp.base_value, values, order)
        assert start == pytest.approx(1 / (1 + np.exp(-exp.base_value)))
        assert start + steps.sum() == pytest.approx(end)
        assert end == pytest.approx(1 / (1 + np.exp(-exp.output[0])))

    # Partial dependence: every row at one grid value, scored, averaged.
    model = load_run_model(run.id)
    result = partial_dependence(run, model, exp.rows[exp.columns], "income", ice_rows=3)
    grid = result["grid"]
    assert min(grid) >= frame["income"].min() and max(grid) <= frame["income"].max()
    k = len(grid) // 2
    at_k = exp.rows[exp.columns].copy()
    at_k["income"] = grid[k]
    expected = predict_frame(model, at_k)
    assert result["mean"][k] == pytest.approx(float(np.mean(expected)))
    np.testing.assert_allclose(result["ice"][:, k], expected[:3])
    regions = partial_dependence(run, model, exp.rows[exp.columns], "region")
    assert set(regions["grid"]) == set(frame["region"])
