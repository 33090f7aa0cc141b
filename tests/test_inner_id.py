"""Label Studio's ``inner_id``: a task's 1-based number in its project, stored when it is created.

Every way tasks are written (API imports of plain tasks and of tasks with annotations or predictions,
imports of several batches, single task creation, ``insert_tasks``) must number them 1..N in id order
per project, never give a number twice (deleted tasks' included), and the API must show the stored
number. Migration 0016 must number the tasks that existed before it the same way.
"""

from __future__ import annotations

import io
from typing import Any

from alembic import command
from sqlalchemy import select, text

from lsapi_client import RESULT
from workspace.db.migrate import alembic_config
from workspace.lib.timeutil import utcnow
from workspace.tenancy.context import TenantContext
from workspace.tenancy.scoping import stamp_rows
from workspace.workflow.imports import import_tasks
from workspace.workflow.models import Task
from workspace.workflow.repositories import insert_tasks


def numbers(runtime, project_id: int) -> list[int | None]:  # type: ignore[no-untyped-def]
    """The project's stored inner ids in task id order."""
    with runtime.engine.connect() as conn:
        return list(conn.execute(text("SELECT inner_id FROM task WHERE project_id = :p ORDER BY id"),
                                 {"p": project_id}).scalars())


def task_seq(runtime, project_id: int) -> int:  # type: ignore[no-untyped-def]
    with runtime.engine.connect() as conn:
        return int(conn.execute(text("SELECT task_seq FROM project WHERE id = :p"), {"p": project_id}).scalar_one())


def test_every_import_path_numbers_tasks_in_id_order_per_project(runtime, world, api):  # type: ignore[no-untyped-def]
    first, second = api.project("First"), api.project("Second")
    api.import_tasks(first, [{"text": f"plain {i}"} for i in range(3)])
    api.import_tasks(second, [{"text": "other"}] * 2)
    # Inline annotations and predictions: the write_records path.
    api.import_tasks(first, [{"data": {"text": "annotated"}, "annotations": [{"result": RESULT}]},
                             {"data": {"text": "predicted"}, "predictions": [{"result": RESULT}]},
                             {"text": "plain in a mixed file"}])
    created = api.create_task(first, "single")
    # One import of several batches, plain and with children, straight through the service.
    ctx = TenantContext(world.tenant_id, "acme", "Acme", world.owner.user_id, world.owner.email, "",
                        world.owner.membership_id, "owner")
    lines = ['{"text": "a"}', '{"text": "b"}', '{"text": "c"}',
             '{"data": {"text": "d"}, "annotations": [{"result": []}]}', '{"text": "e"}']
    with runtime.unit_of_work(world.tenant_id) as db:
        import_tasks(db, ctx, first, io.BytesIO("\n".join(lines).encode()), "batches.jsonl", batch_size=2)
    api.import_tasks(second, [{"text": "later"}])

    assert numbers(runtime, first) == list(range(1, 13))
    assert numbers(runtime, second) == [1, 2, 3]
    assert (task_seq(runtime, first), task_seq(runtime, second)) == (12, 3)
    assert created["inner_id"] == 7


def test_numbers_of_deleted_tasks_are_not_given_again_and_the_api_shows_stored_ones(runtime, api):  # type: ignore[no-untyped-def]
    project = api.project("Deletes")
    ids = api.import_tasks(project, [{"text": str(i)} for i in range(4)])
    api("DELETE", f"/api/tasks/{ids[3]}/")  # the last one: counting would give its number again
    api("DELETE", f"/api/tasks/{ids[1]}/")
    created = api.create_task(project, "after the deletes")
    later = api.import_tasks(project, [{"text": "x"}, {"data": {"text": "y"}, "predictions": [{"result": RESULT}]}])

    assert created["inner_id"] == 5
    assert numbers(runtime, project) == [1, 3, 5, 6, 7]
    assert api("GET", f"/api/tasks/{ids[2]}/")["inner_id"] == 3
    assert api("GET", f"/api/tasks/{later[1]}/")["inner_id"] == 7
    page = api("GET", f"/api/tasks/?project={project}&page=2&page_size=2")
    assert [t["inner_id"] for t in page["tasks"]] == [5, 6]
    everywhere = api("GET", "/api/tasks/?page=1&page_size=100")  # without a project too
    assert [t["inner_id"] for t in everywhere["tasks"]] == [1, 3, 5, 6, 7]


def test_insert_tasks_numbers_the_rows_of_each_project(runtime, world, api, database):  # type: ignore[no-untyped-def]
    first, second = api.project("First"), api.project("Second")
    api.import_tasks(first, [{"text": "existing"}])

    def rows(*projects: int) -> list[dict[str, Any]]:
        return [{"project_id": p, "data": {"text": "media"}, "import_id": None, "created_at": utcnow(),
                 "annotation_count": 0, "prediction_count": 0} for p in projects]

    with runtime.unit_of_work(world.tenant_id) as db:
        insert_tasks(db, stamp_rows(db, rows(second, first, second)), need_ids=False)  # COPY on PostgreSQL
        returned = insert_tasks(db, stamp_rows(db, rows(first, first)), need_ids=True)
        assert [db.get(Task, i).inner_id for i in returned] == [3, 4]  # type: ignore[union-attr]
    assert numbers(runtime, first) == [1, 2, 3, 4]
    assert numbers(runtime, second) == [1, 2]


def test_a_task_written_without_a_number_gets_its_position(runtime, world, api):  # type: ignore[no-untyped-def]
    project = api.project("Raw")
    api.import_tasks(project, [{"text": "numbered"}] * 2)
    with runtime.engine.begin() as conn:
        conn.execute(text("INSERT INTO task (tenant_id, project_id, data, annotation_count, prediction_count, "
                          "created_at) VALUES (:t, :p, '{\"text\": \"raw\"}', 0, 0, CURRENT_TIMESTAMP)"),
                     {"t": world.tenant_id, "p": project})
    with runtime.unit_of_work(world.tenant_id) as db:
        raw = db.scalars(select(Task.id).where(Task.project_id == project, Task.inner_id.is_(None))).one()
    assert api("GET", f"/api/tasks/{raw}/")["inner_id"] == 3


def _migrate(runtime, action: str, revision: str) -> None:  # type: ignore[no-untyped-def]
    config = alembic_config()
    with runtime.engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)


def test_migration_0016_numbers_existing_tasks_per_project(runtime, world, api):  # type: ignore[no-untyped-def]
    first, second, empty = api.project("First"), api.project("Second"), api.project("Empty")
    runtime.engine.dispose()  # no pooled connection may hold the tables while their columns change
    _migrate(runtime, "downgrade", "0015")
    try:
        with runtime.engine.begin() as conn:
            for project in (first, second, first, first, second, first):
                conn.execute(text("INSERT INTO task (tenant_id, project_id, data, annotation_count, "
                                  "prediction_count, created_at) VALUES (:t, :p, '{\"text\": \"old\"}', 0, 0, "
                                  "CURRENT_TIMESTAMP)"), {"t": world.tenant_id, "p": project})
            conn.execute(text("DELETE FROM task WHERE id = (SELECT max(id) FROM task WHERE project_id = :p)"),
                         {"p": second})
    finally:
        _migrate(runtime, "upgrade", "head")
    runtime.engine.dispose()

    assert numbers(runtime, first) == [1, 2, 3, 4]
    assert numbers(runtime, second) == [1]
    assert [task_seq(runtime, p) for p in (first, second, empty)] == [4, 1, 0]
    new = api.import_tasks(first, [{"text": "new"}])
    assert api("GET", f"/api/tasks/{new[0]}/")["inner_id"] == 5
