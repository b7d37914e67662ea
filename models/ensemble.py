"""Combining member models' outputs into one binary model: a plain mean of probabilities, or
a logistic-regression stack on their log-odds.

The stack is what lets a dataset with text and tabular columns use both: a fine-tuned text
model and an FT-Transformer each score a row, and the stacker learns how much to trust each
one. It is fitted on the validation part (rows neither member trained on; they only used them
for early stopping), so it does not learn the members' over-confidence on their own training
rows. Pure numpy + scikit-learn; saved as JSON through models/artifacts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from models.artifacts import ArtifactError, read_artifact, write_artifact

RULES = ("mean", "stack")
ARTIFACT_KIND = "combiner"


@dataclass(frozen=True)
class Combiner:
    """Binary only: member log-odds [n, k] -> P(positive) [n]."""

    rule: str
    coef: tuple[float, ...]
    intercept: float

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule=}")
        if len(self.coef) < 2:
            raise ValueError(f"an ensemble needs at least two members, got {len(self.coef)=}")

    def logit(self, member_logits: np.ndarray) -> np.ndarray:
        member_logits = np.asarray(member_logits, dtype=np.float64)
        if member_logits.ndim != 2 or member_logits.shape[1] != len(self.coef):
            raise ValueError(
                f"expected [n, {len(self.coef)}] member log-odds, got {member_logits.shape=}"
            )
        if self.rule == "mean":
            p = expit(member_logits).mean(axis=1)
            p = np.clip(p, 1e-12, 1 - 1e-12)
            return np.log(p / (1 - p))
        return member_logits @ np.asarray(self.coef) + self.intercept

    def proba(self, member_logits: np.ndarray) -> np.ndarray:
        return expit(self.logit(member_logits))

    def save(self, folder: Path, manifest: dict) -> Path:
        data = {"rule": self.rule, "coef": list(self.coef), "intercept": self.intercept}
        files = {"combiner.json": json.dumps(data).encode("utf-8")}
        return write_artifact(Path(folder), files, {"kind": ARTIFACT_KIND, **manifest})

    @classmethod
    def load(cls, folder: Path, legacy_kind: str | None = None) -> tuple[Combiner, dict]:
        """`legacy_kind`: also accept an older artifact whose manifest names this app-level
        kind."""
        manifest, files = read_artifact(Path(folder))
        if manifest.get("kind") not in (ARTIFACT_KIND, legacy_kind or ARTIFACT_KIND):
            raise ArtifactError(f"not an ensemble artifact: kind={manifest.get('kind')!r}")
        data = json.loads(files["combiner.json"])
        return cls(
            data["rule"], tuple(float(c) for c in data["coef"]), float(data["intercept"])
        ), manifest


def fit_combiner(rule: str, member_logits: np.ndarray, y: np.ndarray, seed: int = 0) -> Combiner:
    """``mean``: nothing to fit. ``stack``: L2 logistic regression on the members' log-odds."""
    member_logits = np.asarray(member_logits, dtype=np.float64)
    k = member_logits.shape[1]
    if rule == "mean":
        return Combiner("mean", tuple([1.0 / k] * k), 0.0)
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        raise ValueError("the validation part has one class; a stack cannot be fitted")
    model = LogisticRegression(C=1.0, random_state=seed, max_iter=1000).fit(member_logits, y)
    return Combiner("stack", tuple(float(c) for c in model.coef_[0]), float(model.intercept_[0]))
