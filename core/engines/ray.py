"""The Ray engine: batch scoring and explanations on a Ray cluster (or a local Ray).

Scoring: the driver splits the input (a CSV, a Parquet file or a folder of them) into blocks
at record boundaries (``core.scoring.plan_blocks``, which reads nothing but the bytes needed
to find the boundaries) and checks the columns against the model. A Ray Data dataset of block
descriptions flows through an actor pool (``map_batches`` with a callable class,
``concurrency=N``); each actor loads the model once (``load_run_model``, which verifies the
artifact's sha256 manifest), reads its blocks with Payoff's own reader, types, checks and
scores them with ``core.scoring.score_chunk`` (the code local scoring runs) and returns the
rows. The driver receives them in input order and writes them through the same batch writer
as local scoring (prediction rows, export file, report; all or nothing).

Every worker must see the same files: the input, ``PAYOFF_HOME`` (artifacts) and the ledger
(``PAYOFF_DB_URL``, or the SQLite file inside ``PAYOFF_HOME``). ``PAYOFF_RAY_ADDRESS`` names
the cluster; without it a local Ray is started with ``LOCAL_CPUS`` CPUs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import resource
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core import audit
from core.access import Actor
from core.engines import RAY_ADDRESS_ENV, ray_explains
from core.runs import RunInfo, get_run, load_run_model
from core.scoring import (
    DEFAULT_CHUNK_ROWS,
    DriftCounter,
    ScoredChunk,
    ScoreReport,
    SourceBlock,
    check_columns,
    check_score_options,
    plan_blocks,
    read_block,
    resolve_threshold,
    score_chunk,
    write_batch,
)
from core.settings import REPO_ROOT, load_settings

NAME = "ray"
LOCAL_CPUS = 2  # a local Ray gets this many CPUs (pass it explicitly: see docs/STACK.md)
CONNECT_TIMEOUT_S = 5.0


# ---- the cluster ----------------------------------------------------------------------------


def _process_env() -> dict[str, str]:
    """What a worker process needs at start: Payoff's code on its path, no network hub."""
    return {
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def _payoff_env() -> dict[str, str]:
    """This process's Payoff settings, for the actors of one job (read when the job starts,
    so a changed PAYOFF_HOME is followed; the paths must be the same on every machine)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("PAYOFF_")}
    # Absolute: an actor's working folder is not this one. Without PAYOFF_DB_URL the actors
    # find the SQLite ledger inside it, as this process does.
    env["PAYOFF_HOME"] = str(Path(load_settings().home).resolve())
    return env


def _adopt(env: dict[str, str]) -> None:
    """In an actor: take the driver's Payoff settings before anything reads them."""
    for key in [k for k in os.environ if k.startswith("PAYOFF_")]:
        os.environ.pop(key)
    os.environ.update(env)
    _set_threads()


def check_reachable(address: str) -> None:
    """A fast, clear failure for an address nobody answers at (ray.init may wait a minute)."""
    if address in ("auto", "local"):
        return
    host_port = address.split("://", 1)[-1].rstrip("/")
    host, _, port = host_port.rpartition(":")
    if not host:
        host, port = host_port, "6379"
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"Cannot reach the Ray cluster at {RAY_ADDRESS_ENV}={address} ({exc}); start it "
            "(ray start --head) or correct the address."
        ) from None


def connect() -> dict[str, float]:
    """Join the cluster ``PAYOFF_RAY_ADDRESS`` names, or start a local Ray; its resources."""
    import ray

    if not ray.is_initialized():
        address = os.environ.get(RAY_ADDRESS_ENV, "").strip()
        options: dict[str, Any] = {
            "runtime_env": {"env_vars": _process_env()},
            "logging_level": logging.WARNING,
            "log_to_driver": False,
        }
        if address:
            check_reachable(address)
            try:
                ray.init(address=address, **options)
            except Exception as exc:  # noqa: BLE001 - ray raises many kinds; one line for all
                raise ValueError(
                    f"Cannot connect to the Ray cluster at {RAY_ADDRESS_ENV}={address}: "
                    f"{' '.join(str(exc).split())[:300]}"
                ) from None
        else:
            ray.init(num_cpus=LOCAL_CPUS, include_dashboard=False, **options)
    logging.getLogger("ray").setLevel(logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # plan, timing, progress-bar notes
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # results come back in input order
    context.enable_progress_bars = False
    return dict(ray.cluster_resources())


def _pool(workers: int | None, resources: dict[str, float], tasks: int) -> tuple[int, float]:
    """(actors, GPUs per actor), never more actors than tasks. Unless told how many: one per
    GPU where the cluster has GPUs, else one per CPU. A GPU each when there is one per actor."""
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}.")
    cpus = max(1, int(resources.get("CPU", 1)))
    gpus = int(resources.get("GPU", 0))
    actors = max(1, min(workers or gpus or cpus, tasks))
    return actors, 1.0 if gpus >= actors else 0.0


def _root_error(exc: BaseException) -> BaseException:
    """The deepest ValueError inside Ray's wrappers (task error -> cause -> ...), if any."""
    seen, found = set(), None
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ValueError):
            found = current
        cause = getattr(current, "cause", None)
        current = cause if isinstance(cause, BaseException) else current.__cause__
    return found or exc


def _reraise(exc: BaseException) -> None:
    """A user's error (bad input, a refused artifact) as one plain ValueError line."""
    root = _root_error(exc)
    if isinstance(root, ValueError):
        message = str(getattr(root, "cause", None) or root)
        raise ValueError(" ".join(message.split())) from None
    raise exc


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _set_threads() -> None:
    import torch

    torch.set_num_threads(load_settings().threads)


def _frame_bytes(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=True)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _bytes_frame(data: bytes) -> pd.DataFrame:
    import pyarrow as pa

    return pa.ipc.open_stream(data).read_all().to_pandas()


# ---- scoring --------------------------------------------------------------------------------


class BlockScorer:
    """A Ray actor's work: load the model once (sha256-verified), then score blocks."""

    def __init__(self, run_id: int, threshold: float | None, env: dict[str, str]) -> None:
        _adopt(env)
        self.threshold = threshold
        # A refusal is reported by the first call: Ray retries a failing constructor and then
        # says only that the actor died.
        self.error: ValueError | None = None
        try:
            self.run = get_run(run_id)
            self.model = load_run_model(run_id)  # refuses an artifact changed after writing
        except ValueError as exc:
            self.error = exc

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Scored blocks; a user's error (bad input, a refused artifact) comes back as a row
        with its message: Ray's exception wrappers do not keep the original error."""
        try:
            if self.error is not None:
                raise self.error
            return self._score(batch)
        except ValueError as exc:
            return pd.DataFrame(
                {"input": [b""], "outputs": [b""], "stats": ["{}"], "error": [str(exc)]}
            )

    def _score(self, batch: pd.DataFrame) -> pd.DataFrame:
        out: dict[str, list] = {"input": [], "outputs": [], "stats": [], "error": []}
        for text in batch["block"]:
            fields = json.loads(text)
            fields["row_groups"] = tuple(fields["row_groups"])
            block = SourceBlock(**fields)
            chunk = read_block(block)
            if len(chunk) == 0:
                continue
            result = score_chunk(self.run, self.model, chunk, block.delimiter, self.threshold)
            stats = {
                "delimiter": block.delimiter,
                "rows": len(chunk),
                "unseen": result.unseen,
                "drift": result.drift.state(),
                "pid": os.getpid(),
                "node": socket.gethostname(),
                "peak_rss_mb": _peak_rss_mb(),
            }
            out["input"].append(_frame_bytes(chunk))
            out["outputs"].append(_frame_bytes(result.outputs))
            out["stats"].append(json.dumps(stats, default=float))
            out["error"].append("")
        return pd.DataFrame(out)


def _input_path(source: bytes | str | Path, source_name: str) -> Path:
    """A path every worker can read: bytes (an upload) are stored under PAYOFF_HOME first."""
    if not isinstance(source, (bytes, bytearray)):
        return Path(source)
    digest = hashlib.sha256(source).hexdigest()
    suffix = Path(source_name).suffix.lower() or ".csv"
    folder = load_settings().home / "score-inputs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}{suffix}"
    if not path.exists():
        tmp = folder / f".{digest}.{os.getpid()}.partial"
        tmp.write_bytes(bytes(source))
        os.replace(tmp, path)
    return path


def score(
    run_id: int,
    source: bytes | str | Path,
    *,
    source_name: str = "upload.csv",
    threshold: float | None = None,
    out_path: Path | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    reasons_for_rows: int = 0,
    on_progress: Callable[[int], None] | None = None,
    model: Any = None,
    workers: int | None = None,
    actor: Actor | None = None,
) -> ScoreReport:
    """``core.scoring.score_source`` on Ray: same arguments, same batch, same rows and order.

    ``chunk_rows`` is the block size; ``workers`` the number of actors (default: one per CPU
    of the cluster). ``model`` (optional) is used on this process only, for reasons.
    """
    import ray

    actor = audit.authorize(actor, "score", "run", run_id)
    check_score_options(threshold, chunk_rows)
    run = get_run(run_id)
    if run.status != "succeeded" or run.artifact_path is None:
        raise ValueError(f"Run #{run_id} has no trained model (status: {run.status}).")
    threshold, threshold_source = resolve_threshold(run, threshold)
    if not isinstance(source, (bytes, bytearray)) and not Path(source).exists():
        raise ValueError(f"No such file or folder: {source}")
    resources = connect()  # an unreachable cluster stops here: nothing written yet
    plan = plan_blocks(_input_path(source, source_name), chunk_rows, source_name)
    check_columns(run, plan.columns)
    actors, gpus = _pool(workers, resources, len(plan.blocks))
    items = [{"block": json.dumps(dataclasses.asdict(b))} for b in plan.blocks]
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        BlockScorer,
        compute=ray.data.ActorPoolStrategy(size=actors),  # the pool: `concurrency=N`
        fn_constructor_kwargs={"run_id": run_id, "threshold": threshold, "env": _payoff_env()},
        batch_size=1,
        batch_format="pandas",
        num_cpus=1,
        num_gpus=gpus,
    )
    peaks: dict[str, float] = {}
    first: dict[str, float] = {}  # when the first block came back: the pool's start-up cost
    started = time.perf_counter()
    loaded: list[Any] = [model] if model is not None else []

    def reasons_model() -> Any:
        if not loaded:
            loaded.append(load_run_model(run_id))
        return loaded[0]

    def results() -> Iterator[ScoredChunk]:
        try:
            for row in dataset.iter_rows():
                if row["error"]:
                    raise ValueError(" ".join(row["error"].split()))
                stats = json.loads(row["stats"])
                if not first:
                    first["seconds"] = time.perf_counter() - started
                    first["rows"] = stats["rows"]
                key = f"{stats['node']}:{stats['pid']}"
                peaks[key] = max(peaks.get(key, 0.0), stats["peak_rss_mb"])
                yield ScoredChunk(
                    chunk=_bytes_frame(row["input"]),
                    delimiter=stats["delimiter"],
                    outputs=_bytes_frame(row["outputs"]),
                    unseen=stats["unseen"],
                    drift=DriftCounter.from_state(stats["drift"]),
                )
        except Exception as exc:  # noqa: BLE001 - unwrap Ray's wrappers to the user's error
            _reraise(exc)

    return write_batch(
        run,
        results(),
        source_name=source_name,
        threshold=threshold,
        threshold_source=threshold_source,
        out_path=out_path,
        reasons_for_rows=reasons_for_rows,
        reasons_model=reasons_model,
        actor=actor,
        on_progress=on_progress,
        engine=NAME,
        engine_details=lambda: {
            "workers": actors,
            "gpus_per_worker": gpus,
            "blocks": len(plan.blocks),
            "worker_peak_rss_mb": peaks,
            "seconds_to_first_block": first.get("seconds"),
            "rows_in_first_block": first.get("rows"),
        },
    )


# ---- explanations ---------------------------------------------------------------------------


class RowExplainer:
    """A Ray actor's work: load the model once, then explain slices of the encoded rows."""

    def __init__(
        self, run_id: int, env: dict[str, str], background: np.ndarray, weights: np.ndarray, **kw
    ) -> None:
        _adopt(env)
        self.background, self.weights, self.options = background, weights, kw
        self.error: ValueError | None = None  # reported by the first call (see BlockScorer)
        try:
            self.run = get_run(run_id)
            self.model = load_run_model(run_id)
        except ValueError as exc:
            self.error = exc

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        try:  # a user's error comes back as data (see BlockScorer)
            if self.error is not None:
                raise self.error
            return self._explain(batch)
        except ValueError as exc:
            return pd.DataFrame(
                {"start": [0], "values": [b""], "base": [0.0], "method": [""], "error": [str(exc)]}
            )

    def _explain(self, batch: pd.DataFrame) -> pd.DataFrame:
        from core.explanations import tabular_values

        out: dict[str, list] = {"start": [], "values": [], "base": [], "method": [], "error": []}
        for start, rows in zip(batch["start"], batch["z"], strict=True):
            z = np.load(io.BytesIO(rows))
            values, base, method = tabular_values(
                self.run,
                self.model,
                z,
                self.background,
                self.weights,
                row_offset=int(start),
                **self.options,
            )
            buffer = io.BytesIO()
            np.save(buffer, values)
            out["start"].append(int(start))
            out["values"].append(buffer.getvalue())
            out["base"].append(base)
            out["method"].append(method)
            out["error"].append("")
        return pd.DataFrame(out)


def _array_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def explain(run_id: int, frame: pd.DataFrame, *, workers: int | None = None, **options: Any):
    """``core.explanations.explain_frame`` with the rows' values computed by Ray actors (each
    row seeded by its position, so the values equal local ones); tabular models only."""
    import ray

    from core.explanations import explain_frame

    run: RunInfo = get_run(run_id)
    if not ray_explains(run.model):
        raise ValueError(
            f"The Ray engine explains tabular models; run #{run_id} is a text model "
            f"({run.model}): explain it with the local engine."
        )
    resources = connect()

    def compute(run, model, z, background, weights, *, on_progress=None, **kwargs):
        actors, gpus = _pool(workers, resources, len(z))
        # A few slices per actor keep them busy when rows cost different amounts.
        bounds = np.linspace(0, len(z), min(len(z), 4 * actors) + 1).astype(int)
        items = [
            {"start": int(a), "z": _array_bytes(z[a:b])}
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            if b > a
        ]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            RowExplainer,
            compute=ray.data.ActorPoolStrategy(size=actors),  # the pool: `concurrency=N`
            fn_constructor_kwargs={
                "run_id": run.id,
                "env": _payoff_env(),
                "background": background,
                "weights": weights,
                **kwargs,
            },
            batch_size=1,
            batch_format="pandas",
            num_cpus=1,
            num_gpus=gpus,
        )
        parts, base, method = [], 0.0, ""
        try:
            for row in dataset.iter_rows():
                if row["error"]:
                    raise ValueError(" ".join(row["error"].split()))
                values = np.load(io.BytesIO(row["values"]))
                parts.append(values)
                base, method = float(row["base"]), str(row["method"])
                if on_progress is not None:
                    on_progress(int(row["start"]) + len(values), len(z))
        except Exception as exc:  # noqa: BLE001 - unwrap Ray's wrappers to the user's error
            _reraise(exc)
        values = np.concatenate(parts) if parts else np.zeros_like(z)
        return values, base, f"{method} on Ray ({actors} workers)"

    return explain_frame(run_id, frame, compute_values=compute, **options)
