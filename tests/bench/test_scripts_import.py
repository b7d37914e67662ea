"""Every bench script imports: a renamed module must not leave a benchmark that only fails on
the day someone runs it (text_bench.py once imported a module that had moved)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[2] / "bench").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bench_script_imports(script: Path) -> None:
    module = importlib.import_module(f"bench.{script.stem}")
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"
