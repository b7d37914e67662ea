"""The local engine: scoring and explanations in this process (today's path)."""

from __future__ import annotations

from core.explanations import explain_frame as explain
from core.scoring import score_source as score

NAME = "local"

__all__ = ["NAME", "explain", "score"]
