"""The loaded form of a tabular run: models.tabular's fitted model plus the ``LoadedModel``
protocol's metadata (core/kinds/base.py).

Imported by the tabular kinds inside their fit and load only: it imports torch.
Depends on models.tabular; nothing in core depends on it at import time.
"""

from __future__ import annotations

from pathlib import Path

from models.tabular import FittedTabularModel


class TabularRunModel(FittedTabularModel):
    """A ``FittedTabularModel`` that also answers the ``LoadedModel`` protocol. Its estimator
    keeps all of FittedTabularModel's API (``predict_encoded``, ``preprocessor``, ``spec``):
    explanations and scoring read those from ``tabular_parts()``."""

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.spec.columns)

    def tabular_parts(self) -> list[FittedTabularModel]:
        return [self]

    @classmethod
    def adopt(cls, fitted: FittedTabularModel) -> TabularRunModel:
        """The same fitted model (no copy of its weights) as a TabularRunModel."""
        model = cls.__new__(cls)
        model.__dict__.update(fitted.__dict__)
        return model

    @classmethod
    def load_run(cls, folder: Path, estimator: str) -> TabularRunModel:
        """Load an artifact; one written before models had estimator ids names the app's
        model kind in its config and is read as ``estimator``."""
        return cls.adopt(FittedTabularModel.load(folder, legacy_kind=estimator))
