"""core.settings: PAYOFF_* variables read when asked, with defaults and named errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.ingest import Limits
from core.settings import REPO_ROOT, load_settings

VARIABLES = (
    "PAYOFF_HOME",
    "PAYOFF_DB_URL",
    "PAYOFF_DEVICE",
    "PAYOFF_THREADS",
    "PAYOFF_MAX_UPLOAD_MB",
    "PAYOFF_MAX_ROWS",
    "PAYOFF_MAX_COLUMNS",
    "PAYOFF_TEXT_MODEL",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults(clean_env) -> None:
    settings = load_settings()
    assert settings.home == REPO_ROOT / "payoff_data"
    assert settings.db_url == f"sqlite:///{REPO_ROOT / 'payoff_data' / 'payoff.db'}"
    assert (settings.device, settings.threads, settings.text_model) == ("auto", 1, None)
    assert settings.limits == Limits()
    assert settings.exports_dir == settings.home / "exports"


def test_variables_are_read_at_each_call(clean_env, tmp_path: Path) -> None:
    clean_env.setenv("PAYOFF_HOME", str(tmp_path))
    clean_env.setenv("PAYOFF_DEVICE", " CUDA ")
    clean_env.setenv("PAYOFF_THREADS", "2")
    clean_env.setenv("PAYOFF_MAX_UPLOAD_MB", "5")
    clean_env.setenv("PAYOFF_MAX_ROWS", "1000")
    clean_env.setenv("PAYOFF_MAX_COLUMNS", "20")
    clean_env.setenv("PAYOFF_TEXT_MODEL", "/models/minilm")
    settings = load_settings()
    assert settings.home == tmp_path and settings.db_url == f"sqlite:///{tmp_path / 'payoff.db'}"
    assert (settings.device, settings.threads, settings.text_model) == ("cuda", 2, "/models/minilm")
    assert settings.limits == Limits(max_bytes=5 * 2**20, max_rows=1000, max_columns=20)
    assert settings.datasets_dir == tmp_path / "datasets"
    clean_env.setenv("PAYOFF_DB_URL", "postgresql+psycopg://u@/payoff")
    assert load_settings().db_url == "postgresql+psycopg://u@/payoff"


def test_blank_values_mean_the_default(clean_env) -> None:
    for name in ("PAYOFF_THREADS", "PAYOFF_MAX_ROWS", "PAYOFF_TEXT_MODEL", "PAYOFF_DEVICE"):
        clean_env.setenv(name, " " if name != "PAYOFF_DEVICE" else "")
    settings = load_settings()
    assert (settings.threads, settings.limits.max_rows, settings.text_model) == (1, 1_000_000, None)
    assert settings.device == "auto"


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("PAYOFF_DEVICE", "tpu", "PAYOFF_DEVICE must be one of"),
        ("PAYOFF_THREADS", "two", "PAYOFF_THREADS must be a whole number, got 'two'"),
        ("PAYOFF_THREADS", "0", "PAYOFF_THREADS must be positive, got 0"),
        ("PAYOFF_MAX_ROWS", "-5", "PAYOFF_MAX_ROWS must be positive"),
        ("PAYOFF_MAX_UPLOAD_MB", "1.5", "PAYOFF_MAX_UPLOAD_MB must be a whole number"),
    ],
)
def test_bad_values_name_the_variable(clean_env, name: str, value: str, words: str) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ValueError, match=words):
        load_settings()
