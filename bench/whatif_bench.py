"""What-if editor round trip: score one edited record and explain it, as the Score page does.

Target: p50 <= 100 ms for a small FT-Transformer on CPU.

    .venv/bin/python bench/whatif_bench.py [--size small] [--repeats 50] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="small")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json")
    args = parser.parse_args()
    os.environ["PAYOFF_HOME"] = tempfile.mkdtemp(prefix="payoff-whatif-")
    os.environ.setdefault("PAYOFF_THREADS", "1")
    import numpy as np
    import torch

    from core.datasets import Roles, register_dataset
    from core.explanations import explain_row
    from core.startup import start
    from core.training import create_run, execute_run, holdout_frame, load_run_model, predict_frame

    torch.set_num_threads(1)
    start()
    data = (REPO / "samples" / "credit_scoring.csv").read_bytes()
    info = register_dataset(data, "credit", roles=Roles(target="Status", positive_class="bad"))
    run = execute_run(create_run(info.id, "ft-transformer", size=args.size, time_budget_s=120))
    model = load_run_model(run.id)
    rows = holdout_frame(run.id)
    explain_row(run, model, rows.iloc[[0]])  # warm-up: background summary, first forward pass
    rng = np.random.default_rng(0)
    seconds = []
    for i in range(args.repeats):
        row = rows.iloc[[i % len(rows)]].copy()
        row["Income"] = float(rng.uniform(50, 300))  # an edit, as in the form
        started = time.perf_counter()
        predict_frame(model, row)
        explain_row(run, model, row)
        seconds.append(time.perf_counter() - started)
    ms = sorted(s * 1000 for s in seconds)
    result = {
        "model": f"ft-transformer {args.size}",
        "repeats": args.repeats,
        "p50_ms": statistics.median(ms),
        "p90_ms": ms[int(0.9 * (len(ms) - 1))],
        "max_ms": ms[-1],
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
