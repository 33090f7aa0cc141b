"""Running one job: claim it, run its handler in one unit of work, record how it ended.

``execute_job`` is what the dramatiq actor calls, in a ``workspace worker`` process or in the embedded
worker. It is safe to call twice for the same job, concurrently or after a crash:

* the claim locks the job row; a finished job is left alone, and one another worker is running (its
  heartbeat is fresh) is retried later — after a worker was killed, the redelivered message takes
  the job over once the dead worker's heartbeat is older than ``STALE_AFTER``;
* the handler's work and the "succeeded" status commit in one transaction, so a crash before that
  commit leaves nothing behind and a later delivery starts over;
* a transient error (database or network hiccup) puts the job back to queued and raises
  ``RetryLater`` so dramatiq retries with backoff; after ``MAX_ATTEMPTS`` the job fails with the reason.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, OperationalError

from workspace.audit.chain import Actor, set_actor
from workspace.jobs.models import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, TERMINAL, Job
from workspace.jobs.services import JOB_KINDS, JobCancelled, RetryLater, resolve
from workspace.lib.timeutil import as_utc, utcnow
from workspace.tenancy import repositories as repo
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import ServiceError
from workspace.tenancy.models import MEMBER_ACTIVE, Tenant, User
from workspace.tenancy.scoping import bind_tenant, unscoped

if TYPE_CHECKING:
    from workspace.runtime import Runtime

__all__ = ["execute_job", "JobContext", "MAX_ATTEMPTS", "STALE_AFTER"]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 4
STALE_AFTER = timedelta(seconds=20)  # a running job whose heartbeat is older was orphaned by a dead worker
PROGRESS_EVERY = 0.5  # seconds between progress writes to the database


class JobContext:
    """What a handler gets: the job's parameters, the starter's tenant context, and progress reporting."""

    def __init__(self, runtime: Runtime, job: Job, ctx: TenantContext) -> None:
        self.runtime = runtime
        self.job_id = job.id
        self.tenant_id = job.tenant_id
        self.project_id = job.project_id
        self.params: dict[str, Any] = dict(job.params or {})
        self.ctx = ctx
        self._last_write = 0.0
        self._sqlite = runtime.engine.dialect.name == "sqlite"

    def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        """Report progress; raises ``JobCancelled`` when a cancel was requested."""
        board = self.runtime.job_board
        board.set_progress(self.job_id, done, total, message)
        if board.cancel_requested_by(self.job_id):
            raise JobCancelled(board.cancel_requested_by(self.job_id) or "")
        now = time.monotonic()
        if self._sqlite or now - self._last_write < PROGRESS_EVERY:
            return  # SQLite: the work's transaction holds the write lock; the board carries progress
        self._last_write = now
        with self.runtime.unit_of_work(self.tenant_id) as db:
            db.execute(update(Job).where(Job.id == self.job_id).values(
                progress_done=done, progress_total=total, message=message[:500], heartbeat_at=utcnow()))
            requested = db.scalar(select(Job.cancel_requested).where(Job.id == self.job_id))
        if requested:
            raise JobCancelled("")


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    name = type(exc).__module__.split(".")[0]
    return name in {"urllib3", "minio", "redis", "httpx", "httpcore"} and not isinstance(exc, ServiceError)


def _starter_context(runtime: Runtime, db: Any, job: Job, permission: str) -> TenantContext:
    tenant = db.get(Tenant, job.tenant_id)
    user = db.get(User, job.created_by_id) if job.created_by_id else None
    membership = repo.membership_of(db, user.id) if user is not None else None
    if tenant is None or user is None or membership is None or membership.status != MEMBER_ACTIVE or not user.is_active:
        raise ServiceError("The member who started this job is no longer active in the organization.")
    runtime.authz.ensure_fresh(tenant.id, tenant.policy_version)
    if not runtime.authz.can(user.id, tenant.id, permission, job.project_id):
        raise ServiceError(f"{user.email} no longer has the permission this job needs ({permission}).")
    return TenantContext(tenant_id=tenant.id, tenant_slug=tenant.slug, tenant_name=tenant.name, user_id=user.id,
                         user_email=user.email, user_name=user.name, membership_id=membership.id,
                         role=membership.role, permissions=runtime.authz.permissions(user.id, tenant.id), via="job")


def _actor(job: Job, label: str) -> Actor:
    return Actor(type="user", id=str(job.created_by_id) if job.created_by_id else None,
                 label=f"{label} (job #{job.id})")


def _claim(runtime: Runtime, job_id: int) -> tuple[int, str, bool] | None:
    """Mark the job running: (tenant id, starter label, whether to run it), or None for a missing job."""
    with runtime.unit_of_work() as db:
        with unscoped(db, "a job message carries only the job id; the row names its tenant"):
            tenant_id = db.scalar(select(Job.tenant_id).where(Job.id == job_id))
        if tenant_id is None:
            log.warning("job %s does not exist (deleted with its project?)", job_id)
            return None
        bind_tenant(db, tenant_id)
        job = db.scalars(select(Job).where(Job.id == job_id).with_for_update()).one()
        starter = db.get(User, job.created_by_id) if job.created_by_id else None
        label = starter.email if starter is not None else "a former member"
        if job.status in TERMINAL:
            return tenant_id, label, False
        beat = as_utc(job.heartbeat_at)
        if job.status == RUNNING and beat is not None and utcnow() - beat < STALE_AFTER:
            # Another worker is on it (or died so recently that its heartbeat still looks alive):
            # try again later, when it has finished (then this does nothing) or its heartbeat is stale.
            log.info("job %s is running elsewhere (heartbeat %s); retrying this delivery later", job_id, beat)
            raise RetryLater(f"job {job_id} is running in another worker")
        if job.cancel_requested or runtime.job_board.cancel_requested_by(job_id):
            job.status, job.finished_at, job.message = CANCELLED, utcnow(), "Cancelled before it started."
            return tenant_id, label, False
        job.status, job.attempts, job.heartbeat_at = RUNNING, job.attempts + 1, utcnow()
        job.started_at = job.started_at or utcnow()
        job.message = "Started" if job.attempts == 1 else f"Started again (attempt {job.attempts})"
        return tenant_id, label, True


def _finish(runtime: Runtime, job_id: int, tenant_id: int, actor: Actor, status: str, message: str,
            error: str = "") -> None:
    with runtime.unit_of_work(tenant_id, actor=actor) as db:
        job = db.get(Job, job_id)
        if job is None or job.status in TERMINAL:
            return
        job.status, job.message, job.error = status, message[:500], error
        job.heartbeat_at = None
        if status != QUEUED:
            job.finished_at = utcnow()


def execute_job(runtime: Runtime, job_id: int) -> None:
    claim = _claim(runtime, job_id)
    if claim is None:
        return
    tenant_id, label, run = claim
    if not run:
        _cleanup(runtime, job_id, tenant_id)  # a finished job's leftovers (idempotent)
        return
    board = runtime.job_board
    job: Job | None = None
    actor = Actor(type="system", label=f"job #{job_id}")
    try:
        with runtime.unit_of_work(tenant_id) as db:
            job = db.get(Job, job_id)
            assert job is not None
            actor = _actor(job, label)
            kind = JOB_KINDS[job.kind]
            ctx = _starter_context(runtime, db, job, kind.permission)
            set_actor(db, actor)
            result, message = resolve(kind.handler)(db, JobContext(runtime, job, ctx))
            job.status, job.result, job.message, job.error = SUCCEEDED, result, message[:500], ""
            job.finished_at, job.heartbeat_at = utcnow(), None
            done = board.progress(job_id)
            if done is not None:
                job.progress_done, job.progress_total = done.total or done.done, done.total
    except JobCancelled as exc:
        by = str(exc) or "a member"
        _finish(runtime, job_id, tenant_id, actor, CANCELLED, f"Cancelled by {by}; nothing was kept.")
    except ServiceError as exc:
        _finish(runtime, job_id, tenant_id, actor, FAILED, exc.message)
    except Exception as exc:
        attempts = _attempts(runtime, job_id, tenant_id)
        if _is_transient(exc) and attempts < MAX_ATTEMPTS:
            log.warning("job %s: transient error, will retry: %s", job_id, exc)
            _finish(runtime, job_id, tenant_id, actor, QUEUED,
                    f"Retrying after a temporary error (attempt {attempts} of {MAX_ATTEMPTS}): {_brief(exc)}")
            board.forget(job_id)
            raise RetryLater(str(exc)) from exc
        log.exception("job %s failed", job_id)
        _finish(runtime, job_id, tenant_id, actor, FAILED,
                f"The job failed: {_brief(exc)}. Nothing was kept.", error=f"{type(exc).__name__}: {exc}"[:4000])
    board.forget(job_id)
    _cleanup(runtime, job_id, tenant_id)


def _attempts(runtime: Runtime, job_id: int, tenant_id: int) -> int:
    with runtime.unit_of_work(tenant_id) as db:
        return int(db.scalar(select(Job.attempts).where(Job.id == job_id)) or 0)


def _brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def _cleanup(runtime: Runtime, job_id: int, tenant_id: int) -> None:
    """The kind's clean-up, once the job is finished; it runs after the job's own transaction closed
    (it may open its own, and on SQLite two open write transactions would wait on each other)."""
    with runtime.unit_of_work(tenant_id) as db:
        job = db.get(Job, job_id)
        if job is None or job.status not in TERMINAL:
            return
        cleanup = JOB_KINDS[job.kind].cleanup if job.kind in JOB_KINDS else None
    if cleanup is None:
        return
    try:
        resolve(cleanup)(runtime, job)  # a detached, fully loaded row (sessions don't expire on commit)
    except Exception:
        log.exception("clean-up of job %s failed", job_id)
