"""Artifact folders: atomic writes, sha256 checks, and save/load of every model kind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import models.artifacts as artifacts
from models.artifacts import (
    ARTIFACT_FORMAT_VERSION,
    ArtifactError,
    bytes_to_state_dict,
    read_artifact,
    state_dict_to_bytes,
    write_artifact,
)
from models.tabular import MODEL_KINDS, FittedTabularModel, fit_tabular
from models.tasks import TargetEncoder
from tests.models.test_ft_transformer import SPEC, make_toy


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    dest = tmp_path / "runs" / "run-1"
    write_artifact(dest, {"a.json": b"{}", "w.bin": b"\x00\x01"}, {"kind": "test"})
    manifest, files = read_artifact(dest)
    assert files == {"a.json": b"{}", "w.bin": b"\x00\x01"}
    assert manifest["kind"] == "test"
    assert manifest["format_version"] == ARTIFACT_FORMAT_VERSION
    assert {"torch", "numpy", "lightgbm", "scikit-learn"} <= set(manifest["versions"])
    assert set(manifest["files"]) == {"a.json", "w.bin"} and manifest["created_at"]
    assert [p.name for p in dest.parent.iterdir()] == ["run-1"]  # no temp folder left


def test_existing_destination_is_refused(tmp_path: Path) -> None:
    write_artifact(tmp_path / "m", {"a": b"1"}, {})
    with pytest.raises(ArtifactError, match="already exists"):
        write_artifact(tmp_path / "m", {"a": b"2"}, {})
    assert read_artifact(tmp_path / "m")[1] == {"a": b"1"}


def test_failure_midway_leaves_nothing_behind(tmp_path: Path, monkeypatch) -> None:
    real_write = artifacts._write_synced

    def fail_on_second(path: Path, data: bytes) -> None:
        if path.name == "b":
            raise RuntimeError("disk full")
        real_write(path, data)

    monkeypatch.setattr(artifacts, "_write_synced", fail_on_second)
    with pytest.raises(RuntimeError, match="disk full"):
        write_artifact(tmp_path / "m", {"a": b"1", "b": b"2"}, {})
    assert list(tmp_path.iterdir()) == []


def test_bad_names_and_reserved_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="invalid artifact file name"):
        write_artifact(tmp_path / "m", {"../x": b"1"}, {})
    with pytest.raises(ArtifactError, match="reserved"):
        write_artifact(tmp_path / "m", {"a": b"1"}, {"files": {}})


def test_changed_missing_or_unknown_format_is_refused(tmp_path: Path) -> None:
    dest = write_artifact(tmp_path / "m", {"a": b"1", "b": b"2"}, {})
    (dest / "a").write_bytes(b"9")
    with pytest.raises(ArtifactError, match="a does not match its recorded sha256"):
        read_artifact(dest)
    (dest / "b").unlink()
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["files"].pop("a")
    (dest / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="b is missing"):
        read_artifact(dest)
    manifest["format_version"] = 99
    (dest / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format 99 is not supported"):
        read_artifact(dest)
    with pytest.raises(ArtifactError, match="manifest.json is missing"):
        read_artifact(tmp_path / "nowhere")


def test_state_dict_bytes_round_trip() -> None:
    state = {"w": torch.arange(6.0).reshape(2, 3).t(), "b": torch.tensor([1, 2])}
    back = bytes_to_state_dict(state_dict_to_bytes(state))
    torch.testing.assert_close(back["w"], state["w"])
    torch.testing.assert_close(back["b"], state["b"])


def _fit(kind: str) -> FittedTabularModel:
    train, y_train = make_toy(240, seed=1)
    val, y_val = make_toy(80, seed=2)
    target = TargetEncoder.fit(y_train, positive="yes")
    result = fit_tabular(
        kind,
        train_df=train,
        y_train=y_train,
        val_df=val,
        y_val=y_val,
        spec=SPEC,
        target=target,
        size="tiny",
        time_budget_s=2,
    )
    return result.model


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_saved_model_loads_with_identical_outputs(kind: str, tmp_path: Path) -> None:
    model = _fit(kind)
    model.save(tmp_path / kind)
    loaded = FittedTabularModel.load(tmp_path / kind)
    rows, _ = make_toy(60, seed=9)
    rows.loc[0, "c1"] = "never seen"
    rows.loc[1, "x1"] = np.nan
    for output in ("proba", "logit"):
        np.testing.assert_array_equal(
            loaded.predict_frame(rows, output=output), model.predict_frame(rows, output=output)
        )
    assert (loaded.kind, loaded.spec, loaded.target) == (model.kind, model.spec, model.target)
    assert loaded.n_params() == model.n_params()
    manifest = json.loads((tmp_path / kind / "manifest.json").read_text())
    assert manifest["kind"] == kind and manifest["task"] == "binary"


def test_corrupted_weights_are_refused(tmp_path: Path) -> None:
    _fit("ft_transformer").save(tmp_path / "m")
    weights = tmp_path / "m" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="weights.safetensors does not match"):
        FittedTabularModel.load(tmp_path / "m")


def test_predict_encoded_is_batched_consistently(tmp_path: Path) -> None:
    model = _fit("ft_transformer")
    rows, _ = make_toy(50, seed=9)
    z = model.preprocessor.encode(rows)
    whole = model.predict_encoded(z)
    np.testing.assert_allclose(model.predict_encoded(z, batch_size=7), whole, rtol=1e-5)
    assert model.predict_encoded(z[:0]).shape == (0,)
    with pytest.raises(ValueError, match="output='value'"):
        model.predict_encoded(z, output="value")
    assert isinstance(model.predict_frame(pd.DataFrame(rows.iloc[:1])), np.ndarray)
