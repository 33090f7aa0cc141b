"""The review stream: a reviewer's queue of submitted annotations, and their verdicts (accept, reject
with a comment, fix and accept). Services flush, never commit.

Which annotations a reviewer sees (:func:`queue`): submitted ones of the project that the project's
settings send to review (``review`` all / a stable random share / none: ``settings.reviewed(id)``),
never their own, and — when the project assigns reviewers to tasks — only those of the tasks
assigned to them as reviewer. Oldest submission first.

A verdict locks the annotation's row, checks the version the reviewer saw
(:func:`workspace.workflow.revisions.check_version`: a mismatch is a 409 with who did what when),
moves the status through the state machine (nobody reviews their own work), appends the revision and
writes a :class:`Review` (audited: ``review.accepted`` / ``review.rejected`` / ``review.fixed``). The
losing side of a race gets the conflict; its route records ``annotation.review_conflict`` in a
transaction of its own (:func:`record_conflict`), because the request's transaction rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, exists, literal, select
from sqlalchemy.orm import Session

from workspace.audit.chain import Actor, record
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Invalid, NotFound
from workspace.tenancy.repositories import fetch
from workspace.workflow import models as wm
from workspace.workflow import revisions
from workspace.workflow.annotations import get_task, validate_result
from workspace.workflow.label_config import parse_label_config
from workspace.workflow.models import COUNTED_STATUSES, DRAFT, REJECTED, SUBMITTED, Annotation, Project, Task
from workspace.workflow.review_models import Review
from workspace.workflow.settings import WorkflowSettings, workflow_settings

__all__ = ["queue", "queue_count", "review_target", "accept", "reject", "fix_and_accept", "latest_rejection", "rejection_notice",
           "record_conflict", "others_on_task", "MAX_COMMENT"]

MAX_COMMENT = 5000


def _reviewed(settings: WorkflowSettings) -> ColumnElement[bool] | None:
    """SQL for ``settings.reviewed(Annotation.id)`` (None: every annotation)."""
    if settings.review == "none":
        return literal(False)
    if settings.review == "all" or settings.review_share >= 100:
        return None
    return (Annotation.id * 2246822519) % 100 < settings.review_share


def _reviewer_assignments(project_id: int, user_id: int | None) -> ColumnElement[bool] | None:
    """Restrict to tasks assigned to the reviewer when the project assigns reviewers at all."""
    assignment = getattr(wm, "TaskAssignment", None)
    if assignment is None:
        return None
    role = getattr(wm, "REVIEWER", "reviewer")
    any_reviewer = exists().where(assignment.project_id == project_id, assignment.role == role)
    mine = exists().where(assignment.task_id == Annotation.task_id, assignment.user_id == user_id,
                          assignment.role == role)
    return ~any_reviewer | mine


def _queue_stmt(project: Project, user_id: int | None):  # type: ignore[no-untyped-def]
    settings = workflow_settings(project.workflow)
    stmt = select(Annotation).where(Annotation.project_id == project.id, Annotation.status == SUBMITTED)
    if user_id is not None:
        stmt = stmt.where((Annotation.completed_by_id != user_id) | Annotation.completed_by_id.is_(None))
    for condition in (_reviewed(settings), _reviewer_assignments(project.id, user_id)):
        if condition is not None:
            stmt = stmt.where(condition)
    return stmt


def queue(session: Session, project: Project, user_id: int | None, limit: int = 50) -> list[Annotation]:
    """The submitted annotations waiting for this reviewer, oldest submission first."""
    stmt = _queue_stmt(project, user_id).order_by(Annotation.updated_at.is_(None), Annotation.updated_at,
                                                  Annotation.created_at, Annotation.id)
    return list(session.scalars(stmt.limit(limit)))


def queue_count(session: Session, project: Project, user_id: int | None) -> int:
    from sqlalchemy import func

    return session.scalar(select(func.count()).select_from(_queue_stmt(project, user_id).subquery())) or 0


def review_target(session: Session, project_id: int, annotation_id: int) -> Annotation:
    """An annotation of this project (of the bound tenant), or NotFound like a missing one. A draft
    is private to its author: to reviewers it does not exist."""
    annotation = fetch(session, Annotation, annotation_id, what="Annotation")
    if annotation.project_id != project_id or annotation.status == DRAFT:
        raise NotFound("Annotation not found")
    return annotation


def others_on_task(session: Session, annotation: Annotation) -> list[Annotation]:
    """The other annotators' counted annotations of the same task (overlap), oldest first."""
    return list(session.scalars(
        select(Annotation).where(Annotation.task_id == annotation.task_id, Annotation.id != annotation.id,
                                 Annotation.status.in_(sorted(COUNTED_STATUSES)))
        .order_by(Annotation.id)))


@dataclass(frozen=True)
class Verdict:
    annotation: Annotation
    review: Review


def _verdict(session: Session, ctx: TenantContext, project_id: int, annotation_id: int, action: str,
             seen_version: int | None, *, comment: str = "", result: list[dict[str, Any]] | None = None) -> Verdict:
    fetch(session, Project, project_id, what="Project")
    review_target(session, project_id, annotation_id)
    annotation = revisions.locked_annotation(session, annotation_id)
    if seen_version is None:
        raise Invalid("The form did not say which version of the annotation you reviewed; reload the page "
                      "and review it again.", field="version")
    revisions.apply(session, annotation, action, actor_id=ctx.user_id, may_review=ctx.has("project:review"),
                    seen_version=seen_version, result=result, doing="reviewing")
    review = Review(project_id=annotation.project_id, task_id=annotation.task_id, annotation_id=annotation.id,
                    reviewer_id=ctx.user_id, verdict={"accept": "accepted", "reject": "rejected", "fix": "fixed"}[action],
                    comment=comment, annotation_version=annotation.version)
    session.add(review)
    session.flush()
    if result is not None:  # a fix changed the result: the task's stored agreement follows
        from workspace.workflow import quality

        quality.refresh_tasks(session, [annotation.task_id])
    _announce(session, ctx, annotation)
    return Verdict(annotation, review)


def _announce(session: Session, ctx: TenantContext, annotation: Annotation) -> None:
    """Tell the project's webhooks that the annotation changed (sent only if the verdict commits)."""
    from workspace.webhooks.services import emit

    emit(session, ctx, "annotation.updated", annotation.project_id, {
        "annotation_id": annotation.id, "task_id": annotation.task_id, "status": annotation.status,
        "result": annotation.result, "completed_by_id": annotation.completed_by_id, "lead_time": annotation.lead_time})


def _clean_comment(comment: str | None) -> str:
    text = (comment or "").strip()
    if len(text) > MAX_COMMENT:
        raise Invalid(f"The comment is longer than {MAX_COMMENT} characters; shorten it.", field="comment")
    return text


def accept(session: Session, ctx: TenantContext, project_id: int, annotation_id: int, seen_version: int | None,
           comment: str = "") -> Verdict:
    return _verdict(session, ctx, project_id, annotation_id, "accept", seen_version, comment=_clean_comment(comment))


def reject(session: Session, ctx: TenantContext, project_id: int, annotation_id: int, seen_version: int | None,
           comment: str) -> Verdict:
    """Reject with a comment (required: the annotator reads it when the task comes back to them)."""
    text = _clean_comment(comment)
    if not text:
        raise Invalid("Write a comment when rejecting: tell the annotator what to fix.", field="comment")
    return _verdict(session, ctx, project_id, annotation_id, "reject", seen_version, comment=text)


def fix_and_accept(session: Session, ctx: TenantContext, project_id: int, annotation_id: int,
                   seen_version: int | None, result: Any, comment: str = "") -> Verdict:
    """The reviewer's corrected result replaces the annotation's (validated like a submit), accepted."""
    project = fetch(session, Project, project_id, what="Project")
    annotation = review_target(session, project_id, annotation_id)
    task: Task = get_task(session, project.id, annotation.task_id)
    validate_result(parse_label_config(project.label_config), task.data if isinstance(task.data, dict) else {}, result)
    return _verdict(session, ctx, project_id, annotation_id, "fix", seen_version, comment=_clean_comment(comment),
                    result=result)


def latest_rejection(session: Session, annotation: Annotation) -> Review | None:
    """The review that rejected ``annotation`` (while it is rejected), for its annotator to read."""
    if annotation.status != REJECTED:
        return None
    return session.scalars(select(Review).where(Review.annotation_id == annotation.id, Review.verdict == "rejected")
                           .order_by(Review.id.desc()).limit(1)).first()


def rejection_notice(session: Session, annotation: Annotation) -> dict[str, Any] | None:
    """What the annotator reads on the labeling page while their annotation is rejected: the
    reviewer's comment, who wrote it and when."""
    review = latest_rejection(session, annotation)
    if review is None:
        return None
    return {"comment": review.comment, "reviewer": revisions.person(session, review.reviewer_id),
            "at": review.created_at}


def record_conflict(unit_of_work: Any, ctx: TenantContext, actor: Actor, annotation_id: int, action: str,
                    exc: revisions.VersionConflict | Exception) -> None:
    """Write the refused attempt to the audit log in a transaction of its own (the request's rolls back)."""
    changes: dict[str, Any] = {"attempted": action, "message": getattr(exc, "message", str(exc))}
    if isinstance(exc, revisions.VersionConflict):
        changes.update(seen_version=exc.seen_version, current_version=exc.current_version)
    with unit_of_work(ctx.tenant_id, actor) as db:
        record(db, "annotation.review_conflict", tenant_id=ctx.tenant_id, object_type="annotation",
               object_id=annotation_id, object_label=f"annotation #{annotation_id}", changes=changes)
