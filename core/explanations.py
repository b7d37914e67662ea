"""SHAP explanations in the space of the original columns, stored with their quality.

Per model kind (all values explain the same output: log-odds of the positive class for binary
targets, the predicted value for regression, the log-probability of one class for multiclass):

- FT-Transformer: interventional SHAP against the training rows. By default the mean of each
  column's main and total effect (``models.shapley.explain_effects``, tables stored with the
  run); with other settings against a compact background of real training rows (batched
  masked forward passes; exact enumeration for small games, antithetic pairs otherwise).
- LightGBM: shap's TreeExplainer (path-dependent TreeSHAP: exact for the trees, no sampling;
  shap's interventional mode miscomputes LightGBM's categorical splits, seen here).
- Logistic regression: shap's LinearExplainer on the design matrix, its one-hot dummies summed
  back to their original column (one value per column, never one per dummy).
- Text models: span attributions with batched masking (``models.text_attribution``); the
  transformer's default is each span's main + total effect (``text_options``).

Every explanation is stored with its quality: the additivity error (base + sum of values
against the model's own output) and, on a few rows, its agreement with an exact interventional
reference computed on the same background (Spearman rank correlation and the largest error
as a share of the total attribution). The FT-Transformer's default is also checked against
interventional values over 256 random training rows ("fidelity_broad"): the badge is green
only when both agree.

Depends on core.runs, core.kinds (explainer hooks, training values), core.training
(part_frame), core.thresholds and core.valuation; never on core.scoring or
core.counterfactuals, which depend on it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from sqlalchemy import delete, select

from core import audit
from core.access import Actor
from core.datasets import get_dataset
from core.db import bulk_insert, get_or_raise, session_factory
from core.kinds.base import (
    BROAD_REFERENCE_EVALUATIONS,
    DEFAULT_PAIRS,
    REFERENCE_EVALUATIONS,
    TEXT_FIDELITY_ROWS,
    TEXT_SPANS,
)
from core.kinds.registry import get_kind
from core.kinds.tabular import candidate_values
from core.kinds.text_transformer import TEXT_TOKEN_BUDGET
from core.kinds.tfidf_logreg import TFIDF_PAIRS as TFIDF_PAIRS  # re-exported for bench/
from core.records import ExplanationRecord, ExplanationValueRecord
from core.runs import RunInfo, get_run, load_run_model
from core.thresholds import operating_threshold
from core.training import part_frame
from core.valuation import device_for_run

BACKGROUND_ROWS = 16  # FT-Transformer: k-medoid summary of the training rows
MAX_BACKGROUND_ROWS = 256
TREE_LINEAR_BACKGROUND_ROWS = 100  # cheap models: a plain random sample
# Antithetic permutation pairs per (row, baseline) game. With FT-T "small" one pair met
# Spearman 0.997 / max error 1.6% against exact values (13 columns, 14 ms/row) and 0.990 /
# 3.9% against a 32-pair reference (20 columns, 39 ms/row; bench/explain_bench.py); two pairs
# gained <= 0.004 Spearman at twice the model time. Those figures are for the same 16-row
# background; against 256 random training rows the default reaches only ~0.85 / 15% on credit
# (the background, not the pairs, limits it: README Performance), which fidelity_broad shows.
# DEFAULT_PAIRS lives in core/kinds/base.py (each kind's default: Kind.default_pairs).
# The FT-Transformer's default (1 pair, BACKGROUND_ROWS, no background file) is not that
# estimator: it is ``models.shapley.explain_effects``, the mean of each column's main and total
# effect against all training rows (exact for pairwise interactions). Against 256 random
# training rows it met Spearman 0.98-0.99 / max error 1.6-4.0% at 80-184 model calls per row,
# where the 16-row k-medoid summary with 1 pair reached 0.85-0.97 / 2-15% at 270-2,470
# (credit 13, synthetic 20 and 85 columns; bench/explain_bench.py). Its tables are built
# once per run: effect_grid(M) weighted values per column for the total effects (per-row cost),
# the partial dependence at up to EFFECT_PD_GRID (+ the grid's) values per column over a
# k-medoid summary of EFFECT_BACKGROUND_ROWS rows, as many as EFFECT_TABLE_EVALUATIONS model
# calls allow (the summary's size set the error: 64 rows 9%, 256 4%, 512 2.8% on credit).
# Per-row cost: each column's total effect takes effect_grid(M) model calls, about
# EFFECT_CALLS_PER_ROW in all, between 2 and EFFECT_GRID per column. With the control variate
# (models/shapley.py) the grid only estimates interactions, so a few points do: on credit (13
# columns) 2 / 4 / 8 points per column gave Spearman 0.983 / 0.983 / 0.990, on 85 columns 2
# points 0.991 at 184 calls per row where 8 points had cost 556 (bench/explain_bench.py).
EFFECT_GRID = 8
EFFECT_CALLS_PER_ROW = 128
EFFECT_PD_GRID = 12
EFFECT_TABLE_EVALUATIONS = 120_000
EFFECT_BACKGROUND_ROWS = (32, 512)
# Chosen by measurement, once per run (with the tables): main + total effects are exact only
# for pairwise interactions, and a model whose score saturates can interact far more (the
# breast-cancer case of bench/explain_bench.py: Spearman 0.41 for effects, 0.79 for the
# sampled 16-row default). So EFFECT_CHOICE_ROWS training rows are explained both ways and
# judged against interventional values over the broad sample (256 random training rows, one
# antithetic pair per game); the default keeps effects when they meet the trust thresholds or
# rank at least as well, else it is the sampled estimator on the 16-row summary.
EFFECT_CHOICE_ROWS = 2
FIDELITY_ROWS = 3
# TEXT_FIDELITY_ROWS (core/kinds/base.py): a text reference costs up to ~500 masked texts.
# Text references: exact up to Kind.exact_reference_spans spans, else many pairs.
TEXT_REFERENCE_PAIRS = 16  # at least; and at least 4x the pairs of the explanation
# The fidelity reference gets about this many model evaluations (~20 s for FT-T "small" on
# one CPU core): exact values when enumerating every game fits, else as many antithetic pairs
# as fit, between MIN_ and MAX_REFERENCE_PAIRS: REFERENCE_EVALUATIONS (core/kinds/base.py,
# which the kinds' plans read too).
# The broad check: the same-background reference says nothing about whether the small
# background stands for the data, so BROAD_FIDELITY_ROWS rows are also compared with
# interventional Shapley values against BROAD_REFERENCE_ROWS random training rows (exact where
# enumerating fits BROAD_REFERENCE_EVALUATIONS model calls, else as many antithetic pairs per
# game as fit, at least MIN_REFERENCE_PAIRS; rows are dropped before the floor is exceeded).
BROAD_REFERENCE_ROWS = 256
BROAD_FIDELITY_ROWS = 2  # BROAD_REFERENCE_EVALUATIONS: core/kinds/base.py
# The badge is green only when every reference agrees at least this well.
TRUST_SPEARMAN = 0.95
TRUST_MAX_ERROR = 0.05
MIN_REFERENCE_PAIRS = 4
MAX_REFERENCE_PAIRS = 64
MAX_EXPLAIN_ROWS = 5_000
# Text transformers: TEXT_TOKEN_BUDGET model tokens per pass, main + total effects of each span
# by default (``text_options``); TF-IDF: TFIDF_PAIRS pairs (their kind modules say how they
# were chosen).


@dataclass(frozen=True)
class Explanation:
    """One stored explanation, as plain data for pages and the CLI."""

    explanation_id: int
    run_id: int
    kind: str  # "tabular" or "text"
    columns: list[str]
    values: np.ndarray  # [n, M] (tabular) or ragged via spans (text: [n, max_spans], NaN pad)
    base_value: float
    output: np.ndarray
    output_space: str
    method: str
    seconds: float
    ms_per_row: float
    additivity_error: float
    quality: dict
    rows: pd.DataFrame  # explained rows as the user sees them (row_number first)
    spans: list[list[str]] = field(default_factory=list)

    def importance(self) -> pd.DataFrame:
        """Global importance: mean |value| per original column, largest first."""
        if self.kind == "text":
            return pd.DataFrame(columns=["column", "mean_abs"])
        mean_abs = np.nanmean(np.abs(self.values), axis=0)
        frame = pd.DataFrame({"column": self.columns, "mean_abs": mean_abs})
        return frame.sort_values("mean_abs", ascending=False).reset_index(drop=True)


def output_space(run: RunInfo, class_index: int | None = None) -> str:
    if run.task == "binary":
        return f"log-odds of {run.target} = {run.positive_class}"
    if run.task == "multiclass":
        return f"log-probability of {run.target} = {run.classes[class_index or 0]}"
    return f"predicted {run.target}"


def _predict_fn(
    model: Any, task: str | None, class_index: int | None
) -> Callable[[np.ndarray], np.ndarray]:
    output = "value" if task == "regression" else "logit"

    def predict(z: np.ndarray) -> np.ndarray:
        out = model.predict_encoded(z, output=output)
        return out[:, class_index or 0] if task == "multiclass" else out

    return predict


# A run's default background rows, the FT-Transformer's effect tables and the broad check's
# training sample are computed once from its training rows and stored in its artifact folder
# (EXPLAINER_FOLDER, written atomically and verified by sha256 like the model's own files), so
# every process, page and Ray worker reads the same rows and nothing is cached in memory here.
EXPLAINER_FOLDER = "explainer"


def _stored_defaults(run: RunInfo, model: Any) -> dict[str, Any]:
    """{"background": {"rows", "weights"}, "broad_sample": {"rows"}, and for the
    FT-Transformer "effects" (``EffectTables.to_dict``)}: read from the run's artifact folder,
    computed and stored there first if absent."""
    from models.artifacts import ArtifactError, read_artifact, write_artifact

    if run.artifact_path is None:
        raise ValueError(f"Run #{run.id} has no trained model to explain.")
    folder = Path(run.artifact_path) / EXPLAINER_FOLDER
    if not folder.exists():
        files = _compute_defaults(run, model)
        try:
            write_artifact(folder, files, {"kind": "explainer defaults", "run_id": run.id})
        except ArtifactError:
            if not folder.exists():  # another process stored them first: read theirs
                raise
    _, stored = read_artifact(folder)
    return {name.removesuffix(".json"): json.loads(data) for name, data in stored.items()}


def _compute_defaults(run: RunInfo, model: Any) -> dict[str, bytes]:
    from models.shapley import summarize_background

    z = model.preprocessor.encode(part_frame(run.id, "train"))
    rng = np.random.default_rng((run.seed, 19))  # a seed of its own: not the summary's rows
    take = np.sort(rng.choice(len(z), size=min(BROAD_REFERENCE_ROWS, len(z)), replace=False))
    files = {"broad_sample.json": _json_rows({"rows": z[take]})}
    kind = get_kind(run.model)
    if kind.background == "summary":
        categorical = [c in model.spec.categorical for c in model.spec.columns]
        rows, weights = summarize_background(
            z, k=min(BACKGROUND_ROWS, len(z)), seed=run.seed, categorical=categorical
        )
        if kind.explains_by_effects:
            tables = _effect_tables(run, model, z, categorical)
            files["effects.json"] = json.dumps(tables.to_dict()).encode()
            choice = _choose_default(run, model, z, tables, rows, weights, z[take])
            files["choice.json"] = json.dumps(choice).encode()
    else:
        rng = np.random.default_rng(run.seed)
        take = rng.choice(len(z), size=min(TREE_LINEAR_BACKGROUND_ROWS, len(z)), replace=False)
        rows, weights = z[np.sort(take)], np.full(len(take), 1.0 / len(take))
    files["background.json"] = _json_rows({"rows": rows, "weights": weights})
    return files


def _effect_tables(run: RunInfo, model: Any, z: np.ndarray, categorical: list[bool]) -> Any:
    """The default explainer's tables: marginals over all training rows; partial dependence
    over a k-medoid summary as large as EFFECT_TABLE_EVALUATIONS model calls allow."""
    from models.shapley import effect_tables, pd_points, summarize_background

    grid = effect_grid(z.shape[1])
    points = pd_points(z, EFFECT_PD_GRID, categorical, grid)
    k = int(np.clip(EFFECT_TABLE_EVALUATIONS // max(points, 1), *EFFECT_BACKGROUND_ROWS))
    background, weights = summarize_background(
        z, k=min(k, len(z)), seed=run.seed, categorical=categorical
    )
    return effect_tables(
        _predict_fn(model, str(run.task), 0 if run.task == "multiclass" else None),
        z,
        background,
        weights,
        categorical=categorical,
        grid=grid,
        pd_grid=EFFECT_PD_GRID,
    )


def _choose_default(
    run: RunInfo,
    model: Any,
    z: np.ndarray,
    tables: Any,
    background: np.ndarray,
    weights: np.ndarray,
    broad: np.ndarray,
) -> dict[str, Any]:
    predict = _predict_fn(model, str(run.task), 0 if run.task == "multiclass" else None)
    return measure_default_choice(predict, z, tables, background, weights, broad, run.seed)


def measure_default_choice(
    predict: Callable[[np.ndarray], np.ndarray],
    z: np.ndarray,
    tables: Any,
    background: np.ndarray,
    weights: np.ndarray,
    broad: np.ndarray,
    seed: int,
) -> dict[str, Any]:
    """Explain EFFECT_CHOICE_ROWS of the training rows ``z`` by main + total effects and by
    the sampled estimator on the 16-row summary; judge both against the broad sample (see
    EFFECT_CHOICE_ROWS) and say which is the default, with the figures behind the choice."""
    from models.shapley import explain_effects, explain_interventional, fidelity

    started = time.perf_counter()
    rng = np.random.default_rng((seed, 23))
    rows = z[rng.choice(len(z), size=min(EFFECT_CHOICE_ROWS, len(z)), replace=False)]
    effects = explain_effects(predict, rows, tables)
    sampled = explain_interventional(
        predict, rows, background, weights, n_pairs=DEFAULT_PAIRS, seed=seed
    )
    reference = explain_interventional(predict, rows, broad, n_pairs=1, seed=seed + 2)
    figures = {
        "effects": fidelity(effects.values, reference.values),
        "sampled": fidelity(sampled.values, reference.values),
    }
    return {
        "method": choose_estimator(figures),
        "rows": len(rows),
        "reference": f"interventional values against {len(broad)} random training rows "
        "(one antithetic pair per game)",
        **figures,
        "evaluations": effects.evaluations + sampled.evaluations + reference.evaluations,
        "seconds": time.perf_counter() - started,
    }


def choose_estimator(figures: dict[str, dict]) -> str:
    """ "effects" when they meet the trust thresholds or rank at least as well as "sampled"
    against the same reference; else "sampled"."""
    effects, sampled = figures["effects"], figures["sampled"]
    meets = effects["spearman"] >= TRUST_SPEARMAN and effects["max_abs_error"] <= TRUST_MAX_ERROR
    return "effects" if meets or effects["spearman"] >= sampled["spearman"] else "sampled"


def _choice_of(stored: dict[str, Any] | None) -> dict[str, Any]:
    """A run's stored choice of default estimator; runs whose defaults were stored before
    the choice existed (None) use effects."""
    return stored or {"method": "effects"}


def _effects_chosen(run: RunInfo, model: Any) -> bool:
    """Whether the default explainer of this run is main + total effects (its defaults are
    built and stored first if absent)."""
    return _choice_of(_stored_defaults(run, model).get("choice"))["method"] == "effects"


# Appended to the method of a default explanation made by the sampled estimator.
CHOSEN_BY_MEASUREMENT = ", chosen over main + total effects by measurement"


def effect_grid(n_columns: int) -> int:
    """Grid points per column for the default explainer's total effects: about
    EFFECT_CALLS_PER_ROW model calls per row, at least 2 and at most EFFECT_GRID per column."""
    return int(np.clip(EFFECT_CALLS_PER_ROW // max(n_columns, 1), 2, EFFECT_GRID))


def _json_rows(parts: dict[str, np.ndarray]) -> bytes:
    """Arrays as JSON lists, NaN (a missing value) as null."""

    def listed(v: np.ndarray) -> list:
        return (
            [listed(x) for x in v] if v.ndim > 1 else [None if np.isnan(x) else float(x) for x in v]
        )

    return json.dumps({k: listed(np.asarray(v, dtype=float)) for k, v in parts.items()}).encode()


def _rows_of(data: list) -> np.ndarray:
    return np.array(data, dtype=np.float64)  # null -> nan


def _default_background(
    run: RunInfo, model: Any, rows: int = BACKGROUND_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """Real training rows, encoded by the caller's model: a k-medoid summary of ``rows`` rows
    for the FT-Transformer, a plain sample otherwise. The default size is stored (see
    ``_stored_defaults``); another size is summarised now."""
    if rows != BACKGROUND_ROWS and get_kind(run.model).background == "summary":
        from models.shapley import summarize_background

        z = model.preprocessor.encode(part_frame(run.id, "train"))
        categorical = [c in model.spec.categorical for c in model.spec.columns]
        return summarize_background(z, k=min(rows, len(z)), seed=run.seed, categorical=categorical)
    stored = _stored_defaults(run, model)["background"]
    return _rows_of(stored["rows"]), np.asarray(stored["weights"], dtype=np.float64)


def _default_effects(run: RunInfo, model: Any) -> Any:
    """The FT-Transformer's default explainer tables (``models.shapley.EffectTables``)."""
    from models.shapley import EffectTables

    return EffectTables.from_dict(_stored_defaults(run, model)["effects"])


def uses_default_method(
    run: RunInfo, default_background: bool, background_rows: int, n_pairs: int | None
) -> bool:
    """Whether an FT-Transformer explanation with these settings is made by the default
    explainer (main + total effects) rather than sampled permutations on a k-medoid summary."""
    return (
        get_kind(run.model).explains_by_effects
        and default_background
        and background_rows == BACKGROUND_ROWS
        and (n_pairs is None or n_pairs == DEFAULT_PAIRS)
    )


def _training_sample(run: RunInfo, model: Any) -> np.ndarray:
    """BROAD_REFERENCE_ROWS random training rows (all of them when there are fewer), encoded:
    the broad reference's background, drawn with a seed of its own so it is not the summary's."""
    return _rows_of(_stored_defaults(run, model)["broad_sample"]["rows"])


def _background(
    run: RunInfo, model: Any, frame: pd.DataFrame | None, rows: int = BACKGROUND_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    if frame is None:
        return _default_background(run, model, rows)
    if len(frame) == 0:
        raise ValueError("The background file has no rows.")
    z = model.preprocessor.encode(frame)
    return z, np.full(len(z), 1.0 / len(z))


def tabular_values(
    run: RunInfo,
    model: Any,
    z: np.ndarray,
    background: np.ndarray,
    weights: np.ndarray,
    *,
    n_pairs: int = DEFAULT_PAIRS,
    class_index: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    explicit_background: bool = False,
    row_offset: int = 0,
    default_method: bool = False,
) -> tuple[np.ndarray, float, str]:
    """(values [n, M], base value, method) for the explained output of a tabular model.

    ``explicit_background``: the user chose the background rows, so LightGBM is explained
    against exactly those (interventional, Payoff's estimator on the booster) instead of
    TreeSHAP's path-dependent expectation over the trees' own training cover.
    ``row_offset``: the position of z's first row when rows are split across workers (the
    sampled estimator seeds each row by its position, so the parts equal the whole).
    ``default_method``: the FT-Transformer's default explainer (``_default_effects``; the
    background rows given are then its summary, and only name it).
    """
    import shap

    task = run.task
    if default_method:
        from models.shapley import explain_effects

        result = explain_effects(
            _predict_fn(model, str(task), class_index),
            z,
            _default_effects(run, model),
            on_progress=on_progress,
        )
        return result.values, result.base_value, "Payoff interventional SHAP (main + total effects)"
    explainer = get_kind(run.model).explainer_for(explicit_background)
    if explainer == "interventional":
        from models.shapley import explain_interventional

        result = explain_interventional(
            _predict_fn(model, task, class_index),
            z,
            background,
            weights,
            n_pairs=n_pairs,
            seed=run.seed,
            on_progress=on_progress,
            row_offset=row_offset,
        )
        return (
            result.values,
            float(result.base_value),
            f"Payoff interventional SHAP ({result.method})",
        )
    if explainer == "tree":
        tree = shap.TreeExplainer(model.estimator.booster)
        values = np.asarray(tree.shap_values(z))
        base = np.atleast_1d(tree.expected_value)
        if task == "multiclass":
            index = class_index or 0
            values = values[..., index] if values.ndim == 3 else values
            base_value = float(base[index])
        else:
            values = values[1] if values.ndim == 3 and values.shape[0] == 2 else values
            base_value = float(base[-1])
        if on_progress:
            on_progress(len(z), len(z))
        return values, base_value, "shap TreeExplainer (path-dependent TreeSHAP)"
    if explainer == "linear":
        design, coef, intercept = model.linear_parts()
        if task == "multiclass":
            coef, intercept = coef[class_index or 0], intercept[class_index or 0]
        x_background = design(background)
        mean = np.average(x_background, axis=0, weights=weights)
        linear = shap.LinearExplainer((coef, float(np.ravel(intercept)[0])), (mean, None))
        dummy_values = np.asarray(linear.shap_values(design(z)))
        groups = np.asarray(model.estimator.feature_groups())
        values = np.zeros((len(z), z.shape[1]))
        np.add.at(values.T, groups, dummy_values.T)
        base_value = float(np.ravel(linear.expected_value)[0])
        if task == "multiclass":
            # LinearExplainer explains the class logit; log-probability = logit - logsumexp,
            # which is not linear. Multiclass logreg is explained by the generic estimator.
            raise ValueError("Explaining multiclass logistic regression is not supported yet.")
        if on_progress:
            on_progress(len(z), len(z))
        return values, base_value, "shap LinearExplainer (exact for a linear model)"
    raise ValueError(f"No tabular explainer for model {run.model!r}.")


def _fidelity(
    run: RunInfo,
    model: Any,
    z: np.ndarray,
    values: np.ndarray,
    background: np.ndarray,
    weights: np.ndarray,
    class_index: int | None,
    rows: int,
    n_pairs: int,
) -> dict:
    """Agreement with an exact interventional reference, or one of many antithetic pairs where
    enumerating every game would exceed REFERENCE_EVALUATIONS model calls (never fewer than
    4x the explanation's own pairs: a reference must be the better estimate)."""
    from models.shapley import count_evaluations, explain_interventional, fidelity

    if rows <= 0 or len(z) == 0:
        return {}
    take = min(rows, len(z))
    predict = _predict_fn(model, run.task, class_index)
    started = time.perf_counter()
    method: Literal["auto", "exact", "antithetic"]
    if count_evaluations(z[:take], background, "exact") <= REFERENCE_EVALUATIONS:
        method, pairs = "exact", 1
        label = "exact interventional Shapley values, same background"
    else:
        per_pair = count_evaluations(z[:take], background, "antithetic", n_pairs=1)
        floor = max(MIN_REFERENCE_PAIRS, 4 * n_pairs)
        pairs = max(floor, min(MAX_REFERENCE_PAIRS, REFERENCE_EVALUATIONS // per_pair))
        method = "antithetic"
        label = f"{pairs} antithetic permutation pairs, same background"
    reference = explain_interventional(
        predict, z[:take], background, weights, method=method, n_pairs=pairs, seed=run.seed + 1
    )
    figures: dict[str, Any] = dict(fidelity(values[:take], reference.values))
    figures.update(reference=label, reference_seconds=time.perf_counter() - started)
    return figures


def _broad_fidelity(
    run: RunInfo,
    model: Any,
    z: np.ndarray,
    values: np.ndarray,
    class_index: int | None,
    rows: int,
) -> dict:
    """Agreement with interventional Shapley values against BROAD_REFERENCE_ROWS random
    training rows: does the explanation's background stand for the data? Exact where every
    game fits BROAD_REFERENCE_EVALUATIONS model calls, else antithetic pairs (see there)."""
    from models.shapley import count_evaluations, explain_interventional, fidelity

    if rows <= 0 or len(z) == 0:
        return {}
    reference_rows = _training_sample(run, model)
    started = time.perf_counter()
    take = min(rows, len(z))
    method: Literal["auto", "exact", "antithetic"]
    if count_evaluations(z[:take], reference_rows, "exact") <= BROAD_REFERENCE_EVALUATIONS:
        method, pairs, how = "exact", 1, "exact"
    else:
        while True:
            per_pair = count_evaluations(z[:take], reference_rows, "antithetic", n_pairs=1)
            fit = BROAD_REFERENCE_EVALUATIONS // max(per_pair, 1)
            if fit >= MIN_REFERENCE_PAIRS or take == 1:
                break
            take -= 1
        pairs = max(MIN_REFERENCE_PAIRS, min(MAX_REFERENCE_PAIRS, fit))
        method, how = "auto", f"{pairs} antithetic permutation pairs per game"
    reference = explain_interventional(
        _predict_fn(model, run.task, class_index),
        z[:take],
        reference_rows,
        method=method,
        n_pairs=pairs,
        seed=run.seed + 2,
    )
    figures: dict[str, Any] = dict(fidelity(values[:take], reference.values))
    figures.update(
        reference=f"interventional Shapley values against {len(reference_rows)} random "
        f"training rows ({how})",
        reference_rows=int(len(reference_rows)),
        reference_pairs=int(pairs) if method != "exact" else None,
        reference_evaluations=int(reference.evaluations),
        reference_seconds=time.perf_counter() - started,
    )
    return figures


def trustworthy(quality: dict, additivity_error: float) -> bool:
    """Green badge: the values add up, and every stored reference (the same-background one
    and, where computed, the broad one) agrees at TRUST_SPEARMAN / TRUST_MAX_ERROR."""
    checks = [quality.get("fidelity") or {}, quality.get("fidelity_broad") or {}]
    return additivity_error < 1e-4 and all(
        float(c.get("spearman", 0)) >= TRUST_SPEARMAN
        and float(c.get("max_abs_error", 1)) <= TRUST_MAX_ERROR
        for c in checks
        if c
    )


def default_choice_note(quality: dict) -> str | None:
    """How the default estimator was chosen for this model, in words (None when the
    explanation did not use the default, or the run predates the choice)."""
    choice = quality.get("default_choice") or {}
    if "effects" not in choice or "sampled" not in choice:
        return None
    chosen = (
        "each column's effect alone and with all the others (fast, exact when columns "
        "interact at most in pairs)"
        if choice["method"] == "effects"
        else f"sampled column orders against {BACKGROUND_ROWS} typical training rows"
    )
    return (
        f"How this model is explained by default was measured once on {choice['rows']} "
        f"training rows, each compared with {choice['reference']}. The fast estimate ranked "
        f"the columns like the reference at Spearman {choice['effects']['spearman']:.2f}, "
        f"sampling at {choice['sampled']['spearman']:.2f}, so it uses {chosen}."
    )


def next_step(quality: dict, additivity_error: float, kind: str = "tabular") -> str | None:
    """What to try when an explanation (`kind` "tabular" or "text") is not trustworthy, or None
    when it is (or when no other setting is known to do better)."""
    if trustworthy(quality, additivity_error) or not quality.get("default_method"):
        return None
    if kind == "text":
        # Text games start from the empty text, so there are no background rows to add; more
        # permutation pairs walk the span coalitions the effects leave out (8 pairs: Spearman
        # 0.944 against 0.934 for the default on sentences, bench/text_explain_bench.py).
        return (
            "The words of these texts act together in ways the fast default does not capture. "
            "Explain again with a higher accuracy setting (8 or 32): slower, but it measures "
            "those interactions instead of assuming them away."
        )
    # The default is exact only when columns interact at most in pairs; a model whose score
    # saturates interacts far more (bench/explain_bench.py's breast-cancer case), and there
    # sampled permutations against more training rows agreed better with the data.
    return (
        "This model's columns act together in ways the fast default does not capture. "
        "Explain again with more typical training rows to compare against (64 or 128): "
        "slower, but it measures those interactions instead of assuming them away."
    )


def explain_frame(
    run_id: int,
    frame: pd.DataFrame,
    *,
    background: pd.DataFrame | None = None,
    n_rows: int | None = None,
    n_pairs: int | None = None,
    background_rows: int = BACKGROUND_ROWS,
    fidelity_rows: int | None = None,
    class_index: int | None = None,
    source_name: str = "dataset",
    on_progress: Callable[[int, int], None] | None = None,
    model: Any = None,
    actor: Actor | None = None,
    compute_values: Callable[..., tuple[np.ndarray, float, str]] | None = None,
) -> Explanation:
    """Explain the first ``n_rows`` rows of ``frame`` (input order) and store the result.

    ``compute_values``: what computes the tabular values, ``tabular_values`` by default (same
    arguments); the Ray engine passes one that splits the rows across its actors.

    n_pairs / fidelity_rows: None takes the model kind's default (``pairs_for``, FIDELITY_ROWS
    or TEXT_FIDELITY_ROWS). background_rows: size of the FT-Transformer's k-medoid background
    when no ``background`` is given; the cost grows with it, and so does how well the summary
    stands for the training rows."""
    actor = audit.authorize(actor, "explain", "run", run_id)
    with audit.failures_recorded(actor, "explain", "run", run_id):
        return _explain_frame(
            run_id,
            frame,
            background=background,
            n_rows=n_rows,
            n_pairs=n_pairs,
            background_rows=background_rows,
            fidelity_rows=fidelity_rows,
            class_index=class_index,
            source_name=source_name,
            on_progress=on_progress,
            model=model,
            actor=actor,
            compute_values=compute_values,
        )


def _explain_frame(
    run_id: int,
    frame: pd.DataFrame,
    *,
    background,
    n_rows,
    n_pairs,
    background_rows,
    fidelity_rows,
    class_index,
    source_name,
    on_progress,
    model,
    actor: Actor,
    compute_values: Callable[..., tuple[np.ndarray, float, str]] | None = None,
) -> Explanation:
    run = get_run(run_id)
    if run.status != "succeeded":
        raise ValueError(f"Run #{run_id} has no trained model (status: {run.status}).")
    n_rows = len(frame) if n_rows is None else n_rows
    if n_rows < 1:
        raise ValueError(f"Choose at least one row to explain, got {n_rows}.")
    if n_rows > MAX_EXPLAIN_ROWS:
        raise ValueError(f"At most {MAX_EXPLAIN_ROWS:,} rows per explanation, got {n_rows:,}.")
    missing = [c for c in run.features if c not in frame.columns]
    if missing:
        raise ValueError(f"The rows lack the model's column(s): {', '.join(missing)}.")
    frame = frame.iloc[:n_rows]
    kind = get_kind(run.model)
    if not kind.explainable:
        raise ValueError(
            "Explanations are computed per model; explain the ensemble's member runs "
            f"({', '.join(f'#{m}' for m in kind.member_ids(run))})."
        )
    model = model if model is not None else load_run_model(run_id)
    if run.task == "multiclass" and class_index is None:
        class_index = 0
    started = time.perf_counter()
    n_pairs = pairs_for(run) if n_pairs is None else n_pairs
    if kind.input == "text":
        rows = TEXT_FIDELITY_ROWS if fidelity_rows is None else fidelity_rows
        return _explain_texts(
            run,
            model,
            frame,
            source_name,
            class_index,
            started,
            n_pairs,
            rows,
            background,
            actor=actor,
        )
    fidelity_rows = FIDELITY_ROWS if fidelity_rows is None else fidelity_rows
    z = model.preprocessor.encode(frame)
    if not 1 <= background_rows <= MAX_BACKGROUND_ROWS:
        raise ValueError(
            f"Choose 1 to {MAX_BACKGROUND_ROWS} background rows, got {background_rows}."
        )
    # default settings: the run's measured choice (main + total effects, or the sampled
    # estimator on the 16-row summary) decides the estimator
    default_method = uses_default_method(run, background is None, background_rows, n_pairs)
    choice: dict[str, Any] = {}
    if default_method:
        before = time.perf_counter()
        defaults = _stored_defaults(run, model)  # built and stored by a run's first explanation
        started += time.perf_counter() - before  # a one-off: not this explanation's ms/row
        choice = _choice_of(defaults.get("choice"))
    effects = choice.get("method") == "effects"
    if effects:
        from models.shapley import EffectTables

        tables = EffectTables.from_dict(defaults["effects"])
        background_z, weights = tables.background, tables.weights
    else:
        background_z, weights = _background(run, model, background, background_rows)
    values, base_value, method = (compute_values or tabular_values)(
        run,
        model,
        z,
        background_z,
        weights,
        n_pairs=n_pairs,
        class_index=class_index,
        on_progress=on_progress,
        explicit_background=background is not None,
        default_method=effects,
    )
    if default_method and not effects:
        method += CHOSEN_BY_MEASUREMENT
    seconds = time.perf_counter() - started
    output = _predict_fn(model, run.task, class_index)(z)
    additivity = float(np.max(np.abs(base_value + values.sum(axis=1) - output))) if len(z) else 0.0
    quality = {
        "additivity_max_abs_error": additivity,
        # TreeSHAP (path-dependent) uses the trees' own cover, not these rows; the rows then
        # only serve the fidelity reference.
        "background_rows": int(len(background_z)),
        # What the Score page's reasons compute too (its time estimate reads ms_per_row).
        "pairs": int(n_pairs),
        "default_background": background is None and background_rows == BACKGROUND_ROWS,
        "default_method": default_method,
        # how the default estimator was chosen for this model (figures on 2 training rows)
        "default_choice": choice,
        "background_used_by_explainer": kind.explainer_for(background is not None) != "tree",
        "fidelity": _fidelity(
            run, model, z, values, background_z, weights, class_index, fidelity_rows, n_pairs
        ),
        # The FT-Transformer's default background is a small summary: checked against the
        # data too (a background the user chose is the question asked, so it is not judged).
        "fidelity_broad": (
            _broad_fidelity(
                run, model, z, values, class_index, min(fidelity_rows, BROAD_FIDELITY_ROWS)
            )
            if kind.background == "summary" and background is None
            else {}
        ),
    }
    rows = frame[list(model.spec.columns)].reset_index(drop=True)
    rows.insert(0, "row_number", np.arange(1, len(rows) + 1))
    id_column = _id_column(run, frame)
    if id_column:  # kept so a row can be looked up and joined back by its id
        rows.insert(1, id_column, frame[id_column].astype("string").to_numpy())
    return _store(
        run,
        "tabular",
        list(model.spec.columns),
        values,
        base_value,
        output,
        output_space(run, class_index),
        method,
        seconds,
        additivity,
        quality,
        rows,
        [],
        source_name,
        actor=actor,
    )


def _explain_texts(
    run,
    model,
    frame,
    source_name,
    class_index,
    started,
    n_pairs,
    fidelity_rows,
    background,
    *,
    actor: Actor | None = None,
) -> Explanation:
    """Span attributions. Text games start from the empty text, so background rows do not
    apply; given ones are named as unused in the quality rather than ignored silently."""
    from models.text_attribution import explain_texts

    texts = model.texts(frame)
    options = {
        "class_index": class_index if run.task == "multiclass" else None,
        "seed": run.seed,
        **text_options(run, n_pairs),
    }
    attributions = explain_texts(model.model, texts, **options)
    seconds = time.perf_counter() - started
    width = max((len(a.spans) for a in attributions), default=0)
    values = np.full((len(attributions), width), np.nan)
    for i, a in enumerate(attributions):
        values[i, : len(a.values)] = a.values
    output = np.array([a.output for a in attributions])
    base = float(np.mean([a.base_value for a in attributions])) if attributions else 0.0
    additivity = max((a.additivity_error for a in attributions), default=0.0)
    rows = pd.DataFrame({"row_number": np.arange(1, len(texts) + 1), "text": texts})
    id_column = _id_column(run, frame)
    if id_column:
        rows.insert(1, id_column, frame[id_column].astype("string").to_numpy())
    rows["base_value"] = [a.base_value for a in attributions]
    quality = {
        "additivity_max_abs_error": float(additivity),
        "pairs": int(n_pairs),
        "default_method": options["method"] == "effects",
        "default_background": True,  # text games start from the empty text
        "fidelity": _text_fidelity(run, model.model, texts, attributions, options, fidelity_rows),
        "background": "all spans masked"
        + ("" if background is None else " (background rows apply to tabular models only)"),
        "spans": f"at most {TEXT_SPANS} per text"
        + (
            f", fewer for long texts (spans x model tokens about {TEXT_TOKEN_BUDGET})"
            if options["token_budget"]
            else ""
        ),
    }
    return _store(
        run,
        "text",
        [f"span {i + 1}" for i in range(width)],
        values,
        base,
        output,
        output_space(run, class_index),
        "Payoff span attributions (masked spans, "
        + ("main + total effects)" if options["method"] == "effects" else "antithetic pairs)"),
        seconds,
        float(additivity),
        quality,
        rows,
        [a.spans for a in attributions],
        source_name,
        actor=actor,
    )


def sampled(run: RunInfo) -> bool:
    """Whether the run's kind is explained by sampling permutations (the others are exact:
    TreeSHAP, linear), so the user may choose the pairs."""
    return get_kind(run.model).sampled


def pairs_for(run: RunInfo) -> int:
    """Default antithetic pairs per game for the run's model kind."""
    return get_kind(run.model).default_pairs


def text_options(run: RunInfo, n_pairs: int | None = None) -> dict[str, Any]:
    """How a text run's spans are explained with ``n_pairs`` (None: the kind's default):
    spans per text (``token_budget``: transformers pay per token read; TF-IDF does not, so
    every text keeps TEXT_SPANS) and the estimator, its ``default_span_method`` at the
    default pairs (main + total effects for the transformer), else that many antithetic pairs.
    """
    kind = get_kind(run.model)
    pairs = kind.default_pairs if n_pairs is None else n_pairs
    method = kind.default_span_method if pairs == kind.default_pairs else "auto"
    return {"n_pairs": pairs, "token_budget": kind.token_budget, "method": method}


def _text_fidelity(run, text_model, texts, attributions, options, rows: int) -> dict:
    """Agreement of the first ``rows`` texts with a reference of the same game: exact for up
    to TEXT_EXACT_REFERENCE_MAX_SPANS spans, else many antithetic pairs."""
    from models.text_attribution import same_game_reference, span_fidelity

    chosen = [i for i, a in enumerate(attributions) if len(a.spans) > 1][:rows]
    if not chosen:
        return {}
    started = time.perf_counter()
    spans = max(len(attributions[i].spans) for i in chosen)
    exact = spans <= get_kind(run.model).exact_reference_spans
    pairs = max(TEXT_REFERENCE_PAIRS, 4 * options["n_pairs"])
    references = [
        same_game_reference(
            text_model,
            texts[i],
            attributions[i].spans,
            exact=exact,
            n_pairs=pairs,
            seed=options["seed"] + 1,
            class_index=options["class_index"],
        )
        for i in chosen
    ]
    figures: dict[str, Any] = dict(
        span_fidelity([attributions[i].values for i in chosen], references)
    )
    label = (
        "exact Shapley values of the same spans"
        if exact
        else f"{pairs} antithetic permutation pairs, same spans"
    )
    figures.update(reference=label, reference_seconds=time.perf_counter() - started)
    return figures


def _store(
    run,
    kind,
    columns,
    values,
    base_value,
    output,
    space,
    method,
    seconds,
    additivity,
    quality,
    rows,
    spans,
    source_name,
    *,
    actor: Actor | None = None,
) -> Explanation:
    n = len(output)
    rows_payload = {
        "rows": json.loads(rows.to_json(orient="split", index=False)),
        "output": np.asarray(output).tolist(),
        "spans": spans,
        "kind": kind,
    }
    flat = [
        (0, i, j, float(values[i, j]))
        for i in range(values.shape[0])
        for j in range(values.shape[1])
        if not math.isnan(values[i, j])
    ]
    with session_factory().begin() as session:
        record = ExplanationRecord(
            run_id=run.id,
            source_name=str(source_name)[:300],
            n_rows=n,
            columns_json=list(columns),
            output_space=space,
            base_value=float(base_value),
            method=method,
            seconds=float(seconds),
            ms_per_row=1000.0 * seconds / max(n, 1),
            additivity_error=float(additivity),
            quality_json=quality,
            rows_json=rows_payload,
            status="writing",
            writer_pid=os.getpid(),
        )
        session.add(record)
        session.flush()
        explanation_id = record.id
    try:
        bulk_insert(ExplanationValueRecord.__table__, [(explanation_id, *row[1:]) for row in flat])
        with session_factory().begin() as session:
            done = get_or_raise(session, ExplanationRecord, explanation_id, "explanation")
            done.status = "complete"
            audit.record(
                session, actor, "explain", "explanation", explanation_id, "ok", f"run {run.id}"
            )
    except BaseException:
        with session_factory().begin() as session:
            session.execute(
                delete(ExplanationValueRecord).where(
                    ExplanationValueRecord.explanation_id == explanation_id
                )
            )
            session.execute(delete(ExplanationRecord).where(ExplanationRecord.id == explanation_id))
        raise
    return get_explanation(explanation_id)


def get_explanation(explanation_id: int) -> Explanation:
    with session_factory().begin() as session:
        record = get_or_raise(session, ExplanationRecord, explanation_id, "explanation")
        stored = session.execute(
            select(
                ExplanationValueRecord.row_number,
                ExplanationValueRecord.column_index,
                ExplanationValueRecord.value,
            ).where(ExplanationValueRecord.explanation_id == explanation_id)
        ).all()
        columns = record.columns_json
        payload = record.rows_json
        values = np.full((record.n_rows, len(columns)), np.nan)
        for row, column, value in stored:
            values[row, column] = value
        rows_split = payload["rows"]
        rows = pd.DataFrame(rows_split["data"], columns=rows_split["columns"])
        return Explanation(
            explanation_id=record.id,
            run_id=record.run_id,
            kind=payload.get("kind", "tabular"),
            columns=columns,
            values=values,
            base_value=record.base_value,
            output=np.asarray(payload["output"], dtype=float),
            output_space=record.output_space,
            method=record.method,
            seconds=record.seconds,
            ms_per_row=record.ms_per_row,
            additivity_error=record.additivity_error,
            quality=record.quality_json,
            rows=rows,
            spans=payload.get("spans", []),
        )


def list_explanations(run_id: int | None = None) -> list[dict]:
    with session_factory().begin() as session:
        query = (
            select(ExplanationRecord)
            .where(ExplanationRecord.status == "complete")
            .order_by(ExplanationRecord.id.desc())
        )
        if run_id is not None:
            query = query.where(ExplanationRecord.run_id == run_id)
        return [
            {
                "explanation_id": r.id,
                "run_id": r.run_id,
                "source_name": r.source_name,
                "rows": r.n_rows,
                "method": r.method,
                "ms_per_row": r.ms_per_row,
                "created_at": r.created_at,
                "quality": r.quality_json or {},
            }
            for r in session.scalars(query).all()
        ]


def plan(
    run: RunInfo,
    n_rows: int,
    n_columns: int,
    n_pairs: int | None = None,
    background_rows: int = BACKGROUND_ROWS,
) -> dict:
    """Model evaluations, seconds and dollars an explanation will take, from the run's
    measured inference throughput and the price of the device it was measured on (shown
    before a large job; the user picks the sample size)."""
    kind = get_kind(run.model)
    n_pairs = pairs_for(run) if n_pairs is None else n_pairs
    stored = _stored_explainer(run)  # read only: the plan never builds the defaults
    chosen = _choice_of(stored.get("choice.json"))["method"]
    if uses_default_method(run, True, background_rows, n_pairs) and chosen == "effects":
        effects = stored.get("effects.json")
        evaluations: float = n_rows * _effect_calls_per_row(
            effects, n_columns
        ) + _effect_tables_cost(effects, n_columns)
    else:
        evaluations = kind.explain_evaluations(n_rows, n_columns, background_rows, n_pairs)
    rate = run.infer_rows_per_s or 1000.0
    seconds = evaluations / rate
    check = kind.check_evaluations()
    device = device_for_run(run)
    return {
        "evaluations": int(evaluations),
        "seconds": seconds,
        "dollars": seconds * device.dollars_per_hour / 3600,
        "device": device.name,
        "check_seconds": check / rate,  # the quality check's reference, at most about this
    }


def _stored_explainer(run: RunInfo) -> dict[str, Any]:
    """The run's stored explainer files as JSON by file name ({} before the first explanation
    stored them, or when unreadable); never builds them."""
    from models.artifacts import ArtifactError, read_artifact

    folder = Path(run.artifact_path or "") / EXPLAINER_FOLDER
    if run.artifact_path is None or not folder.exists():
        return {}
    try:
        files = read_artifact(folder)[1]
        return {name: json.loads(data) for name, data in files.items()}
    except (ArtifactError, ValueError):
        return {}


def _effect_calls_per_row(stored: dict | None, n_columns: int) -> int:
    """Model calls per row of the default explainer: exact once its tables are ``stored``,
    else effect_grid(n_columns) per column (columns with fewer values cost less) plus the row."""
    if stored is None:
        return effect_grid(n_columns) * n_columns + 1
    return sum(len(v) for v in stored["grid_values"]) + 1


def _effect_tables_cost(stored: dict | None, n_columns: int) -> int:
    """Model calls still to spend on the default explainer's tables and the choice's check
    (its reference: about 2 calls per column and broad row, per checked row); 0 once stored."""
    if stored is not None:
        return 0
    return EFFECT_TABLE_EVALUATIONS + EFFECT_CHOICE_ROWS * BROAD_REFERENCE_ROWS * 2 * n_columns


@dataclass(frozen=True)
class Reason:
    """One reason of one row: a column (or a word span) and its signed contribution to the
    explained output (log-odds of the positive class for binary targets)."""

    label: str  # "Income = 1200", or a quoted word span
    value: float

    def text(self, run: RunInfo) -> str:
        raises, lowers = _directions(run)
        unit = " log-odds" if run.task == "binary" else ""
        return f"{self.label} ({raises if self.value > 0 else lowers}, {self.value:+.2f}{unit})"


@dataclass(frozen=True)
class RowReasons:
    """The reasons of one row, chosen to agree with its decision."""

    flagged: bool | None  # binary: P(positive) >= threshold; None for other tasks
    reasons: tuple[Reason, ...]
    unit: str  # "column" or "word"

    def text(self, run: RunInfo) -> str:
        if self.reasons:
            return "; ".join(r.text(run) for r in self.reasons)
        raises, lowers = _directions(run)
        if self.flagged:
            return f"No {self.unit} {raises} for this row: flagged on the baseline score alone"
        return f"No {self.unit} {lowers} for this row: not flagged on the baseline score alone"


# Reason rows measured to time them (the first of the test part), and measured rates per run.
PROBE_ROWS = 8
PROBE_MAX_ROWS = 64  # when PROBE_ROWS rows took under PROBE_CHEAP_MS
PROBE_CHEAP_MS = 150.0
PROBE_REPEATS = 5
PROBE_REPEAT_BELOW_S = 0.5
_REASON_RATES: dict[tuple[int, str], dict[str, float]] = {}
_PREPARED: set[tuple[int, str]] = set()


def _directions(run: RunInfo) -> tuple[str, str]:
    if run.task == "binary":
        return f"raises risk of {run.positive_class}", f"lowers risk of {run.positive_class}"
    if run.task == "multiclass":
        return f"raises P({run.classes[0]})", f"lowers P({run.classes[0]})"
    return f"raises predicted {run.target}", f"lowers predicted {run.target}"


def _pick(values: np.ndarray, flagged: bool | None, top: int) -> np.ndarray:
    """Indices of the reasons that agree with the decision: for a flagged row the largest
    positive contributions, for a not-flagged row the most negative ones (never the other
    direction); without a decision (regression, multiclass) the largest in size."""
    values = np.asarray(values, dtype=float)
    present = np.flatnonzero(np.isfinite(values))
    if flagged is None:
        order = present[np.argsort(-np.abs(values[present]), kind="stable")]
    elif flagged:
        agree = present[values[present] > 0]
        order = agree[np.argsort(-values[agree], kind="stable")]
    else:
        agree = present[values[present] < 0]
        order = agree[np.argsort(values[agree], kind="stable")]
    return order[:top]


def resolve_threshold(run: RunInfo, threshold: float | None) -> float | None:
    """The cutoff reasons and decisions use: the given one, else the run's operating threshold
    (binary runs); None for runs without a decision cutoff."""
    if run.task != "binary":
        return None
    if threshold is not None:
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"The threshold must be between 0 and 1, got {threshold}.")
        return float(threshold)
    return operating_threshold(run.id).threshold


def row_reasons(
    run: RunInfo,
    model: Any,
    frame: pd.DataFrame,
    top: int = 3,
    threshold: float | None = None,
    decisions: np.ndarray | None = None,
) -> list[RowReasons]:
    """Per row, up to ``top`` reasons that agree with its decision at ``threshold`` (the
    run's operating threshold when None). ``decisions``: the flags already computed by the
    caller with the same rule (P(positive) >= threshold); else computed here."""
    if len(frame) == 0:
        return []
    if top < 1:
        raise ValueError(f"Show at least one reason per row, got {top=}.")
    cutoff = resolve_threshold(run, threshold)
    if cutoff is None:
        flags: list[bool | None] = [None] * len(frame)
    elif decisions is not None:
        if len(decisions) != len(frame):
            raise ValueError(f"{len(decisions)} decisions for {len(frame)} rows.")
        flags = [bool(d) for d in np.asarray(decisions)]
    else:
        flags = [bool(d) for d in np.asarray(model.predict_frame(frame)) >= cutoff]
    if get_kind(run.model).input == "text":
        from models.text_attribution import explain_texts

        texts = model.texts(frame)
        attributions = explain_texts(model.model, texts, **text_options(run))
        return [
            RowReasons(
                flag,
                tuple(
                    Reason(f"“{a.spans[i][:40]}”", float(a.values[i]))
                    for i in _pick(a.values, flag, top)
                ),
                "word",
            )
            for a, flag in zip(attributions, flags, strict=True)
        ]
    z = model.preprocessor.encode(frame)
    background, weights = _background(run, model, None)
    values, _, _ = tabular_values(
        run,
        model,
        z,
        background,
        weights,
        n_pairs=DEFAULT_PAIRS,
        default_method=uses_default_method(run, True, BACKGROUND_ROWS, DEFAULT_PAIRS)
        and _effects_chosen(run, model),
    )
    columns = list(model.spec.columns)
    shown = frame[columns].to_numpy(dtype=object)  # only the cells named are formatted
    picked = _pick_rows(values, flags, top)
    return [
        RowReasons(
            flags[i],
            tuple(
                Reason(f"{columns[j]} = {_shown(shown[i, j])}", float(values[i, j]))
                for j in picked[i]
            ),
            "column",
        )
        for i in range(len(frame))
    ]


def _pick_rows(values: np.ndarray, flags: list[bool | None], top: int) -> list[np.ndarray]:
    """``_pick`` for every row of a [n, M] matrix at once (one sort for all rows)."""
    values = np.nan_to_num(np.asarray(values, dtype=float), nan=0.0)
    if not len(values):
        return []
    if flags[0] is None:
        order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :top]
        return [row[values[i, row] != 0] for i, row in enumerate(order)]
    sign = np.where(np.asarray(flags, dtype=bool), 1.0, -1.0)[:, None]
    toward = values * sign  # > 0: pushes toward the row's decision
    order = np.argsort(-toward, axis=1, kind="stable")[:, :top]
    keep = np.take_along_axis(toward, order, axis=1) > 0
    return [row[k] for row, k in zip(order, keep, strict=True)]


def _shown(value: Any) -> str:
    """A cell as the analyst typed it: whole numbers without '.0', missing as 'missing'."""
    if value is None or pd.isna(value):
        return "missing"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


def reason_codes(
    run: RunInfo,
    model: Any,
    frame: pd.DataFrame,
    top: int = 3,
    threshold: float | None = None,
    decisions: np.ndarray | None = None,
) -> list[str]:
    """``row_reasons`` as text, one string per row: 'Income = 1200 (raises risk of bad,
    +0.42 log-odds); ...', or a sentence saying that no column pushes toward the decision."""
    return [r.text(run) for r in row_reasons(run, model, frame, top, threshold, decisions)]


def _prepare_reasons(run: RunInfo, model: Any, frame: pd.DataFrame) -> None:
    """Pay the one-off costs of a run's first reasons in this process (the background
    summary, lazy imports, the first forward pass) on one row, once per run and process."""
    key = (run.id, str(run.artifact_path))
    if key in _PREPARED:
        return
    if get_kind(run.model).input != "text":
        _background(run, model, None)
    reason_codes(run, model, frame.iloc[:1], threshold=resolve_threshold(run, None))
    _PREPARED.add(key)


def warm_reasons(run: RunInfo, model: Any) -> pd.DataFrame | None:
    """Pay the one-off costs of the run's first reasons in this process unless paid already
    (and its rate measured); returns the test rows read for that, else None."""
    key = (run.id, str(run.artifact_path))
    if key in _PREPARED and key in _REASON_RATES:
        return None
    test = part_frame(run.id, "test").iloc[:PROBE_MAX_ROWS]
    _prepare_reasons(run, model, test)
    return test


def measure_reason_rate(
    run: RunInfo, model: Any, test: pd.DataFrame | None = None
) -> dict[str, float]:
    """{"fixed_ms", "ms_per_row", "rows"} of ``reason_codes``, measured now on the first test
    rows after the one-off costs: 1 row, then PROBE_ROWS rows, or PROBE_MAX_ROWS where that
    is cheap (a slope over a few milliseconds is noise). Kept per run and process."""
    key = (run.id, str(run.artifact_path))
    if key not in _REASON_RATES:
        frame = (part_frame(run.id, "test") if test is None else test).iloc[:PROBE_MAX_ROWS]
        _prepare_reasons(run, model, frame)
        cutoff = resolve_threshold(run, None)
        flags = None
        if cutoff is not None:  # decided beforehand, as scoring does
            flags = np.asarray(model.predict_frame(frame)) >= cutoff

        def fastest(take: int) -> float:
            """Milliseconds for ``take`` rows, repeated while cheap, the fastest kept."""
            best, spent = math.inf, 0.0
            for _ in range(PROBE_REPEATS):
                started = time.perf_counter()
                decided = None if flags is None else flags[:take]
                reason_codes(run, model, frame.iloc[:take], threshold=cutoff, decisions=decided)
                elapsed = time.perf_counter() - started
                best, spent = min(best, 1000.0 * elapsed), spent + elapsed
                if spent > PROBE_REPEAT_BELOW_S:
                    break
            return best

        one = fastest(1)
        rows = min(PROBE_ROWS, len(frame))
        many = fastest(rows)
        if many < PROBE_CHEAP_MS and len(frame) > rows:
            rows = len(frame)
            many = fastest(rows)
        per_row = (many - one) / (rows - 1) if rows > 1 else one
        if per_row <= 0:  # noise on a busy machine: no fixed part then
            per_row = many / rows
        _REASON_RATES[key] = {
            "fixed_ms": max(one - per_row, 0.0),
            "ms_per_row": per_row,
            "rows": rows,
        }
    return _REASON_RATES[key]


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class RowExplanation:
    """One row, not stored: the what-if editor's instant answer."""

    columns: list[str]
    values: np.ndarray
    base_value: float
    output: float
    output_space: str
    shown: list[str]


def explain_row(
    run: RunInfo, model: Any, row: pd.DataFrame, n_pairs: int | None = None
) -> RowExplanation:
    """Explain one edited record against the run's default background (tabular models)."""
    if len(row) != 1:
        raise ValueError(f"Give exactly one row (record) to explain, got {len(row)}.")
    kind = get_kind(run.model)
    if not kind.explainable:
        raise ValueError("Explanations are computed per model; explain the ensemble's members.")
    if kind.input == "text":
        from models.text_attribution import explain_text

        text = model.texts(row)[0]
        a = explain_text(model.model, text, **text_options(run, n_pairs))
        return RowExplanation(
            list(a.spans), a.values, a.base_value, a.output, output_space(run), list(a.spans)
        )
    z = model.preprocessor.encode(row)
    background, weights = _background(run, model, None)
    class_index = 0 if run.task == "multiclass" else None
    values, base_value, _ = tabular_values(
        run,
        model,
        z,
        background,
        weights,
        n_pairs=DEFAULT_PAIRS if n_pairs is None else n_pairs,
        class_index=class_index,
        default_method=uses_default_method(run, True, BACKGROUND_ROWS, n_pairs)
        and _effects_chosen(run, model),
    )
    shown = row[list(model.spec.columns)].astype("string").fillna("missing").iloc[0].tolist()
    return RowExplanation(
        list(model.spec.columns),
        values[0],
        base_value,
        float(base_value + values[0].sum()),
        output_space(run, class_index),
        shown,
    )


# ---- reading explanations -------------------------------------------------------------------


def _id_column(run: RunInfo, frame: pd.DataFrame) -> str | None:
    """The dataset's id column when the rows carry it (and the model does not read it)."""
    column = get_dataset(run.dataset_id).roles.id_column
    if column and column in frame.columns and column not in run.features:
        return column
    return None


def id_column_of(explanation: Explanation) -> str | None:
    """The id column stored with the explained rows, if the data had one."""
    extra = [
        c
        for c in explanation.rows.columns
        if c not in ("row_number", "text", "base_value", *explanation.columns)
    ]
    return extra[0] if extra else None


def shap_table(explanation: Explanation) -> pd.DataFrame:
    """The download: row_number (1 = first explained row), the id column if the data has one,
    the feature values, one ``shap_<column>`` per column (in the explanation's output space),
    base_value and output. Joins back to the data on row_number or the id."""
    rows = explanation.rows
    keep = ["row_number"]
    id_column = id_column_of(explanation)
    if id_column:
        keep.append(id_column)
    if explanation.kind == "text":
        table = rows[[*keep, "text"]].copy()
        table["spans"] = [json.dumps(s) for s in explanation.spans]
        table["span_values"] = [
            json.dumps([round(float(v), 6) for v in explanation.values[i, : len(s)]])
            for i, s in enumerate(explanation.spans)
        ]
        table["base_value"] = rows["base_value"].to_numpy()
    else:
        table = rows[[*keep, *explanation.columns]].copy()
        for j, column in enumerate(explanation.columns):
            table[f"shap_{column}"] = explanation.values[:, j]
        table["base_value"] = explanation.base_value
    table["output"] = explanation.output
    return table


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def probability_path(
    base_value: float, values: np.ndarray, order: np.ndarray
) -> tuple[float, np.ndarray, float]:
    """Log-odds contributions as probability steps: (P at the base value, the change in P as
    each column is added in ``order``, P of the output). The steps add up exactly to the
    output's P, but each step depends on the order (the log-odds values do not): the
    probability view is for reading, the log-odds view is the exact one."""
    values = np.asarray(values, dtype=float)
    path = base_value + np.concatenate(([0.0], np.cumsum(values[order])))
    probability = _sigmoid(path)
    return float(probability[0]), np.diff(probability), float(probability[-1])


def partial_dependence(
    run: RunInfo, model: Any, rows: pd.DataFrame, column: str, ice_rows: int = 30
) -> dict[str, Any]:
    """Partial dependence and ICE curves of ``column`` over values seen in training.

    For each grid value every row gets that value (other columns kept) and is scored; ICE =
    each row's curve (the first ``ice_rows``), partial dependence = their mean over all rows.
    Output: P(positive) for binary runs, P(first class) for multiclass, the value for
    regression."""
    if get_kind(run.model).input == "text":
        raise ValueError("Partial dependence covers tabular columns; this model reads text.")
    grid = candidate_values(model, [column]).values.get(column)
    if not grid:
        raise ValueError(f"{column!r} is not a tabular column of this model.")
    rows = rows.reset_index(drop=True)
    repeated = pd.concat([rows] * len(grid), ignore_index=True)
    repeated[column] = np.repeat(np.asarray(grid, dtype=object), len(rows))
    if column in model.spec.numeric:
        repeated[column] = repeated[column].astype(float)
    out = np.asarray(model.predict_frame(repeated), dtype=float)
    if out.ndim == 2:
        out = out[:, 0]
    curves = out.reshape(len(grid), len(rows)).T
    return {
        "column": column,
        "grid": list(grid),
        "numeric": column in model.spec.numeric,
        "mean": curves.mean(axis=0),
        "ice": curves[:ice_rows],
        "output": "probability" if run.task != "regression" else f"predicted {run.target}",
    }
