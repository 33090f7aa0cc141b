"""Shared by the benchmarks: an RSS sampler and a fresh, migrated database with a tenant and its owner."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from workspace.config import load_settings
from workspace.db.migrate import upgrade
from workspace.runtime import build_runtime
from workspace.tenancy.context import TenantContext
from workspace.tenancy.services import create_tenant

PG_ADMIN = os.environ.get("WORKSPACE_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


class RssSampler(threading.Thread):
    """Samples the process's resident memory (VmRSS) every 20 ms; ``peak`` minus ``start`` is the growth."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.start_mb = self.peak_mb = rss_mb()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.02):
            self.peak_mb = max(self.peak_mb, rss_mb())


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def bench_database(kind: str, work: Path, **overrides: Any) -> Iterator[tuple[Any, TenantContext]]:
    """The runtime and the owner's context of tenant "bench" on a migrated database: SQLite in ``work``
    (``kind`` "sqlite"), or a fresh PostgreSQL database on PG_ADMIN's server, dropped at the end.
    ``overrides`` replace fields of the settings (e.g. ``redis_url=None``)."""
    dbname = None
    admin = None
    if kind == "sqlite":
        url = f"sqlite:///{work / 'bench.sqlite3'}"
    else:
        dbname = f"ws_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{dbname}"'))
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{dbname}"
    try:
        settings = replace(load_settings({"WORKSPACE_DATA_DIR": str(work), "WORKSPACE_SECRET_KEY": "b" * 40}),
                           database_url=url, **overrides)
        runtime = build_runtime(settings, watch_policy=False)
        try:
            upgrade(runtime.engine)
            with runtime.unit_of_work() as db:
                tenant, user, _ = create_tenant(db, "bench", "Bench", "bench@example.com", "bench-password-1")
                ctx = TenantContext(tenant.id, "bench", "Bench", user.id, user.email, "", 1, "owner")
            yield runtime, ctx
        finally:
            runtime.close()
    finally:
        if dbname and admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{dbname}'"))
                conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}"'))
