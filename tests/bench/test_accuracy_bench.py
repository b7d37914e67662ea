"""bench/accuracy_bench.py's bookkeeping without training: the data sets load from installed
packages, the split is 80/20 and stratified, the issue's targets are checked the right way
round, and the README table is rewritten between its markers only."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("accuracy_bench", REPO / "bench/accuracy_bench.py")
bench = importlib.util.module_from_spec(spec)
sys.modules["accuracy_bench"] = bench  # dataclasses look their module up there
spec.loader.exec_module(bench)


@pytest.mark.parametrize("name", sorted(bench.DATASETS))
def test_every_data_set_loads_offline_and_splits_80_20(name: str) -> None:
    d = bench.DATASETS[name]
    frame = d.load()
    assert d.target in frame.columns and len(frame) >= 150
    train, test = bench.split(frame, d)
    assert len(train) + len(test) == len(frame)
    assert abs(len(test) / len(frame) - 0.2) < 0.01
    if d.task != "regression":
        share = frame[d.target].value_counts(normalize=True)
        test_share = test[d.target].value_counts(normalize=True)
        assert (test_share - share).abs().max() < 0.03  # stratified
    if d.positive is not None:
        assert d.positive in set(frame[d.target].astype(str))
    assert "http" not in d.source and not d.source.startswith("/")


def test_wide_imbalanced_binary_and_text_are_among_them() -> None:
    nine = bench.DATASETS["digits_nine_vs_rest"].load()
    assert nine.shape[1] - 1 == 64
    assert 0.09 < (nine["is_nine"] == "yes").mean() < 0.11
    assert bench.DATASETS["food_reviews"].text_column == "review"
    assert {d.task for d in bench.DATASETS.values()} == {"binary", "regression", "multiclass"}


def test_targets_follow_the_issue() -> None:
    binary = bench.DATASETS["breast_cancer"]
    got = bench.targets(binary, {"ft-transformer": 0.95, "lightgbm": 0.956}, tuned=0.96)
    assert got["FT-Transformer >= tuned LightGBM - 0.01"]["met"]
    assert got["Payoff LightGBM >= tuned LightGBM - 0.005"]["met"]
    got = bench.targets(binary, {"ft-transformer": 0.949, "lightgbm": 0.954}, tuned=0.96)
    assert not any(t["met"] for t in got.values())
    reg = bench.DATASETS["diabetes"]
    assert bench.targets(reg, {"ft-transformer": 54.9}, tuned=50.0)[
        "FT-Transformer RMSE <= 1.10 x tuned"
    ]["met"]
    assert not bench.targets(reg, {"ft-transformer": 55.1}, tuned=50.0)[
        "FT-Transformer RMSE <= 1.10 x tuned"
    ]["met"]
    text = bench.DATASETS["food_reviews"]
    got = bench.targets(text, {"text-transformer": 0.89, "tfidf-logreg": 0.87}, tuned=0.86)
    assert not got["text encoder >= TF-IDF + LR + 0.03"]["met"]


def test_the_readme_table_is_rewritten_between_its_markers(tmp_path: Path) -> None:
    results = json.loads((REPO / "bench/results/accuracy.json").read_text())
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{bench.TABLE_START}\nSTALE TABLE\n{bench.TABLE_END}\nafter\n")
    bench.update_readme(results, readme)
    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith("\nafter\n") and "STALE TABLE" not in text
    for r in results["datasets"]:
        assert f"| {r['name']}" in text
    assert bench.markdown_table(results) in (REPO / "README.md").read_text()
