"""What a model kind is: the ``Kind`` base class every module in core/kinds/ fills in, the one
protocol every loaded model follows (``LoadedModel``), and the small records kinds and core
exchange.

Dependencies, one way: ``core.runs -> core.kinds.registry -> core.kinds.<kind> ->
core.kinds.base -> models``. Kind modules import nothing from core but ``core.kinds.*``,
``core.run_fields`` and ``core.settings``; models are imported inside functions only so that reading the registry
(the CLI's choices, a page's options) never loads torch or transformers. What a kind needs
from other runs (an ensemble's members) comes in through ``RunLookup``, which core.runs
builds, so no kind depends on core.runs or core.training.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import pandas as pd

from core.run_fields import RunOptions

if TYPE_CHECKING:
    from models.tabular import FittedTabularModel
    from models.tasks import TargetEncoder

Output = Literal["proba", "logit", "value"]
TASKS = ("binary", "multiclass", "regression")
# Families: "transformer" and "baseline" are compared by the verdict; a kind that combines
# other runs takes its family from its members (``registry.family_of``).
FAMILIES = ("transformer", "baseline", "combined")
INPUTS = ("tabular", "text", "runs")  # what a kind reads: columns, text columns, other runs
EXPLAINERS = ("interventional", "tree", "linear", "text")

# ---- explanation budgets shared by the kinds' plans and core/explanations.py ---------------
# (core/explanations.py re-exports them and documents how they were chosen.)
DEFAULT_PAIRS = 1  # antithetic permutation pairs per game, sampled explainers
TEXT_SPANS = 16  # at most this many word spans per text (models.text_attribution)
TEXT_FIDELITY_ROWS = 2  # texts checked against a reference
REFERENCE_EVALUATIONS = 300_000  # model calls of the same-background reference, at most
BROAD_REFERENCE_EVALUATIONS = 60_000  # model calls of the broad (256 training rows) reference
TYPICAL_TEXT_TOKENS = 128  # the text models' default max_length


class LoadedModel(Protocol):
    """What every trained model offers once loaded, whatever its kind.

    ``predict_frame``: binary -> P(positive) [n] (``output="logit"``: its log-odds);
    multiclass -> [n, C] probabilities (log-probabilities); regression -> the value.
    ``tabular_parts``: the tabular models inside (itself, an ensemble's tabular members, or
    none for a text model): scoring reads drift and unseen categories off the first one.
    """

    @property
    def target(self) -> TargetEncoder: ...

    @property
    def features(self) -> tuple[str, ...]: ...

    def predict_frame(self, frame: pd.DataFrame, /, *, output: Output = "proba") -> np.ndarray: ...

    def save(self, folder: Path, /) -> Any: ...

    def tabular_parts(self) -> list[FittedTabularModel]: ...


class RunSpec(Protocol):
    """The fields of a run (core.runs.RunInfo) that kinds read."""

    @property
    def id(self) -> int: ...
    @property
    def model(self) -> str: ...
    @property
    def size(self) -> str | None: ...
    @property
    def target(self) -> str: ...
    @property
    def features(self) -> tuple[str, ...]: ...
    @property
    def options(self) -> RunOptions: ...
    @property
    def seed(self) -> int: ...
    @property
    def time_budget_s(self) -> float | None: ...
    @property
    def status(self) -> str: ...
    @property
    def task(self) -> str | None: ...
    @property
    def positive_class(self) -> str | None: ...
    @property
    def classes(self) -> tuple[str, ...]: ...
    @property
    def artifact_path(self) -> Path | None: ...
    @property
    def dataset_id(self) -> int: ...
    @property
    def train_seconds(self) -> float | None: ...
    @property
    def params(self) -> int | None: ...
    @property
    def flops_per_row(self) -> float | None: ...
    @property
    def train_fraction(self) -> float: ...


@dataclass(frozen=True)
class RunLookup:
    """Other runs, for kinds that combine them: built by core.runs (``get_run``,
    ``load_run_model``), handed in so that kinds never import core.runs."""

    get_run: Callable[[int], RunSpec]
    load_run_model: Callable[[int], LoadedModel]


@dataclass(frozen=True)
class QueueRequest:
    """A run as asked for at queue time, already checked against the dataset's target."""

    dataset_id: int
    dataset_name: str
    target: str
    seed: int
    column_kinds: Mapping[str, str]  # column -> ingest kind (numeric, categorical, text, ...)
    features: tuple[str, ...]  # the chosen features, target left out
    text_columns: tuple[str, ...] | None
    size: str | None
    members: tuple[int, ...]
    rule: str
    runs: RunLookup


@dataclass(frozen=True)
class Queued:
    """What a kind keeps of a request: the columns it reads, its size, its own options."""

    features: tuple[str, ...]
    size: str | None = None
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FitContext:
    """Everything a kind's fit needs besides the run: the split's parts (train / val / test
    frames), the fitted target encoder, where to train and how to report epochs."""

    parts: Mapping[str, pd.DataFrame]
    target: TargetEncoder
    device: str
    threads: int
    on_epoch: Callable[[Any], bool] | None
    column_kinds: Mapping[str, str]
    runs: RunLookup
    should_stop: Callable[[], bool] | None = None  # polled between tuning trials


@dataclass(frozen=True)
class Fit:
    """A fitted model and what fitting it cost (``loop``: the training loop's result for
    models trained by epochs, else None)."""

    model: LoadedModel
    loop: Any
    train_seconds: float
    params: int
    flops_per_row: float | None
    tuning: dict[str, Any] | None = None  # what tuning spent and found (models/tuning.py)


class Kind:
    """One model kind. Subclasses (one module each in core/kinds/) set the attributes and
    implement ``check``, ``fit`` and ``load``; the explainer hooks have defaults."""

    name: str = ""
    label: str = ""
    family: str = "baseline"  # one of FAMILIES
    tasks: tuple[str, ...] = TASKS
    input: str = "tabular"  # one of INPUTS
    # Tuned on the validation part within the run's time budget when the analyst asks.
    tunable: bool = False
    # Train page: ticked by default; for a dataset with only these inputs.
    preselected: bool = True
    # PII columns are refused among its features unless allowed (a kind combining runs
    # relies on its members' check).
    checks_pii: bool = True

    # ---- explanations (core/explanations.py) ---------------------------------------------
    explainer: str | None = "interventional"  # one of EXPLAINERS; None: not explained
    default_pairs: int = DEFAULT_PAIRS
    # Background of the default explanation: a k-medoid "summary" of the training rows
    # (checked against the data too) or a plain random "sample".
    background: str = "sample"
    # At its default settings (no background file, default pairs and summary size), explained
    # by main + total effects against all training rows (models.shapley.explain_effects).
    explains_by_effects: bool = False
    token_budget: int | None = None  # text: model tokens per antithetic pair
    # text: how spans are explained at the default pairs: "effects" (each span's main and total
    # effect, models.text_attribution.effect_values) or "auto" (antithetic pairs); other pairs
    # always walk that many antithetic pairs.
    default_span_method: str = "auto"
    exact_reference_spans: int = 8  # text: exact reference up to this many spans
    explain_rows: int = 100  # Explain page: default sample size

    @property
    def explainable(self) -> bool:
        return self.explainer is not None

    @property
    def sampled(self) -> bool:
        """Explained by sampling permutations (the user may pick the pairs)."""
        return self.explainer in ("interventional", "text")

    @property
    def combines_runs(self) -> bool:
        return self.input == "runs"

    # ---- cost (core/valuation.py) ----------------------------------------------------------
    @property
    def priced_on_cpu(self) -> bool:
        """Cheap baselines run on a CPU in production, so their compute is priced at a CPU's
        rate whatever device they were measured on."""
        return self.family == "baseline"

    def explainer_for(self, explicit_background: bool) -> str | None:
        """The explainer used when the user chose the background rows (or not)."""
        return self.explainer

    def explain_evaluations(
        self, n_rows: int, n_columns: int, background_rows: int, n_pairs: int
    ) -> float:
        """Model evaluations of an explanation of ``n_rows`` rows (about one pass for exact
        explainers)."""
        return float(n_rows)

    def check_evaluations(self) -> float:
        """Model evaluations of the quality check's reference, at most about."""
        return float(REFERENCE_EVALUATIONS)

    # ---- runs ----------------------------------------------------------------------------
    def sizes(self) -> tuple[str, ...]:
        """Size presets, smallest first (none for most kinds)."""
        return ()

    default_size: str | None = None

    def describe(self, run: RunSpec) -> str:
        """The kind's part of a run's label ("FT-Transformer small")."""
        return self.label

    def member_ids(self, run: RunSpec) -> list[int]:
        """The runs this run combines (none for a single model)."""
        return []

    # ---- the work ------------------------------------------------------------------------
    def check(self, request: QueueRequest) -> Queued:
        """Check a request at queue time; ValueError names what is wrong."""
        raise NotImplementedError

    def fit(self, run: RunSpec, context: FitContext) -> Fit:
        raise NotImplementedError

    def load(self, run: RunSpec, runs: RunLookup) -> LoadedModel:
        """The run's trained model from its artifact (verified against its manifest)."""
        raise NotImplementedError
