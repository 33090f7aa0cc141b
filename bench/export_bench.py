"""Export benchmark: a project of N text tasks, each with one submitted annotation, exported through the
real export job (queue_export, then the job runner's execute_job, writing to the local media store).

    .venv/bin/python bench/export_bench.py --db sqlite --tasks 100000 --format json
    .venv/bin/python bench/export_bench.py --db postgresql --tasks 1000000 --format json,csv
    .venv/bin/python bench/export_bench.py --db sqlite --tasks 100000 --format json --profile export.prof

The tasks are loaded through the real import service (a generated JSONL file in Label Studio's export
shape), which is not timed. The export is timed from the job's start to its commit and prints seconds,
tasks/s, the CPU seconds of this process (the figure to trust on a busy machine; PostgreSQL's own
work is not in it) and the peak memory growth of the process (RSS high-water mark, sampled every 20 ms, above the
RSS just before the export started). PostgreSQL runs against a fresh database on 127.0.0.1:5432
(dropped at the end).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import RssSampler, bench_database
from sqlalchemy import select, text

from workspace.jobs.models import Job
from workspace.jobs.runner import execute_job
from workspace.workflow.exporting import ExportOptions, queue_export
from workspace.workflow.imports import import_tasks
from workspace.workflow.models import Export
from workspace.workflow.services import create_project

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text">
    <Choice value="Positive"/><Choice value="Negative"/>
  </Choices>
</View>"""
FORMATS = {"json": "JSON", "csv": "CSV", "jsonl": "JSONL", "json_min": "JSON_MIN", "tsv": "TSV"}


def write_tasks(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            choice = "Positive" if i % 3 else "Negative"
            f.write(json.dumps({
                "data": {"text": f"Task number {i}: the quick brown fox jumps over the lazy dog"},
                "annotations": [{"result": [{"id": f"r{i}", "from_name": "sentiment", "to_name": "text",
                                             "type": "choices", "value": {"choices": [choice]}}],
                                 "lead_time": 1.5}],
            }) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--format", default="json",
                    help=f"one or more of {', '.join(sorted(FORMATS))}, comma-separated (each exported from the same data)")
    ap.add_argument("--runs", type=int, default=1, help="export this many times (the same data)")
    ap.add_argument("--profile", metavar="FILE", help="write a cProfile of the (last) export to FILE")
    args = ap.parse_args()
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    if not formats or any(f not in FORMATS for f in formats):
        ap.error(f"--format: choose among {', '.join(sorted(FORMATS))}")
    work = Path(tempfile.mkdtemp(prefix="ws-export-bench-"))
    try:
        with bench_database(args.db, work, redis_url=None) as (runtime, ctx):
            with runtime.unit_of_work(ctx.tenant_id) as db:
                project_id = create_project(db, ctx, "Bench", label_config=CONFIG).id
            path = work / "tasks.jsonl"
            write_tasks(path, args.tasks)
            started = time.perf_counter()
            with runtime.unit_of_work(ctx.tenant_id) as db, path.open("rb") as source:
                import_tasks(db, ctx, project_id, source, path.name)
            path.unlink()
            load_s = time.perf_counter() - started
            if args.db == "postgresql":
                with runtime.engine.connect() as conn:  # fresh statistics, as autovacuum would give soon after
                    conn.execute(text("ANALYZE"))
                    conn.commit()
            for run, fmt in [(run, fmt) for fmt in formats for run in range(args.runs)]:
                with runtime.unit_of_work(ctx.tenant_id) as db:
                    export = queue_export(db, ctx, project_id, FORMATS[fmt], ExportOptions())
                    export_id, job_id = export.id, export.job_id
                profiler = cProfile.Profile() if args.profile and run == args.runs - 1 else None
                sampler = RssSampler()
                sampler.start()
                started, cpu_started = time.perf_counter(), time.process_time()
                if profiler:
                    profiler.enable()
                execute_job(runtime, job_id)
                if profiler:
                    profiler.disable()
                elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
                sampler.stopped.set()
                sampler.join()
                with runtime.unit_of_work(ctx.tenant_id) as db:
                    job = db.scalars(select(Job).where(Job.id == job_id)).one()
                    export = db.scalars(select(Export).where(Export.id == export_id)).one()
                    if export.status != "ready":
                        raise SystemExit(f"export {export.status}: {job.message} {job.error}")
                    size_mb, counts = export.size / 1e6, export.counts
                growth = sampler.peak_mb - sampler.start_mb
                print(f"db={args.db} format={fmt} tasks={counts['tasks']:,} annotations={counts['annotations']:,} "
                      f"file={size_mb:.1f} MB time={elapsed:.2f}s cpu={cpu:.2f}s rate={counts['tasks'] / elapsed:,.0f} tasks/s "
                      f"peak_rss_growth={growth:.1f} MB (load {load_s:.0f}s)", flush=True)
                if profiler:
                    profiler.dump_stats(args.profile)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
