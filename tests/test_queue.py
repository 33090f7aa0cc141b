""""Label next" (workspace.workflow.queue) by each workflow setting, on both backends, through the real
services and one transaction per call (like one HTTP request each).

The acceptance case runs on PostgreSQL: 20 annotators in 20 threads, each with its own sessions,
loop label-next → submit until nothing is left on a project of 10 tasks with overlap 2; every task
ends with exactly 2 distinct annotators and no one labels a task twice.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from conftest import add_member, make_tenant
from workspace.lib.timeutil import utcnow
from workspace.tenancy.context import TenantContext
from workspace.workflow import annotations as ann
from workspace.workflow import services as svc
from workspace.workflow.models import (ANNOTATOR, REJECTED, SUBMITTED, Annotation, Prediction, Project, Task,
                                       TaskAssignment, TaskReservation)

RESULT = [{"id": "r1", "from_name": "label", "to_name": "text", "type": "choices",
           "value": {"choices": ["Positive"]}}]


@pytest.fixture
def world(runtime):  # type: ignore[no-untyped-def]
    return make_tenant(runtime, "alpha")


def _ctx(world, person) -> TenantContext:  # type: ignore[no-untyped-def]
    return TenantContext(world.tenant_id, world.slug, world.slug, person.user_id, person.email, "",
                         person.membership_id, "annotator")


def _project(runtime, world, n_tasks: int, workflow: dict | None = None) -> tuple[int, list[int]]:  # type: ignore[no-untyped-def]
    owner = TenantContext(world.tenant_id, world.slug, world.slug, world.owner.user_id, world.owner.email, "",
                          world.owner.membership_id, "owner")
    with runtime.unit_of_work(world.tenant_id) as db:
        project = svc.create_project(db, owner, "Queue")
        project.workflow = dict(workflow or {})
        tasks = [Task(project_id=project.id, data={"text": f"task {i}"}, created_at=utcnow()) for i in range(n_tasks)]
        db.add_all(tasks)
        db.flush()
        return project.id, [t.id for t in tasks]


def _annotators(runtime, world, n: int):  # type: ignore[no-untyped-def]
    return [add_member(runtime, world, f"a{i}@alpha.example", "annotator") for i in range(n)]


def _next(runtime, world, project_id, person, *, reserve: bool = True) -> int | None:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        task = ann.next_task(db, project_id, person.user_id, reserve=reserve)
        return task.id if task is not None else None


def _submit(runtime, world, project_id, person, task_id) -> None:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        ann.submit_annotation(db, _ctx(world, person), project_id, task_id, RESULT, 1.0)


def _skip(runtime, world, project_id, person, task_id) -> None:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        ann.skip_task(db, _ctx(world, person), project_id, task_id)


def _settings(runtime, world, project_id, **workflow) -> None:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        project = db.scalars(select(Project).where(Project.id == project_id)).one()
        project.workflow = {**(project.workflow or {}), **workflow}


def _assign(runtime, world, project_id, person, task_ids) -> None:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        for task_id in task_ids:
            db.add(TaskAssignment(project_id=project_id, task_id=task_id, user_id=person.user_id, role=ANNOTATOR,
                                  created_at=utcnow()))


def test_reservation_holds_a_slot_is_served_again_and_released_on_submit(runtime, world):  # type: ignore[no-untyped-def]
    project_id, ids = _project(runtime, world, 2)
    a, b, c = _annotators(runtime, world, 3)
    assert _next(runtime, world, project_id, a) == ids[0]
    assert _next(runtime, world, project_id, a) == ids[0]  # their own live reservation again
    assert _next(runtime, world, project_id, b) == ids[1]  # overlap 1: task 1 is held by a
    assert _next(runtime, world, project_id, c) is None  # both slots held
    assert _next(runtime, world, project_id, c, reserve=False) is None
    _submit(runtime, world, project_id, a, ids[0])
    with runtime.unit_of_work(world.tenant_id) as db:
        assert db.scalar(select(func.count(TaskReservation.id)).where(TaskReservation.user_id == a.user_id)) == 0
    assert _next(runtime, world, project_id, a) is None  # task 0 done, task 1 held by b
    _skip(runtime, world, project_id, b, ids[1])  # a skip releases the slot
    assert _next(runtime, world, project_id, c) == ids[1]


def test_expired_reservation_frees_the_slot(runtime, world):  # type: ignore[no-untyped-def]
    project_id, ids = _project(runtime, world, 1, {"reservation_minutes": 5})
    a, b = _annotators(runtime, world, 2)
    assert _next(runtime, world, project_id, a) == ids[0]
    assert _next(runtime, world, project_id, b) is None
    with runtime.unit_of_work(world.tenant_id) as db:
        db.execute(update(TaskReservation).values(expires_at=utcnow() - timedelta(minutes=1)))
    assert _next(runtime, world, project_id, b) == ids[0]
    with runtime.unit_of_work(world.tenant_id) as db:
        expires = db.scalar(select(TaskReservation.expires_at).where(TaskReservation.user_id == b.user_id))
        assert expires is not None


def test_overlap_serves_a_task_to_n_distinct_annotators(runtime, world):  # type: ignore[no-untyped-def]
    project_id, ids = _project(runtime, world, 2, {"overlap": 2})
    a, b, c = _annotators(runtime, world, 3)
    assert _next(runtime, world, project_id, a) == ids[0]
    assert _next(runtime, world, project_id, b) == ids[0]
    assert _next(runtime, world, project_id, c) == ids[1]
    _submit(runtime, world, project_id, a, ids[0])
    _submit(runtime, world, project_id, b, ids[0])
    assert _next(runtime, world, project_id, a) == ids[1]
    _submit(runtime, world, project_id, a, ids[1])
    _submit(runtime, world, project_id, c, ids[1])
    assert _next(runtime, world, project_id, b) is None  # every slot filled


def test_overlap_share_gives_overlap_to_that_share_of_tasks(runtime, world):  # type: ignore[no-untyped-def]
    from workspace.workflow.settings import workflow_settings

    project_id, ids = _project(runtime, world, 12, {"overlap": 2, "overlap_share": 50})
    settings = workflow_settings({"overlap": 2, "overlap_share": 50})
    people = _annotators(runtime, world, 3)
    served: dict[int, int] = {}
    for person in people:
        while (task_id := _next(runtime, world, project_id, person)) is not None:
            _submit(runtime, world, project_id, person, task_id)
            served[task_id] = served.get(task_id, 0) + 1
    assert served == {t: settings.wants(t) for t in ids}
    assert {settings.wants(t) for t in ids} == {1, 2}


def test_manual_distribution_serves_only_assigned_tasks(runtime, world):  # type: ignore[no-untyped-def]
    project_id, ids = _project(runtime, world, 4, {"distribution": "manual"})
    a, b = _annotators(runtime, world, 2)
    _assign(runtime, world, project_id, a, [ids[2]])
    assert _next(runtime, world, project_id, b) is None
    assert _next(runtime, world, project_id, a) == ids[2]
    _submit(runtime, world, project_id, a, ids[2])
    assert _next(runtime, world, project_id, a) is None


def test_auto_distribution_serves_mine_first_then_unassigned_never_others(runtime, world):  # type: ignore[no-untyped-def]
    project_id, ids = _project(runtime, world, 4)
    a, b = _annotators(runtime, world, 2)
    _assign(runtime, world, project_id, a, [ids[3]])
    _assign(runtime, world, project_id, b, [ids[0]])
    got = []
    while (task_id := _next(runtime, world, project_id, a)) is not None:
        got.append(task_id)
        _submit(runtime, world, project_id, a, task_id)
    assert got == [ids[3], ids[1], ids[2]]  # b's task 0 is never served to a


def test_annotator_cap(runtime, world):  # type: ignore[no-untyped-def]
    project_id, ids = _project(runtime, world, 5, {"annotator_cap": 2})
    (a,) = _annotators(runtime, world, 1)
    for expected in ids[:2]:
        assert _next(runtime, world, project_id, a) == expected
        _submit(runtime, world, project_id, a, expected)
    assert _next(runtime, world, project_id, a) is None


@pytest.mark.parametrize("policy,expected", [
    ("never", "others_then_none"), ("requeue", "same_again"), ("back", "after_others")])
def test_skip_policies(runtime, world, policy, expected):  # type: ignore[no-untyped-def]
    project_id, ids = _project(runtime, world, 3, {"skipped": policy})
    (a,) = _annotators(runtime, world, 1)
    assert _next(runtime, world, project_id, a) == ids[0]
    _skip(runtime, world, project_id, a, ids[0])
    order = []
    while (task_id := _next(runtime, world, project_id, a)) is not None and len(order) < 5:
        order.append(task_id)
        if task_id == ids[0] and expected == "same_again":
            break
        _submit(runtime, world, project_id, a, task_id)
    if expected == "others_then_none":
        assert order == [ids[1], ids[2]]
    elif expected == "same_again":
        assert order == [ids[0]]
    else:
        assert order == [ids[1], ids[2], ids[0]]


def test_random_order_is_stable_per_user_and_differs_between_users(runtime, world):  # type: ignore[no-untyped-def]
    project_id, ids = _project(runtime, world, 30, {"order": "random", "overlap": 3})
    a, b = _annotators(runtime, world, 2)

    def sequence(person) -> list[int]:  # type: ignore[no-untyped-def]
        seq = []
        for _ in range(6):
            task_id = _next(runtime, world, project_id, person)
            assert task_id is not None
            seq.append(task_id)
            _skip(runtime, world, project_id, person, task_id)
        return seq

    first_a = _next(runtime, world, project_id, a, reserve=False)
    assert first_a == _next(runtime, world, project_id, a, reserve=False)
    seq_a, seq_b = sequence(a), sequence(b)
    assert seq_a != sorted(seq_a) or seq_b != sorted(seq_b)  # not the id order
    assert seq_a != seq_b
    assert seq_a[0] == first_a


def test_uncertainty_order_serves_lowest_prediction_score_first(runtime, world):  # type: ignore[no-untyped-def]
    project_id, ids = _project(runtime, world, 4, {"order": "uncertainty"})
    with runtime.unit_of_work(world.tenant_id) as db:
        for task_id, score in ((ids[1], 0.9), (ids[2], 0.2), (ids[3], 0.55)):
            db.add(Prediction(project_id=project_id, task_id=task_id, result=RESULT, score=score, created_at=utcnow()))
    (a,) = _annotators(runtime, world, 1)
    got = []
    while (task_id := _next(runtime, world, project_id, a)) is not None:
        got.append(task_id)
        _submit(runtime, world, project_id, a, task_id)
    assert got == [ids[2], ids[3], ids[1], ids[0]]  # then the task without predictions


@pytest.mark.parametrize("returns", [True, False])
def test_rejected_work_comes_back_first(runtime, world, returns):  # type: ignore[no-untyped-def]
    project_id, ids = _project(runtime, world, 3, {"rejected_returns": returns})
    (a,) = _annotators(runtime, world, 1)
    _submit(runtime, world, project_id, a, ids[2])
    assert _next(runtime, world, project_id, a) == ids[0]  # reserved
    with runtime.unit_of_work(world.tenant_id) as db:
        db.execute(update(Annotation).where(Annotation.task_id == ids[2]).values(status=REJECTED))
    assert _next(runtime, world, project_id, a) == (ids[2] if returns else ids[0])
    if returns:
        with runtime.unit_of_work(world.tenant_id) as db:  # fixed and resubmitted (REVIEW's resubmit)
            db.execute(update(Annotation).where(Annotation.task_id == ids[2]).values(status=SUBMITTED))
        assert _next(runtime, world, project_id, a) == ids[0]


def test_queue_is_per_tenant(runtime, world):  # type: ignore[no-untyped-def]
    project_id, _ids = _project(runtime, world, 1)
    other = make_tenant(runtime, "beta")
    stranger = add_member(runtime, other, "s@beta.example", "annotator")
    from workspace.tenancy.errors import NotFound

    with pytest.raises(NotFound), runtime.unit_of_work(other.tenant_id) as db:
        ann.next_task(db, project_id, stranger.user_id)


def _label_until_done(runtime, world, project_id, person, errors, seen, together) -> None:  # type: ignore[no-untyped-def]
    """label next → submit until nothing is left. ``together``: like the page's "Submit & next", the
    submit and the next "label next" run in one transaction."""
    try:
        task_id = _next(runtime, world, project_id, person)
        for _ in range(50):
            if task_id is None:
                return
            seen.append((person.user_id, task_id))
            if together:
                with runtime.unit_of_work(world.tenant_id) as db:
                    ann.submit_annotation(db, _ctx(world, person), project_id, task_id, RESULT, 1.0)
                    following = ann.next_task(db, project_id, person.user_id)
                    task_id = following.id if following is not None else None
            else:
                _submit(runtime, world, project_id, person, task_id)
                task_id = _next(runtime, world, project_id, person)
    except BaseException as exc:  # pragma: no cover - reported by the test
        errors.append(repr(exc))


@pytest.mark.parametrize("together", [False, True], ids=["separate", "submit_and_next"])
@pytest.mark.parametrize("round_", range(2))
def test_twenty_annotators_concurrently_fill_overlap_2_exactly(runtime, world, database, round_, together):  # type: ignore[no-untyped-def]
    if database.kind != "postgresql":
        pytest.skip("the concurrency acceptance test runs on PostgreSQL (SQLite has a single writer)")
    project_id, ids = _project(runtime, world, 10, {"overlap": 2})
    people = _annotators(runtime, world, 20)
    errors: list[str] = []
    seen: list[tuple[int, int]] = []
    start = threading.Barrier(len(people))

    def run(person) -> None:  # type: ignore[no-untyped-def]
        start.wait()
        _label_until_done(runtime, world, project_id, person, errors, seen, together)

    threads = [threading.Thread(target=run, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with runtime.unit_of_work(world.tenant_id) as db:
        rows = db.execute(select(Annotation.task_id, Annotation.completed_by_id)
                          .where(Annotation.project_id == project_id, Annotation.status == SUBMITTED)).all()
        counts = dict(db.execute(select(Task.id, Task.annotation_count).where(Task.project_id == project_id)).all())
        left = db.scalar(select(func.count(TaskReservation.id)).where(TaskReservation.project_id == project_id))
    per_task: dict[int, list[int]] = {}
    for task_id, user_id in rows:
        per_task.setdefault(task_id, []).append(user_id)
    assert sorted(per_task) == sorted(ids)
    for task_id, users in per_task.items():
        assert len(users) == 2 and len(set(users)) == 2, (task_id, users)
    assert len(rows) == 20 and len(set(rows)) == 20  # nobody labeled a task twice
    assert counts == {t: 2 for t in ids}
    assert left == 0  # every reservation was released by its submit
    assert len(seen) == 20
