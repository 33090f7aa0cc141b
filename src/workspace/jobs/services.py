"""Jobs: create one (it is enqueued only after the creating transaction commits), follow it, cancel it.

A job kind names its handler and clean-up by import path (``"module:function"``) so that this package
depends on no feature package; features depend on it. A handler runs inside one unit of work with the
job's tenant bound and its starter as the actor; the runner marks the job succeeded in that same
transaction, so the work and "succeeded" commit together or not at all (a retried or duplicated
message then finds the job finished and does nothing).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from workspace.jobs.models import ACTIVE, CANCELLED, QUEUED, RUNNING, Job
from workspace.lib.timeutil import utcnow
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Conflict, NotFound

__all__ = [
    "JOB_KINDS",
    "JobKind",
    "JobCancelled",
    "RetryLater",
    "create_job",
    "get_job",
    "list_jobs",
    "request_cancel",
    "resolve",
    "DISPATCH_KEY",
    "BOARD_KEY",
]

log = logging.getLogger(__name__)

DISPATCH_KEY = "job_dispatch"  # session.info: callable(job_id) that sends the job's message
BOARD_KEY = "job_board"  # session.info: the process's LiveBoard
_PENDING = "jobs.pending"


@dataclass(frozen=True)
class JobKind:
    kind: str
    label: str
    permission: str  # checked when the job is created and again when it starts
    handler: str  # "module:function", called as handler(session, job_context) -> (result dict, message)
    cleanup: str | None = None  # "module:function", called as cleanup(runtime, job) once the job is finished


JOB_KINDS: dict[str, JobKind] = {
    "import": JobKind("import", "Import", "project:update", "workspace.workflow.import_job:run_import",
                      "workspace.workflow.import_job:cleanup_import"),
    "export": JobKind("export", "Export", "project:update", "workspace.workflow.exporting:run_export",
                      "workspace.workflow.exporting:cleanup_export"),
    # Whoever caused the event starts the delivery; it only needs to still see the project.
    "webhook": JobKind("webhook", "Webhook delivery", "project:read", "workspace.webhooks.delivery:run_delivery"),
    "predict": JobKind("predict", "Pre-annotation", "project:update", "workspace.ml.services:run_predict",
                       "workspace.ml.services:after_job"),
    "ml_train": JobKind("ml_train", "Model training", "project:update", "workspace.ml.services:run_train",
                        "workspace.ml.services:after_job"),
}


class JobCancelled(Exception):
    """Raised inside a handler (by ``JobContext.progress``) when someone asked to cancel the job."""


class RetryLater(Exception):
    """Raised by the runner to hand a transient failure back to dramatiq for a retry with backoff."""


def resolve(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def create_job(session: Session, ctx: TenantContext, kind: str, *, title: str, project_id: int | None = None,
               params: dict[str, Any] | None = None) -> Job:
    """Add a queued job; its message is sent after the session's transaction commits (never before)."""
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    job = Job(kind=kind, title=title[:300], project_id=project_id, params=params or {}, status=QUEUED,
              created_by_id=ctx.user_id)
    session.add(job)
    session.flush()
    session.info.setdefault(_PENDING, []).append(job.id)
    return job


def get_job(session: Session, job_id: int, *, project_id: int | None = None) -> Job:
    job = session.get(Job, job_id)
    if job is None or (project_id is not None and job.project_id != project_id):
        raise NotFound("Job not found")
    return job


def list_jobs(session: Session, *, project_id: int | None = None, limit: int = 50) -> list[Job]:
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if project_id is not None:
        query = query.where(Job.project_id == project_id)
    return list(session.scalars(query))


def request_cancel(session: Session, ctx: TenantContext, job: Job) -> Job:
    """A queued job is cancelled at once; a running one stops at its next progress step."""
    if job.status not in ACTIVE:
        raise Conflict(f"Job #{job.id} has already {job.status}; there is nothing to cancel.")
    board = session.info.get(BOARD_KEY)
    if job.status == QUEUED:
        job.status, job.finished_at = CANCELLED, utcnow()
        job.message = f"Cancelled by {ctx.user_email} before it started."
    elif session.get_bind().dialect.name == "sqlite" and board is not None:
        # The running job holds SQLite's write lock until it ends: tell it in memory; it records the outcome.
        board.request_cancel(job.id, ctx.user_email)
    else:
        job.cancel_requested = True
        job.message = f"Cancelling (requested by {ctx.user_email})…"
    if job.status == RUNNING and board is not None:
        board.request_cancel(job.id, ctx.user_email)
    session.flush()
    return job


@event.listens_for(Session, "after_commit")
def _send_after_commit(session: Session) -> None:
    # Releasing a SAVEPOINT fires after_commit too: only the outermost commit makes the rows visible.
    if session.in_nested_transaction():
        return
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    dispatch = session.info.get(DISPATCH_KEY)
    if dispatch is None:
        log.error("jobs %s were created in a session without a dispatcher; they stay queued", pending)
        return
    for job_id in pending:
        try:
            dispatch(job_id)
        except Exception:  # the job row says queued; `workspace jobs requeue` or a sweep sends it again
            log.exception("could not send job %s to the broker", job_id)


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    # A rolled-back SAVEPOINT leaves the outer transaction (and the jobs it created before) alive; a job
    # created inside the savepoint and sent anyway is found missing by the worker and dropped.
    if session.in_nested_transaction():
        return
    session.info.pop(_PENDING, None)
