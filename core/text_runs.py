"""Text runs: which columns a text model reads, how rows become texts, fit and load.

Kept apart from ``core/training.py`` so the tabular path never imports transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.settings import load_settings


@dataclass
class TextRunModel:
    """A text model (fine-tuned encoder or TF-IDF baseline) and the columns it reads."""

    model: Any
    text_columns: tuple[str, ...]
    kind: str

    @property
    def target(self):
        return self.model.target

    def predict_texts(self, texts, *, output: str = "proba") -> np.ndarray:
        return self.model.predict_texts(list(texts), output=output)

    def save(self, folder) -> None:
        self.model.save(folder)


@dataclass(frozen=True)
class _TextFit:
    model: TextRunModel
    loop: Any
    train_seconds: float
    params: int
    flops_per_row: float | None
    truncated_share: float | None


def is_text_model(model: Any) -> bool:
    return isinstance(model, TextRunModel)


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


def texts_of(model: TextRunModel, frame: pd.DataFrame) -> list[str]:
    return rows_to_texts(frame, model.text_columns)


def fit_text_run(run, parts: dict, target_encoder, device: str, threads: int, on_epoch) -> _TextFit:
    import time

    columns = tuple(run.features)
    train_texts = rows_to_texts(parts["train"], columns)
    val_texts = rows_to_texts(parts["val"], columns)
    if run.model == "tfidf-logreg":
        from models.text_baseline import fit_tfidf_logreg

        started = time.perf_counter()
        model = fit_tfidf_logreg(
            train_texts, target_encoder.encode(parts["train"][run.target]), target_encoder, run.seed
        )
        seconds = time.perf_counter() - started
        return _TextFit(
            model=TextRunModel(model, columns, run.model),
            loop=None,
            train_seconds=seconds,
            params=int(getattr(model, "n_params", lambda: 0)()),
            flops_per_row=None,
            truncated_share=None,
        )
    from models.text_classifier import fit_text

    result = fit_text(
        train_texts=train_texts,
        y_train=parts["train"][run.target],
        val_texts=val_texts,
        y_val=parts["val"][run.target],
        target=target_encoder,
        model_name_or_path=load_settings().text_model,
        seed=run.seed,
        time_budget_s=run.time_budget_s,
        device=device,
        threads=threads,
        on_epoch=on_epoch,
    )
    return _TextFit(
        model=TextRunModel(result.model, columns, run.model),
        loop=result.loop,
        train_seconds=result.train_seconds,
        params=result.params,
        flops_per_row=result.flops_per_row,
        truncated_share=result.truncated_share,
    )


def load_text_model(run) -> TextRunModel:
    if run.model == "tfidf-logreg":
        from models.text_baseline import FittedTfidfModel

        model = FittedTfidfModel.load(run.artifact_path)
    else:
        from models.text_classifier import FittedTextModel

        model = FittedTextModel.load(run.artifact_path)
    return TextRunModel(model, tuple(run.features), run.model)
