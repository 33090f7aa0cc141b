"""A project's background jobs: live progress (htmx polling while any job is active) and cancel."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy import select

from workspace.jobs.models import ACTIVE, RUNNING, Job
from workspace.jobs.services import JOB_KINDS, get_job, list_jobs, request_cancel
from workspace.tenancy.errors import ServiceError
from workspace.tenancy.models import User
from workspace.web.blocking import in_thread
from workspace.web.guards import requires
from workspace.web.render import ctx_of, fragment, notice, page, see_other
from workspace.web.uow import DEFERRED_TX
from workspace.web.uow import request_session as _db
from workspace.web.uow import runtime_of
from workspace.workflow import services as svc


def _rows(request: Request[Any, Any, Any], project_id: int) -> list[dict[str, Any]]:
    """Jobs with their live progress: on SQLite a running job's progress lives only in this process."""
    board = runtime_of(request).job_board
    rows = []
    for job in list_jobs(_db(request), project_id=project_id):
        live = board.progress(job.id) if job.status == RUNNING else None
        done, total, message = (live.done, live.total, live.message or job.message) if live else (
            job.progress_done, job.progress_total, job.message)
        percent = max(0, min(100, int(done * 100 / total))) if total else None
        rows.append({"job": job, "label": JOB_KINDS[job.kind].label if job.kind in JOB_KINDS else job.kind,
                     "percent": percent, "message": message, "active": job.status in ACTIVE})
    return rows


def _context(request: Request[Any, Any, Any], project_id: int) -> dict[str, Any]:
    rows = _rows(request, project_id)
    ids = {r["job"].created_by_id for r in rows if r["job"].created_by_id}
    users = {u.id: u.name or u.email for u in _db(request).scalars(select(User).where(User.id.in_(ids)))} if ids else {}
    return {"rows": rows, "polling": any(r["active"] for r in rows), "users": users}


@get("/t/{slug:str}/projects/{project_id:int}/jobs", opt=requires("project:read", nav="projects"), name="jobs")
@in_thread
def jobs_page(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    project = svc.get_project(_db(request), project_id)
    return page(request, "workflow/jobs.html", project=project, **_context(request, project_id))


@get("/t/{slug:str}/projects/{project_id:int}/jobs/list", opt=requires("project:read"), name="jobs_list")
@in_thread
def jobs_list(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    project = svc.get_project(_db(request), project_id)
    return fragment(request, "workflow/partials/_jobs.html", project=project, **_context(request, project_id))


@post("/t/{slug:str}/projects/{project_id:int}/jobs/{job_id:int}/cancel", opt=requires("project:update", **{DEFERRED_TX: True}),
      name="cancel_job")
@in_thread
def cancel_job(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
               job_id: FromPath[int]) -> Template | Redirect:
    db = _db(request)
    project = svc.get_project(db, project_id)
    job: Job = get_job(db, job_id, project_id=project.id)
    try:
        request_cancel(db, ctx_of(request), job)
        message, category = f"Cancelling job #{job.id}.", "success"
    except ServiceError as exc:
        message, category = exc.message, "error"
    if request.headers.get("hx-request"):
        return fragment(request, "workflow/partials/_jobs.html", project=project, flash_message=message,
                        **_context(request, project_id))
    notice(request, message, category)
    return see_other(f"/t/{slug}/projects/{project_id}/jobs")


route_handlers = [jobs_page, jobs_list, cancel_job]
