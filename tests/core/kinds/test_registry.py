"""The registry of model kinds (core/kinds/registry.py): the one list of what can be trained."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from core import cli
from core.kinds import registry
from core.kinds.base import EXPLAINERS, FAMILIES, INPUTS, TASKS
from core.run_fields import RunOptions

ALL = ("ft-transformer", "lightgbm", "logreg", "text-transformer", "tfidf-logreg", "ensemble")


def test_the_registry_lists_every_kind_once_in_offer_order() -> None:
    assert registry.names() == ALL
    assert [k.name for k in registry.all_kinds()] == list(ALL)
    assert cli.MODEL_CHOICES == ALL  # the CLI's --model choices come from the registry


def test_get_kind_and_its_error_names_the_choices() -> None:
    assert registry.get_kind("lightgbm").label == "LightGBM (baseline)"
    with pytest.raises(ValueError, match="Unknown model 'xgboost'; choose one of ft-transformer,"):
        registry.get_kind("xgboost")
    with pytest.raises(ValueError, match="ensemble"):
        registry.get_kind("")


@pytest.mark.parametrize(
    ("name", "family", "tasks", "source"),
    [
        ("ft-transformer", "transformer", TASKS, "tabular"),
        ("lightgbm", "baseline", TASKS, "tabular"),
        ("logreg", "baseline", TASKS, "tabular"),
        ("text-transformer", "transformer", TASKS, "text"),
        ("tfidf-logreg", "baseline", TASKS, "text"),
        ("ensemble", "combined", ("binary",), "runs"),
    ],
)
def test_each_kind_declares_family_tasks_and_input(name, family, tasks, source) -> None:
    kind = registry.get_kind(name)
    assert (kind.family, kind.tasks, kind.input) == (family, tasks, source)
    assert kind.family in FAMILIES and kind.input in INPUTS and kind.label
    assert kind.explainer is None or kind.explainer in EXPLAINERS


def test_sets_the_app_reads_come_from_the_registry() -> None:
    assert registry.names_of(registry.baselines()) == ("lightgbm", "logreg", "tfidf-logreg")
    assert registry.names_of(registry.transformers()) == ("ft-transformer", "text-transformer")
    assert registry.names_of(registry.for_input("text")) == ("text-transformer", "tfidf-logreg")
    assert registry.names_of(registry.for_input("tabular", "runs")) == (
        "ft-transformer",
        "lightgbm",
        "logreg",
        "ensemble",
    )
    assert registry.combiner().name == "ensemble"


def test_explainer_hooks() -> None:
    get = registry.get_kind
    assert [get(n).explainer_for(False) for n in ALL] == [
        "interventional",
        "tree",
        "linear",
        "text",
        "text",
        None,
    ]
    # A user-chosen background: LightGBM is explained against exactly those rows.
    assert get("lightgbm").explainer_for(True) == "interventional"
    assert [get(n).sampled for n in ALL] == [True, False, False, True, True, False]
    assert [get(n).default_pairs for n in ALL[:5]] == [1, 1, 1, 2, 32]
    # the text transformer's default: main + total effects (blended with its 2 pairs in long
    # games); TF-IDF walks its 32 pairs
    assert [get(n).default_span_method for n in ALL[3:5]] == ["effects", "auto"]
    text = get("text-transformer")  # the default reads the effects (one pass) and the pairs
    assert text.explain_evaluations(10, 1, 16, 2) == 10 * (3 * 512 / 128 + 1)
    assert text.explain_evaluations(10, 1, 16, 4) == 10 * (4 * 512 / 128 + 1)
    assert get("ft-transformer").background == "summary"
    assert get("text-transformer").token_budget == 512 and get("tfidf-logreg").token_budget is None
    assert not get("ensemble").explainable
    assert [get(n).priced_on_cpu for n in ALL] == [False, True, True, False, True, False]
    # Plans: sampled explainers cost more evaluations per row than a single pass.
    cheap = get("lightgbm").explain_evaluations(100, 5, 16, 1)
    assert cheap == 100
    assert get("ft-transformer").explain_evaluations(100, 5, 16, 1) > 10 * cheap
    assert get("tfidf-logreg").explain_evaluations(10, 1, 16, 32) == 10 * (2 * 16 * 32 + 1)
    assert get("ft-transformer").check_evaluations() > get("logreg").check_evaluations()


def test_sizes_and_labels() -> None:
    ft = registry.get_kind("ft-transformer")
    assert ft.sizes()[:2] == ("tiny", "small") and ft.default_size in ft.sizes()
    assert registry.get_kind("lightgbm").sizes() == ()
    assert ft.resolve_size(None) == "small"  # type: ignore[attr-defined]


def test_run_labels() -> None:
    def run(**fields):
        base = dict(
            id=3, model="ft-transformer", size="tiny", train_fraction=1.0, options=RunOptions()
        )
        return SimpleNamespace(**{**base, **fields})

    assert registry.run_label(run()) == "#3 FT-Transformer tiny"
    assert registry.run_label(run(train_fraction=0.5)) == "#3 FT-Transformer tiny (50% of rows)"
    assert registry.run_label(run(model="lightgbm", size="small")) == "#3 LightGBM (baseline)"
    combined = run(model="ensemble", size=None, options=RunOptions(members=(1, 2), rule="mean"))
    assert registry.run_label(combined) == "#3 Ensemble (mean: #1 + #2)"
    assert registry.run_label(run(model="retired-kind")) == "#3 retired-kind"
