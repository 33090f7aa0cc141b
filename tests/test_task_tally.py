"""A project's task totals (migration 0015, workspace.workflow.tally).

On PostgreSQL triggers on task keep them as delta rows in task_tally: after every kind of change the
rows must add up to the live aggregate over the tasks, also under concurrent writers and forced
compactions, and deleting a project must leave none behind. On both databases the Label Studio API's
task list and project JSON must show the real totals.
"""

from __future__ import annotations

import threading

import pytest
from conftest import add_member, api_token, grant_project
from lsapi_client import RESULT, Api
from sqlalchemy import select, text

from workspace.lsapi import services as lsapi
from workspace.tenancy.context import TenantContext
from workspace.tenancy.permissions import CATALOGUE
from workspace.workflow.models import Task


@pytest.fixture
def postgres(database) -> None:  # type: ignore[no-untyped-def]
    if database.kind != "postgresql":
        pytest.skip("task_tally is kept by PostgreSQL triggers; SQLite aggregates the tasks")


def _scalar_row(runtime, sql: str, project_id: int) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    with runtime.engine.connect() as conn:
        return tuple(int(v) for v in conn.execute(text(sql), {"p": project_id}).one())


def live(runtime, project_id: int) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    """(tasks, labeled, annotations, predictions) aggregated over the tasks."""
    return _scalar_row(runtime, "SELECT count(*), count(*) FILTER (WHERE annotation_count > 0), "
                       "coalesce(sum(annotation_count), 0), coalesce(sum(prediction_count), 0) "
                       "FROM task WHERE project_id = :p", project_id)


def tally(runtime, project_id: int) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    """The same four totals as the sum of the project's delta rows."""
    return _scalar_row(runtime, "SELECT coalesce(sum(tasks), 0), coalesce(sum(labeled), 0), "
                       "coalesce(sum(annotations), 0), coalesce(sum(predictions), 0) "
                       "FROM task_tally WHERE project_id = :p", project_id)


def tally_rows(runtime, project_id: int) -> int:  # type: ignore[no-untyped-def]
    return _scalar_row(runtime, "SELECT count(*) FROM task_tally WHERE project_id = :p", project_id)[0]


def assert_tally(runtime, project_id: int, expected: tuple[int, int, int, int]) -> None:  # type: ignore[no-untyped-def]
    assert live(runtime, project_id) == expected
    assert tally(runtime, project_id) == expected


def test_tally_follows_every_kind_of_task_change(runtime, world, api, postgres):  # type: ignore[no-untyped-def]
    project = api.project()
    assert_tally(runtime, project, (0, 0, 0, 0))
    ids = api.import_tasks(project, [{"text": "a"}, {"text": "b"}, {"text": "c"},
                                     {"data": {"text": "d"}, "annotations": [{"result": RESULT}],
                                      "predictions": [{"result": RESULT}, {"result": RESULT}]}])
    assert_tally(runtime, project, (4, 1, 1, 2))
    created = api("POST", "/api/tasks/", {"project": project, "data": {"text": "e"}})["id"]
    assert_tally(runtime, project, (5, 1, 1, 2))
    api("DELETE", f"/api/tasks/{created}/")
    assert_tally(runtime, project, (4, 1, 1, 2))

    annotation = api("POST", f"/api/tasks/{ids[0]}/annotations/", {"result": RESULT})["id"]
    assert_tally(runtime, project, (4, 2, 2, 2))
    annotator = add_member(runtime, world, "ann@acme.example", "annotator")
    grant_project(runtime, world, project, "annotator", person=annotator)
    other = Api(api.client, api_token(runtime, world, annotator))
    other("POST", f"/api/tasks/{ids[0]}/annotations/", {"result": RESULT})
    assert_tally(runtime, project, (4, 2, 3, 2))
    other("POST", f"/api/tasks/{ids[1]}/annotations/", {"was_cancelled": True})  # a skip counts nothing
    assert_tally(runtime, project, (4, 2, 3, 2))
    api("DELETE", f"/api/annotations/{annotation}/")
    assert_tally(runtime, project, (4, 2, 2, 2))

    prediction = api("POST", "/api/predictions/", {"task": ids[2], "result": RESULT})["id"]
    assert_tally(runtime, project, (4, 2, 2, 3))
    api("DELETE", f"/api/predictions/{prediction}/")
    assert_tally(runtime, project, (4, 2, 2, 2))

    api("DELETE", f"/api/projects/{project}/tasks/")  # the data manager's "delete all matching"
    assert_tally(runtime, project, (0, 0, 0, 0))


def test_updates_record_only_real_changes_and_follow_a_moved_task(runtime, api, postgres):  # type: ignore[no-untyped-def]
    first, second = api.project("First"), api.project("Second")
    api.import_tasks(first, [{"text": "a"}, {"text": "b"}])
    rows = tally_rows(runtime, first)
    with runtime.engine.begin() as conn:
        conn.execute(text("UPDATE task SET data = '{\"text\": \"changed\"}' WHERE project_id = :p"), {"p": first})
    assert tally_rows(runtime, first) == rows  # no delta, no row
    with runtime.engine.begin() as conn:
        conn.execute(text("UPDATE task SET project_id = :to, annotation_count = 2 "
                          "WHERE id = (SELECT min(id) FROM task WHERE project_id = :p)"), {"p": first, "to": second})
    assert_tally(runtime, first, (1, 0, 0, 0))
    assert_tally(runtime, second, (1, 1, 2, 0))


def test_forced_compaction_keeps_the_totals_in_one_row(runtime, api, postgres):  # type: ignore[no-untyped-def]
    project = api.project()
    ids = api.import_tasks(project, [{"text": str(i)} for i in range(5)])
    for task_id in ids[:3]:
        api("POST", "/api/predictions/", {"task": task_id, "result": RESULT})
    api("POST", f"/api/tasks/{ids[0]}/annotations/", {"result": RESULT})
    before = tally(runtime, project)
    assert before == live(runtime, project) == (5, 1, 1, 3)
    assert tally_rows(runtime, project) > 1
    with runtime.engine.begin() as conn:
        conn.execute(text("SELECT task_tally_compact(:p)"), {"p": project})
    assert tally_rows(runtime, project) == 1
    assert tally(runtime, project) == before


def test_deleting_a_project_leaves_no_tally_rows(runtime, api, postgres):  # type: ignore[no-untyped-def]
    gone, kept = api.project("Gone"), api.project("Kept")
    for project in (gone, kept):
        ids = api.import_tasks(project, [{"text": "a"}, {"text": "b"}])
        api("POST", f"/api/tasks/{ids[0]}/annotations/", {"result": RESULT})
    api("DELETE", f"/api/projects/{gone}/", status=204)
    assert tally_rows(runtime, gone) == 0
    assert_tally(runtime, kept, (2, 1, 1, 0))


def test_concurrent_writers_keep_the_tally_exact(runtime, world, api, postgres):  # type: ignore[no-untyped-def]
    """Eight transactions at once, each on its own task: predictions, an annotation, a deleted
    prediction, and compactions of the same project racing each other."""
    project = api.project()
    ids = api.import_tasks(project, [{"text": str(i)} for i in range(8)])
    owner = TenantContext(world.tenant_id, world.slug, world.slug, world.owner.user_id, world.owner.email, "",
                          world.owner.membership_id, "owner", permissions=frozenset(CATALOGUE))
    start = threading.Barrier(len(ids))
    errors: list[str] = []

    def work(task_id: int) -> None:
        try:
            start.wait()
            for round_ in range(3):
                with runtime.unit_of_work(world.tenant_id) as db:
                    task = db.scalars(select(Task).where(Task.id == task_id)).one()
                    target = lsapi.prediction_target(db, task_id)
                    made = [lsapi.create_prediction(db, owner, target, {"result": RESULT}) for _ in range(2)]
                    lsapi.delete_prediction(db, owner, made[0])
                    if round_ == 1:
                        lsapi.create_annotation(db, owner, task, {"result": RESULT})
                    db.execute(text("SELECT task_tally_compact(:p)"), {"p": project})
        except BaseException as exc:  # pragma: no cover - reported by the assertion below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(task_id,)) for task_id in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert_tally(runtime, project, (8, 8, 8, 24))


def test_api_totals_are_real_on_both_databases(runtime, api):  # type: ignore[no-untyped-def]
    project = api.project()
    ids = api.import_tasks(project, [{"text": str(i)} for i in range(5)]
                           + [{"data": {"text": "x"}, "predictions": [{"result": RESULT}]}])
    api("POST", f"/api/tasks/{ids[0]}/annotations/", {"result": RESULT})
    api("POST", f"/api/tasks/{ids[1]}/annotations/", {"result": RESULT})
    api("POST", "/api/predictions/", {"task": ids[0], "result": RESULT})
    api("DELETE", f"/api/tasks/{ids[4]}/")
    assert live(runtime, project) == (5, 2, 2, 2)  # (tasks, labeled, annotations, predictions)

    page = api("GET", f"/api/tasks/?project={project}&page=1&page_size=2")
    assert (page["total"], page["total_annotations"], page["total_predictions"]) == (5, 2, 2)
    assert len(page["tasks"]) == 2
    api("GET", f"/api/tasks/?project={project}&page=3&page_size=2")  # the last, partial page
    api("GET", f"/api/tasks/?project={project}&page=4&page_size=2", status=404)
    everything = api("GET", "/api/tasks/?page=1&page_size=100")  # every project the caller sees
    assert (everything["total"], everything["total_annotations"], everything["total_predictions"]) == (5, 2, 2)
    labeled = api("GET", f"/api/tasks/?project={project}&only_annotated=true")
    assert (labeled["total"], labeled["total_annotations"]) == (2, 2)

    body = api("GET", f"/api/projects/{project}/")
    assert (body["task_number"], body["num_tasks_with_annotations"], body["total_annotations_number"],
            body["total_predictions_number"]) == (5, 2, 2, 2)
    listed = {p["id"]: p for p in api("GET", "/api/projects/")["results"]}
    assert listed[project]["task_number"] == 5
