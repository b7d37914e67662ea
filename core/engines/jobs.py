"""The job handlers for scoring and explaining (core/jobs.py HANDLERS): they read a job's
plain parameters and run the work on the engine it names. They live here, above
core.scoring and core.explanations, so neither of those imports the engines."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.engines import get_engine
from core.ingest import read_csv_bytes
from core.jobs import actor_from, input_path
from core.scoring import DEFAULT_CHUNK_ROWS
from core.settings import load_settings
from core.training import part_frame


def score_job(params: dict, context) -> dict:
    """The "score" job (core/jobs.py). params: run_id, input (a file under PAYOFF_HOME),
    source_name, threshold, chunk_rows, reasons_for_rows, and export (a file name in the
    exports folder) or out_path (the CLI's own file, for jobs it runs itself); total_rows is
    only for the progress bar. Result: batch_id, rows, export path, the report."""
    path = input_path(str(params["input"]))
    out = None
    if params.get("export"):
        name = str(params["export"])
        if Path(name).name != name or name.startswith("."):
            raise ValueError(f"An export name is a plain file name, got {name!r}.")
        out = load_settings().exports_dir / name
    elif params.get("out_path"):
        if not params.get("inline"):
            raise ValueError("Only a job run by its own CLI command may write outside PAYOFF_HOME.")
        out = Path(str(params["out_path"]))
    total = params.get("total_rows")

    def progress(rows: int) -> None:
        context.report({"stage": "scoring", "rows": rows, "total": total})

    context.report({"stage": "loading the model", "rows": 0, "total": total}, force=True)
    # "ray": the job's worker drives a Ray cluster (PAYOFF_RAY_ADDRESS) for the blocks.
    report = get_engine(str(params.get("engine") or "local")).score(
        int(params["run_id"]),
        path,
        source_name=str(params.get("source_name") or path.name),
        threshold=params.get("threshold"),
        out_path=out,
        chunk_rows=int(params.get("chunk_rows") or DEFAULT_CHUNK_ROWS),
        reasons_for_rows=int(params.get("reasons_for_rows") or 0),
        on_progress=progress,
        actor=actor_from(params),
    )
    context.report({"stage": "done", "rows": report.rows, "total": report.rows}, force=True)
    return {
        "batch_id": report.batch_id,
        "rows": report.rows,
        "export": str(out) if out else None,
        "report": report.to_dict(),
    }


def explain_job(params: dict, context) -> dict:
    """The "explain" job (core/jobs.py). params: run_id; input (a CSV under PAYOFF_HOME) or
    part ("test", the run's stored test part); optional background_input, n_rows, n_pairs,
    background_rows, fidelity_rows, class_index, source_name, engine ("local" or "ray").
    Result: explanation_id."""
    run_id = int(params["run_id"])

    def frame_of(relative: str) -> pd.DataFrame:
        path = input_path(relative)
        return read_csv_bytes(
            path.read_bytes(), limits=load_settings().limits, name=path.name
        ).frame

    context.report({"stage": "loading", "done": 0, "total": params.get("n_rows")}, force=True)
    frame = (
        frame_of(params["input"])
        if params.get("input")
        else part_frame(run_id, params.get("part", "test"))
    )
    background = frame_of(params["background_input"]) if params.get("background_input") else None
    options = {
        key: params[key]
        for key in ("n_rows", "n_pairs", "background_rows", "fidelity_rows", "class_index")
        if params.get(key) is not None
    }
    # "ray": the job's worker drives a Ray cluster (PAYOFF_RAY_ADDRESS) for the rows.
    result = get_engine(str(params.get("engine") or "local")).explain(
        run_id,
        frame,
        background=background,
        source_name=str(params.get("source_name") or "dataset"),
        actor=actor_from(params),
        on_progress=lambda done, total: context.report(
            {"stage": "explaining", "done": int(done), "total": int(total)}
        ),
        **options,
    )
    context.report(
        {"stage": "done", "done": len(result.output), "total": len(result.output)}, force=True
    )
    return {
        "explanation_id": result.explanation_id,
        "rows": int(len(result.output)),
        "seconds": float(result.seconds),
    }
