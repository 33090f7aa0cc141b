"""Background jobs of a project as JSON: list, one job with its live progress, cancel.

API-token auth; the path names the project, so the guard applies the member's grants there (a
project outside an annotator's grants answers 404, like a missing one).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath, FromQuery

from workspace.jobs.models import ACTIVE, RUNNING, Job
from workspace.jobs.services import JOB_KINDS, list_jobs, request_cancel
from workspace.tenancy.errors import NotFound
from workspace.tenancy.repositories import fetch
from workspace.web.blocking import in_thread
from workspace.web.guards import requires
from workspace.web.render import ctx_of
from workspace.web.uow import DEFERRED_TX, request_session, runtime_of
from workspace.workflow import services as svc

__all__ = ["route_handlers"]

TAGS = ["Workspace: jobs"]
MAX_ID = 2**63 - 1


class JobOut(msgspec.Struct):
    id: int
    kind: str
    label: str
    title: str
    status: str
    active: bool
    project_id: int | None
    progress_done: int
    progress_total: int | None
    percent: int | None
    message: str
    error: str
    result: dict[str, Any] | None
    attempts: int
    cancel_requested: bool
    created_by_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _job(request: Request[Any, Any, Any], job: Job) -> JobOut:
    """On SQLite a running job's progress lives only in this process's job board."""
    live = runtime_of(request).job_board.progress(job.id) if job.status == RUNNING else None
    done, total, message = (live.done, live.total, live.message or job.message) if live else (
        job.progress_done, job.progress_total, job.message)
    percent = max(0, min(100, int(done * 100 / total))) if total else None
    return JobOut(id=job.id, kind=job.kind, label=JOB_KINDS[job.kind].label if job.kind in JOB_KINDS else job.kind,
                  title=job.title, status=job.status, active=job.status in ACTIVE, project_id=job.project_id,
                  progress_done=done, progress_total=total, percent=percent, message=message, error=job.error,
                  result=job.result, attempts=job.attempts, cancel_requested=job.cancel_requested,
                  created_by_id=job.created_by_id, created_at=job.created_at, started_at=job.started_at,
                  finished_at=job.finished_at)


def _project_job(request: Request[Any, Any, Any], project_id: int, job_id: int) -> Job:
    db = request_session(request)
    svc.get_project(db, project_id)
    job = fetch(db, Job, job_id, what="Job") if 0 < job_id <= MAX_ID else None
    if job is None or job.project_id != project_id:
        raise NotFound("Job not found")
    return job


@get("/api/ws/projects/{project_id:int}/jobs", opt=requires("project:read"), name="api_jobs", tags=TAGS,
     summary="The project's jobs (imports, exports, ...), newest first, with live progress")
@in_thread
def api_jobs(request: Request[Any, Any, Any], project_id: FromPath[int],
             limit: FromQuery[int] = 50) -> list[JobOut]:
    db = request_session(request)
    svc.get_project(db, project_id)
    return [_job(request, job) for job in list_jobs(db, project_id=project_id, limit=max(1, min(limit, 200)))]


@get("/api/ws/projects/{project_id:int}/jobs/{job_id:int}", opt=requires("project:read"), name="api_job",
     tags=TAGS, summary="One job of the project with its live progress")
@in_thread
def api_job(request: Request[Any, Any, Any], project_id: FromPath[int], job_id: FromPath[int]) -> JobOut:
    return _job(request, _project_job(request, project_id, job_id))


@post("/api/ws/projects/{project_id:int}/jobs/{job_id:int}/cancel",
      opt=requires("project:update", **{DEFERRED_TX: True}), name="api_cancel_job", status_code=200, tags=TAGS,
      summary="Cancel a queued job at once, or a running one at its next progress step")
@in_thread
def api_cancel_job(request: Request[Any, Any, Any], project_id: FromPath[int], job_id: FromPath[int]) -> JobOut:
    job = request_cancel(request_session(request), ctx_of(request), _project_job(request, project_id, job_id))
    return _job(request, job)


route_handlers = [api_jobs, api_job, api_cancel_job]
