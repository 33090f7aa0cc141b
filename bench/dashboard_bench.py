"""Dashboard benchmark: a project of N tasks (two thirds of them with two annotations of random
status, lead time and day, and a stored agreement), then each dashboard query timed once.

    .venv/bin/python bench/dashboard_bench.py --db sqlite --tasks 100000
    .venv/bin/python bench/dashboard_bench.py --db postgresql --tasks 1000000

Rows are written with plain INSERTs (not timed). PostgreSQL runs against a fresh database on
127.0.0.1:5432 (dropped at the end). Measured 2026-11-28 on the 2-core dev machine while other test
runs shared it, 1,000,000 tasks / 1,333,332 annotations on PostgreSQL: progress 2.2 s, throughput
0.9 s, lead times 2.4 s, acceptance <0.1 s, agreement histogram 0.6 s, accuracy 0.2 s, kappa/alpha
sample 0.1 s, tenant overview 0.6 s. SQLite (embedded mode) is several times slower at that size.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import create_engine, select, text

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--tasks", type=int, default=100_000)
    args = parser.parse_args()

    from workspace.config import load_settings
    from workspace.db import make_engine
    from workspace.db.migrate import upgrade
    from workspace.lib.timeutil import utcnow
    from workspace.runtime import build_runtime
    from workspace.tenancy.services import create_tenant
    from workspace.workflow import dashboards as dash
    from workspace.workflow.models import Project

    settings = load_settings({"WORKSPACE_DATA_DIR": tempfile.mkdtemp(), "WORKSPACE_SECRET_KEY": "k" * 40})
    name = None
    if args.db == "postgresql":
        name = f"ws_dash_bench_{uuid.uuid4().hex[:6]}"
        with create_engine(ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        settings = replace(settings, database_url=ADMIN.rsplit("/", 1)[0] + f"/{name}")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    runtime = build_runtime(settings, watch_policy=False)
    try:
        with runtime.unit_of_work() as db:
            tenant, user, _ = create_tenant(db, "bench", "Bench", "owner@bench.example", "bench-password-1")
            tenant_id, user_id = tenant.id, user.id
        with runtime.unit_of_work(tenant_id) as db:
            project = Project(title="Bench", workflow={"overlap": 2})
            db.add(project)
            db.flush()
            project_id = project.id
        rng, now = random.Random(1), utcnow()
        with runtime.unit_of_work(tenant_id) as db:
            conn = db.connection()
            for start in range(0, args.tasks, 20_000):
                tasks = [{"id": i + 1, "t": tenant_id, "p": project_id, "n": 2 if i % 3 else 0, "now": now,
                          "a": rng.random() if i % 3 else None} for i in range(start, min(args.tasks, start + 20_000))]
                conn.execute(text("INSERT INTO task (id, tenant_id, project_id, data, annotation_count, prediction_count,"
                                  " created_at, agreement) VALUES (:id, :t, :p, '{}', :n, 0, :now, :a)"), tasks)
                annotations = [{"t": tenant_id, "p": project_id, "task": r["id"], "u": user_id, "lead": rng.random() * 60,
                                "s": rng.choice(["submitted", "accepted", "rejected"]),
                                "at": now - timedelta(days=rng.randint(0, 40))} for r in tasks if r["n"] for _ in range(2)]
                conn.execute(text("INSERT INTO annotation (tenant_id, project_id, task_id, result, status, completed_by_id,"
                                  " lead_time, created_at, ground_truth, version) VALUES (:t, :p, :task, '[]', :s, :u, :lead,"
                                  " :at, false, 1)"), annotations)
        if args.db == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        with runtime.unit_of_work(tenant_id) as db:
            project = db.scalars(select(Project)).one()
            for label, run in [("progress", lambda: dash.progress(db, project)),
                               ("throughput", lambda: dash.throughput(db, project_id)),
                               ("lead_times", lambda: dash.lead_times(db, project_id)),
                               ("acceptance", lambda: dash.acceptance(db, project_id)),
                               ("agreement_histogram", lambda: dash.agreement_histogram(db, project_id)),
                               ("gt_accuracy", lambda: dash.gt_accuracy(db, project_id)),
                               ("choices_agreement", lambda: dash.choices_agreement(db, project)),
                               ("tenant_overview", lambda: dash.tenant_overview(db, [project]))]:
                began = time.perf_counter()
                run()
                print(f"{label:20s} {time.perf_counter() - began:7.2f} s", flush=True)
    finally:
        runtime.close()
        if name:
            with create_engine(ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
                conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


if __name__ == "__main__":
    main()
