"""Reviews of a project as JSON: the verdicts given (accepted, rejected, fixed) and the caller's review queue.

API-token auth; the path names the project, so the guard applies the member's grants there. Both need
``project:review``: a review's comment is for the annotator and the reviewers, not every reader.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, get
from litestar.params import FromPath, FromQuery
from sqlalchemy import select

from workspace.tenancy.errors import NotFound
from workspace.web.blocking import in_thread
from workspace.web.guards import requires
from workspace.web.render import ctx_of
from workspace.web.uow import request_session
from workspace.workflow import reviews
from workspace.workflow import services as svc
from workspace.workflow.review_models import Review

__all__ = ["route_handlers"]

TAGS = ["Workspace: reviews"]
MAX_ID = 2**63 - 1
PAGE = 100


class ReviewOut(msgspec.Struct):
    id: int
    project_id: int
    task_id: int
    annotation_id: int
    reviewer_id: int | None
    verdict: str
    comment: str
    annotation_version: int
    created_at: datetime


class ReviewPage(msgspec.Struct):
    results: list[ReviewOut]
    next_before: int | None


class QueuedAnnotationOut(msgspec.Struct):
    id: int
    task_id: int
    completed_by_id: int | None
    version: int
    status: str
    created_at: datetime
    updated_at: datetime | None


class ReviewQueueOut(msgspec.Struct):
    count: int
    results: list[QueuedAnnotationOut]


def _review(r: Review) -> ReviewOut:
    return ReviewOut(id=r.id, project_id=r.project_id, task_id=r.task_id, annotation_id=r.annotation_id,
                     reviewer_id=r.reviewer_id, verdict=r.verdict, comment=r.comment,
                     annotation_version=r.annotation_version, created_at=r.created_at)


@get("/api/ws/projects/{project_id:int}/reviews", opt=requires("project:review"), name="api_reviews", tags=TAGS,
     summary="The project's reviews, newest first; filter by annotation; page with next_before")
@in_thread
def api_reviews(request: Request[Any, Any, Any], project_id: FromPath[int], annotation: FromQuery[int | None] = None,
                before: FromQuery[int | None] = None) -> ReviewPage:
    db = request_session(request)
    svc.get_project(db, project_id)
    stmt = select(Review).where(Review.project_id == project_id).order_by(Review.id.desc()).limit(PAGE + 1)
    if annotation is not None:
        if not 0 < annotation <= MAX_ID:
            return ReviewPage(results=[], next_before=None)
        stmt = stmt.where(Review.annotation_id == annotation)
    if before is not None:
        stmt = stmt.where(Review.id < max(0, min(before, MAX_ID)))
    rows = list(db.scalars(stmt))
    cursor = rows[PAGE - 1].id if len(rows) > PAGE else None
    return ReviewPage(results=[_review(r) for r in rows[:PAGE]], next_before=cursor)


@get("/api/ws/projects/{project_id:int}/reviews/{review_id:int}", opt=requires("project:review"),
     name="api_review", tags=TAGS, summary="One review")
@in_thread
def api_review(request: Request[Any, Any, Any], project_id: FromPath[int], review_id: FromPath[int]) -> ReviewOut:
    db = request_session(request)
    svc.get_project(db, project_id)
    review = None
    if 0 < review_id <= MAX_ID:
        review = db.scalars(select(Review).where(Review.id == review_id, Review.project_id == project_id)).first()
    if review is None:
        raise NotFound("Review not found")
    return _review(review)


@get("/api/ws/projects/{project_id:int}/review-queue", opt=requires("project:review"), name="api_review_queue",
     tags=TAGS, summary="The submitted annotations waiting for the caller's review, oldest first")
@in_thread
def api_review_queue(request: Request[Any, Any, Any], project_id: FromPath[int],
                     limit: FromQuery[int] = 50) -> ReviewQueueOut:
    db = request_session(request)
    ctx = ctx_of(request)
    project = svc.get_project(db, project_id)
    waiting = reviews.queue(db, project, ctx.user_id, limit=max(1, min(limit, 200)))
    return ReviewQueueOut(count=reviews.queue_count(db, project, ctx.user_id), results=[
        QueuedAnnotationOut(id=a.id, task_id=a.task_id, completed_by_id=a.completed_by_id, version=a.version,
                            status=a.status, created_at=a.created_at, updated_at=a.updated_at) for a in waiting])


route_handlers = [api_reviews, api_review, api_review_queue]
