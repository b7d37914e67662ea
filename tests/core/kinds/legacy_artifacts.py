"""Helpers for the kind tests: rewrite a run's artifact the way Payoff wrote it before the
models layer had estimator ids of its own (config and manifest named the app's model kind)."""

from __future__ import annotations

import json
from pathlib import Path

from core.db import session_factory
from core.records import TrainingRunRecord
from models.artifacts import read_artifact, write_artifact

_RESERVED = ("format_version", "versions", "created_at", "files")


def write_legacy_artifact(run_id: int, folder: Path, kind_name: str) -> Path:
    """Copy the run's artifact to ``folder`` with ``kind_name`` (e.g. "lightgbm") where the
    old code wrote the kind (manifest, and a tabular model's model.json), then point the run
    at the copy. Returns the copy's folder."""
    with session_factory().begin() as session:
        record = session.get(TrainingRunRecord, run_id)
        assert record is not None and record.artifact_path
        source = Path(record.artifact_path)
    manifest, files = read_artifact(source)
    if "model.json" in files:
        config = json.loads(files["model.json"])
        config["kind"] = kind_name
        files["model.json"] = json.dumps(config, indent=2).encode("utf-8")
    manifest = {k: v for k, v in manifest.items() if k not in _RESERVED}
    manifest["kind"] = kind_name
    write_artifact(folder, files, manifest)
    with session_factory().begin() as session:
        session.get(TrainingRunRecord, run_id).artifact_path = str(folder)
    return folder
