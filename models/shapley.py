"""Interventional SHAP values for any model that scores encoded rows Z [N, M] -> [N].

Why our own estimator instead of shap's explainers: on an FT-Transformer shap's Permutation
explainer needs ~17 s per row with its defaults (docs/STACK.md), because it spends thousands
of model calls per row and calls the model in small batches. Payoff explains with the maths of
the interventional game instead:

- For row x and a weighted background {(b_k, w_k)}, v(S) = sum_k w_k f(x_S, b_k,notS).
  Shapley values are linear in the game, so phi(x) = sum_k w_k phi_k(x), where phi_k belongs to
  the game with the single baseline b_k. Each (row, baseline) game is solved on its own.
- A feature whose value in x equals its value in b_k (NaN == NaN too) is a null player of that
  game: it gets 0 and is left out, so the game only has the d differing features.
- A small game (2^d - 2 coalitions no dearer than the sampled chains, counting at least two
  pairs) is enumerated: exact.
- A larger game is walked by antithetic pairs of permutations (a chain from b_k to x and the
  reversed chain). A pair is exact for any game whose interactions are at most pairwise, and
  the chains telescope, so the values always add up to f(x) - base exactly.
- Every masked row of many (row, baseline, step) triples goes to the model in large batches.
"""

from __future__ import annotations

import math
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import spearmanr
from sklearn.cluster import KMeans

Predict = Callable[[np.ndarray], np.ndarray]
Method = Literal["auto", "exact", "antithetic"]
METHODS: tuple[str, ...] = ("auto", "exact", "antithetic")

# 2^24 coalitions per (row, baseline) game is hours of model time: refuse rather than hang.
MAX_EXACT_PLAYERS = 24
# Rows are explained in blocks of about this many model batches: large enough to keep every
# predict call full, small enough that the block's bookkeeping stays a few MB.
_BATCHES_PER_BLOCK = 4
# K-means is fitted on at most this many rows; every row is then assigned to a cluster.
_KMEANS_FIT_ROWS = 20_000
# A categorical column adds at most this many one-hot columns to the clustering space.
_MAX_ONE_HOT_LEVELS = 32


@dataclass(frozen=True, eq=False)
class ShapResult:
    """SHAP values of `n` rows over `M` encoded columns, with what they cost.

    eq=False: the fields are arrays, whose `==` is elementwise, not a truth value.
    """

    values: np.ndarray  # [n, M] attribution of each column
    base_value: float  # sum_k w_k f(b_k): the score the attributions start from
    output: np.ndarray  # [n] f(x): the score they add up to
    method: str  # "exact", "antithetic" or "exact+antithetic" (which games got which)
    evaluations: int  # rows passed to the model, endpoints included
    seconds: float

    @property
    def additivity_error(self) -> float:
        """Largest gap between base + sum of values and the model's own score."""
        if self.values.shape[0] == 0:
            return 0.0
        gaps = self.base_value + self.values.sum(axis=1) - self.output
        return float(np.max(np.abs(gaps)))


def explain_interventional(
    predict: Predict,
    rows: np.ndarray,
    background: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    method: Method = "auto",
    n_pairs: int = 4,
    seed: int = 0,
    max_batch_rows: int = 16384,
    on_progress: Callable[[int, int], None] | None = None,
    row_offset: int = 0,
) -> ShapResult:
    """Interventional Shapley values of `predict` at `rows` against a weighted background.

    row_offset: the position of rows[0] in a larger set of rows split across workers; each
    row's random permutations depend on (seed, its position), so the parts together give the
    values of the whole.

    method: "exact" enumerates every game; "antithetic" walks `n_pairs` antithetic permutation
    pairs in every game; "auto" enumerates the games where that costs no more model calls than
    max(n_pairs, 2) pairs would (few differing features) and walks the pairs in the others.
    on_progress(done_rows, total_rows) is called after each block of rows.
    """
    x, b, w = _validate_inputs(rows, background, weights)
    _validate_options(method, n_pairs, max_batch_rows)
    if seed < 0:
        raise ValueError(f"seed must be >= 0: {seed=}")
    started = time.perf_counter()
    cost = _game_cost(_differing_counts(x, b), method, n_pairs)  # refuses too-big exact games
    model = _BatchedModel(predict, max_batch_rows)
    base_outputs = model.run([_PlainRows(b)])[0]
    values = np.zeros_like(x)
    outputs = np.empty(x.shape[0])
    kinds: set[str] = set()
    for block in _row_blocks(cost.sum(axis=1) + 1, _BATCHES_PER_BLOCK * max_batch_rows):
        block_values, block_outputs, block_kinds = _explain_block(
            model, x, block, b, w, base_outputs, method, n_pairs, seed, row_offset
        )
        values[block] = block_values
        outputs[block] = block_outputs
        kinds |= block_kinds
        if on_progress is not None:
            on_progress(int(block.stop), x.shape[0])
    return ShapResult(
        values=values,
        base_value=float(w @ base_outputs),
        output=outputs,
        method=_method_label(kinds),
        evaluations=model.evaluations,
        seconds=time.perf_counter() - started,
    )


def exact_interventional(
    predict: Predict,
    rows: np.ndarray,
    background: np.ndarray,
    weights: np.ndarray | None = None,
    max_batch_rows: int = 16384,
) -> ShapResult:
    """Exact interventional Shapley values: the reference other estimators are judged by.

    Costs up to K * 2^M model calls per row (fewer where columns equal the baseline's).
    """
    return explain_interventional(
        predict, rows, background, weights, method="exact", max_batch_rows=max_batch_rows
    )


def estimate_evaluations(
    n_rows: int, n_features: int, n_background: int, method: Method, n_pairs: int = 4
) -> int:
    """Model calls `explain_interventional` makes at most, for a cost/ETA before running.

    An upper bound: it assumes every column differs from every baseline; columns equal to a
    baseline's value (common for categoricals) only make the real run cheaper.
    """
    for name, value in (("n_rows", n_rows), ("n_features", n_features)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0: {value=}")
    if n_background < 1:
        raise ValueError(f"n_background must be >= 1: {n_background=}")
    _validate_options(method, n_pairs, 1)
    per_game = int(_game_cost(np.array([n_features]), method, n_pairs)[0])
    return n_rows * n_background * per_game + n_rows + n_background


def count_evaluations(
    rows: np.ndarray,
    background: np.ndarray,
    method: Method = "auto",
    n_pairs: int = 4,
) -> int:
    """Model calls `explain_interventional` will make for exactly these rows and background.

    Unlike `estimate_evaluations` it counts the columns equal to a baseline's value, which are
    free, so it is the figure to decide with (an exact reference on a table with many shared
    categorical values can be cheap where the upper bound says it is not). For "exact", games
    too big to enumerate count as infinitely dear (returned as a huge int) instead of raising.
    """
    x = _as_matrix(rows, "rows")
    b = _as_matrix(background, "background")
    if x.shape[1] != b.shape[1]:
        raise ValueError(f"rows and background differ in columns: {x.shape=} {b.shape=}")
    _validate_options(method, n_pairs, 1)
    players = _differing_counts(x, b)
    if method == "exact" and int(players.max(initial=0)) > MAX_EXACT_PLAYERS:
        return 2**62
    return int(_game_cost(players, method, n_pairs).sum()) + x.shape[0] + b.shape[0]


def summarize_background(
    z: np.ndarray,
    k: int = 16,
    seed: int = 0,
    categorical: Sequence[bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pick at most `k` REAL rows of `z` that stand for it, weighted by the share they stand for.

    K-means on standardised numerics (plus missing flags) and one-hot categorical codes; each
    cluster is represented by its member nearest the centre, never by the centre itself, so a
    categorical code is never averaged into a code that does not exist. Returns (rows [k', M],
    weights [k'] summing to 1); k' < k only when `z` has fewer distinct rows than k.
    """
    z = _as_matrix(z, "z")
    if k < 1:
        raise ValueError(f"k must be >= 1: {k=}")
    is_categorical = _categorical_mask(categorical, z.shape[1])
    n = z.shape[0]
    if n <= k:
        return z.copy(), np.full(n, 1.0 / n)
    space = _clustering_space(z, is_categorical)
    labels, distance = _cluster(space, k, seed)
    order = np.lexsort((distance, labels))  # by cluster, nearest to its centre first
    clusters, first = np.unique(labels[order], return_index=True)
    counts = np.bincount(labels, minlength=k)[clusters]
    return z[order[first]].copy(), counts / n


def fidelity(values: np.ndarray, reference: np.ndarray) -> dict[str, float | int]:
    """How closely `values` match `reference` attributions, row by row.

    spearman: mean over rows of the rank correlation of the attribution vectors (both constant:
    1.0; only one constant: 0.0, since the ranking then says nothing). max_abs_error: largest
    |value - reference| relative to the row's total attribution sum_j |reference_j|.
    """
    v = _as_matrix(values, "values")
    r = _as_matrix(reference, "reference")
    if v.shape != r.shape:
        raise ValueError(f"values and reference differ in shape: {v.shape=} {r.shape=}")
    rhos = [_row_spearman(a, c) for a, c in zip(v, r, strict=True)]
    total = np.abs(r).sum(axis=1)
    worst = np.abs(v - r).max(axis=1, initial=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(total > 0, worst / total, np.where(worst > 0, np.inf, 0.0))
    return {
        "spearman": float(np.mean(rhos)) if rhos else float("nan"),
        "max_abs_error": float(relative.max(initial=0.0)),
        "rows": int(v.shape[0]),
    }


# --- validation -----------------------------------------------------------------------------


def _as_matrix(data: np.ndarray, name: str) -> np.ndarray:
    matrix = np.array(data, dtype=np.float64)  # a copy: callers' arrays may be read-only
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        shape = matrix.shape
        raise ValueError(f"{name} must be a non-empty 2-D array: {shape=}")
    if np.isinf(matrix).any():
        raise ValueError(f"{name} holds infinite values; encode them as NaN or clip them")
    return matrix


def _validate_inputs(
    rows: np.ndarray, background: np.ndarray, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = _as_matrix(rows, "rows")
    b = _as_matrix(background, "background")
    if x.shape[1] != b.shape[1]:
        raise ValueError(f"rows and background differ in columns: {x.shape=} {b.shape=}")
    if weights is None:
        return x, b, np.full(b.shape[0], 1.0 / b.shape[0])
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (b.shape[0],) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {b.shape[0]} finite values >= 0, not all 0: {w=}")
    return x, b, w / w.sum()


def _validate_options(method: str, n_pairs: int, max_batch_rows: int) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}: {method=}")
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1: {n_pairs=}")
    if max_batch_rows < 1:
        raise ValueError(f"max_batch_rows must be >= 1: {max_batch_rows=}")


def _categorical_mask(categorical: Sequence[bool] | None, n_columns: int) -> np.ndarray:
    if categorical is None:
        return np.zeros(n_columns, dtype=bool)
    mask = np.asarray(categorical, dtype=bool)
    if mask.shape != (n_columns,):
        raise ValueError(f"categorical needs one flag per column ({n_columns}): {mask.shape=}")
    return mask


# --- planning -------------------------------------------------------------------------------


def _differs(x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[n, K, M]: column j of row i is not the same value as in baseline k (NaN == NaN)."""
    xi, bk = x[:, None, :], b[None, :, :]
    return (xi != bk) & ~(np.isnan(xi) & np.isnan(bk))


def _differing_counts(x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[n, K] number of non-null players per game, computed in slices to bound memory."""
    step = max(1, 2_000_000 // (b.shape[0] * x.shape[1]))
    return np.concatenate(
        [_differs(x[i : i + step], b).sum(axis=2) for i in range(0, x.shape[0], step)]
    )


def _chain_cost(players: np.ndarray, n_pairs: int) -> np.ndarray:
    """Interior points of 2 * n_pairs chains: the endpoints f(b_k), f(x) are shared."""
    return 2 * n_pairs * np.maximum(players - 1, 0)


def _enumeration_cost(players: np.ndarray) -> np.ndarray:
    return np.where(players > 0, 2.0 ** np.minimum(players, 62) - 2, 0)


def _enumerate_game(players: np.ndarray, method: str, n_pairs: int) -> np.ndarray:
    """Which games are solved exactly: all, none, or those no dearer than the chains."""
    if method == "exact":
        too_big = int(players.max(initial=0))
        if too_big > MAX_EXACT_PLAYERS:
            raise ValueError(
                f"exact Shapley values need 2^d model calls per game; d={too_big} columns "
                f"differ from a baseline, limit {MAX_EXACT_PLAYERS}: use method='auto'"
            )
        return np.ones(players.shape, dtype=bool)
    if method == "antithetic":
        return np.zeros(players.shape, dtype=bool)
    # Priced as if with at least 2 pairs: a 3-player game is then always enumerated, exact
    # for 6 points where one pair would spend 4 and miss its three-way interaction.
    return _enumeration_cost(players) <= _chain_cost(players, max(n_pairs, 2))


def _game_cost(players: np.ndarray, method: str, n_pairs: int) -> np.ndarray:
    enumerate_game = _enumerate_game(players, method, n_pairs)
    return np.where(
        enumerate_game, _enumeration_cost(players), _chain_cost(players, n_pairs)
    ).astype(np.int64)


def _row_blocks(row_cost: np.ndarray, target: int) -> Iterator[slice]:
    """Consecutive row slices of about `target` model calls each (at least one row)."""
    before = np.concatenate([[0], np.cumsum(row_cost)[:-1]])
    block_id = before // target
    starts = np.flatnonzero(np.diff(block_id, prepend=-1))
    stops = np.append(starts[1:], len(row_cost))
    for start, stop in zip(starts, stops, strict=True):
        yield slice(int(start), int(stop))


def _method_label(kinds: set[str]) -> str:
    """No games at all (every row equals every baseline) means all-zero values: exact."""
    return "+".join(sorted(kinds)) if kinds else "exact"


# --- designs: which masked rows a group of games needs, and how to reduce their scores --------


class _PlainRows:
    """Rows scored as they are: f(b_k) and f(x)."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows
        self.size = rows.shape[0]

    def materialise(self, start: int, stop: int) -> np.ndarray:
        return self.rows[start:stop]


class _GameGroup(ABC):
    """Games with the same number d of differing columns, solved the same way.

    Row t of a group is the game of explained row x[rows[t]] against baseline b[bases[t]];
    players[t] are the positions of its d differing columns.
    """

    def __init__(
        self,
        x: np.ndarray,
        b: np.ndarray,
        rows: np.ndarray,
        bases: np.ndarray,
        players: np.ndarray,
        per_game: int,
    ) -> None:
        self.x, self.b = x, b
        self.rows, self.bases, self.players = rows, bases, players
        self.per_game = per_game
        self.size = len(rows) * per_game

    def materialise(self, start: int, stop: int) -> np.ndarray:
        """Masked rows start..stop of the group: x's value where the coalition holds."""
        flat = np.arange(start, stop)
        game, point = np.divmod(flat, self.per_game)
        members = self.coalitions(game, point)
        take_x = np.zeros((len(flat), self.x.shape[1]), dtype=bool)
        np.put_along_axis(take_x, self.players[game], members, axis=1)
        return np.where(take_x, self.x[self.rows[game]], self.b[self.bases[game]])

    @abstractmethod
    def coalitions(self, game: np.ndarray, point: np.ndarray) -> np.ndarray:
        """[E, d] bool: which of the game's players take x's value at each point."""

    @abstractmethod
    def reduce(self, scores: np.ndarray, f_base: np.ndarray, f_row: np.ndarray) -> np.ndarray:
        """[games, d] Shapley values of each game from the scores of all its points."""


class _Enumerated(_GameGroup):
    """Every coalition of the d players: point p is coalition bitmask p + 1 (the empty and
    the full coalitions are the shared endpoints f(b_k) and f(x))."""

    def __init__(
        self, x: np.ndarray, b: np.ndarray, rows: np.ndarray, bases: np.ndarray, players: np.ndarray
    ) -> None:
        super().__init__(x, b, rows, bases, players, 2 ** players.shape[1] - 2)

    def coalitions(self, game: np.ndarray, point: np.ndarray) -> np.ndarray:
        d = self.players.shape[1]
        return ((point[:, None] + 1) >> np.arange(d)) & 1 == 1

    def reduce(self, scores: np.ndarray, f_base: np.ndarray, f_row: np.ndarray) -> np.ndarray:
        d = self.players.shape[1]
        games = len(self.rows)
        value = np.empty((games, 2**d))
        value[:, 0], value[:, -1] = f_base, f_row
        value[:, 1:-1] = scores.reshape(games, self.per_game)
        masks = np.arange(2**d)
        size = np.bitwise_count(masks)
        # Shapley weight of joining a coalition of size s: s! (d - 1 - s)! / d!
        weight = 1.0 / (d * np.array([math.comb(d - 1, s) for s in range(d)]))
        phi = np.empty((games, d))
        for j in range(d):
            without = masks[(masks >> j) & 1 == 0]
            gain = value[:, without | (1 << j)] - value[:, without]
            phi[:, j] = gain @ weight[size[without]]
        return phi


class _Antithetic(_GameGroup):
    """n_pairs antithetic chains per game: point = (pair, direction, step 1..d-1).

    rank[t, p, j] is when player j joins in pair p's forward chain; the reverse chain adds the
    players in the opposite order, so player j joins it at step d - rank.
    """

    def __init__(
        self,
        x: np.ndarray,
        b: np.ndarray,
        rows: np.ndarray,
        bases: np.ndarray,
        players: np.ndarray,
        rank: np.ndarray,
    ) -> None:
        n_pairs, d = rank.shape[1], players.shape[1]
        super().__init__(x, b, rows, bases, players, 2 * n_pairs * (d - 1))
        self.rank = rank

    def coalitions(self, game: np.ndarray, point: np.ndarray) -> np.ndarray:
        d = self.players.shape[1]
        pair, rest = np.divmod(point, 2 * (d - 1))
        reverse, step = np.divmod(rest, d - 1)
        step = step[:, None] + 1
        rank = self.rank[game, pair]
        return np.where(reverse[:, None] == 1, rank >= d - step, rank < step)

    def reduce(self, scores: np.ndarray, f_base: np.ndarray, f_row: np.ndarray) -> np.ndarray:
        games, n_pairs, d = self.rank.shape
        chain = np.empty((games, n_pairs, 2, d + 1))
        chain[..., 0] = f_base[:, None, None]
        chain[..., -1] = f_row[:, None, None]
        chain[..., 1:-1] = scores.reshape(games, n_pairs, 2, d - 1)
        gain = np.diff(chain, axis=3)  # gain[..., s - 1]: what the player joining at step s adds
        forward = np.take_along_axis(gain[:, :, 0], self.rank, axis=2)
        backward = np.take_along_axis(gain[:, :, 1], d - 1 - self.rank, axis=2)
        return (forward + backward).mean(axis=1) / 2


# --- running --------------------------------------------------------------------------------


class _BatchedModel:
    """Feeds the masked rows of many designs to `predict` in full batches of max_batch_rows."""

    def __init__(self, predict: Predict, max_batch_rows: int) -> None:
        self.predict = predict
        self.max_batch_rows = max_batch_rows
        self.evaluations = 0

    def run(self, designs: Sequence[_PlainRows | _GameGroup | _ColumnSweep]) -> list[np.ndarray]:
        offsets = np.cumsum([0] + [design.size for design in designs])
        scores = [np.empty(design.size) for design in designs]
        for start in range(0, int(offsets[-1]), self.max_batch_rows):
            stop = min(start + self.max_batch_rows, int(offsets[-1]))
            spans = [
                (g, max(start, lo) - lo, min(stop, hi) - lo)
                for g, (lo, hi) in enumerate(zip(offsets[:-1], offsets[1:], strict=True))
                if max(start, lo) < min(stop, hi)
            ]
            batch = np.concatenate([designs[g].materialise(a, z) for g, a, z in spans])
            predicted = self._call(batch)
            at = 0
            for g, a, z in spans:
                scores[g][a:z] = predicted[at : at + z - a]
                at += z - a
        return scores

    def _call(self, batch: np.ndarray) -> np.ndarray:
        predicted = np.asarray(self.predict(batch), dtype=np.float64)
        if predicted.shape not in ((batch.shape[0],), (batch.shape[0], 1)):
            shape = predicted.shape
            raise ValueError(f"predict must return one score per row ({batch.shape[0]}): {shape=}")
        self.evaluations += batch.shape[0]
        return predicted.reshape(-1)


def _explain_block(
    model: _BatchedModel,
    x: np.ndarray,
    block: slice,
    b: np.ndarray,
    w: np.ndarray,
    base_outputs: np.ndarray,
    method: str,
    n_pairs: int,
    seed: int,
    row_offset: int = 0,
) -> tuple[np.ndarray, np.ndarray, set[str]]:
    """SHAP values of rows x[block]: plan the games, score every masked row, reduce."""
    xb = x[block]
    groups = _plan_games(xb, b, row_offset + block.start, method, n_pairs, seed)
    scores = model.run([_PlainRows(xb), *groups])
    outputs, group_scores = scores[0], scores[1:]
    values = np.zeros_like(xb)
    for group, score in zip(groups, group_scores, strict=True):
        phi = group.reduce(score, base_outputs[group.bases], outputs[group.rows])
        np.add.at(values, (group.rows[:, None], group.players), w[group.bases][:, None] * phi)
    kinds = {"exact" if isinstance(g, _Enumerated) else "antithetic" for g in groups}
    return values, outputs, kinds


def _plan_games(
    xb: np.ndarray, b: np.ndarray, first_row: int, method: str, n_pairs: int, seed: int
) -> list[_GameGroup]:
    """One group per (d, enumerated or chained) over every game with d >= 1 players."""
    differs = _differs(xb, b)
    players = differs.sum(axis=2)
    enumerate_game = _enumerate_game(players, method, n_pairs)
    keys = None if enumerate_game.all() else _permutation_keys(xb, b, first_row, n_pairs, seed)
    groups: list[_GameGroup] = []
    for d in np.unique(players[players > 0]):
        for exact in (True, False):
            rows, bases = np.nonzero((players == d) & (enumerate_game == exact))
            if len(rows) == 0:
                continue
            # stable argsort puts the differing columns first, in column order
            positions = np.argsort(~differs[rows, bases], axis=1, kind="stable")[:, :d]
            if exact:
                groups.append(_Enumerated(xb, b, rows, bases, positions))
            else:
                assert keys is not None  # drawn above whenever a game is chained
                drawn = np.take_along_axis(keys[rows, bases], positions[:, None, :], axis=2)
                rank = drawn.argsort(axis=2).argsort(axis=2)
                groups.append(_Antithetic(xb, b, rows, bases, positions, rank))
    return groups


def _permutation_keys(
    xb: np.ndarray, b: np.ndarray, first_row: int, n_pairs: int, seed: int
) -> np.ndarray:
    """[n, K, n_pairs, M] random sort keys; row i's keys depend only on (seed, i), so the
    values do not change with max_batch_rows or with how rows are split into blocks."""
    shape = (b.shape[0], n_pairs, xb.shape[1])
    return np.stack(
        [np.random.default_rng((seed, first_row + i)).random(shape) for i in range(len(xb))]
    )


# --- background summary ---------------------------------------------------------------------


def _clustering_space(z: np.ndarray, is_categorical: np.ndarray) -> np.ndarray:
    """Numerics standardised (NaN -> mean, plus a missing flag); categoricals one-hot, scaled
    so that two different codes are as far apart as one standard deviation."""
    parts: list[np.ndarray] = []
    for j in range(z.shape[1]):
        column = z[:, j]
        missing = np.isnan(column)
        if is_categorical[j]:
            parts.append(_one_hot(column) / np.sqrt(2.0))
        elif not missing.all():
            spread = np.nanstd(column)
            centred = (column - np.nanmean(column)) / (spread if spread > 0 else 1.0)
            parts.append(np.nan_to_num(centred, nan=0.0)[:, None])
        if missing.any() and not is_categorical[j]:
            parts.append(missing[:, None].astype(np.float64))
    return np.hstack(parts) if parts else np.zeros((z.shape[0], 1))


def _one_hot(column: np.ndarray) -> np.ndarray:
    """One-hot of the most frequent codes (NaN is a code); rarer codes share all-zeros."""
    _, code = np.unique(column, return_inverse=True)
    kept = np.argsort(-np.bincount(code), kind="stable")[:_MAX_ONE_HOT_LEVELS]
    return (code[:, None] == kept[None, :]).astype(np.float64)


def _cluster(space: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """K-means labels of every row and each row's squared distance to its centre."""
    rng = np.random.default_rng(seed)
    fit_rows = rng.choice(len(space), size=min(len(space), _KMEANS_FIT_ROWS), replace=False)
    with warnings.catch_warnings():
        # fewer distinct rows than k: k-means says so; the empty clusters are dropped below
        warnings.simplefilter("ignore")
        kmeans = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(space[fit_rows])
        labels = kmeans.predict(space)
    distance = ((space - kmeans.cluster_centers_[labels]) ** 2).sum(axis=1)
    return labels, distance


def _row_spearman(values: np.ndarray, reference: np.ndarray) -> float:
    flat_values, flat_reference = np.ptp(values) == 0, np.ptp(reference) == 0
    if flat_values or flat_reference:
        return 1.0 if flat_values and flat_reference else 0.0
    return float(spearmanr(values, reference).statistic)


# --- main and total effects: the FT-Transformer's default -----------------------------------
#
# For a game whose interactions are at most pairwise, player j's Shapley value is the mean of
# its contribution when it joins first and when it joins last (v(S) = sum a_i + sum a_ik gives
# a_j and a_j + sum_i a_ij). Against a background distribution P both are averages that need
# no sampled permutations:
# - main effect (joins first): PD_j(x_j) - E_P f, with PD_j(v) = E_b f(b with column j = v),
#   the partial dependence. It does not depend on the explained row: a table of PD_j over a
#   grid of values per column is computed once per model, and looked up (interpolated);
# - total effect (joins last): f(x) - E_P f(x with column j = b_j), the expectation over the
#   column's marginal, taken over a small weighted grid of its values: sum_j G_j model calls
#   per row (G_j <= `grid` points; values equal to x's cost nothing).
# - control variate: with few grid points per column (wide tables: one or two), the plain
#   grid mean of f(x with j = v) is noisy. The tables also store pd_means_j = E_v PD_j(v) over
#   ALL the column's values (free: lookups), and the grid only estimates the residual:
#   E_v f(x, j=v) ~= pd_means_j + sum_g w_g (f(x, j=v_g) - PD_j(v_g)). For a model additive in
#   column j the residual is the same at every v, so ONE grid point gives the exact total
#   effect; only interactions are left to the grid. (Tables stored before pd_means existed
#   fall back to the plain grid mean, which equals this when the grid is the whole marginal.)
# Higher-order interactions and grid error leave a gap to f(x) - E_P f; it is shared out in
# proportion to |total - main| (the columns that interact), so the values add up exactly. A
# three-way interaction alone is then attributed exactly (main 0, total a_ijk each, gap
# -a_ijk / 2 shared equally). Measured against interventional values over 256 random training
# rows in bench/explain_bench.py.


@dataclass(frozen=True, eq=False)
class EffectTables:
    """What `explain_effects` needs, computed once per model by `effect_tables`.

    grid_values[j] / grid_weights[j]: column j's marginal as a few weighted values (NaN is a
    value); pd_values[j] / pd_scores[j]: the partial dependence of the model on column j at
    those values (NaN first where present, then increasing), averaged over `background`.
    """

    grid_values: tuple[np.ndarray, ...]
    grid_weights: tuple[np.ndarray, ...]
    pd_values: tuple[np.ndarray, ...]
    pd_scores: tuple[np.ndarray, ...]
    base_value: float  # E_P f over the background
    background: np.ndarray
    weights: np.ndarray
    evaluations: int  # model calls spent building the tables
    # E_v PD_j(v) over all of column j's values in the data: the control variate's mean (None
    # in tables stored before it existed: the total effect is then the plain grid mean)
    pd_means: np.ndarray | None = None

    @property
    def calls_per_row(self) -> int:
        """Model calls per explained row at most (each grid value, plus the row itself)."""
        return int(sum(len(v) for v in self.grid_values)) + 1

    def to_dict(self) -> dict[str, object]:
        """Plain JSON data (NaN written as None), for storing next to a model."""

        def listed(arrays: Sequence[np.ndarray]) -> list[list[float | None]]:
            return [[None if np.isnan(v) else float(v) for v in a] for a in arrays]

        return {
            "grid_values": listed(self.grid_values),
            "grid_weights": listed(self.grid_weights),
            "pd_values": listed(self.pd_values),
            "pd_scores": listed(self.pd_scores),
            "base_value": float(self.base_value),
            "background": listed(list(self.background)),
            "weights": [float(w) for w in self.weights],
            "evaluations": int(self.evaluations),
            **({} if self.pd_means is None else {"pd_means": [float(v) for v in self.pd_means]}),
        }

    @classmethod
    def from_dict(cls, data: dict) -> EffectTables:
        """The inverse of `to_dict`; ValueError when the data is not such a table."""
        try:

            def arrays(key: str) -> tuple[np.ndarray, ...]:
                return tuple(
                    np.array([np.nan if v is None else v for v in a], dtype=np.float64)
                    for a in data[key]
                )

            tables = cls(
                grid_values=arrays("grid_values"),
                grid_weights=arrays("grid_weights"),
                pd_values=arrays("pd_values"),
                pd_scores=arrays("pd_scores"),
                base_value=float(data["base_value"]),
                background=np.array(arrays("background")),
                weights=np.array(data["weights"], dtype=np.float64),
                evaluations=int(data["evaluations"]),
                pd_means=(
                    None
                    if data.get("pd_means") is None
                    else np.array(data["pd_means"], dtype=np.float64)
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a stored effect table: {exc}") from exc
        columns = len(tables.grid_values)
        if not (
            columns
            == len(tables.grid_weights)
            == len(tables.pd_values)
            == len(tables.pd_scores)
            == tables.background.shape[1]
        ) or (tables.pd_means is not None and len(tables.pd_means) != columns):
            raise ValueError("not a stored effect table: its parts differ in columns")
        return tables


def effect_tables(
    predict: Predict,
    z: np.ndarray,
    background: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    categorical: Sequence[bool] | None = None,
    grid: int = 8,
    pd_grid: int = 24,
    max_batch_rows: int = 16384,
) -> EffectTables:
    """Tables for `explain_effects`: each column's marginal in `z` (the data the values are
    interventional against, e.g. all training rows) as at most `grid` weighted values, and the
    partial dependence at up to `pd_grid` values per column, averaged over the weighted
    `background` (a summary of the same data). Costs len(background) * (sum of PD points + 1)
    model calls; a categorical column keeps every code (up to pd_grid + grid of them)."""
    data = _as_matrix(z, "z")
    b, _, w = _validate_inputs(background, background, weights)
    if data.shape[1] != b.shape[1]:
        raise ValueError(f"z and background differ in columns: {data.shape=} {b.shape=}")
    if grid < 1 or pd_grid < 2:
        raise ValueError(f"grid must be >= 1 and pd_grid >= 2: {grid=} {pd_grid=}")
    is_categorical = _categorical_mask(categorical, data.shape[1])
    marginals = [_marginal_grid(data[:, j], grid, is_categorical[j]) for j in range(data.shape[1])]
    pd_values = [
        _pd_grid(data[:, j], pd_grid, is_categorical[j], marginals[j][0])
        for j in range(data.shape[1])
    ]
    model = _BatchedModel(predict, max_batch_rows)
    base_scores = model.run([_PlainRows(b)])[0]
    designs = [_ColumnSweep(b, j, v) for j, v in enumerate(pd_values)]
    scores = model.run(designs)
    pd_scores = [s.reshape(len(v), len(b)) @ w for s, v in zip(scores, pd_values, strict=True)]
    pd_means = np.array(
        [
            _interpolate_pd(points, scores, data[:, j]).mean()
            for j, (points, scores) in enumerate(zip(pd_values, pd_scores, strict=True))
        ]
    )
    return EffectTables(
        grid_values=tuple(v for v, _ in marginals),
        grid_weights=tuple(wt for _, wt in marginals),
        pd_values=tuple(pd_values),
        pd_scores=tuple(pd_scores),
        base_value=float(w @ base_scores),
        background=b,
        weights=w,
        evaluations=model.evaluations,
        pd_means=pd_means,
    )


def explain_effects(
    predict: Predict,
    rows: np.ndarray,
    tables: EffectTables,
    *,
    max_batch_rows: int = 16384,
    on_progress: Callable[[int, int], None] | None = None,
) -> ShapResult:
    """Shapley values of `predict` at `rows` as the mean of each column's main and total
    effect against the data behind `tables` (exact for games with at most pairwise
    interactions, see above); they add up to f(x) - base exactly."""
    x = _as_matrix(rows, "rows")
    if x.shape[1] != len(tables.grid_values):
        raise ValueError(f"rows have {x.shape[1]} columns, the tables {len(tables.grid_values)}")
    _validate_options("auto", 1, max_batch_rows)
    started = time.perf_counter()
    model = _BatchedModel(predict, max_batch_rows)
    values = np.zeros_like(x)
    outputs = np.empty(x.shape[0])
    step = max(1, _BATCHES_PER_BLOCK * max_batch_rows // tables.calls_per_row)
    for start in range(0, x.shape[0], step):
        block = slice(start, min(start + step, x.shape[0]))
        values[block], outputs[block] = _effects_block(model, x[block], tables)
        if on_progress is not None:
            on_progress(int(block.stop), x.shape[0])
    return ShapResult(
        values=values,
        base_value=tables.base_value,
        output=outputs,
        method="effects",
        evaluations=model.evaluations,
        seconds=time.perf_counter() - started,
    )


def _effects_block(
    model: _BatchedModel, x: np.ndarray, tables: EffectTables
) -> tuple[np.ndarray, np.ndarray]:
    n, m = x.shape
    column = np.concatenate([np.full(len(v), j) for j, v in enumerate(tables.grid_values)])
    value = np.concatenate(tables.grid_values)
    weight = np.concatenate(tables.grid_weights)
    held = x[:, column]  # [n, T]: x's own value of the column each grid point replaces
    same = (held == value) | (np.isnan(held) & np.isnan(value))
    row, point = np.nonzero(~same)
    masked = x[row].copy()
    masked[np.arange(len(row)), column[point]] = value[point]
    outputs, scores = model.run([_PlainRows(x), _PlainRows(masked)])
    swept = np.repeat(outputs[:, None], len(value), axis=1)
    swept[row, point] = scores
    if tables.pd_means is None:
        estimate, expected = swept, np.zeros((n, m))
    else:  # control variate (see above): the grid only estimates the interaction residual
        at_point = np.concatenate([_lookup(tables, j, v) for j, v in enumerate(tables.grid_values)])
        estimate, expected = swept - at_point, np.tile(tables.pd_means, (n, 1))
    np.add.at(expected.T, column, (estimate * weight).T)
    total = outputs[:, None] - expected
    main = np.array([_lookup(tables, j, x[:, j]) for j in range(m)]).T - tables.base_value
    return effect_values(main, total, outputs, tables.base_value), outputs


def effect_values(
    main: np.ndarray, total: np.ndarray, output: np.ndarray | float, base: np.ndarray | float
) -> np.ndarray:
    """Shapley values from each player's main effect (its contribution joining first) and
    total effect (joining last): their mean, plus the gap to output - base shared out in
    proportion to |total - main| (equally when every player has total == main).

    Exact for games whose interactions are at most pairwise, and for a single pure k-way
    interaction (main 0, total a each: the gap shares -a (k - 2) / 2 equally among them).
    Always additive. main / total: [..., m]; output / base: one per game ([...]).
    One rule for tabular rows against a background (`explain_effects`, the comment block
    above it) and for text spans against the empty text (`models.text_attribution`).
    """
    main = np.asarray(main, dtype=np.float64)
    total = np.asarray(total, dtype=np.float64)
    if main.shape != total.shape or main.ndim < 1:
        raise ValueError(f"main and total need one shape [..., m]: {main.shape=} {total.shape=}")
    values = (main + total) / 2
    gap = np.asarray(output, dtype=np.float64) - base - values.sum(axis=-1)
    share = np.abs(total - main)
    norm = share.sum(axis=-1, keepdims=True)
    share = np.where(norm > 0, share / np.where(norm > 0, norm, 1.0), 1.0 / max(main.shape[-1], 1))
    return values + np.expand_dims(gap, -1) * share


def _lookup(tables: EffectTables, j: int, v: np.ndarray) -> np.ndarray:
    """PD_j at values v: exact at the table's points, linear between, flat beyond."""
    return _interpolate_pd(tables.pd_values[j], tables.pd_scores[j], v)


def _interpolate_pd(points: np.ndarray, scores: np.ndarray, v: np.ndarray) -> np.ndarray:
    known = ~np.isnan(points)
    out = np.interp(v, points[known], scores[known]) if known.any() else np.zeros(len(v))
    missing = np.isnan(v)
    if missing.any():
        out[missing] = scores[~known][0] if (~known).any() else float(np.mean(scores))
    return out


def pd_points(
    z: np.ndarray, pd_grid: int, categorical: Sequence[bool] | None = None, grid: int = 8
) -> int:
    """Partial-dependence points `effect_tables` tabulates for `z` (its cost is this, plus
    one, times the background rows): to size the background before building the tables."""
    data = _as_matrix(z, "z")
    is_categorical = _categorical_mask(categorical, data.shape[1])
    return sum(
        len(_pd_grid(data[:, j], pd_grid, c, _marginal_grid(data[:, j], grid, c)[0]))
        for j, c in enumerate(is_categorical)
    )


class _ColumnSweep:
    """Every background row with column j set to each of `values` (value-major order)."""

    def __init__(self, b: np.ndarray, j: int, values: np.ndarray) -> None:
        self.b, self.j, self.values = b, j, values
        self.size = len(values) * len(b)

    def materialise(self, start: int, stop: int) -> np.ndarray:
        which, row = np.divmod(np.arange(start, stop), len(self.b))
        out = self.b[row].copy()
        out[:, self.j] = self.values[which]
        return out


def _marginal_grid(
    column: np.ndarray, grid: int, categorical: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Column values and their shares: every distinct value when there are at most `grid`,
    else `grid` equal-count bins, each represented by its median row's value (a real value);
    a categorical keeps its 2 * `grid` most frequent codes, their shares scaled up to the
    whole. NaN is one more value with its share."""
    n = len(column)
    missing = np.isnan(column)
    present = np.sort(column[~missing])
    distinct, counts = np.unique(present, return_counts=True)
    if categorical and len(distinct) > 2 * grid:
        kept = np.sort(np.argsort(-counts, kind="stable")[: 2 * grid])
        values, shares = distinct[kept], counts[kept] / counts[kept].sum() * (len(present) / n)
    elif categorical or len(distinct) <= grid:
        values, shares = distinct, counts / n
    else:
        edges = np.linspace(0, len(present), grid + 1).round().astype(int)
        values = present[(edges[:-1] + edges[1:] - 1) // 2]
        shares = np.diff(edges) / n
    if missing.any():
        values, shares = np.append(np.nan, values), np.append(missing.mean(), shares)
    return values.astype(np.float64), shares.astype(np.float64)


def _pd_grid(
    column: np.ndarray, pd_grid: int, categorical: bool, marginal: np.ndarray
) -> np.ndarray:
    """Where the partial dependence is tabulated: every code of a categorical (and every
    value of a column with few), else `pd_grid` quantiles from min to max; NaN first."""
    present = column[~np.isnan(column)]
    distinct = np.unique(present)
    if categorical or len(distinct) <= pd_grid:
        values = distinct
    else:
        values = np.unique(np.quantile(present, np.linspace(0, 1, pd_grid), method="nearest"))
        values = np.union1d(values, marginal[~np.isnan(marginal)])
    if np.isnan(column).any():
        values = np.append(np.nan, values)
    return values.astype(np.float64)
