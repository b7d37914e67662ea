"""Settings from the environment (``PAYOFF_*``), never from streamlit.

Streamlit exports root-level keys of ``.streamlit/secrets.toml`` as environment variables, so a
deployment can set these there; ``core/`` only ever reads ``os.environ``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core.ingest import Limits

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = REPO_ROOT / "samples"
DEVICE_CHOICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    device: str
    threads: int
    limits: Limits
    text_model: str | None

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def exports_dir(self) -> Path:
        return self.home / "exports"


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def load_settings() -> Settings:
    """Read settings now (not at import), so tests and the CLI can change the environment."""
    home = Path(os.environ.get("PAYOFF_HOME") or REPO_ROOT / "payoff_data").expanduser()
    db_url = os.environ.get("PAYOFF_DB_URL") or f"sqlite:///{home / 'payoff.db'}"
    device = (os.environ.get("PAYOFF_DEVICE") or "auto").strip().lower()
    if device not in DEVICE_CHOICES:
        raise ValueError(f"PAYOFF_DEVICE must be one of {DEVICE_CHOICES}, got {device!r}")
    default_limits = Limits()
    limits = Limits(
        max_bytes=_int_env("PAYOFF_MAX_UPLOAD_MB", default_limits.max_bytes // 2**20) * 2**20,
        max_rows=_int_env("PAYOFF_MAX_ROWS", default_limits.max_rows),
        max_columns=_int_env("PAYOFF_MAX_COLUMNS", default_limits.max_columns),
        max_cell_chars=default_limits.max_cell_chars,
    )
    return Settings(
        home=home,
        db_url=db_url,
        device=device,
        # One thread by default: on 2 shared cores, 2 threads ran 3x slower (docs/STACK.md).
        threads=_int_env("PAYOFF_THREADS", 1),
        limits=limits,
        text_model=(os.environ.get("PAYOFF_TEXT_MODEL") or "").strip() or None,
    )
