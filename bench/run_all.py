"""Run every benchmark and write one JSON summary (figures plus machine facts).

    .venv/bin/python bench/run_all.py [--quick] [--only NAME ...] [--out bench/results/summary.json]
    .venv/bin/python bench/run_all.py --collect --only NAME ...   # gather direct runs' JSON

Each benchmark runs in its own process with ``--json`` and its figures are gathered under its
name. The README's "Performance" section quotes the latest summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
BENCHMARKS = {
    "train": ["train_bench.py", "--seeds", "0", "1", "2", "--budget", "300"],
    "explain": ["explain_bench.py"],
    "score": ["score_bench.py"],
    "text": ["text_bench.py"],
    "text_explain": ["text_explain_bench.py"],
    "whatif": ["whatif_bench.py"],
    "reasons": ["reasons_bench.py"],
    "scale": ["scale_bench.py"],
    "accuracy": ["accuracy_bench.py"],
}
QUICK_ARGS = {
    "score": ["--sizes", "10000", "100000"],
    "train": ["--seeds", "0"],
    "text": ["--quick"],
    "text_explain": ["--texts", "4", "--train-budget", "60"],
    "reasons": ["--quick"],
    "scale": ["--quick"],
    "accuracy": ["--quick"],
}


def machine_facts() -> dict:
    import torch

    facts = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_at_start": os.getloadavg(),
    }
    try:
        facts["cpu"] = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        facts["cpu"] = platform.processor()
    return facts


def _relative(path: Path) -> str:
    """`path` relative to the repository root when it lies inside it, else as given."""
    try:
        return str(path.resolve().relative_to(BENCH.parent))
    except ValueError:
        return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes where a bench has them")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS))
    parser.add_argument("--out", default=str(BENCH / "results" / "summary.json"))
    parser.add_argument(
        "--collect",
        action="store_true",
        help="run nothing: gather the --only benchmarks' figures from the <name>.json files "
        "their own runs wrote next to --out",
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "benchmarks": {},
    }
    if args.only and out.exists():
        # A partial rerun keeps the other benchmarks' latest figures.
        summary["benchmarks"] = json.loads(out.read_text()).get("benchmarks", {})
    for name, script in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        result_path = out.parent / f"{name}.json"
        if args.collect:
            if result_path.exists():
                summary["benchmarks"][name] = {
                    "command": f"collected from {result_path.name} (written by a direct run)",
                    "figures": json.loads(result_path.read_text()),
                }
            continue
        # Paths relative to the repository (the command runs there): results never record
        # the folders of the machine that ran them.
        command = [sys.executable, _relative(BENCH / script[0]), *script[1:]]
        command += ["--json", _relative(result_path)]
        if args.quick:
            command += QUICK_ARGS.get(name, [])
        started = time.perf_counter()
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        proc = subprocess.run(
            command,
            cwd=BENCH.parent,
            env={**os.environ, "PAYOFF_THREADS": "1", "PYTHONPATH": str(BENCH.parent)},
        )
        entry = {
            "command": " ".join(["python", *command[1:]]),
            "seconds": time.perf_counter() - started,
            "exit_code": proc.returncode,
        }
        if proc.returncode == 0 and result_path.exists():
            entry["figures"] = json.loads(result_path.read_text())
        summary["benchmarks"][name] = entry
    out.write_text(json.dumps(summary, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
