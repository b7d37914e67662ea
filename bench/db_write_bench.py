"""Prediction writes: rows/s for narrow prediction rows on SQLite and on PostgreSQL.

The rows are what score_source writes (batch id, row number, score with some NULLs, label),
handed to ``core.db.bulk_insert`` the same way: executemany on SQLite, binary COPY on
PostgreSQL (psycopg 3). Written in 50,000-row chunks (the scorer's default chunk), each its
own transaction, as a scoring job does. Without ``--db-url`` a throwaway PostgreSQL 15 server
is started from Debian's binaries in a temp folder (tests/pg.py), with its default durability
settings (fsync on).

Target: >= 300k rows/s on PostgreSQL for 1M rows.

    .venv/bin/python bench/db_write_bench.py [--rows 1000000] [--db-url URL] [--json PATH]
    .venv/bin/python bench/db_write_bench.py --quick   # 100k rows, seconds
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

CHUNK = 50_000


def _rows(batch_id: int, start: int, n: int) -> list[tuple]:
    import numpy as np

    rng = np.random.default_rng(start)
    scores = rng.random(n)
    score = [None if i % 1000 == 0 else float(s) for i, s in enumerate(scores)]
    label = (scores >= 0.5).astype(int).tolist()
    return list(zip([batch_id] * n, range(start, start + n), score, label, strict=True))


def measure(url: str, n_rows: int) -> dict:
    from sqlalchemy import func, select

    from core.db import bulk_insert, make_engine, upgrade_to_head
    from core.records import DatasetRecord, PredictionRecord, ScoreBatchRecord, TrainingRunRecord

    engine = make_engine(url)
    upgrade_to_head(engine)
    with engine.begin() as connection:
        dataset = connection.execute(
            DatasetRecord.__table__.insert().returning(DatasetRecord.id),
            {"name": "bench", "sha256": "0" * 64, "stored_path": "-", "n_rows": 0,
             "n_columns": 0, "schema_json": {}, "roles_json": {}, "is_sample": False},
        ).scalar()  # fmt: skip
        run = connection.execute(
            TrainingRunRecord.__table__.insert().returning(TrainingRunRecord.id),
            {"dataset_id": dataset, "model": "logreg", "target": "y", "features_json": [],
             "options_json": {}, "seed": 0, "status": "succeeded", "cancel_requested": False,
             "progress_json": {}, "classes_json": [], "metrics_json": {},
             "test_json": {}},
        ).scalar()  # fmt: skip
        batch = connection.execute(
            ScoreBatchRecord.__table__.insert().returning(ScoreBatchRecord.id),
            {"run_id": run, "source_name": "bench", "n_rows": 0, "seconds": 0.0,
             "status": "writing", "report_json": {}},
        ).scalar()  # fmt: skip
    chunks = [_rows(batch, start, min(CHUNK, n_rows - start)) for start in range(0, n_rows, CHUNK)]
    # One pooled connection serves every chunk: its server process's CPU time is the server's.
    engine.pool.dispose()
    server_pid = None
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            server_pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    server_before = _cpu_seconds(server_pid)
    cpu_before = time.process_time()
    started = time.perf_counter()
    for chunk in chunks:
        bulk_insert(PredictionRecord.__table__, chunk, engine, parent_checked=True)
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - cpu_before
    server_cpu = (_cpu_seconds(server_pid) - server_before) if server_pid else 0.0
    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(PredictionRecord)).scalar()
    engine.dispose()
    assert stored == n_rows, (stored, n_rows)
    cpu = client_cpu + server_cpu
    return {
        "rows": n_rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(n_rows / seconds),
        "client_cpu_s": round(client_cpu, 3),
        "server_cpu_s": round(server_cpu, 3),
        # Less sensitive to other processes on a shared machine than wall-clock rows/s.
        "rows_per_cpu_s": round(n_rows / cpu) if cpu else None,
    }


def _cpu_seconds(pid: int | None) -> float:
    """user + system CPU time of a local process (the PostgreSQL backend), from /proc."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _print(label: str, result: dict) -> None:
    print(
        f"{label}  {result['rows_per_s']:>10,} rows/s  ({result['rows_per_cpu_s']:,} rows per "
        f"CPU-second: client {result['client_cpu_s']} s + server {result['server_cpu_s']} s)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100k rows")
    parser.add_argument("--db-url", help="a PostgreSQL URL (default: a throwaway server)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    n_rows = 100_000 if args.quick else args.rows
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        results["sqlite"] = measure(f"sqlite:///{folder}/bench.db", n_rows)
        _print("SQLite      executemany", results["sqlite"])
        server = None
        url = args.db_url
        if url is None:
            from tests.pg import PgServer, missing_reason

            reason = missing_reason()
            if reason:
                print(f"PostgreSQL skipped: {reason}")
            else:
                server = PgServer().start()
                url = server.create_database("bench")
        try:
            if url:
                results["postgresql"] = measure(url, n_rows)
                _print("PostgreSQL  binary COPY", results["postgresql"])
        finally:
            if server is not None:
                server.stop()
    results["load_average"] = os.getloadavg()
    print(json.dumps(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
