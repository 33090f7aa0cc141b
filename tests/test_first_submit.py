"""A member's first submit of a task: on PostgreSQL one statement writes the annotation, its first
revision, the task's count and the end of the reservation; on SQLite the ORM does. Both must leave
the same rows, the same audit event (in a chain that verifies) and the same follow-up work."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from conftest import add_member, make_tenant
from test_queue import RESULT, _ctx, _next, _project
from workspace.audit.models import AuditEvent
from workspace.audit.verify import verify_tenant
from workspace.ml.services import TRAINING_STATUSES
from workspace.workflow import annotations as ann
from workspace.workflow.models import LABELED_PROJECTS, Annotation, Task, TaskReservation
from workspace.workflow.review_models import AnnotationRevision


@pytest.fixture
def world(runtime):  # type: ignore[no-untyped-def]
    return make_tenant(runtime, "alpha")


def test_first_submit_writes_rows_count_revision_release_and_audit(runtime, world):  # type: ignore[no-untyped-def]
    project_id, _ids = _project(runtime, world, 3)
    person = add_member(runtime, world, "a@alpha.example", "annotator")
    task_id = _next(runtime, world, project_id, person)  # reserves the task for them
    assert task_id is not None
    with runtime.unit_of_work(world.tenant_id) as db:
        assert db.scalar(select(func.count(TaskReservation.id))) == 1
        made = ann.submit_annotation(db, _ctx(world, person), project_id, task_id, RESULT, 2.5)
        assert made.id is not None and made.status == "submitted" and made.version == 1
        assert project_id in db.info[LABELED_PROJECTS] and made.status in TRAINING_STATUSES
        made_id = made.id
    with runtime.unit_of_work(world.tenant_id) as db:
        row = db.scalars(select(Annotation).where(Annotation.id == made_id)).one()
        assert (row.task_id, row.project_id, row.completed_by_id) == (task_id, project_id, person.user_id)
        assert (row.result, row.status, row.lead_time, row.version) == (RESULT, "submitted", 2.5, 1)
        assert row.ground_truth is False and row.gt_score is None and row.updated_at is None
        [revision] = db.scalars(select(AnnotationRevision).where(AnnotationRevision.annotation_id == made_id)).all()
        assert (revision.number, revision.version, revision.action, revision.status, revision.actor_id) == (
            1, 1, "submitted", "submitted", person.user_id)
        assert revision.result == RESULT
        assert db.scalars(select(Task).where(Task.id == task_id)).one().annotation_count == 1
        assert db.scalar(select(func.count(TaskReservation.id))) == 0
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "annotation.created")).one()
        assert event.object_id == str(made_id) and event.object_type == "annotation"
        assert event.changes == {"project_id": [None, project_id], "task_id": [None, task_id],
                                 "result": [None, RESULT], "status": [None, "submitted"],
                                 "completed_by_id": [None, person.user_id], "lead_time": [None, 2.5],
                                 "version": [None, 1], "ground_truth": [None, False]}
        assert verify_tenant(db, runtime.settings.secret_key, world.tenant_id).ok
    # The second submit is an update through the general path: same row, version 2, revision 2.
    with runtime.unit_of_work(world.tenant_id) as db:
        again = ann.submit_annotation(db, _ctx(world, person), project_id, task_id, RESULT, 1.0)
        assert again.id == made_id and again.version == 2
    with runtime.unit_of_work(world.tenant_id) as db:
        numbers = db.scalars(select(AnnotationRevision.number).where(AnnotationRevision.annotation_id == made_id)
                             .order_by(AnnotationRevision.number)).all()
        assert numbers == [1, 2]
        assert db.scalars(select(Task).where(Task.id == task_id)).one().annotation_count == 1
        assert verify_tenant(db, runtime.settings.secret_key, world.tenant_id).ok


def test_first_submit_rolls_back_with_its_transaction(runtime, world):  # type: ignore[no-untyped-def]
    project_id, ids = _project(runtime, world, 1)
    person = add_member(runtime, world, "a@alpha.example", "annotator")
    with pytest.raises(RuntimeError), runtime.unit_of_work(world.tenant_id) as db:
        ann.submit_annotation(db, _ctx(world, person), project_id, ids[0], RESULT, 1.0)
        raise RuntimeError("the request fails after the submit")
    with runtime.unit_of_work(world.tenant_id) as db:
        assert db.scalar(select(func.count(Annotation.id))) == 0
        assert db.scalar(select(func.count(AnnotationRevision.id))) == 0
        assert db.scalars(select(Task).where(Task.id == ids[0])).one().annotation_count == 0
        assert db.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "annotation.created")) == 0
