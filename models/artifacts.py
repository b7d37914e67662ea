"""Model artifact folders: written atomically, verified by sha256 on every load.

A folder holds plain files (JSON, safetensors, LightGBM text) plus `manifest.json`, which
records the format version, library versions and each file's sha256. It is assembled in a
hidden temp folder beside the destination and renamed into place, so a crash never leaves a
half-written model where the app would look for one. Nothing here unpickles.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

ARTIFACT_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_RESERVED_KEYS = ("format_version", "versions", "created_at", "files")
_VERSIONED_PACKAGES = {
    "torch": "torch",
    "transformers": "transformers",
    "rtdl_revisiting_models": "rtdl_revisiting_models",
    "lightgbm": "lightgbm",
    "scikit-learn": "scikit-learn",
    "numpy": "numpy",
}


class ArtifactError(ValueError):
    """A model folder is missing, incomplete, changed after writing, or of an unknown format."""


def write_artifact(dest: Path, files: dict[str, bytes], manifest: dict[str, Any]) -> Path:
    """Write `files` and a manifest into the new folder `dest`, all or nothing."""
    dest = Path(dest)
    _check_files(files)
    clash = [k for k in _RESERVED_KEYS if k in manifest]
    if clash:
        raise ArtifactError(f"manifest keys are reserved for the writer: {clash}")
    if dest.exists():
        raise ArtifactError(f"artifact folder already exists: {dest}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # The writer's pid is in the name so a cleanup can tell a live writer from a dead one.
    tmp = dest.parent / f".{dest.name}.tmp-pid{os.getpid()}-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        for name, data in files.items():
            _write_synced(tmp / name, data)
        full = {
            **manifest,
            "format_version": ARTIFACT_FORMAT_VERSION,
            "versions": library_versions(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": {name: _sha256(data) for name, data in files.items()},
        }
        text = json.dumps(full, indent=2, sort_keys=True, allow_nan=False)
        _write_synced(tmp / MANIFEST, text.encode("utf-8"))  # last: its presence means complete
        _fsync_dir(tmp)
        os.rename(tmp, dest)  # fails instead of merging if dest appeared meanwhile
        _fsync_dir(dest.parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise ArtifactError(f"could not write artifact {dest}: {exc}") from exc
        raise
    return dest


def read_artifact(folder: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(manifest, files) after checking the format version and every file's sha256."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"no model artifact at {folder}: {MANIFEST} is missing")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{MANIFEST} in {folder} is not valid JSON: {exc}") from exc
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != ARTIFACT_FORMAT_VERSION:
        raise ArtifactError(
            f"artifact format {version!r} is not supported (expected "
            f"{ARTIFACT_FORMAT_VERSION}); it was written by another version of Payoff"
        )
    recorded = manifest.get("files")
    if not isinstance(recorded, dict) or not recorded:
        raise ArtifactError(f"{MANIFEST} in {folder} lists no files")
    return manifest, {name: _verified(folder, name, digest) for name, digest in recorded.items()}


def _verified(folder: Path, name: str, digest: str) -> bytes:
    if not _safe_name(name):
        raise ArtifactError(f"artifact lists an unsafe file name {name!r}")
    path = folder / name
    if not path.is_file():
        raise ArtifactError(f"artifact file {name} is missing from {folder}")
    data = path.read_bytes()
    if _sha256(data) != digest:
        raise ArtifactError(
            f"artifact file {name} does not match its recorded sha256: "
            "the model folder was changed or corrupted"
        )
    return data


def state_dict_to_bytes(state_dict: dict[str, torch.Tensor]) -> bytes:
    """Weights as safetensors bytes (contiguous CPU copies: safetensors refuses views)."""
    return safetensors_save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()})


def bytes_to_state_dict(data: bytes) -> dict[str, torch.Tensor]:
    """Inverse of `state_dict_to_bytes`; safetensors never executes code while loading."""
    return safetensors_load(data)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries whose behaviour a saved model depends on."""
    versions = {}
    for key, dist in _VERSIONED_PACKAGES.items():
        try:
            versions[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _check_files(files: dict[str, bytes]) -> None:
    if not files:
        raise ArtifactError("an artifact needs at least one file")
    for name, data in files.items():
        if not _safe_name(name) or name == MANIFEST:
            raise ArtifactError(f"invalid artifact file name {name=}")
        if not isinstance(data, bytes | bytearray):
            raise ArtifactError(f"artifact file {name} must be bytes, got {type(data).__name__}")


def _safe_name(name: str) -> bool:
    """A plain file name: no folders, no hidden files, nothing that escapes the folder."""
    return (
        isinstance(name, str)
        and bool(name)
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    """Persist the folder entry itself (the rename), not only the files' contents."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
