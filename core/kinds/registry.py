"""The registry of model kinds: the one list the CLI's choices, the Train page's options, the
baseline set of the verdict, the explainers and the cost model read.

Adding a kind: one module in core/kinds/ that defines ``KIND`` (a ``core.kinds.base.Kind``),
and its module in ``_MODULES`` below. Nothing else in the tree names a kind.

Depends on the kind modules (and through them core.kinds.base); never on core.runs, which
depends on this module for run labels and model loading.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.kinds import ensemble, ft_transformer, lightgbm, logreg, text_transformer, tfidf_logreg
from core.kinds.base import Kind as Kind
from core.kinds.base import LoadedModel, RunLookup, RunSpec
from core.settings import load_settings

# Order: as offered (transformers before their baselines, per input).
_MODULES = (ft_transformer, lightgbm, logreg, text_transformer, tfidf_logreg, ensemble)
_KINDS: dict[str, Kind] = {module.KIND.name: module.KIND for module in _MODULES}


def all_kinds() -> tuple[Kind, ...]:
    return tuple(_KINDS.values())


def names() -> tuple[str, ...]:
    return tuple(_KINDS)


def get_kind(name: str) -> Kind:
    """The kind called ``name``; ValueError naming the choices otherwise."""
    try:
        return _KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(_KINDS)}.") from None


def baselines() -> tuple[Kind, ...]:
    """The cheap models a transformer must beat (the verdict's default champions)."""
    return tuple(k for k in _KINDS.values() if k.family == "baseline")


def transformers() -> tuple[Kind, ...]:
    return tuple(k for k in _KINDS.values() if k.family == "transformer")


def for_input(*inputs: str) -> tuple[Kind, ...]:
    """Kinds that read one of ``inputs`` ("tabular", "text", "runs")."""
    return tuple(k for k in _KINDS.values() if k.input in inputs)


def combiner() -> Kind:
    """The kind that combines finished runs (ensembles)."""
    return next(k for k in _KINDS.values() if k.combines_runs)


def names_of(kinds: Iterable[Kind]) -> tuple[str, ...]:
    return tuple(k.name for k in kinds)


def family_of(run: RunSpec, runs: RunLookup) -> str:
    """ "transformer" / "baseline" for a single model; a combination of runs is a
    transformer when one of its members is, else "other"."""
    kind = get_kind(run.model)
    if not kind.combines_runs:
        return kind.family
    families = {family_of(runs.get_run(i), runs) for i in kind.member_ids(run)}
    return "transformer" if "transformer" in families else "other"


def run_label(run: RunSpec) -> str:
    """'#12 FT-Transformer small (50% of rows)': the run's id, its kind's description and the
    share of training rows when it saw fewer than all."""
    kind = _KINDS.get(run.model)
    described = kind.describe(run) if kind is not None else run.model
    share = f" ({run.train_fraction:.0%} of rows)" if run.train_fraction < 1 else ""
    return f"#{run.id} {described}{share}"


def load_model(run: RunSpec, runs: RunLookup) -> LoadedModel:
    """The trained model of ``run`` (succeeded, with an artifact), served on PAYOFF_THREADS
    torch threads."""
    _serving_threads()
    return get_kind(run.model).load(run, runs)


def _serving_threads() -> None:
    """Models served in this process (scoring, reasons, explanations, what-if) run on
    PAYOFF_THREADS torch threads, as training does. torch's default (one per core) made the
    Score page's SHAP reasons 6-17x slower on 2 shared cores (16 vs 105-284 ms per row).
    torch is imported here, not at the top: reading the registry must stay light."""
    import torch

    threads = load_settings().threads
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
