"""Engines: Ray scoring and explanations equal local ones, row for row, on a real local Ray.

Ray starts once for the module (a few seconds on 2 cores); the data and models are tiny.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from core.db import session_factory
from core.records import PredictionRecord, ScoreBatchRecord
from core.scoring import batch_predictions, open_chunks, plan_blocks, read_block, score_source
from core.settings import REPO_ROOT
from tests.fixtures import (
    TARGET,
    assert_same_results,
    csv_bytes,
    make_tabular_frame,
    payoff_home,
    register_frame,
    train,
    write_csv,
)

ray = pytest.importorskip("ray")

TOLERANCE = 1e-6


def _awkward_rows(n: int, seed: int) -> pd.DataFrame:
    """New rows with a free-text column holding delimiters, quotes and line breaks."""
    frame = make_tabular_frame(n, seed=seed).drop(columns=TARGET)
    notes = np.array(["plain", "has, comma", 'says "hi"', "two\nlines", ""], dtype=object)
    frame["note"] = notes[np.arange(n) % len(notes)]
    return frame


def _awkward_csv(path: Path, n: int = 700, seed: int = 5) -> Path:
    data = csv_bytes(_awkward_rows(n, seed))
    lines = data.split(b"\n")
    lines.insert(40, b"")  # a blank line: counted in row numbers, not a record
    path.write_bytes(b"\n".join(lines))
    return path


def test_blocks_read_what_streaming_reads(tmp_path: Path) -> None:
    """Cut at record boundaries (quoted line breaks, a blank line), the blocks' rows, text and
    row numbers equal one stream over the file; a literal quote keeps the file one block."""
    path = _awkward_csv(tmp_path / "new.csv")
    plan = plan_blocks(path, 64)
    assert len(plan.blocks) > 5
    _, chunks = open_chunks(path, 10_000)
    streamed = pd.concat(list(chunks))
    blocked = pd.concat([read_block(b) for b in plan.blocks])
    pd.testing.assert_frame_equal(blocked, streamed)

    odd = tmp_path / "odd.csv"
    odd.write_text('size,label\n5" screen,a\n7,b\n8,c\n')
    odd_plan = plan_blocks(odd, 1)
    assert len(odd_plan.blocks) == 1
    assert read_block(odd_plan.blocks[0])["size"].tolist() == ['5" screen', "7", "8"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """One local Ray for the module, and a ledger with a tiny FT-Transformer and a logreg."""
    from core.engines.ray import connect

    saved = os.environ.pop("PAYOFF_RAY_ADDRESS", None)
    home = tmp_path_factory.mktemp("engines_home")
    with payoff_home(home):
        dataset = register_frame(make_tabular_frame(300))
        ftt = train(dataset.id, "ft-transformer")
        logreg = train(dataset.id, "logreg")
        connect()
    yield SimpleNamespace(home=home, ftt=ftt, logreg=logreg)
    ray.shutdown()
    if saved is not None:
        os.environ["PAYOFF_RAY_ADDRESS"] = saved


@pytest.fixture
def home(cluster: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, _isolated_home: Path) -> Path:
    monkeypatch.setenv("PAYOFF_HOME", str(cluster.home))
    return cluster.home


def _counts() -> tuple[int, int]:
    with session_factory().begin() as session:
        return (
            session.scalar(select(func.count()).select_from(ScoreBatchRecord)),
            session.scalar(select(func.count()).select_from(PredictionRecord)),
        )


@pytest.mark.slow  # a local Ray cluster (or a CLI importing Ray): tens of seconds
def test_ray_scoring_equals_local(cluster, home: Path, tmp_path: Path) -> None:
    from core.engines import get_engine

    path = _awkward_csv(tmp_path / "new.csv")
    local = score_source(cluster.ftt.id, path, out_path=tmp_path / "local.csv", chunk_rows=100)
    progress: list[int] = []
    distributed = get_engine("ray").score(
        cluster.ftt.id,
        path,
        out_path=tmp_path / "ray.csv",
        chunk_rows=100,
        workers=2,
        on_progress=progress.append,
    )
    assert distributed.engine == "ray" and local.engine == "local"
    assert distributed.rows == local.rows == 700
    assert progress == sorted(progress) and progress[-1] == 700 and len(progress) > 1
    assert distributed.engine_details["workers"] == 2
    assert all(mb > 0 for mb in distributed.engine_details["worker_peak_rss_mb"].values())
    assert distributed.drift.keys() == local.drift.keys()
    for column, figures in local.drift.items():
        assert distributed.drift[column]["psi"] == pytest.approx(figures["psi"], abs=1e-12)
    assert distributed.unseen_categories == local.unseen_categories
    a = batch_predictions(local.batch_id)
    b = batch_predictions(distributed.batch_id)
    assert a["row_number"].tolist() == b["row_number"].tolist()
    assert a["row_number"].iloc[-1] == 701  # 700 records and a blank line: no record
    assert (a["prediction"] == b["prediction"]).all()
    np.testing.assert_allclose(a["probability"], b["probability"], rtol=0, atol=TOLERANCE)
    exported = [
        pd.read_csv(p, dtype=str, keep_default_na=False)
        for p in (tmp_path / "local.csv", tmp_path / "ray.csv")
    ]
    assert_same_results(*exported)


@pytest.mark.slow  # a local Ray cluster (or a CLI importing Ray): tens of seconds
def test_ray_scores_parquet_and_folders(cluster, home: Path, tmp_path: Path) -> None:
    """A folder of one CSV and one Parquet file scores like the same rows in one CSV."""
    from core.engines import get_engine

    rows = make_tabular_frame(240, seed=8).drop(columns=TARGET)
    folder = tmp_path / "parts"
    write_csv(folder / "a.csv", rows.iloc[:100])
    rows.iloc[100:].to_parquet(folder / "b.parquet", row_group_size=50)
    whole = write_csv(tmp_path / "whole.csv", rows)
    reference = score_source(cluster.ftt.id, whole, chunk_rows=64)
    local = score_source(cluster.ftt.id, folder, chunk_rows=64)
    distributed = get_engine("ray").score(cluster.ftt.id, folder, chunk_rows=64, workers=2)
    frames = [batch_predictions(r.batch_id) for r in (reference, local, distributed)]
    for frame in frames[1:]:
        assert frame["row_number"].tolist() == frames[0]["row_number"].tolist()
        np.testing.assert_allclose(
            frame["probability"], frames[0]["probability"], rtol=0, atol=TOLERANCE
        )


@pytest.mark.slow  # a local Ray cluster (or a CLI importing Ray): tens of seconds
def test_ray_explanations_equal_local(cluster, home: Path) -> None:
    """Rows split across actors get the same Shapley values: each row's permutations are
    seeded by its position in the whole."""
    from core.engines import get_engine
    from core.explanations import explain_frame

    frame = make_tabular_frame(20, seed=41).iloc[:12]
    local = explain_frame(cluster.ftt.id, frame, fidelity_rows=0)
    distributed = get_engine("ray").explain(cluster.ftt.id, frame, fidelity_rows=0, workers=2)
    assert distributed.method.endswith("on Ray (2 workers)")
    np.testing.assert_allclose(distributed.values, local.values, rtol=0, atol=TOLERANCE)
    assert distributed.base_value == pytest.approx(local.base_value, abs=TOLERANCE)
    # Not a coincidence of seeds: the rows differ from one another.
    assert np.abs(np.diff(local.values, axis=0)).max() > 1e-3


@pytest.mark.slow  # a local Ray cluster (or a CLI importing Ray): tens of seconds
def test_cli_reports_the_engine(cluster, home: Path, tmp_path: Path, capsys) -> None:
    from core.cli import main

    csv = write_csv(tmp_path / "new.csv", make_tabular_frame(50, seed=3).drop(columns=TARGET))
    for engine in ("ray", "local"):
        out = tmp_path / f"{engine}.csv"
        argv = ["score", "--run", str(cluster.logreg.id), "--csv", str(csv), "--out", str(out)]
        assert main([*argv, "--engine", engine]) == 0
        payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert payload["engine"] == engine and payload["rows"] == 50 and out.is_file()
    argv = ["explain", "--run", str(cluster.logreg.id), "--csv", str(csv), "--rows", "6"]
    assert main([*argv, "--engine", "ray", "--workers", "2"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["engine"] == "ray" and payload["rows"] == 6
    assert payload["method"].endswith("on Ray (2 workers)")


@pytest.mark.slow  # a local Ray cluster (or a CLI importing Ray): tens of seconds
def test_tampered_artifact_is_refused_by_ray_workers(cluster, home: Path, tmp_path: Path) -> None:
    """The driver never loads the model when scoring on Ray; the actors verify the sha256
    manifest and refuse a changed file, and nothing is written."""
    from core.engines import get_engine

    run = train(register_frame(make_tabular_frame(120, seed=4), "tamper.csv").id, "logreg")
    csv = write_csv(tmp_path / "new.csv", make_tabular_frame(40, seed=3).drop(columns=TARGET))
    folder = Path(run.artifact_path)
    victim = next(p for p in sorted(folder.iterdir()) if p.name != "manifest.json")
    victim.write_bytes(victim.read_bytes() + b" ")
    before = _counts()
    with pytest.raises(ValueError, match="sha256"):
        get_engine("ray").score(run.id, csv, out_path=tmp_path / "out.csv", workers=1)
    assert _counts() == before
    assert not list(tmp_path.glob("*out.csv*"))


@pytest.mark.slow  # a local Ray cluster (or a CLI importing Ray): tens of seconds
def test_unreachable_cluster_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    """A fresh CLI process pointed at an address nobody answers at: one stderr line naming
    the address, a non-zero exit, no batch row, no output file."""
    home = tmp_path / "home"
    with payoff_home(home):
        dataset = register_frame(make_tabular_frame(120))
        run = train(dataset.id, "logreg")
    csv = write_csv(tmp_path / "new.csv", make_tabular_frame(30, seed=3).drop(columns=TARGET))
    out = tmp_path / "out.csv"
    env = {**os.environ, "PAYOFF_HOME": str(home), "PAYOFF_RAY_ADDRESS": "127.0.0.1:9"}
    env.pop("PAYOFF_DB_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "core.cli", "score", "--run", str(run.id), "--csv", str(csv)]
        + ["--out", str(out), "--engine", "ray"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "PAYOFF_RAY_ADDRESS=127.0.0.1:9" in lines[0], proc.stderr
    assert not out.exists()
    with payoff_home(home):
        assert _counts() == (0, 0)
