"""The PostgreSQL pool replaces connections that died while idle (a server restart, a dropped
connection) without the caller noticing, and does not check busy connections on every checkout."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from workspace.db import engine as engine_mod


def _backend_pid(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_connection_killed_while_idle_is_replaced(database, monkeypatch):  # type: ignore[no-untyped-def]
    engine = engine_mod.make_engine(database.url, pool_size=1)
    try:
        pid = _backend_pid(engine)
        assert _backend_pid(engine) == pid  # the pooled connection is reused
        admin = engine_mod.make_engine(database.url, pool_size=1)
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        admin.dispose()
        monkeypatch.setattr(engine_mod, "IDLE_PING_SECONDS", 0.0)  # it has been idle "long enough"
        assert _backend_pid(engine) != pid  # found dead at checkout and replaced: no error
    finally:
        engine.dispose()
