"""Score-page reasons: the time estimate shown before scoring against the measured time.

Per model kind, trained on the credit sample: the estimate the Score page shows (rows x a
per-row rate measured on 8-64 test rows), the old estimate (model evaluations at the
test-set inference speed), the measured time of the reasons inside ``score_source``, and the
Explain page's default explanation of the same rows (ms per row, quality check excluded).
Target: estimate within 2x of the measured time; reasons no slower per row than Explain.

    .venv/bin/python bench/reasons_bench.py [--quick] [--rows 200] [--size small] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny FT-Transformer, 40 rows")
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--size", default="small")
    parser.add_argument("--json")
    args = parser.parse_args()
    rows, size = (40, "tiny") if args.quick else (args.rows, args.size)
    os.environ["PAYOFF_HOME"] = tempfile.mkdtemp(prefix="payoff-reasons-")
    os.environ.setdefault("PAYOFF_THREADS", "1")
    import torch

    from core.datasets import ensure_samples, find_dataset_by_name
    from core.explanations import explain_frame, plan, reason_codes
    from core.scoring import reasons_plan, score_source
    from core.startup import start
    from core.training import create_run, execute_run, load_run_model, part_frame, predict_frame

    torch.set_num_threads(1)
    start()
    ensure_samples()
    credit = find_dataset_by_name("Credit scoring (sample)")
    results = []
    for kind in ("ft-transformer", "lightgbm", "logreg"):
        options = {"size": size} if kind == "ft-transformer" else {}
        budget = 20 if args.quick else 120
        run = execute_run(create_run(credit.id, kind, time_budget_s=budget, **options))
        model = load_run_model(run.id)
        test = part_frame(run.id, "test").iloc[:rows]
        started = time.perf_counter()
        estimate = reasons_plan(run, rows, model)  # the probe, as the Score page's first visit
        probe_seconds = time.perf_counter() - started
        old = plan(run, rows, len(run.features), n_pairs=1)
        data = test.to_csv(index=False).encode()
        report = score_source(run.id, data, reasons_for_rows=rows, model=model)
        measured = report.reasons_seconds
        # Reasons against the Explain page's default on the same rows, alternated twice on a
        # shared machine (the faster of each kept): ms per row.
        flags = predict_frame(model, test) >= report.threshold
        reasons_ms, explain_ms = [], []
        for _ in range(2):
            started = time.perf_counter()
            reason_codes(run, model, test, threshold=report.threshold, decisions=flags)
            reasons_ms.append(1000 * (time.perf_counter() - started) / rows)
            explained = explain_frame(run.id, test, fidelity_rows=0, model=model)
            explain_ms.append(explained.ms_per_row)
        results.append(
            {
                "model": kind + (f" {size}" if kind == "ft-transformer" else ""),
                "rows": rows,
                "estimate_s": round(estimate["seconds"], 3),
                "old_estimate_s": round(old["seconds"], 3),
                "measured_s": round(measured, 3),
                "estimate_over_measured": round(estimate["seconds"] / measured, 2),
                "probe_s": round(probe_seconds, 3),
                "score_reasons_ms_per_row": round(1000 * measured / rows, 2),
                "reasons_ms_per_row": round(min(reasons_ms), 2),
                "explain_default_ms_per_row": round(min(explain_ms), 2),
            }
        )
        print(json.dumps(results[-1]), flush=True)
    payload = {"results": results, "load_average": os.getloadavg()}
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
