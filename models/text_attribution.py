"""Word-level attributions for text models, computed with the Shapley machinery of
`models.shapley`.

The game: the cleaned text is split into words, and consecutive words are grouped into at most
`max_groups` spans so the cost per text stays bounded whatever its length. Span ends snap to
nearby punctuation (a sentence end first, then a comma), so a span reads as a clause rather
than an arbitrary run of words. With a `token_budget` and a model that counts its tokens, a
long text gets fewer spans: the model then reads about `token_budget` tokens per antithetic
pair whatever the text's length (a transformer's cost is linear in the tokens it reads,
~0.28 ms per token for MiniLM on one CPU core), while a sentence keeps one span per word.
Span j is player j; a coalition keeps its spans and REMOVES the others (the kept words are
joined with single spaces). Removing rather than writing [MASK] in their place was chosen because:
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

from models.shapley import Method, explain_interventional, fidelity
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
    """The cleaned text's words, grouped into at most `max_groups` consecutive spans.

    Spans are about equally long; each cut moves, within half a span of its even position, to
    just after a word ending a sentence (. ! ?), else a clause (, ; :), else stays put.
    """
    if max_groups < 1:
        raise ValueError(f"max_groups must be >= 1: {max_groups=}")
    words = clean_text(text).split()
    if not words:
        return []
    cuts = [0, *_cut_points(words, min(len(words), max_groups)), len(words)]
    return [" ".join(words[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def _cut_points(words: list[str], groups: int) -> list[int]:
    """groups - 1 increasing word indices where spans start, snapped to punctuation."""
    n = len(words)
    size = n / groups
    reach = int(size // 2)
    # strength[b]: how good a cut is before word b (after word b - 1)
    strength = [0] + [2 if w[-1] in ".!?" else 1 if w[-1] in ",;:" else 0 for w in words[:-1]]
    cuts: list[int] = []
    previous = 0
    for i in range(1, groups):
        ideal = round(i * size)
        # leave at least one word for this span and for each span still to come
        low, high = previous + 1, n - (groups - i)
        window = range(max(low, ideal - reach), min(high, ideal + reach) + 1)
        if len(window) == 0:
            best = min(max(ideal, low), high)
        else:
            best = max(window, key=lambda b: (strength[b], -abs(b - ideal)))
        cuts.append(best)
        previous = best
    return cuts


def spans_for_budget(tokens: int, token_budget: int, max_groups: int) -> int:
    """How many spans keep one antithetic pair of a text near `token_budget` model tokens.

    A pair scores 2 (spans - 1) masked texts holding half the text on average, plus the text
    itself once: about tokens * spans tokens. At least 2 spans (one span is the whole text and
    says nothing), at most `max_groups`. More pairs cost proportionally more, same spans.
    """
    if tokens < 1 or token_budget < 1:
        raise ValueError(f"tokens and token_budget must be >= 1: {tokens=} {token_budget=}")
    return int(min(max_groups, max(2, token_budget // tokens)))


def explain_text(
    model: TextModel,
    text: Any,
    *,
    max_groups: int = 16,
    n_pairs: int = 2,
    seed: int = 0,
    class_index: int | None = None,
    token_budget: int | None = None,
) -> TextAttribution:
    """Attributions of one text (see `explain_texts`)."""
    return explain_texts(
        model,
        [text],
        max_groups=max_groups,
        n_pairs=n_pairs,
        seed=seed,
        class_index=class_index,
        token_budget=token_budget,
    )[0]


def explain_texts(
    model: TextModel,
    texts: Sequence[Any],
    *,
    max_groups: int = 16,
    n_pairs: int = 2,
    seed: int = 0,
    class_index: int | None = None,
    token_budget: int | None = None,
    method: Method = "auto",
) -> list[TextAttribution]:
    """Attributions of many texts, their masked texts scored together in large batches.

    Small games are solved exactly (where enumerating costs no more model calls than the
    chains of max(n_pairs, 2) pairs: up to 3 spans at n_pairs <= 2), larger ones with
    `n_pairs` antithetic pairs of permutations (exact for pairwise interactions, additive
    always): about
    2 + 2 * n_pairs * (spans - 1) masked texts are scored per text. `class_index` picks the
    multiclass class to explain; None explains each text's predicted class. Values of one
    text depend on its position in `texts` only through the sampled permutations.
    token_budget: with a model that has `token_counts`, each text gets as many spans (up to
    `max_groups`) as keep each pair's cost near this many model tokens (`spans_for_budget`),
    so the spans do not depend on `n_pairs`; models without token counts (TF-IDF:
    microseconds per text) always get `max_groups`.
    method: as in `models.shapley.explain_interventional` ("exact" is the reference).
    """
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1: {n_pairs=}")
    if token_budget is not None and token_budget < 1:
        raise ValueError(f"token_budget must be >= 1: {token_budget=}")
    started = time.perf_counter()
    groups = _groups_per_text(model, texts, max_groups, token_budget)
    spans = [split_spans(t, g) for t, g in zip(texts, groups, strict=True)]
    classes = _explained_classes(model, texts, class_index)
    by_text: dict[int, TextAttribution] = {}
    for cls in np.unique(classes):
        members = np.flatnonzero(classes == cls).tolist()
        explained = _explain_class(
            model, [spans[i] for i in members], int(cls), n_pairs, seed, method
        )
        by_text.update(zip(members, explained, strict=True))
    share = (time.perf_counter() - started) / max(len(texts), 1)
    return [dataclasses.replace(by_text[i], seconds=share) for i in range(len(texts))]


def same_game_reference(
    model: TextModel,
    text: Any,
    spans: list[str],
    *,
    exact: bool,
    n_pairs: int = 32,
    seed: int = 0,
    class_index: int | None = None,
) -> np.ndarray:
    """Reference values for the game `spans` came from: the text split into exactly these
    spans (whatever budget chose their number), solved by enumerating every coalition or with
    `n_pairs` antithetic pairs. Fidelity figures compare an explanation with this."""
    (reference,) = explain_texts(
        model,
        [text],
        max_groups=max(len(spans), 1),
        class_index=class_index,
        method="exact" if exact else "antithetic",
        n_pairs=1 if exact else n_pairs,
        seed=seed,
    )
    if reference.spans != spans:
        raise ValueError("the text does not split into the spans it was explained with")
    return reference.values


def span_fidelity(
    values: Sequence[np.ndarray], references: Sequence[np.ndarray]
) -> dict[str, float | int]:
    """`models.shapley.fidelity` over texts with different numbers of spans.

    Each text is compared on its own spans: padding ragged rows into one matrix would add
    spans that are 0 in both, which inflates the rank correlation. Spearman is the mean over
    texts, the max error the largest, as in `fidelity`.
    """
    if len(values) != len(references) or not values:
        raise ValueError(f"need as many references as texts, at least one: {len(values)=}")
    per_text = [
        fidelity(np.atleast_2d(v), np.atleast_2d(r))
        for v, r in zip(values, references, strict=True)
    ]
    return {
        "spearman": float(np.mean([f["spearman"] for f in per_text])),
        "max_abs_error": float(max(f["max_abs_error"] for f in per_text)),
        "rows": len(per_text),
    }


def _groups_per_text(
    model: TextModel,
    texts: Sequence[Any],
    max_groups: int,
    token_budget: int | None,
) -> list[int]:
    count_tokens = getattr(model, "token_counts", None)
    if token_budget is None or count_tokens is None or len(texts) == 0:
        return [max_groups] * len(texts)
    tokens = np.asarray(count_tokens(list(texts)))
    return [spans_for_budget(max(int(t), 1), token_budget, max_groups) for t in tokens]


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
    model: TextModel, spans: list[list[str]], cls: int, n_pairs: int, seed: int, method: Method
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
        predict, rows, np.zeros((1, rows.shape[1])), method=method, n_pairs=n_pairs, seed=seed
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
