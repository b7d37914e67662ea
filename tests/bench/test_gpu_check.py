"""bench/gpu_check.py runs its code paths on the CPU in --tiny mode and prints every figure;
without CUDA its full mode says so and exits non-zero."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "gpu_check.py"
WORK = {"ft_train": "rows_per_s", "text_train": "texts_per_s", "score": "rows_per_s"}
WORK["explain"] = "rows_per_s"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PAYOFF_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_tiny_mode_prints_every_figure_as_json() -> None:
    done = _run("--tiny")
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["mode"] == "tiny" and figures["device"] == "cpu"
    assert figures["device_name"] and figures["cpu_threads"] == 1
    for work, rate in WORK.items():
        part = figures[work]
        for side in ("accelerator", "cpu"):
            assert _positive(part[side][rate]), (work, side, part)
            assert _positive(part[side]["seconds"]), (work, side, part)
        assert part[rate] == part["accelerator"][rate]
        assert part[f"cpu_{rate}"] == part["cpu"][rate]
        assert part["ratio"] == pytest.approx(part[rate] / part[f"cpu_{rate}"])
    assert figures["ft_train"]["accelerator"]["params"] > 500_000  # the "default" preset
    assert figures["text_train"]["accelerator"]["params"] > 20_000_000  # MiniLM-L6
    assert figures["score"]["accelerator"]["rows"] == 400
    assert _positive(figures["score"]["accelerator"]["model_rows_per_s"])
    assert figures["explain"]["accelerator"]["rows"] == 2
    assert figures["explain"]["accelerator"]["evaluations_per_row"] > 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present here")
def test_full_mode_without_cuda_says_so_and_fails() -> None:
    done = _run()
    assert done.returncode == 2
    assert "no CUDA device" in done.stderr and "--tiny" in done.stderr
    assert not done.stdout.strip()
