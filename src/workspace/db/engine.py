"""Engine and session factory for PostgreSQL (psycopg 3) and SQLite."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
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
    return create_engine(url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)


def make_session_factory(engine: Engine, *, audit_key: str, **info: object) -> sessionmaker[Session]:
    """Sessions carry the key that seals each tenant's audit head, and process services, in ``info``."""
    return sessionmaker(engine, expire_on_commit=False, autoflush=True, info={"audit_key": audit_key, **info})
