"""Word-level attributions for text models, computed with the Shapley machinery of
`models.shapley`.

The game: the cleaned text is split into words, and consecutive words are grouped into at most
`max_groups` spans so the cost per text stays bounded whatever its length. Span j is player j;
a coalition keeps its spans and REMOVES the others (the kept words are joined with single
spaces). Removing rather than writing [MASK] in their place was chosen because:
- it means the same thing for every model with `predict_texts` (the TF-IDF baseline has no
  mask token; for it removal is the only honest "absent");
- the fine-tuned classifier never saw [MASK] while training, so a mask token is no more
  natural to it than a shorter text;
- shorter texts are cheaper to score, which is most of the cost here.
The baseline (every span removed) is the empty text, so the values explain the move from the
model's score of an empty text to its score of the full text, on the logit scale (binary:
log-odds of the positive class; multiclass: log-probability of the explained class).

Many texts are explained in ONE `explain_interventional` call, so all their masked texts reach
the model together: Z holds, for text i, the number i + 1 where a span is kept and 0 where it
is removed. The explained row of text i is i + 1 on its spans and 0 on padding columns (equal to
the all-zero baseline, hence null players that cost nothing), and every masked row with a kept
span names its text; the only row with none kept is the empty text, the same for all texts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.special import log_softmax

from models.shapley import explain_interventional
from models.tasks import TargetEncoder
from models.text_classifier import clean_text


class TextModel(Protocol):
    """What attribution needs: the target and batched scoring of raw texts."""

    target: TargetEncoder

    def predict_texts(self, texts: Sequence[Any], *, output: str = ...) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class TextAttribution:
    """Attribution of each span of one text; base_value + values.sum() == output.

    explained_class: index of the class whose score is explained (binary: 1, the positive
    class). seconds: this text's share of the batch's time.
    """

    spans: list[str]
    values: np.ndarray
    base_value: float
    output: float
    additivity_error: float
    explained_class: int
    seconds: float


def split_spans(text: Any, max_groups: int = 16) -> list[str]:
    """The cleaned text's words, grouped into at most `max_groups` consecutive spans whose
    word counts differ by at most one."""
    if max_groups < 1:
        raise ValueError(f"max_groups must be >= 1: {max_groups=}")
    words = clean_text(text).split()
    if not words:
        return []
    groups = np.array_split(np.arange(len(words)), min(len(words), max_groups))
    return [" ".join(words[g[0] : g[-1] + 1]) for g in groups]


def explain_text(
    model: TextModel,
    text: Any,
    *,
    max_groups: int = 16,
    n_pairs: int = 2,
    seed: int = 0,
    class_index: int | None = None,
) -> TextAttribution:
    """Attributions of one text (see `explain_texts`)."""
    return explain_texts(
        model, [text], max_groups=max_groups, n_pairs=n_pairs, seed=seed, class_index=class_index
    )[0]


def explain_texts(
    model: TextModel,
    texts: Sequence[Any],
    *,
    max_groups: int = 16,
    n_pairs: int = 2,
    seed: int = 0,
    class_index: int | None = None,
) -> list[TextAttribution]:
    """Attributions of many texts, their masked texts scored together in large batches.

    Small games are solved exactly (where enumerating costs no more model calls than the
    chains: up to 3 spans at n_pairs=2), larger ones with `n_pairs` antithetic pairs of
    permutations (exact for pairwise interactions, additive always): about
    2 + 2 * n_pairs * (spans - 1) masked texts are scored per text. `class_index` picks the
    multiclass class to explain; None explains each text's predicted class. Values of one
    text depend on its position in `texts` only through the sampled permutations.
    """
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1: {n_pairs=}")
    started = time.perf_counter()
    spans = [split_spans(t, max_groups) for t in texts]
    classes = _explained_classes(model, texts, class_index)
    by_text: dict[int, TextAttribution] = {}
    for cls in np.unique(classes):
        members = np.flatnonzero(classes == cls).tolist()
        explained = _explain_class(model, [spans[i] for i in members], int(cls), n_pairs, seed)
        by_text.update(zip(members, explained, strict=True))
    share = (time.perf_counter() - started) / max(len(texts), 1)
    return [dataclasses.replace(by_text[i], seconds=share) for i in range(len(texts))]


def _explained_classes(
    model: TextModel, texts: Sequence[Any], class_index: int | None
) -> np.ndarray:
    """Binary: always class 1 (log-odds of the positive class); multiclass: as asked, or the
    predicted class of each full text."""
    target = model.target
    if target.task == "binary":
        if class_index not in (None, 1):
            raise ValueError(f"binary models explain the positive class (1): {class_index=}")
        return np.ones(len(texts), dtype=np.int64)
    if target.task != "multiclass":
        raise ValueError(f"text attribution needs a classification model: {target.task=}")
    if class_index is not None:
        if not 0 <= class_index < target.n_classes:
            raise ValueError(f"class_index must be in 0..{target.n_classes - 1}: {class_index=}")
        return np.full(len(texts), class_index, dtype=np.int64)
    if len(texts) == 0:
        return np.empty(0, dtype=np.int64)
    return model.predict_texts(list(texts), output="logit").argmax(axis=1)


def _explain_class(
    model: TextModel, spans: list[list[str]], cls: int, n_pairs: int, seed: int
) -> list[TextAttribution]:
    """One Shapley run over every text that explains class `cls` (one shared base value)."""
    width = max((len(s) for s in spans), default=0)
    rows = np.zeros((len(spans), max(width, 1)))
    for i, text_spans in enumerate(spans):
        rows[i, : len(text_spans)] = i + 1

    def predict(z: np.ndarray) -> np.ndarray:
        masked = [_masked_text(spans, row) for row in z]
        unique, inverse = np.unique(np.asarray(masked, dtype=object), return_inverse=True)
        scores = _score(model, list(unique), cls)
        return scores[inverse.reshape(-1)]

    result = explain_interventional(
        predict, rows, np.zeros((1, rows.shape[1])), method="auto", n_pairs=n_pairs, seed=seed
    )
    return [
        TextAttribution(
            spans=text_spans,
            values=result.values[i, : len(text_spans)].copy(),
            base_value=result.base_value,
            output=float(result.output[i]),
            additivity_error=abs(
                result.base_value + result.values[i].sum() - float(result.output[i])
            ),
            explained_class=cls,
            seconds=0.0,
        )
        for i, text_spans in enumerate(spans)
    ]


def _masked_text(spans: list[list[str]], row: np.ndarray) -> str:
    """The kept spans of the text the row names (all removed: the empty text)."""
    if not row.any():
        return ""
    text_spans = spans[int(row.max()) - 1]
    return " ".join(span for span, kept in zip(text_spans, row, strict=False) if kept)


def _score(model: TextModel, texts: list[str], cls: int) -> np.ndarray:
    """Binary: log-odds of the positive class; multiclass: log-probability of class `cls`."""
    logits = np.asarray(model.predict_texts(texts, output="logit"), dtype=np.float64)
    if model.target.task == "binary":
        return logits
    return log_softmax(logits, axis=1)[:, cls]
