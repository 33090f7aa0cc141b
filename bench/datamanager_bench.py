"""Data manager benchmark: page latency at N tasks, through the query functions the route uses.

    .venv/bin/python bench/datamanager_bench.py --db sqlite --tasks 1000000
    .venv/bin/python bench/datamanager_bench.py --db postgresql --tasks 200000 [--pg-admin-url URL]

Creates a throw-away database (a temp SQLite file, or a ``ws_bench_*`` PostgreSQL database that is
dropped afterwards unless --keep), one tenant and project, bulk-inserts N small text tasks (Core
executemany in batches of 10k, tenant_id set explicitly: a benchmark, not app code), then prints
p50/p95 latencies of first pages and deep keyset pages for several filters and sorts.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from workspace.config import load_settings  # noqa: E402
from workspace.db import make_engine  # noqa: E402
from workspace.db.migrate import upgrade  # noqa: E402
from workspace.runtime import build_runtime  # noqa: E402
from workspace.tenancy.services import create_tenant  # noqa: E402
from workspace.workflow import datamanager as dm  # noqa: E402
from workspace.workflow.models import Project, Task  # noqa: E402

WORDS = ("great product fast delivery broken screen refund please love it terrible support "
         "would buy again battery lasts two days colour faded after washing").split()
BATCH = 10_000


def _database(kind: str, admin_url: str, tmp: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'bench.sqlite3'}", None
    name = f"ws_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}", name


def _drop(admin_url: str, name: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def _fill(engine, tenant_id: int, project_id: int, n: int) -> float:  # type: ignore[no-untyped-def]
    rnd = random.Random(42)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    began = time.perf_counter()
    table = Task.__table__
    with engine.begin() as conn:
        for offset in range(0, n, BATCH):
            rows = []
            for i in range(offset, min(n, offset + BATCH)):
                labeled = rnd.random() < 0.3
                rows.append({
                    "tenant_id": tenant_id, "project_id": project_id,
                    "data": {"text": f"#{i} " + " ".join(rnd.choices(WORDS, k=8))},
                    "annotation_count": rnd.randint(1, 3) if labeled else 0,
                    "prediction_count": 1 if rnd.random() < 0.5 else 0,
                    "created_at": start + timedelta(seconds=i * 7 + rnd.randint(0, 5)),
                })
            conn.execute(insert(table), rows)
            print(f"\r  inserted {min(n, offset + BATCH):,}/{n:,}", end="", flush=True)
    print()
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE task"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return time.perf_counter() - began


def _time(fn, repeat: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    fn()  # warm
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))]
    return statistics.median(samples), p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ws-bench-"))
    url, pg_name = _database(args.db, args.pg_admin_url, tmp)
    try:
        engine = make_engine(url)
        upgrade(engine)
        settings = replace(load_settings({"WORKSPACE_DATA_DIR": str(tmp / "data"),
                                          "WORKSPACE_SECRET_KEY": "bench-" + "x" * 40}), database_url=url)
        runtime = build_runtime(settings, watch_policy=False)
        with runtime.unit_of_work() as db:
            tenant, user, _ = create_tenant(db, "bench", "Bench", "owner@bench.example", "correct horse battery")
            tenant_id = tenant.id
        with runtime.unit_of_work(tenant_id) as db:
            project = Project(title="Bench", created_by_id=user.id)
            db.add(project)
            db.flush()
            project_id = project.id
        print(f"{args.db}: inserting {args.tasks:,} tasks …")
        took = _fill(runtime.engine, tenant_id, project_id, args.tasks)
        print(f"  insert + analyze: {took:.1f}s ({args.tasks / took:,.0f} tasks/s)")

        cases = [
            ("first page, id asc, no filter", {}),
            ("first page, unlabeled, created desc", {"state": "unlabeled", "sort": "-created"}),
            ("first page, labeled + predictions, annotations desc", {"state": "labeled", "has_predictions": "yes",
                                                                     "sort": "-annotations"}),
            ("first page, created range, created asc", {"created_from": "2024-01-20", "created_to": "2024-01-31",
                                                        "sort": "created"}),
            ("first page, text 'refund' (scan)", {"text": "refund"}),
        ]
        print(f"\n{'query':<56}{'p50 ms':>9}{'p95 ms':>9}")
        with runtime.unit_of_work(tenant_id) as db:
            for label, params in cases:
                f, errors = dm.parse_filters(params)
                assert not errors, errors
                p50, p95 = _time(lambda f=f: dm.list_tasks(db, project_id, f), args.repeat)
                print(f"{label:<56}{p50:>9.2f}{p95:>9.2f}")
                # a deep page: the cursor of a row ~90% down the list (as if paged there with "Next")
                first = dm.list_tasks(db, project_id, f)
                if first.next_cursor:
                    deep = _deep_cursor(db, project_id, f)
                    if deep:
                        p50, p95 = _time(lambda f=f, c=deep: dm.list_tasks(db, project_id, f, after=c), args.repeat)
                        print(f"{'  … deep page (~90% in), after cursor':<56}{p50:>9.2f}{p95:>9.2f}")
                        p50, p95 = _time(lambda f=f, c=deep: dm.list_tasks(db, project_id, f, before=c), args.repeat)
                        print(f"{'  … deep page (~90% in), before cursor':<56}{p50:>9.2f}{p95:>9.2f}")
                cap = _time(lambda f=f: dm.count_matching(db, project_id, f), max(5, args.repeat // 3))
                print(f"{'  … matching count (capped at 10,000)':<56}{cap[0]:>9.2f}{cap[1]:>9.2f}")
        runtime.close()
        engine.dispose()
    finally:
        if pg_name and not args.keep:
            _drop(args.pg_admin_url, pg_name)


def _deep_cursor(db, project_id: int, f: dm.Filters) -> str | None:  # type: ignore[no-untyped-def]
    """The cursor that "Next" would carry ~90% down the list (found once, outside the timing)."""
    _label, column, desc = dm.SORTS[f.sort]
    key = {"id": Task.id, "created": Task.created_at, "annotations": Task.annotation_count}[column]
    where = dm.conditions(db, project_id, f)
    total = dm.count_matching(db, project_id, f, cap=None)
    if total < 2:
        return None
    order = [key.desc(), Task.id.desc()] if desc else [key.asc(), Task.id.asc()]
    row = db.execute(select(key, Task.id).where(*where).order_by(*order)
                     .offset(int(total * 0.9)).limit(1)).first()  # setup only, not what is timed
    return dm.encode_cursor(f.sort, row[0], row[1]) if row else None


if __name__ == "__main__":
    main()
