""""Label next": which task an annotator gets, by the project's workflow settings (no HTTP).

The order of service for one annotator:

1. **Rejected work first** (``settings.rejected_returns``): a task where their annotation was rejected
   comes back before anything else, oldest task first; it already holds their slot.
2. **Their own live reservation**: the task "label next" handed them earlier and that they have not
   submitted or skipped yet is served again (its reservation is renewed), so a reload never moves on.
3. **A new task**, reserved for ``settings.reservation_minutes``, among the tasks that

   * they have not done: no submitted/accepted/rejected/skipped annotation of theirs (a draft does not
     count; with ``skipped`` = ``requeue`` or ``back`` their skipped tasks are eligible again),
   * still have a free overlap slot: annotations in :data:`COUNTED_STATUSES` plus live reservations
     of *other* annotators are fewer than ``settings.wants(task_id)``,
   * the distribution allows: ``manual`` only tasks assigned to them; ``auto`` tasks assigned to them
     first, then tasks assigned to no annotator (a task assigned to others is theirs, not served),
   * and only while they are under ``settings.annotator_cap`` (tasks they have annotated).

   Ordered by: assigned to them first (auto), then (``skipped`` = ``back``) tasks they did not skip
   before those they skipped, then ``settings.order``: ``id``; ``random`` (a per-annotator stable
   shuffle: a hash of task id and user id, so a reload gives the same order); ``uncertainty`` (the
   lowest prediction score first among tasks with predictions, then the rest by id).

No slot is handed out twice under concurrent requests. On PostgreSQL "label next" first takes a
transaction-scoped advisory lock on the project (``pg_advisory_xact_lock``), so the counting and the
reserving of two requests for one project run one after the other; in READ COMMITTED each statement
after the lock sees what the previous holder committed. A submit releases the annotator's
reservation in the same transaction that adds the annotation, so a slot is always either reserved or
annotated, never briefly free. (``SELECT ... FOR UPDATE SKIP LOCKED`` on candidate tasks was not used:
a slot depends on rows of other tables — annotations and reservations — which row locks on ``task``
do not cover, and SKIP LOCKED can answer "nothing left" while tasks are merely locked by a submit.)
SQLite serializes writers already (every write transaction starts with ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, bindparam, case, delete, exists, func, literal, not_, or_, select, text
from sqlalchemy.orm import Session

from workspace.lib.timeutil import utcnow
from workspace.tenancy.repositories import fetch
from workspace.workflow.models import (ANNOTATOR, COUNTED_STATUSES, REJECTED, SKIPPED, Annotation, Prediction,
                                       Project, Task, TaskAssignment, TaskReservation)
from workspace.workflow.settings import WorkflowSettings, workflow_settings

__all__ = ["next_task", "release", "reservation_of", "done_count", "lock_project"]

# pg_advisory_xact_lock(classid, objid): the first key names what is locked ("label next" of a project).
_LOCK_CLASS = 0x4C4E  # "LN"


def lock_project(session: Session, project_id: int) -> None:
    """Serialize "label next" for one project until the end of the transaction (PostgreSQL; SQLite
    has a single writer)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:c, :o)"), {"c": _LOCK_CLASS, "o": project_id})


def _mine(user_id: int, statuses: set[str] | frozenset[str]) -> ColumnElement[bool]:
    return exists().where(Annotation.task_id == Task.id, Annotation.completed_by_id == user_id,
                          Annotation.status.in_(sorted(statuses)))


def _assigned_to(user_id: int) -> ColumnElement[bool]:
    return exists().where(TaskAssignment.task_id == Task.id, TaskAssignment.user_id == user_id,
                          TaskAssignment.role == ANNOTATOR)


def _assigned_to_anyone() -> ColumnElement[bool]:
    return exists().where(TaskAssignment.task_id == Task.id, TaskAssignment.role == ANNOTATOR)


def _wants(settings: WorkflowSettings) -> ColumnElement[int]:
    """``settings.wants(task_id)`` as SQL (the same stable hash of the id)."""
    if settings.overlap <= 1 or settings.overlap_share >= 100:
        return literal(settings.overlap)
    return case(((Task.id * 2654435761) % 100 < settings.overlap_share, settings.overlap), else_=1)


def _filled(user_id: int, now: datetime) -> ColumnElement[int]:
    """Slots of a task taken: counted annotations plus other annotators' live reservations."""
    counted = (select(func.count(Annotation.id))
               .where(Annotation.task_id == Task.id, Annotation.status.in_(sorted(COUNTED_STATUSES)))
               .scalar_subquery())
    reserved = (select(func.count(TaskReservation.id))
                .where(TaskReservation.task_id == Task.id, TaskReservation.user_id != user_id,
                       TaskReservation.expires_at > now)
                .scalar_subquery())
    return counted + reserved


def _not_done(settings: WorkflowSettings, user_id: int) -> ColumnElement[bool]:
    done = set(COUNTED_STATUSES) | ({SKIPPED} if settings.skipped == "never" else set())
    return not_(_mine(user_id, done))


def done_count(session: Session, project_id: int, user_id: int) -> int:
    """Tasks of the project this member annotated (counted statuses): what ``annotator_cap`` limits."""
    return session.scalar(
        select(func.count(func.distinct(Annotation.task_id)))
        .where(Annotation.project_id == project_id, Annotation.completed_by_id == user_id,
               Annotation.status.in_(sorted(COUNTED_STATUSES)))) or 0


def reservation_of(session: Session, project_id: int, user_id: int) -> TaskReservation | None:
    """The member's live reservation in the project, if any (the newest)."""
    return session.scalars(
        select(TaskReservation)
        .where(TaskReservation.project_id == project_id, TaskReservation.user_id == user_id,
               TaskReservation.expires_at > utcnow())
        .order_by(TaskReservation.expires_at.desc(), TaskReservation.id.desc()).limit(1)).first()


def release(session: Session, task_id: int, user_id: int | None) -> None:
    """Drop the member's reservation of the task (on submit and skip)."""
    if user_id is None:
        return
    session.execute(_RELEASE, {"task_id": task_id, "user_id": user_id})


_RELEASE = (delete(TaskReservation).where(TaskReservation.task_id == bindparam("task_id"),
                                          TaskReservation.user_id == bindparam("user_id"))
            .execution_options(synchronize_session=False))  # built once: every submit runs it


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _order(settings: WorkflowSettings, user_id: int) -> list[ColumnElement[object]]:
    order: list[ColumnElement[object]] = []
    if settings.distribution == "auto":
        order.append(case((_assigned_to(user_id), 0), else_=1))
    if settings.skipped == "back":
        order.append(case((_mine(user_id, {SKIPPED}), 1), else_=0))
    if settings.order == "random":
        # A stable per-annotator shuffle: reloads keep the order, two annotators get different ones.
        # Two rounds (linear, then quadratic) mod a prime, salted by the user: portable integer SQL.
        prime, salt = 1000003, (user_id * 40503 + 12345) % 1000003
        mixed = ((Task.id % prime) * 2654435761 + salt) % prime
        order.append(((mixed * mixed) % prime * 40503 + salt) % prime)
    elif settings.order == "uncertainty":
        score = select(func.min(Prediction.score)).where(Prediction.task_id == Task.id).scalar_subquery()
        order.extend([case((score.is_(None), 1), else_=0), score])
    order.append(Task.id)
    return order


def _candidates(settings: WorkflowSettings, project_id: int, user_id: int, now: datetime) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Task.project_id == project_id, _not_done(settings, user_id),
                                        _filled(user_id, now) < _wants(settings)]
    if settings.distribution == "manual":
        where.append(_assigned_to(user_id))
    else:
        where.append(or_(_assigned_to(user_id), not_(_assigned_to_anyone())))
    return where


def _rejected(session: Session, project_id: int, user_id: int) -> Task | None:
    return session.scalars(
        select(Task).where(Task.project_id == project_id, _mine(user_id, {REJECTED}))
        .order_by(Task.id).limit(1)).first()


def next_task(session: Session, project_id: int, user_id: int | None, *, reserve: bool = True) -> Task | None:
    """The task this member should label next in the project, or None when nothing is left for them.

    ``reserve=False`` only looks (the labeling page asks whether anything remains): nothing is locked
    or written, and a task another annotator holds is not counted as free either.
    """
    if user_id is None:
        return None
    project = fetch(session, Project, project_id, what="Project")
    settings = workflow_settings(project.workflow)
    if settings.rejected_returns:
        rejected = _rejected(session, project_id, user_id)
        if rejected is not None:
            return rejected
    if reserve:
        lock_project(session, project_id)
    now = utcnow()
    own = session.scalars(
        select(TaskReservation).where(TaskReservation.project_id == project_id, TaskReservation.user_id == user_id)
        .order_by(TaskReservation.id)).all()
    for held in own:
        if _aware(held.expires_at) > now:
            task = session.scalars(select(Task).where(Task.id == held.task_id, _not_done(settings, user_id))).first()
            if task is not None:
                if reserve:
                    held.expires_at = now + timedelta(minutes=settings.reservation_minutes)
                    session.flush()
                return task
        if reserve:  # expired, or done another way (opened by its number and submitted)
            session.delete(held)
    if reserve and own:
        session.flush()
    if settings.annotator_cap is not None and done_count(session, project_id, user_id) >= settings.annotator_cap:
        return None
    task = session.scalars(
        select(Task).where(*_candidates(settings, project_id, user_id, now))
        .order_by(*_order(settings, user_id)).limit(1)).first()
    if task is not None and reserve:
        session.add(TaskReservation(project_id=project_id, task_id=task.id, user_id=user_id,
                                    expires_at=now + timedelta(minutes=settings.reservation_minutes)))
        session.flush()
    return task
