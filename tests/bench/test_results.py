"""bench/results: figures recorded without the paths of the machine that ran them, and
README quoting them (one source for each figure)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RESULTS = sorted((REPO / "bench" / "results").glob("*.json"))
ABSOLUTE = re.compile(r"(?:^|[\s=:'\"])(/(?:home|work|tmp|root|Users|mnt|srv|var)/|[A-Za-z]:\\)")


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (str(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.name)
def test_results_hold_no_absolute_paths(path: Path) -> None:
    found = [s for s in _strings(json.loads(path.read_text())) if ABSOLUTE.search(s)]
    assert found == []


def test_run_all_records_paths_relative_to_the_repository(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("run_all", REPO / "bench" / "run_all.py")
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    assert run_all._relative(REPO / "bench" / "train_bench.py") == "bench/train_bench.py"
    assert run_all._relative(tmp_path / "x.json") == str(tmp_path / "x.json")  # outside: as given


def test_readme_training_table_quotes_train_json() -> None:
    readme = (REPO / "README.md").read_text()
    summary = json.loads((REPO / "bench" / "results" / "train.json").read_text())["summary"]
    for row in summary:
        if row.get("roc_auc_std") is None:
            continue
        quoted = f"{row['test_roc_auc']:.3f} ± {row['roc_auc_std']:.3f}"
        assert quoted in readme, (row["model"], quoted)
        rate = row["infer_rows_per_s"]
        shown = f"{rate / 1e6:.1f} M" if rate >= 1e6 else f"{rate:,.0f}"
        assert shown in readme, (row["model"], shown)


def test_readme_text_table_quotes_text_recipes_json() -> None:
    readme = (REPO / "README.md").read_text()
    runs = json.loads((REPO / "bench" / "results" / "text_recipes.json").read_text())["runs"]
    for run in runs:
        # each row: MiniLM | TF-IDF | gain | stack, as the README rounds them (bold: default)
        bold = "**" if run["setting"].endswith("(default)") else ""
        quoted = (
            f"{run['minilm_test_roc_auc']:.3f}{bold} | {run['tfidf_test_roc_auc']:.3f} | "
            f"{bold}{run['gain']:+.3f}{bold} | {run['stack_test_roc_auc']:.3f}"
        )
        assert quoted in readme, (run["setting"], run["seed"], quoted)
        assert abs(run["minilm_test_roc_auc"] - run["tfidf_test_roc_auc"] - run["gain"]) < 1e-3
