"""Import benchmark: N small text tasks imported through the real import service.

    .venv/bin/python bench/import_bench.py --db sqlite --tasks 100000 [--format jsonl|json|csv]
    .venv/bin/python bench/import_bench.py --db postgresql --tasks 1000000
    .venv/bin/python bench/import_bench.py --db postgresql --tasks 100000 --annotated

Prints tasks/s and the peak memory growth of the process (RSS high-water mark above the baseline
after start-up), and the CPU time per task of this process (the parser and the writer) and, when the
server runs on this machine, of the PostgreSQL backend: on a busy machine tasks/s drops with the
share of the cores the import gets, CPU time per task much less. PostgreSQL runs against a fresh
database on 127.0.0.1:5432 (dropped at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import RssSampler, bench_database

from workspace.workflow.imports import import_tasks
from workspace.workflow.services import create_project


CHOICE = {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["Positive"]}}


def write_file(path: Path, n: int, fmt: str, annotated: bool = False) -> None:
    with path.open("w", encoding="utf-8") as f:
        if annotated:  # Label Studio's export shape: each task with one annotation and one prediction
            if fmt != "jsonl":
                raise SystemExit("--annotated is written as JSONL")
            for i in range(n):
                f.write(json.dumps({"data": {"text": f"Task number {i}: the quick brown fox jumps over the lazy dog"},
                                    "annotations": [{"result": [CHOICE], "lead_time": 1.5}],
                                    "predictions": [{"result": [CHOICE], "score": 0.9, "model_version": "v1"}]})
                        + "\n")
        elif fmt == "csv":
            f.write("text\n")
            for i in range(n):
                f.write(f"Task number {i}: the quick brown fox jumps over the lazy dog\n")
        elif fmt == "jsonl":
            for i in range(n):
                f.write(json.dumps({"text": f"Task number {i}: the quick brown fox jumps over the lazy dog"}) + "\n")
        else:
            f.write("[")
            for i in range(n):
                f.write(("," if i else "") + json.dumps({"data": {"text": f"Task number {i}: the quick brown fox"}}))
            f.write("]")


def backend_cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system) of a local PostgreSQL backend, or None when it can't be read here."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--format", choices=["jsonl", "json", "csv"], default="jsonl")
    ap.add_argument("--annotated", action="store_true", help="every task with an annotation and a prediction (JSONL)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ws-import-bench-"))
    with bench_database(args.db, work) as (runtime, ctx):
        with runtime.unit_of_work(ctx.tenant_id) as db:
            project_id = create_project(db, ctx, "Bench").id
        path = work / f"tasks.{args.format}"
        write_file(path, args.tasks, args.format, args.annotated)
        size_mb = path.stat().st_size / 1e6
        sampler = RssSampler()
        sampler.start()
        started, cpu_started = time.perf_counter(), time.process_time()
        with runtime.unit_of_work(ctx.tenant_id) as db, path.open("rb") as source:
            backend = (db.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
                       if args.db == "postgresql" else None)
            server_started = backend_cpu_seconds(backend)
            batch = import_tasks(db, ctx, project_id, source, path.name)
            server_ended = backend_cpu_seconds(backend)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        sampler.stopped.set()
        sampler.join()
        growth = sampler.peak_mb - sampler.start_mb
        kind = f"{args.format}+annotations" if args.annotated else args.format
        print(f"db={args.db} format={kind} tasks={batch.task_count:,} file={size_mb:.1f} MB "
              f"time={elapsed:.2f}s rate={batch.task_count / elapsed:,.0f} tasks/s peak_rss_growth={growth:.1f} MB")
        per_task = f"cpu per task: this process {cpu / batch.task_count * 1e6:.1f} us"
        if server_started is not None and server_ended is not None:
            per_task += f", PostgreSQL backend {(server_ended - server_started) / batch.task_count * 1e6:.1f} us"
        print(f"{per_task} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
