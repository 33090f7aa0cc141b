"""Table upkeep after bulk writes: ``ANALYZE`` soon after a large import commits (PostgreSQL).

Right after a bulk insert PostgreSQL's planner still believes the table's old statistics: it thinks a
project of 100,000 fresh tasks holds a few hundred and picks plans for that (bitmap heap scans where an
index scan is four times faster). Autovacuum's analyze fixes it, but only on its own schedule (a minute
or more later). Large imports ask for it here instead: once their transaction commits, a background
thread of this process runs ``ANALYZE`` on the table, on its own autocommit connection, after a short
quiet period so that back-to-back imports (an API client sending batches) lead to one run, not one per
batch. ANALYZE reads a sample (30,000 rows at most), so it is cheap whatever the table's size, and
takes no lock that blocks reads or writes.

Vacuuming the new rows (the visibility map, for index-only scans) is left to autovacuum: it reads every
new page, which costs as much as a good part of the import itself, and the API's hot reads (a page of
tasks, a task's position) no longer scan the project (stored inner ids, ``lsapi.services._TaskOrder``).

SQLite needs none of this (no such statistics are kept here).
"""

from __future__ import annotations

import logging
import threading
from typing import Final

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

__all__ = ["analyze_after_commit", "ANALYZE_MIN_ROWS", "QUIET_SECONDS"]

log = logging.getLogger(__name__)

ANALYZE_MIN_ROWS: Final = 5_000  # smaller writes are left to autovacuum
QUIET_SECONDS: Final = 1.0  # runs this long after the last large write of the table committed
_TABLES: Final = frozenset({"task"})  # the only tables named here: never text from input
_SESSION_KEY = "maintenance_analyze"


class _Debounced:
    """One timer per (engine, table): each request pushes the run back by the quiet period."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timers: dict[tuple[int, str], threading.Timer] = {}

    def request(self, engine: Engine, table: str) -> None:
        key = (id(engine), table)
        with self._lock:
            old = self._timers.get(key)
            if old is not None:
                old.cancel()
            timer = threading.Timer(QUIET_SECONDS, self._run, args=(engine, table, key))
            timer.daemon = True
            self._timers[key] = timer
            timer.start()

    def _run(self, engine: Engine, table: str, key: tuple[int, str]) -> None:
        with self._lock:
            if self._timers.get(key) is threading.current_thread():
                del self._timers[key]
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(f"ANALYZE {table}"))
        except Exception:  # upkeep only: autovacuum does the same later
            log.warning("ANALYZE %s after a bulk import failed", table, exc_info=True)


_debounced = _Debounced()


def analyze_after_commit(session: Session, table: str, rows: int) -> None:
    """Ask for ``ANALYZE table`` once this session's transaction commits (PostgreSQL, and only for
    ``rows`` >= :data:`ANALYZE_MIN_ROWS`). Nothing happens on rollback."""
    if table not in _TABLES:
        raise ValueError(f"no upkeep is defined for table {table!r}")
    bind = session.get_bind()
    engine = bind.engine if hasattr(bind, "engine") else bind
    if rows < ANALYZE_MIN_ROWS or engine.dialect.name != "postgresql":
        return
    wanted: set[str] = session.info.setdefault(_SESSION_KEY, set())
    wanted.add(table)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return
    wanted = session.info.pop(_SESSION_KEY, None)
    if not wanted:
        return
    bind = session.get_bind()
    engine = bind.engine if hasattr(bind, "engine") else bind
    for table in sorted(wanted):
        _debounced.request(engine, table)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_SESSION_KEY, None)
