"""Engine and session factory for PostgreSQL (psycopg 3) and SQLite."""

from __future__ import annotations

import time

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["make_engine", "make_session_factory", "readonly_engine"]

READONLY = "workspace_readonly"


def readonly_engine(engine: Engine) -> Engine:
    """The same pool, for connections that only read (on SQLite they don't take the write lock)."""
    return engine.execution_options(**{READONLY: True})


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=20,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy own transaction boundaries; pysqlite's own handling defers BEGIN.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # Embedded mode is single-writer: a unit of work takes the write lock up front, so a
            # transaction that read first never dies with SQLITE_BUSY when it then writes (the audit
            # chain head). Read-only connections (``readonly_engine``) begin deferred and never wait.
            if conn.get_execution_options().get(READONLY):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=20)
    _ping_when_idle(engine)
    return engine


IDLE_PING_SECONDS = 5.0


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use only when it sat idle for a while (a server restart or a
    dropped connection happens while nobody uses it): under load that is never, where
    ``pool_pre_ping`` would spend a round trip on every checkout. A connection that fails the check
    is replaced transparently (``DisconnectionError`` makes the pool retry with a new one)."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn, record):  # type: ignore[no-untyped-def]
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn, record, _proxy):  # type: ignore[no-untyped-def]
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            with dbapi_conn.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_conn.rollback()
        except Exception as exc:  # noqa: BLE001 - any failure means: not usable, take another
            raise DisconnectionError("pooled connection failed its idle check") from exc


def make_session_factory(engine: Engine, *, audit_key: str, **info: object) -> sessionmaker[Session]:
    """Sessions carry the key that seals each tenant's audit head, and process services, in ``info``."""
    return sessionmaker(engine, expire_on_commit=False, autoflush=True, info={"audit_key": audit_key, **info})
