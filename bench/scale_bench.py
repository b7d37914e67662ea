"""Scale-out benchmark: the same generated rows scored locally and on Ray (1 and 2 workers).

For each size: rows/s, the driver's peak RSS and each Ray worker's own peak RSS (the actors
report ``ru_maxrss`` with every block). Target: each Ray worker's peak at the largest size
within 1.5x of its peak at the smallest (blocks keep memory flat). Also the SQLite write rate
of prediction rows. Each measurement runs in its own process (its peak RSS is its own), with
the load average before and after it (the machine may be shared).

    .venv/bin/python bench/scale_bench.py [--sizes 100000 5000000] [--workers 1 2]
        [--models lightgbm] [--quick] [--json bench/results/scale.json]

``--quick``: 20,000 rows, for CI (seconds of scoring, plus Ray's start-up).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from score_bench import child_write_rate, make_csv  # noqa: E402

DEFAULT_OUT = REPO / "bench" / "results" / "scale.json"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_score(
    engine: str, run_id: int, csv: str, out: str, workers: int | None, block_rows: int
) -> dict:
    from core.engines import get_engine
    from core.startup import start

    start()
    options = {"workers": workers} if engine == "ray" else {}
    if engine == "ray":
        from core.engines.ray import connect

        started = time.perf_counter()
        connect()  # a local Ray (PAYOFF_RAY_ADDRESS unset): its start is reported apart
        ray_start_s = time.perf_counter() - started
    load_before = os.getloadavg()
    started = time.perf_counter()
    report = get_engine(engine).score(
        run_id,
        Path(csv),
        source_name=Path(csv).name,
        out_path=Path(out),
        chunk_rows=block_rows,
        **options,
    )
    seconds = time.perf_counter() - started
    figures = {
        "engine": engine,
        "workers": workers,
        "rows": report.rows,
        "seconds": seconds,
        "rows_per_second": report.rows / seconds,
        "driver_peak_rss_mb": _peak_rss_mb(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    if engine == "ray":
        peaks = report.engine_details["worker_peak_rss_mb"]
        details = report.engine_details
        # Once the pool is up (actors started, models loaded): the rate a long job settles at.
        steady = (report.rows - details["rows_in_first_block"]) / max(
            1e-9, report.seconds - details["seconds_to_first_block"]
        )
        figures.update(
            ray_start_seconds=ray_start_s,
            seconds_to_first_block=details["seconds_to_first_block"],
            rows_per_second_after_first_block=steady
            if report.rows > details["rows_in_first_block"]
            else None,
            blocks=report.engine_details["blocks"],
            worker_peak_rss_mb=sorted(peaks.values()),
            workers_seen=len(peaks),
        )
    return figures


def _save(path: str, results: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(results, indent=2))


def _child(args: list[str], env: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, *args], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {' '.join(args[:2])} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 5_000_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=["lightgbm"])
    parser.add_argument("--write-rows", type=int, default=1_000_000, dest="write_rows")
    parser.add_argument(
        "--block-rows", type=int, default=50_000, dest="block_rows", help="rows per chunk/block"
    )
    parser.add_argument(
        "--quick", action="store_true", help="20,000 rows in blocks of 5,000; 100,000 writes"
    )
    parser.add_argument("--json", default=str(DEFAULT_OUT))
    parser.add_argument("--child", choices=["score", "write"])
    parser.add_argument("--engine", default="local")
    parser.add_argument("--run", type=int)
    parser.add_argument("--csv")
    parser.add_argument("--out")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--n-workers", type=int, dest="n_workers")
    args = parser.parse_args()
    if args.child == "score":
        figures = child_score(
            args.engine, args.run, args.csv, args.out, args.n_workers, args.block_rows
        )
        print(json.dumps(figures))
        return
    if args.child == "write":
        print(json.dumps(child_write_rate(args.rows)))
        return
    if args.quick:
        args.sizes, args.write_rows, args.block_rows = [20_000], 100_000, 5_000

    home = Path(tempfile.mkdtemp(prefix="payoff-scale-bench-"))
    env = {**os.environ, "PAYOFF_HOME": str(home), "PAYOFF_THREADS": "1"}
    env.pop("PAYOFF_RAY_ADDRESS", None)  # a local Ray per measurement: comparable figures
    env.pop("PAYOFF_DB_URL", None)
    os.environ.update(env)
    os.environ.pop("PAYOFF_DB_URL", None)
    from core.datasets import Roles, register_dataset
    from core.startup import start
    from core.training import create_run, execute_run

    start()
    info = register_dataset(
        (REPO / "samples" / "credit_scoring.csv").read_bytes(),
        "credit",
        roles=Roles(target="Status", positive_class="bad"),
    )
    runs = {}
    for kind in args.models:
        size = "small" if kind == "ft-transformer" else None
        runs[kind] = execute_run(create_run(info.id, kind, size=size, time_budget_s=60)).id
    results: dict = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
        "setup": "a local Ray started per measurement (num_cpus=2, one CPU per worker); "
        f"chunks/blocks of {args.block_rows:,} rows; predictions written to SQLite and a "
        "formula-safe CSV by the driver",
        "scoring": [],
    }
    for n in args.sizes:
        csv = home / f"rows-{n}.csv"
        make_csv(csv, n)
        for kind, run_id in runs.items():
            plans = [("local", None)] + [("ray", w) for w in args.workers]
            for engine, workers in plans:
                out = home / f"scored-{kind}-{engine}-{workers}-{n}.csv"
                child = ["--child", "score", "--engine", engine, "--run", str(run_id)]
                child += [
                    "--csv",
                    str(csv),
                    "--out",
                    str(out),
                    "--block-rows",
                    str(args.block_rows),
                ]
                if workers:
                    child += ["--n-workers", str(workers)]
                figures = _child(child, env)
                figures.update(model=kind, size=n)
                results["scoring"].append(figures)
                _save(args.json, results)  # a long run keeps what it measured so far
                label = engine if engine == "local" else f"ray x{workers}"
                workers_mb = figures.get("worker_peak_rss_mb")
                print(
                    f"{kind:10s} {label:8s} {n:>10,} rows {figures['rows_per_second']:>10,.0f} "
                    f"rows/s  driver {figures['driver_peak_rss_mb']:,.0f} MB"
                    + (f"  workers {[round(m) for m in workers_mb]} MB" if workers_mb else "")
                    + (
                        f"  after first block {figures['rows_per_second_after_first_block']:,.0f} rows/s"
                        if figures.get("rows_per_second_after_first_block")
                        else ""
                    )
                    + f"  load {figures['load_average_before'][0]:.1f}",
                    flush=True,
                )
                out.unlink(missing_ok=True)
        csv.unlink()
    results["sqlite_write"] = _child(["--child", "write", "--rows", str(args.write_rows)], env)
    results["sqlite_write"]["load_average_after"] = os.getloadavg()
    print(f"SQLite prediction writes: {results['sqlite_write']['rows_per_second']:,.0f} rows/s")
    small, large = min(args.sizes), max(args.sizes)
    ratios = {}
    for entry in results["scoring"]:
        if entry["engine"] != "ray" or entry["size"] != large or large == small:
            continue
        base = next(
            e
            for e in results["scoring"]
            if e["engine"] == "ray"
            and e["size"] == small
            and e["workers"] == entry["workers"]
            and e["model"] == entry["model"]
        )
        ratio = max(entry["worker_peak_rss_mb"]) / max(base["worker_peak_rss_mb"])
        ratios[f"{entry['model']} ray x{entry['workers']}"] = ratio
        print(
            f"{entry['model']} ray x{entry['workers']}: worker peak {large:,} / {small:,} = "
            f"{ratio:.2f} (target <= 1.5)"
        )
    results["worker_rss_ratio"] = ratios
    results["load_average_at_end"] = os.getloadavg()
    _save(args.json, results)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
