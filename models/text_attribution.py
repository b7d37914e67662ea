"""Word-level attributions for text models: Shapley values of word spans, estimated by each
span's main and total effect (the default) or with the machinery of `models.shapley`.

The game: the cleaned text is split into words, and consecutive words are grouped into at most
`max_groups` spans so the cost per text stays bounded whatever its length. Span ends snap to
nearby punctuation (a sentence end first, then a comma), so a span reads as a clause rather
than an arbitrary run of words. With a `token_budget` and a model that counts its tokens, a
long text gets fewer spans: the model then reads about `token_budget` tokens per pass (one
antithetic pair, or the effects) whatever the text's length (a transformer's cost is linear in
the tokens it reads, ~0.28 ms per token for MiniLM on one CPU core in float32), while a
sentence keeps one span per word.
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

The default estimator ("effects"): span j's main effect v({j}) - v(empty) and total effect
v(all) - v(all but j), combined by `effect_values` (exact for games with at most pairwise
interactions and for a single pure k-way one), deterministic, at the cost of one antithetic
pair (the spans one by one read about the text once, the texts less one span d - 1 times).
Games of at most 3 spans are enumerated exactly instead (no dearer); from BLEND_MIN_SPANS spans
on (sentences: one span per word, so higher-order interactions matter) the effects are blended
with `n_pairs` antithetic pairs, the effects weighing as EFFECTS_AS_PAIRS pairs. Masked texts
are scored in bfloat16 where the CPU does that natively (`bf16_masks`); each text and the empty
text stay float32, so the values add up to the model's own scores. All masked texts of all
texts go to the model in one call (duplicates once).

With the other methods, many texts are explained in ONE `explain_interventional` call, so all
their masked texts reach the model together: Z holds, for text i, the number i + 1 where a
span is kept and 0 where it is removed. The explained row of text i is i + 1 on its spans and 0
on padding columns (equal to the all-zero baseline, hence null players that cost nothing), and
every masked row with a kept span names its text; the only row with none kept is the empty
text, the same for all texts.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

import numpy as np
from scipy.special import log_softmax

from models.shapley import Method, effect_values, explain_interventional, fidelity
from models.tasks import TargetEncoder
from models.text_classifier import clean_text

# "effects": main + total effect of each span (`effect_values`), small games enumerated;
# the others as in `models.shapley.explain_interventional` ("exact" is the reference).
TextMethod = Literal["effects", "auto", "exact", "antithetic"]
TEXT_METHODS: tuple[str, ...] = ("effects", "auto", "exact", "antithetic")
# Under "effects", a game is enumerated exactly when that makes the model read at most this many
# times the tokens of its estimate (`_effects_plan`): up to 3 spans. At 2 (4 spans too) ~100-word
# reviews took 236 ms per text against 165 (float32), where the effects alone met Spearman 0.985.
EXACT_COST_RATIO = 1.5
# From this many spans on, "effects" also walks `n_pairs` antithetic pairs and blends them in,
# the effects weighing as EFFECTS_AS_PAIRS pairs. Against exact / 128-pair values (MiniLM, food
# reviews): effects alone 0.97 on ~8 spans, where blending 2 pairs lowered it to 0.95; on 10-16
# spans (sentences) effects alone 0.885, 2 pairs alone 0.88, the blend 0.92 (blending at
# equal weight with 1 pair: 0.89, effects weighing as 2 pairs: 0.90).
BLEND_MIN_SPANS = 12
EFFECTS_AS_PAIRS = 2


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
    method: TextMethod = "effects",
    bf16_masks: bool = True,
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
        method=method,
        bf16_masks=bf16_masks,
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
    method: TextMethod = "effects",
    bf16_masks: bool = True,
) -> list[TextAttribution]:
    """Attributions of many texts, their masked texts scored together in large batches.

    method "effects" (the default): see the module's docstring; about 2 + 2 * spans masked
    texts per text, plus 2 * n_pairs * (spans - 1) in games of BLEND_MIN_SPANS spans or more.
    "auto": small games are solved exactly (where enumerating costs no more model calls than
    the chains of max(n_pairs, 2) pairs: up to 3 spans at n_pairs <= 2), larger ones with
    `n_pairs` antithetic pairs of permutations (exact for pairwise interactions, additive
    always): about 2 + 2 * n_pairs * (spans - 1) masked texts are scored per text. "exact" and
    "antithetic" as in `models.shapley.explain_interventional` ("exact" is the reference).
    `class_index` picks the multiclass class to explain; None explains each text's predicted class. Values of one
    text depend on its position in `texts` only through the sampled permutations.
    token_budget: with a model that has `token_counts`, each text gets as many spans (up to
    `max_groups`) as keep each pair's cost near this many model tokens (`spans_for_budget`),
    so the spans do not depend on `n_pairs`; models without token counts (TF-IDF:
    microseconds per text) always get `max_groups`.
    bf16_masks: score masked texts in bfloat16 where that is native (`native_bf16` of the
    model; models without it score everything as usual); the texts and the empty text stay
    float32.
    """
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1: {n_pairs=}")
    if method not in TEXT_METHODS:
        raise ValueError(f"method must be one of {TEXT_METHODS}: {method=}")
    if token_budget is not None and token_budget < 1:
        raise ValueError(f"token_budget must be >= 1: {token_budget=}")
    started = time.perf_counter()
    groups = _groups_per_text(model, texts, max_groups, token_budget)
    spans = [split_spans(t, g) for t, g in zip(texts, groups, strict=True)]
    classes = _explained_classes(model, texts, class_index)
    by_text: dict[int, TextAttribution] = {}
    for cls in np.unique(classes):
        members = np.flatnonzero(classes == cls).tolist()
        chosen = [spans[i] for i in members]
        if method == "effects":
            explained = _explain_class_by_effects(model, chosen, int(cls), n_pairs, bf16_masks)
            blended = [k for k, c in enumerate(chosen) if _effects_plan(len(c), n_pairs) == "blend"]
            if blended:
                pairs = _explain_class(
                    model,
                    [chosen[k] for k in blended],
                    int(cls),
                    n_pairs,
                    seed,
                    "antithetic",
                    bf16_masks,
                )
                for k, sampled in zip(blended, pairs, strict=True):
                    explained[k] = _blend(explained[k], sampled, n_pairs)
        else:
            explained = _explain_class(model, chosen, int(cls), n_pairs, seed, method, bf16_masks)
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
        bf16_masks=False,  # the reference explains the model's float32 scores
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
    model: TextModel,
    spans: list[list[str]],
    cls: int,
    n_pairs: int,
    seed: int,
    method: Method,
    bf16_masks: bool,
) -> list[TextAttribution]:
    """One Shapley run over every text that explains class `cls` (one shared base value)."""
    width = max((len(s) for s in spans), default=0)
    rows = np.zeros((len(spans), max(width, 1)))
    for i, text_spans in enumerate(spans):
        rows[i, : len(text_spans)] = i + 1

    float32 = _endpoints(spans) if bf16_masks else None

    def predict(z: np.ndarray) -> np.ndarray:
        masked = [_masked_text(spans, row) for row in z]
        unique, inverse = np.unique(np.asarray(masked, dtype=object), return_inverse=True)
        scores = _score(model, list(unique), cls, float32)
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


def _effects_plan(players: int, n_pairs: int) -> str:
    """How the "effects" method solves a game of `players` spans: "exact" where enumerating
    reads at most EXACT_COST_RATIO times the tokens of the estimate, else "blend" (effects and
    `n_pairs` antithetic pairs) from BLEND_MIN_SPANS spans on, else "effects".

    Costs in whole-text equivalents: the effects read the text, its spans one by one (together
    about the text once) and every text less one span (players - 1 texts); a pair reads
    2 (players - 1) masked texts of half the text on average; enumerating reads 2^players - 2
    of them, and the text: 2^(players - 1). So effects alone enumerate up to 3 spans (4 against
    4; 4 spans would be 8 against 5, and measured 236 against 165 ms per ~100-word review).
    """
    blend = players >= BLEND_MIN_SPANS
    cost = players + 1 + (n_pairs * (players - 1) if blend else 0)
    if 2.0 ** (players - 1) <= EXACT_COST_RATIO * cost:
        return "exact"
    return "blend" if blend else "effects"


def _blend(effects: TextAttribution, sampled: TextAttribution, n_pairs: int) -> TextAttribution:
    """Effects and pairs of one game averaged, the effects weighing as EFFECTS_AS_PAIRS pairs
    (both add up to the text's score less the empty text's, so the blend does too)."""
    values = (EFFECTS_AS_PAIRS * effects.values + n_pairs * sampled.values) / (
        EFFECTS_AS_PAIRS + n_pairs
    )
    # the pairs scored the text and the empty text in batches of their own: float32 rounding
    # (~1e-7) is shared out so the blend adds up to the effects' scores exactly
    gap = effects.output - effects.base_value - values.sum()
    values = values + gap / max(len(values), 1)
    error = abs(effects.base_value + values.sum() - effects.output)
    return dataclasses.replace(effects, values=values, additivity_error=error)


def _effect_coalitions(players: int, n_pairs: int) -> np.ndarray:
    """Bit masks (bit k: span k kept) a game needs: every one when it is enumerated, else the
    empty text, the text, each span alone and the text less each span."""
    if _effects_plan(players, n_pairs) == "exact":
        return np.arange(1 << players, dtype=np.int64)
    full = (1 << players) - 1
    single = np.int64(1) << np.arange(players, dtype=np.int64)
    return np.concatenate([[0, full], single, full ^ single]).astype(np.int64)


def _exact_from_table(v: np.ndarray, players: int) -> np.ndarray:
    """Shapley values from every coalition's value (v[mask], bit k: player k in)."""
    masks = np.arange(1 << players, dtype=np.int64)
    sizes = np.array([bin(int(m)).count("1") for m in masks])
    factorial = [math.factorial(k) for k in range(players + 1)]
    weight = np.array(
        [factorial[k] * factorial[players - 1 - k] / factorial[players] for k in range(players)]
    )
    values = np.empty(players)
    for j in range(players):
        without = masks[(masks >> j) & 1 == 0]
        values[j] = float(weight[sizes[without]] @ (v[without | (1 << j)] - v[without]))
    return values


def _explain_class_by_effects(
    model: TextModel, spans: list[list[str]], cls: int, n_pairs: int, bf16_masks: bool
) -> list[TextAttribution]:
    """Main + total effects of each span (`effect_values`), or exact values where enumerating
    the game is no dearer (`_effects_plan`); one batched scoring of every masked
    text of every text (duplicates scored once)."""
    if not spans:
        return []
    games = [_effect_coalitions(len(text_spans), n_pairs) for text_spans in spans]
    masked = [
        _kept(text_spans, int(mask))
        for text_spans, masks in zip(spans, games, strict=True)
        for mask in masks
    ]
    unique, inverse = np.unique(np.asarray(masked, dtype=object), return_inverse=True)
    float32 = _endpoints(spans) if bf16_masks else None
    scores = _score(model, list(unique), cls, float32)[inverse.reshape(-1)]
    starts = np.concatenate([[0], np.cumsum([len(g) for g in games])])
    base = float(scores[0])  # every game starts with the empty text
    explained = []
    for i, text_spans in enumerate(spans):
        d, v = len(text_spans), scores[starts[i] : starts[i + 1]]
        if d == 0 or _effects_plan(d, n_pairs) == "exact":
            values = _exact_from_table(v, d)
            output = float(v[-1])
        else:
            output = float(v[1])
            main, total = v[2 : 2 + d] - base, output - v[2 + d :]
            values = effect_values(main, total, output, base)
        explained.append(
            TextAttribution(
                spans=text_spans,
                values=values,
                base_value=base,
                output=output,
                additivity_error=abs(base + values.sum() - output),
                explained_class=cls,
                seconds=0.0,
            )
        )
    return explained


def _endpoints(spans: list[list[str]]) -> set[str]:
    """The texts whose scores the values must add up between: each text and the empty one."""
    return {"", *(" ".join(text_spans) for text_spans in spans)}


def _kept(text_spans: list[str], mask: int) -> str:
    """The spans whose bits are set in `mask`, joined (none: the empty text)."""
    return " ".join(span for k, span in enumerate(text_spans) if mask >> k & 1)


def _masked_text(spans: list[list[str]], row: np.ndarray) -> str:
    """The kept spans of the text the row names (all removed: the empty text)."""
    if not row.any():
        return ""
    text_spans = spans[int(row.max()) - 1]
    return " ".join(span for span, kept in zip(text_spans, row, strict=False) if kept)


def _score(
    model: TextModel, texts: list[str], cls: int, float32: set[str] | None = None
) -> np.ndarray:
    """Binary: log-odds of the positive class; multiclass: log-probability of class `cls`.

    float32: when given and the model computes natively in bfloat16 (`native_bf16`), every
    text not in this set (the masked ones) is scored in bfloat16; those in it (each explained
    text and the empty text) in float32, so the values add up to the model's own scores.
    """
    if float32 is None or not getattr(model, "native_bf16", False):
        return _class_score(model, model.predict_texts(texts, output="logit"), cls)
    predict = cast(Any, model).predict_texts  # a model with native_bf16 takes bf16=
    full = np.array([t in float32 for t in texts], dtype=bool)
    scores = np.empty(len(texts))
    for precise, rows in ((True, np.flatnonzero(full)), (False, np.flatnonzero(~full))):
        if len(rows):
            chosen = [texts[i] for i in rows]
            logits = predict(chosen, output="logit", bf16=not precise)
            scores[rows] = _class_score(model, logits, cls)
    return scores


def _class_score(model: TextModel, logits: Any, cls: int) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    if model.target.task == "binary":
        return logits
    return log_softmax(logits, axis=1)[:, cls]
