"""A task always belongs to an existing project of its own tenant, and goes with its project.

SQLite enforces this with a foreign key; PostgreSQL with a per-statement check and a delete trigger
(migration 0014), which keeps bulk imports fast. Both must refuse and cascade the same way.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from conftest import make_tenant


def _project(runtime, tenant_id: int, title: str) -> int:  # type: ignore[no-untyped-def]
    with runtime.engine.begin() as conn:
        return conn.execute(text(
            "INSERT INTO project (tenant_id, title, description, instructions, label_config, workflow, created_at) "
            "VALUES (:t, :title, '', '', '<View/>', '{}', CURRENT_TIMESTAMP) RETURNING id"), {"t": tenant_id, "title": title}
        ).scalar_one()


def _insert_tasks(runtime, rows: list[tuple[int, int]]) -> None:  # type: ignore[no-untyped-def]
    with runtime.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO task (tenant_id, project_id, data, annotation_count, prediction_count, created_at) "
            "VALUES (:t, :p, '{}', 0, 0, CURRENT_TIMESTAMP)"), [{"t": t, "p": p} for t, p in rows])


def _count(runtime, sql: str) -> int:  # type: ignore[no-untyped-def]
    with runtime.engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def test_a_task_cannot_point_at_another_tenants_project_or_a_missing_one(runtime):
    acme, globex = make_tenant(runtime, "acme"), make_tenant(runtime, "globex")
    mine, theirs = _project(runtime, acme.tenant_id, "Mine"), _project(runtime, globex.tenant_id, "Theirs")
    _insert_tasks(runtime, [(acme.tenant_id, mine)] * 3)
    for bad in ([(acme.tenant_id, theirs)], [(acme.tenant_id, mine), (acme.tenant_id, 999_999)]):
        with pytest.raises(IntegrityError):
            _insert_tasks(runtime, bad)
    assert _count(runtime, "SELECT count(*) FROM task") == 3  # the refused statements left nothing
    with pytest.raises(IntegrityError), runtime.engine.begin() as conn:
        conn.execute(text("UPDATE task SET project_id = :p"), {"p": theirs})
    assert _count(runtime, f"SELECT count(*) FROM task WHERE project_id = {mine}") == 3


def test_an_update_is_checked_only_for_the_tasks_it_moves_and_still_refuses_bad_moves(runtime):
    """PostgreSQL's UPDATE trigger (migration 0017) checks only rows whose (tenant, project) changed."""
    acme, globex = make_tenant(runtime, "acme"), make_tenant(runtime, "globex")
    mine, other = _project(runtime, acme.tenant_id, "Mine"), _project(runtime, acme.tenant_id, "Other")
    theirs = _project(runtime, globex.tenant_id, "Theirs")
    _insert_tasks(runtime, [(acme.tenant_id, mine)] * 3)
    first = _count(runtime, "SELECT min(id) FROM task")
    moves = (
        (f"UPDATE task SET project_id = 999999 WHERE id = {first}", "a missing project"),
        (f"UPDATE task SET project_id = {theirs} WHERE id = {first}", "another tenant's project"),
        (f"UPDATE task SET tenant_id = {globex.tenant_id} WHERE id = {first}", "its project in another tenant"),
        # Unchanged rows and a good move in the same statement do not hide the bad move.
        (f"UPDATE task SET prediction_count = prediction_count + 1, "
         f"project_id = CASE WHEN id = {first} THEN 999999 WHEN id = {first} + 1 THEN {other} ELSE project_id END",
         "a missing project among good rows"),
    )
    for sql, why in moves:
        with pytest.raises(IntegrityError), runtime.engine.begin() as conn:
            conn.execute(text(sql))
            pytest.fail(f"a task was moved to {why}")
    assert _count(runtime, f"SELECT count(*) FROM task WHERE project_id = {mine} AND prediction_count = 0") == 3
    with runtime.engine.begin() as conn:
        conn.execute(text(f"UPDATE task SET project_id = {other} WHERE id = {first}"))
        conn.execute(text("UPDATE task SET prediction_count = prediction_count + 1"))
    assert _count(runtime, f"SELECT count(*) FROM task WHERE project_id = {other} AND prediction_count = 1") == 1


def test_deleting_a_project_deletes_its_tasks_and_their_annotations_only(runtime):
    acme = make_tenant(runtime, "acme")
    gone, kept = _project(runtime, acme.tenant_id, "Gone"), _project(runtime, acme.tenant_id, "Kept")
    _insert_tasks(runtime, [(acme.tenant_id, gone)] * 2 + [(acme.tenant_id, kept)])
    with runtime.engine.begin() as conn:
        task_id = conn.execute(text(f"SELECT min(id) FROM task WHERE project_id = {gone}")).scalar_one()
        conn.execute(text(
            "INSERT INTO annotation (tenant_id, project_id, task_id, result, status, version, ground_truth, created_at) "
            "VALUES (:t, :p, :task, '[]', 'submitted', 1, false, CURRENT_TIMESTAMP)"),
            {"t": acme.tenant_id, "p": gone, "task": task_id})
        conn.execute(text(f"DELETE FROM project WHERE id = {gone}"))
    assert _count(runtime, f"SELECT count(*) FROM task WHERE project_id = {gone}") == 0
    assert _count(runtime, "SELECT count(*) FROM annotation") == 0
    assert _count(runtime, f"SELECT count(*) FROM task WHERE project_id = {kept}") == 1
