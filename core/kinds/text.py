"""What the two text kinds (fine-tuned transformer, TF-IDF + logistic regression) share:
which columns they read, how rows become texts, and their loaded form (``TextRunModel``).

Depends on core.kinds.base; models (transformers) only inside the kinds' fit and load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.kinds.base import (
    TEXT_FIDELITY_ROWS,
    Kind,
    Output,
    Queued,
    QueueRequest,
)


@dataclass
class TextRunModel:
    """A text model (fine-tuned encoder or TF-IDF baseline) and the columns it reads: the
    ``LoadedModel`` protocol for text kinds. ``model`` is the models-layer object that the
    span attributions (models.text_attribution) mask texts through."""

    model: Any
    text_columns: tuple[str, ...]

    @property
    def target(self) -> Any:
        return self.model.target

    @property
    def features(self) -> tuple[str, ...]:
        return self.text_columns

    def texts(self, frame: pd.DataFrame) -> list[str]:
        return rows_to_texts(frame, self.text_columns)

    def predict_frame(self, frame: pd.DataFrame, /, *, output: Output = "proba") -> np.ndarray:
        return self.model.predict_texts(self.texts(frame), output=output)

    def save(self, folder: Any, /) -> None:
        self.model.save(folder)

    def tabular_parts(self) -> list[Any]:
        return []


def rows_to_texts(frame: pd.DataFrame, columns: tuple[str, ...]) -> list[str]:
    """One text per row. Several text columns are joined with their names as labels, so the
    model can tell a ticket's subject from its body."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"The file is missing the text column(s) {', '.join(missing)}.")
    if len(columns) == 1:
        return frame[columns[0]].astype("string").fillna("").tolist()
    parts = [c + ": " + frame[c].astype("string").fillna("") for c in columns]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + "\n" + part
    return joined.tolist()


class TextKind(Kind):
    input = "text"
    explainer = "text"

    def check(self, request: QueueRequest) -> Queued:
        kinds = request.column_kinds
        texts = tuple(
            request.text_columns or [c for c in request.features if kinds.get(c) == "text"]
        )
        if not texts:
            raise ValueError(
                f"The {self.label} needs a text column; {request.dataset_name!r} has none "
                "among the chosen features."
            )
        missing = [c for c in texts if c not in kinds]
        if missing:
            raise ValueError(f"Text column(s) not in the dataset: {', '.join(missing)}.")
        return Queued(features=texts, size=request.size)

    def check_evaluations(self) -> float:
        # up to TEXT_FIDELITY_ROWS exact games of 8 spans: 254 masked texts, half-length
        return TEXT_FIDELITY_ROWS * (2**8 - 2) / 2
