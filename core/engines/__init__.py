"""Where batch scoring and explanations run: one module per engine.

- ``local``: in this process, chunk by chunk (``core.scoring.score_source``,
  ``core.explanations.explain_frame``).
- ``ray``: blocks of the input scored by a pool of Ray actors, each loading the model once;
  results written in input order through the same batch writer as local scoring.

Both engines take the same arguments and return the same reports, so a caller picks one by
name (``run_engine("ray").score(...)``).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from core.kinds.registry import get_kind

ENGINES = ("local", "ray")
RAY_ADDRESS_ENV = "PAYOFF_RAY_ADDRESS"


def get_engine(name: str) -> ModuleType:
    """The engine module ``core.engines.<name>``; a ValueError names the choices."""
    if name not in ENGINES:
        raise ValueError(f"Unknown engine {name!r}; choose one of: {', '.join(ENGINES)}.")
    return importlib.import_module(f"core.engines.{name}")


def cluster_configured() -> bool:
    """Whether ``PAYOFF_RAY_ADDRESS`` names a Ray cluster (the Score page then offers Ray)."""
    return bool(os.environ.get(RAY_ADDRESS_ENV, "").strip())


def ray_explains(model_kind: str) -> bool:
    """Whether the Ray engine explains runs of this model kind: text models are explained
    locally (an ensemble is refused by the explanation itself, on any engine)."""
    return get_kind(model_kind).input != "text"


def check_engine(name: str) -> None:
    """Refuse an engine that cannot run now, before any work is queued: an unknown name, or a
    Ray cluster address nobody answers at (one line naming it)."""
    get_engine(name)
    if name == "ray" and cluster_configured():
        get_engine("ray").check_reachable(os.environ[RAY_ADDRESS_ENV].strip())
