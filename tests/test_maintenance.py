"""Upkeep after bulk imports: PostgreSQL analyzes the task table soon after a large import commits, so
the planner's statistics cover the new rows (``db.maintenance``)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from tests.conftest import api_token, make_tenant
from workspace.db import maintenance

CONFIG = '<View><Text name="text" value="$text"/><Choices name="c" toName="text"><Choice value="a"/></Choices></View>'


def _stats(runtime):  # type: ignore[no-untyped-def]
    with runtime.engine.connect() as conn:
        return conn.execute(text("SELECT last_analyze, n_mod_since_analyze FROM pg_stat_user_tables "
                                 "WHERE relname = 'task'")).one()


def _import(client, token: str, project_id: int, rows: list[dict]):  # type: ignore[no-untyped-def]
    return client.post(f"/api/projects/{project_id}/import", json=rows, headers={"Authorization": f"Token {token}"})


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_large_import_is_followed_by_analyze(client, runtime, database):  # type: ignore[no-untyped-def]
    world = make_tenant(runtime, "upkeep")
    token = api_token(runtime, world, world.owner)
    r = client.post("/api/projects/", json={"title": "p", "label_config": CONFIG},
                    headers={"Authorization": f"Token {token}"})
    project_id = r.json()["id"]
    before = _stats(runtime)[0]

    # a small import is left to autovacuum
    assert _import(client, token, project_id, [{"text": "t"}] * 10).status_code == 201
    time.sleep(maintenance.QUIET_SECONDS + 1.0)
    assert _stats(runtime)[0] == before

    # a rejected import (a task lacks the config's field) commits nothing and asks for nothing
    bad = [{"text": "x"}] * maintenance.ANALYZE_MIN_ROWS + [{"other": "y"}]
    assert _import(client, token, project_id, bad).status_code == 400
    time.sleep(maintenance.QUIET_SECONDS + 1.0)
    assert _stats(runtime)[0] == before

    assert _import(client, token, project_id, [{"text": "t"}] * maintenance.ANALYZE_MIN_ROWS).status_code == 201
    deadline = time.monotonic() + 30
    last_analyze, modified_since = _stats(runtime)
    while time.monotonic() < deadline and (last_analyze is None or last_analyze == before):
        time.sleep(0.2)
        last_analyze, modified_since = _stats(runtime)
    assert last_analyze is not None and last_analyze != before, "no ANALYZE after a large import"
    assert modified_since == 0


def test_upkeep_names_known_tables_only(runtime):  # type: ignore[no-untyped-def]
    with runtime.session_factory() as session, pytest.raises(ValueError, match="no upkeep"):
        maintenance.analyze_after_commit(session, "task; DROP TABLE task", 10**6)
