"""Scoring benchmark: rows/s and peak RSS for 10k, 100k and 1M generated rows, and the SQLite
write rate of predictions.

Each size is scored in its own process so its peak RSS is its own (ru_maxrss never goes down).
Target: peak RSS at 1M rows <= 1.5x the peak at 10k (chunked reading keeps memory flat);
prediction writes >= 1M rows/s.

    .venv/bin/python bench/score_bench.py [--sizes 10000 100000 1000000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_csv(path: Path, n_rows: int, seed: int = 0) -> None:
    """n_rows drawn from the credit sample with jitter on the numbers, written in blocks."""
    import numpy as np
    import pandas as pd

    base = pd.read_csv(REPO / "samples" / "credit_scoring.csv")
    rng = np.random.default_rng(seed)
    numeric = base.select_dtypes("number").columns
    with open(path, "w") as handle:
        written = 0
        while written < n_rows:
            take = min(200_000, n_rows - written)
            block = base.iloc[rng.integers(0, len(base), take)].reset_index(drop=True)
            block[numeric] = block[numeric] * rng.uniform(0.9, 1.1, size=(take, len(numeric)))
            block.to_csv(handle, header=written == 0, index=False, float_format="%.2f")
            written += take


def child_score(run_id: int, csv: str, out: str) -> dict:
    from core.scoring import score_source
    from core.startup import start
    from core.training import load_run_model

    start()
    model = load_run_model(run_id)
    before = _peak_rss_mb()
    started = time.perf_counter()
    report = score_source(
        run_id, Path(csv), source_name=Path(csv).name, out_path=Path(out), model=model
    )
    seconds = time.perf_counter() - started
    return {
        "rows": report.rows,
        "seconds": seconds,
        "rows_per_second": report.rows / seconds,
        "rss_before_mb": before,
        "peak_rss_mb": _peak_rss_mb(),
    }


def child_write_rate(n_rows: int) -> dict:
    import numpy as np
    import pandas as pd

    from core.db import session_factory
    from core.records import ScoreBatchRecord
    from core.runs import get_run, list_runs
    from core.scoring import _insert_predictions
    from core.startup import start

    start()
    run_id = list_runs()[0].id
    with session_factory().begin() as session:
        batch = ScoreBatchRecord(
            run_id=run_id, source_name="write-rate", status="writing", report_json={}
        )
        session.add(batch)
        session.flush()
        batch_id = batch.id
    rng = np.random.default_rng(0)
    p = rng.random(n_rows)
    outputs = pd.DataFrame(
        {
            "prediction": np.where(p > 0.5, "bad", "good"),
            "probability": p,
            "decision": (p > 0.5).astype(int),
        },
        index=pd.RangeIndex(2, n_rows + 2),
    )
    started = time.perf_counter()
    _insert_predictions(batch_id, get_run(run_id), outputs)
    seconds = time.perf_counter() - started
    return {"rows": n_rows, "seconds": seconds, "rows_per_second": n_rows / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--models", nargs="+", default=["lightgbm", "ft-transformer"])
    parser.add_argument("--json")
    parser.add_argument("--child", choices=["score", "write"])
    parser.add_argument("--run", type=int)
    parser.add_argument("--csv")
    parser.add_argument("--out")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.child == "score":
        print(json.dumps(child_score(args.run, args.csv, args.out)))
        return
    if args.child == "write":
        print(json.dumps(child_write_rate(args.rows)))
        return

    home = Path(tempfile.mkdtemp(prefix="payoff-score-bench-"))
    env = {**os.environ, "PAYOFF_HOME": str(home), "PAYOFF_THREADS": "1"}
    os.environ.update(env)
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
        run = execute_run(
            create_run(
                info.id, kind, size="small" if kind == "ft-transformer" else None, time_budget_s=60
            )
        )
        runs[kind] = run.id
    results = {"scoring": [], "sqlite_write": None}
    for n in args.sizes:
        csv = home / f"rows-{n}.csv"
        make_csv(csv, n)
        for kind, run_id in runs.items():
            out = home / f"scored-{kind}-{n}.csv"
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    "score",
                    "--run",
                    str(run_id),
                    "--csv",
                    str(csv),
                    "--out",
                    str(out),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            figures = json.loads(proc.stdout.strip().splitlines()[-1])
            figures.update(model=kind, size=n)
            results["scoring"].append(figures)
            print(
                f"{kind:15s} {n:>9,} rows  {figures['rows_per_second']:>10,.0f} rows/s  peak RSS {figures['peak_rss_mb']:,.0f} MB"
            )
            out.unlink(missing_ok=True)
        csv.unlink()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", "write", "--rows", "1000000"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    results["sqlite_write"] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"SQLite prediction writes: {results['sqlite_write']['rows_per_second']:,.0f} rows/s (1M rows)"
    )
    for kind in runs:
        rows = {r["size"]: r for r in results["scoring"] if r["model"] == kind}
        if min(args.sizes) in rows and max(args.sizes) in rows:
            ratio = rows[max(args.sizes)]["peak_rss_mb"] / rows[min(args.sizes)]["peak_rss_mb"]
            results.setdefault("rss_ratio", {})[kind] = ratio
            print(
                f"{kind}: peak RSS at {max(args.sizes):,} / at {min(args.sizes):,} rows = {ratio:.2f} (target <= 1.5)"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
