"""Upkeep after bulk imports: PostgreSQL vacuums and analyzes the task table soon after a large import
commits, so the planner's statistics and the visibility map cover the new rows (``db.maintenance``)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from tests.conftest import api_token, make_tenant
from workspace.db import maintenance

CONFIG = '<View><Text name="text" value="$text"/><Choices name="c" toName="text"><Choice value="a"/></Choices></View>'


def _last_vacuum(runtime):  # type: ignore[no-untyped-def]
    with runtime.engine.connect() as conn:
        return conn.execute(text("SELECT last_vacuum, last_analyze, n_ins_since_vacuum FROM pg_stat_user_tables "
                                 "WHERE relname = 'task'")).one()


def _import(client, token: str, project_id: int, n: int):  # type: ignore[no-untyped-def]
    return client.post(f"/api/projects/{project_id}/import", json=[{"text": f"t{i}"} for i in range(n)],
                       headers={"Authorization": f"Token {token}"})


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_large_import_is_followed_by_vacuum_analyze(client, runtime, database):  # type: ignore[no-untyped-def]
    world = make_tenant(runtime, "upkeep")
    token = api_token(runtime, world, world.owner)
    r = client.post("/api/projects/", json={"title": "p", "label_config": CONFIG},
                    headers={"Authorization": f"Token {token}"})
    project_id = r.json()["id"]
    before = _last_vacuum(runtime)

    # a small import is left to autovacuum
    assert _import(client, token, project_id, 10).status_code == 201
    time.sleep(maintenance.QUIET_SECONDS + 1.0)
    assert _last_vacuum(runtime)[0] == before[0]

    # a rejected import (a task lacks the config's field) commits nothing and asks for nothing
    bad = [{"text": "x"}] * maintenance.VACUUM_MIN_ROWS + [{"other": "y"}]
    assert client.post(f"/api/projects/{project_id}/import", json=bad,
                       headers={"Authorization": f"Token {token}"}).status_code == 400
    time.sleep(maintenance.QUIET_SECONDS + 1.0)
    assert _last_vacuum(runtime)[0] == before[0]

    assert _import(client, token, project_id, maintenance.VACUUM_MIN_ROWS).status_code == 201
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        last_vacuum, last_analyze, inserted_since = _last_vacuum(runtime)
        if last_vacuum is not None and last_vacuum != before[0]:
            break
        time.sleep(0.2)
    assert last_vacuum is not None and last_vacuum != before[0], "no VACUUM after a large import"
    assert last_analyze is not None
    assert inserted_since == 0


def test_upkeep_names_known_tables_only(runtime):  # type: ignore[no-untyped-def]
    with runtime.session_factory() as session, pytest.raises(ValueError, match="no upkeep"):
        maintenance.vacuum_after_commit(session, "task; DROP TABLE task", 10**6)
