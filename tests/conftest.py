"""Shared test setup: every test gets its own PAYOFF_HOME, and torch uses one thread.

One thread keeps tests fast and deterministic on the 2-core CI machine (see shared/STACK.md:
two threads ran 3x slower whenever the other core was busy).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PAYOFF_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Point Payoff's data folder and database at a fresh temp folder for each test."""
    home = tmp_path / "payoff_home"
    monkeypatch.setenv("PAYOFF_HOME", str(home))
    monkeypatch.delenv("PAYOFF_DB_URL", raising=False)
    yield home


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard requirement
        return
    torch.set_num_threads(1)
