"""Command line: ``python -m core.cli COMMAND ...`` from the repository root.

Contract (used by acceptance checks): the last stdout line of every command is one JSON object;
errors go to stderr as one clear line and the exit status is non-zero, never a traceback.
The acting user is PAYOFF_USER, else the OS user (core/access.py); every write and download is
written to the audit trail under that name.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from core.ingest import IngestError
from core.kinds import registry


class CliError(Exception):
    """An error whose message is shown to the user as is."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one ``error:`` line like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message} (see: {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _emit(payload: dict) -> None:
    print(json.dumps(payload, default=str))


def _read_csv_arg(path: str) -> bytes:
    file = Path(path)
    if not file.is_file():
        raise CliError(f"No such file: {path}")
    return file.read_bytes()


# ---- datasets -------------------------------------------------------------------------------


def cmd_datasets_add(args: argparse.Namespace) -> dict:
    from core.datasets import get_dataset, register_dataset

    if args.target:
        info = get_dataset(_dataset_for_csv(args.path, args.target, args.name))
    else:
        info = register_dataset(_read_csv_arg(args.path), args.name or Path(args.path).name)
    return {
        "dataset_id": info.id,
        "name": info.name,
        "rows": info.n_rows,
        "columns": info.n_columns,
        "target": info.roles.target,
    }


def cmd_datasets_list(_args: argparse.Namespace) -> dict:
    from core.datasets import list_datasets

    return {
        "datasets": [
            {
                "dataset_id": d.id,
                "name": d.name,
                "rows": d.n_rows,
                "columns": d.n_columns,
                "target": d.roles.target,
                "use_case": d.use_case,
                "runs": d.n_runs,
            }
            for d in list_datasets()
        ]
    }


def cmd_datasets_delete(args: argparse.Namespace) -> dict:
    from core.datasets import delete_dataset

    return {"deleted": delete_dataset(args.dataset_id, cascade=args.cascade)}


# ---- audit ----------------------------------------------------------------------------------


def cmd_audit_list(args: argparse.Namespace) -> dict:
    from core.audit import list_events

    events = list_events(user=args.user, since=args.since)
    return {"events": [e.to_dict() for e in events]}


# ---- training -------------------------------------------------------------------------------


def _dataset_for_csv(path: str, target: str, name: str | None = None) -> int:
    """Register the CSV (or find it: the same bytes give the same dataset) with this target.
    A target without values or with one class is refused, naming the column."""
    from core.datasets import Roles, get_dataset, register_dataset, set_roles

    data = _read_csv_arg(path)
    if not target.strip():
        raise CliError("--target needs a column name")
    info = register_dataset(data, name or Path(path).name, roles=Roles(target=target))
    if target not in info.schema.names:
        raise CliError(
            f"Column {target!r} is not in {path}; columns: {', '.join(info.schema.names)}"
        )
    if info.roles.target != target:
        features = tuple(c for c in info.schema.default_features() if c != target)
        info = set_roles(
            info.id,
            Roles(
                target=target,
                features=features,
                money_column=info.roles.money_column,
                id_column=info.roles.id_column,
            ),
            info.use_case,
        )
    return get_dataset(info.id).id


def cmd_train(args: argparse.Namespace) -> dict:
    from core.jobs import run_inline
    from core.runs import get_run
    from core.training import create_run

    if registry.get_kind(args.model).combines_runs:
        if not args.members or len(args.members) < 2:
            raise CliError(f"--model {args.model} needs --members RUN_ID RUN_ID [...]")
        first = get_run(args.members[0])
        dataset_id, target, seed = first.dataset_id, first.target, first.seed
    else:
        if not args.csv or not args.target:
            raise CliError("train needs --csv PATH and --target COLUMN")
        dataset_id, target, seed = _dataset_for_csv(args.csv, args.target), args.target, args.seed
    run_id = create_run(
        dataset_id,
        args.model,
        target=target,
        members=args.members,
        rule=args.rule,
        positive_class=args.positive,
        size=args.size,
        seed=seed,
        time_budget_s=args.time_budget,
        text_columns=args.text_column,
        allow_pii=args.allow_pii,
        tune=args.tune,
    )
    # Trained here, as a job of this process: heartbeated, so no other machine takes it for dead.
    run_inline("train", {"run_id": run_id}, run_id=run_id)
    run = get_run(run_id)
    if run.status != "succeeded":
        raise CliError(f"run {run.id} {run.status}: {run.error or 'no model was trained'}")
    metrics: dict = run.metrics.figures()
    metrics["interval"] = list(run.metrics.interval) if run.metrics.interval else None
    return {
        "run_id": run.id,
        "dataset_id": dataset_id,
        "model": run.model,
        "task": run.task,
        "positive_class": run.positive_class,
        "classes": list(run.classes),
        "metrics": metrics,
        "device": run.device,
        "train_seconds": run.train_seconds,
        "params": run.params,
        "flops_per_row": run.flops_per_row,
        "tuning": run.metrics.extra.get("tuning"),
    }


def cmd_runs_list(args: argparse.Namespace) -> dict:
    from core.runs import list_runs

    runs = []
    for run in list_runs(args.dataset):
        name, value, interval = run.headline
        runs.append(
            {
                "run_id": run.id,
                "dataset_id": run.dataset_id,
                "status": run.status,
                "model": run.model,
                "size": run.size,
                "target": run.target,
                "task": run.task,
                "headline_metric": name or None,
                "headline_value": value,
                "interval": list(interval) if interval else None,
                "train_seconds": run.train_seconds,
                "device": run.device,
                "error": run.error,
            }
        )
    return {"runs": runs}


def _job_result(job) -> dict:
    """A finished inline job's result, or its error as the CLI's one line."""
    if job.status != "succeeded":
        raise CliError(f"job {job.id} {job.status}: {job.error or 'no result'}")
    return job.result or {}


def _engine_options(args: argparse.Namespace) -> dict:
    if args.workers is not None and args.engine != "ray":
        raise CliError("--workers applies to --engine ray only")
    return {"workers": args.workers} if args.engine == "ray" else {}


def cmd_score(args: argparse.Namespace) -> dict:
    from core.jobs import run_inline, store_input
    from core.runs import get_run

    path = Path(args.csv)
    if not path.exists():
        raise CliError(f"No such file: {args.csv}")
    get_run(args.run)  # an unknown run is refused before the file is copied
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"The threshold must be between 0 and 1, got {args.threshold}.")
    options = _engine_options(args)
    if args.engine == "ray" or not path.is_file():
        # Ray's driver runs here; a folder of CSV / Parquet files is read where it lies.
        from core.engines import get_engine

        scored = get_engine(args.engine).score(
            args.run,
            path,
            source_name=path.name,
            threshold=args.threshold,
            out_path=Path(args.out),
            reasons_for_rows=args.reasons,
            **options,
        )
        result = {"batch_id": scored.batch_id, "rows": scored.rows, "report": scored.to_dict()}
    else:
        params = {
            "run_id": args.run,
            "input": store_input(path.read_bytes(), suffix=path.suffix or ".csv"),
            "source_name": path.name,
            "threshold": args.threshold,
            "out_path": str(Path(args.out).resolve()),
            "reasons_for_rows": args.reasons,
        }
        result = _job_result(run_inline("score", params, run_id=args.run))
    report = result["report"]
    from core.audit import record_download

    record_download(None, "score_batch", result["batch_id"], "csv file")
    return {
        "batch_id": result["batch_id"],
        "rows": result["rows"],
        "seconds": report["seconds"],
        "rows_per_second": report["rows_per_second"],
        "threshold": report["threshold"],
        # "--threshold" (given here), or the run's operating threshold: "validation" (chosen
        # on its validation rows) or "user" (set by the analyst); null for non-binary runs.
        "threshold_source": "--threshold"
        if report.get("threshold_source") == "given"
        else report.get("threshold_source"),
        "reasons_rows": report.get("reasons_rows"),
        "reasons_seconds": report.get("reasons_seconds"),
        "out": str(Path(args.out)),
        "extra_columns": report["extra_columns"],
        "unseen_categories": report["unseen_categories"],
        "drift": report["drift"],
        "warnings": report["warnings"],
        "engine": report.get("engine", "local"),
    }


def _csv_frame(path: str):
    from core.ingest import read_csv_bytes
    from core.settings import load_settings

    return read_csv_bytes(
        _read_csv_arg(path), limits=load_settings().limits, name=Path(path).name
    ).frame


def cmd_explain(args: argparse.Namespace) -> dict:
    from core.explanations import get_explanation
    from core.exports import to_safe_csv
    from core.jobs import run_inline, store_input

    options = _engine_options(args)
    frame = _csv_frame(args.csv)  # read here first: a bad file is refused before any job
    n_rows = None if args.rows is None else min(args.rows, len(frame))
    if args.engine == "ray":
        from core.engines import get_engine

        background = _csv_frame(args.background) if args.background else None
        result = get_engine("ray").explain(
            args.run,
            frame,
            background=background,
            n_rows=n_rows,
            source_name=Path(args.csv).name,
            **options,
        )
    else:
        params = {
            "run_id": args.run,
            "input": store_input(_read_csv_arg(args.csv)),
            "n_rows": n_rows,
            "source_name": Path(args.csv).name,
        }
        if args.background:
            _csv_frame(args.background)
            params["background_input"] = store_input(_read_csv_arg(args.background))
        result = get_explanation(
            _job_result(run_inline("explain", params, run_id=args.run))["explanation_id"]
        )
    if args.out:
        out = Path(args.out)
        table = result.rows.drop(columns=["row_number", "text", "base_value"], errors="ignore")
        values = {c: result.values[:, j] for j, c in enumerate(result.columns)}
        export = (
            table.iloc[:, :0].assign(**values)
            if result.kind == "tabular"
            else __import__("pandas").DataFrame(values)
        )
        export["base_value"] = result.base_value
        tmp = out.with_name(f".{out.name}.partial")
        to_safe_csv(export, tmp)
        tmp.replace(out)
        from core.audit import record_download

        record_download(None, "explanation", result.explanation_id, "csv file")
    fidelity = result.quality.get("fidelity") or {}
    return {
        "explanation_id": result.explanation_id,
        "rows": int(len(result.output)),
        "seconds": result.seconds,
        "ms_per_row": result.ms_per_row,
        "output": result.output_space,
        "method": result.method,
        "additivity_max_abs_error": result.additivity_error,
        "fidelity": {
            "spearman": fidelity.get("spearman"),
            "max_abs_error": fidelity.get("max_abs_error"),
            "rows": fidelity.get("rows"),
            "reference": fidelity.get("reference"),
        },
        # Against the data (random training rows), not only the explanation's own background.
        "fidelity_broad": {
            key: broad.get(key) for key in ("spearman", "max_abs_error", "rows", "reference")
        }
        if (broad := result.quality.get("fidelity_broad") or {})
        else None,
        "engine": args.engine,
    }


def cmd_roi(args: argparse.Namespace) -> dict:
    from core.verdict import parse_vs, roi_summary

    assumptions = {}
    if args.assumptions:
        try:
            assumptions = json.loads(Path(args.assumptions).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CliError(f"Cannot read the assumptions file {args.assumptions}: {exc}") from None
        if not isinstance(assumptions, dict):
            raise CliError("The assumptions file must hold one JSON object.")
    frame = _csv_frame(args.csv) if args.csv else None
    return roi_summary(
        args.run, args.use_case, frame=frame, assumptions=assumptions, vs=parse_vs(args.vs)
    )


def cmd_fairness(args: argparse.Namespace) -> dict:
    from core.fairness import run_fairness

    path = Path(args.csv)
    if not path.is_file():
        raise CliError(f"No such file: {args.csv}")
    report = run_fairness(
        args.run,
        args.group,
        source=path,
        source_name=path.name,
        threshold=args.threshold,
        bands=args.bands,
    )
    return report.to_dict()


def cmd_counterfactual(args: argparse.Namespace) -> dict:
    from core.counterfactuals import counterfactuals_for_file, suggest_immutable
    from core.runs import get_run

    path = Path(args.csv)
    if not path.is_file():
        raise CliError(f"No such file: {args.csv}")
    immutable = args.immutable or []
    threshold, found = counterfactuals_for_file(
        args.run,
        path,
        source_name=path.name,
        threshold=args.threshold,
        immutable=immutable,
        max_rows=args.rows,
    )
    features = list(get_run(args.run).features)
    return {
        "run_id": args.run,
        "threshold": threshold,
        "immutable": immutable,
        "suggested_immutable": [c for c in suggest_immutable(features) if c not in immutable],
        "counterfactuals": [c.to_dict() for c in found],
    }


def cmd_worker(args: argparse.Namespace) -> dict:
    """Claim and run queued jobs from the ledger (train, score, explain) until stopped, or
    until a bound: --once, --max-jobs N, --idle-exit SECONDS. --run ID trains those runs (in
    this order) and stops. --local: the one local worker of this PAYOFF_HOME (what pages
    start); it exits at once when another holds that role."""
    from core.jobs import local_worker_lock, submit_training, work, worker_name

    def report(job) -> None:
        line = {"job_id": job.id, "kind": job.kind, "status": job.status, "attempts": job.attempts}
        print(json.dumps(line), flush=True)

    max_jobs = 1 if args.once else args.max_jobs
    idle_exit = args.idle_exit if args.idle_exit is not None or not args.once else 0.0
    with contextlib.ExitStack() as stack:
        if args.local and not stack.enter_context(local_worker_lock()):
            return {"worker": worker_name(), "jobs": [], "note": "another local worker runs"}
        if args.run:
            job_ids = submit_training(args.run)
            done = work(job_ids=job_ids, on_job=report)
        else:
            done = work(max_jobs=max_jobs, idle_exit_s=idle_exit, on_job=report)
    return {
        "worker": worker_name(),
        "jobs": [
            {
                "job_id": job.id,
                "kind": job.kind,
                "status": job.status,
                "run_id": job.run_id,
                "attempts": job.attempts,
                "error": job.error,
            }
            for job in done
        ],
        "runs": [
            {"run_id": job.run_id, "status": job.status} for job in done if job.kind == "train"
        ],
    }


def _engine_arguments(parser: argparse.ArgumentParser) -> None:
    from core.engines import ENGINES

    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local: this process; ray: a Ray cluster (PAYOFF_RAY_ADDRESS) or a local Ray",
    )
    parser.add_argument("--workers", type=int, help="Ray actors (default: one per CPU)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    datasets = commands.add_parser("datasets", help="register and list datasets")
    datasets_sub = datasets.add_subparsers(dest="action", required=True, parser_class=_Parser)
    add = datasets_sub.add_parser("add", help="register a CSV file")
    add.add_argument("path")
    add.add_argument("--name")
    add.add_argument("--target")
    add.set_defaults(handler=cmd_datasets_add)
    datasets_sub.add_parser("list", help="list datasets").set_defaults(handler=cmd_datasets_list)
    remove = datasets_sub.add_parser(
        "delete", help="erase a dataset (admin); --cascade also erases everything derived from it"
    )
    remove.add_argument("dataset_id", type=int)
    remove.add_argument(
        "--cascade",
        action="store_true",
        help="also its runs, scores, explanations, scenarios, artifacts and stored exports",
    )
    remove.set_defaults(handler=cmd_datasets_delete)

    audit = commands.add_parser("audit", help="the audit trail (admin)")
    audit_sub = audit.add_subparsers(dest="action", required=True, parser_class=_Parser)
    audit_list = audit_sub.add_parser("list", help="events, oldest first")
    audit_list.add_argument("--user")
    audit_list.add_argument("--since", help="ISO date or time (UTC unless it has an offset)")
    audit_list.set_defaults(handler=cmd_audit_list)

    train = commands.add_parser("train", help="train a model on a CSV (registers it if needed)")
    train.add_argument("--csv")
    train.add_argument("--target")
    train.add_argument("--model", required=True, choices=MODEL_CHOICES)
    train.add_argument("--positive", help="the class to flag (binary targets)")
    train.add_argument("--size", help="FT-Transformer size preset: tiny, small, default")
    train.add_argument("--time-budget", type=float, default=120.0, dest="time_budget")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--text-column", action="append", dest="text_column")
    train.add_argument(
        "--allow-pii",
        action="store_true",
        dest="allow_pii",
        help="allow columns flagged as personal data among the features",
    )
    train.add_argument(
        "--tune",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="tabular models: spend the time budget tuning on the validation part (Optuna); "
        "on by default, as on the Train page (--no-tune: the defaults alone)",
    )
    train.add_argument("--members", type=int, nargs="+", help="ensemble: run ids to combine")
    train.add_argument("--rule", choices=("mean", "stack"), default="stack", help="ensemble rule")
    train.set_defaults(handler=cmd_train)

    runs = commands.add_parser("runs", help="training runs")
    runs_sub = runs.add_subparsers(dest="action", required=True, parser_class=_Parser)
    runs_list = runs_sub.add_parser("list")
    runs_list.add_argument("--dataset", type=int)
    runs_list.set_defaults(handler=cmd_runs_list)

    score = commands.add_parser(
        "score", help="score a CSV, a Parquet file or a folder of them with a trained run"
    )
    score.add_argument("--run", type=int, required=True)
    score.add_argument("--csv", required=True)
    score.add_argument("--out", required=True)
    score.add_argument(
        "--threshold", type=float, help="flag P(positive) >= this; default: the run's operating one"
    )
    score.add_argument(
        "--reasons", type=int, default=0, help="add top-3 reasons to the first N rows"
    )
    _engine_arguments(score)
    score.set_defaults(handler=cmd_score)

    explain = commands.add_parser("explain", help="SHAP values for rows of a CSV")
    explain.add_argument("--run", type=int, required=True)
    explain.add_argument("--csv", required=True)
    explain.add_argument("--background")
    explain.add_argument("--rows", type=int)
    explain.add_argument("--out")
    _engine_arguments(explain)
    explain.set_defaults(handler=cmd_explain)

    roi = commands.add_parser("roi", help="ROI of a run for a use case")
    roi.add_argument("--run", type=int, required=True)
    roi.add_argument("--use-case", required=True, dest="use_case")
    roi.add_argument("--csv", help="labelled CSV to value on (default: the run's test rows)")
    roi.add_argument("--assumptions")
    roi.add_argument(
        "--vs",
        help="champion: a run id or 'status_quo' (default: the best baseline on the same split)",
    )
    roi.set_defaults(handler=cmd_roi)

    fairness = commands.add_parser(
        "fairness", help="selection rate, TPR, FPR and AUC per group of a labelled CSV"
    )
    fairness.add_argument("--run", type=int, required=True)
    fairness.add_argument("--csv", required=True, help="labelled rows (with the target column)")
    fairness.add_argument("--group", required=True, help="the column whose groups to compare")
    fairness.add_argument("--threshold", type=float, help="default: the run's threshold")
    fairness.add_argument(
        "--bands", type=int, default=4, help="quantile bands for numeric columns (0: none)"
    )
    fairness.set_defaults(handler=cmd_fairness)

    counterfactual = commands.add_parser(
        "counterfactual", help="the smallest change (<= 3 columns) that flips each decision"
    )
    counterfactual.add_argument("--run", type=int, required=True)
    counterfactual.add_argument("--csv", required=True)
    counterfactual.add_argument("--threshold", type=float, help="default: the run's threshold")
    counterfactual.add_argument(
        "--immutable", nargs="+", default=[], help="columns that must not change"
    )
    counterfactual.add_argument("--rows", type=int, help="only the first N rows")
    counterfactual.set_defaults(handler=cmd_counterfactual)

    worker = commands.add_parser(
        "worker", help="run queued jobs (train, score, explain) from the ledger"
    )
    worker.add_argument("--run", type=int, action="append", help="train these runs, then stop")
    worker.add_argument("--once", action="store_true", help="run one job, then stop")
    worker.add_argument("--max-jobs", type=int, dest="max_jobs", help="stop after N jobs")
    worker.add_argument(
        "--idle-exit", type=float, dest="idle_exit", help="stop after SECONDS without a job"
    )
    worker.add_argument("--local", action="store_true", help=argparse.SUPPRESS)
    worker.set_defaults(handler=cmd_worker)
    return parser


MODEL_CHOICES = registry.names()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from core.startup import start

        start()
        payload = args.handler(args)
    except (CliError, IngestError, ValueError, FileNotFoundError, PermissionError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the contract is one line, never a traceback
        print(f"error: unexpected {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return 1
    _emit(payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
