"""A project's exports: choose a format and options (optionally the data manager's filter), follow the
job, download a ready file through a short-lived URL, delete old exports."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template

from workspace.jobs.models import ACTIVE
from workspace.jobs.services import list_jobs
from workspace.tenancy.errors import ServiceError
from workspace.web.blocking import in_thread
from workspace.web.forms import one
from workspace.web.guards import requires
from workspace.web.render import ctx_of, fragment, notice, page, see_other
from workspace.web.uow import request_session as _db
from workspace.web.uow import runtime_of
from workspace.workflow import exporting
from workspace.workflow import services as svc
from workspace.workflow.datamanager import FILTER_FIELDS, parse_filters
from workspace.workflow.export_formats import FORMATS, unsupported_reason
from workspace.workflow.label_config import parse_label_config

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _context(request: Request[Any, Any, Any], project_id: int, *, errors: dict[str, str] | None = None,
             form: dict[str, str] | None = None) -> dict[str, Any]:
    db = _db(request)
    project = svc.get_project(db, project_id)
    config = parse_label_config(project.label_config)
    formats = [{"format": f, "reason": unsupported_reason(f.key, config)} for f in FORMATS.values()]
    exports = exporting.list_exports(db, project.id)
    jobs = {j.id: j for j in list_jobs(db, project_id=project.id)}
    rows = [{"export": e, "job": jobs.get(e.job_id) if e.job_id else None,
             "options": exporting.ExportOptions.from_dict(e.options or {}).describe()} for e in exports]
    filters, _ = parse_filters(form or {})
    return {"project": project, "formats": formats, "rows": rows, "errors": errors or {},
            "form": form or {"format": "JSON", "include_predictions": "1"}, "filters": filters.query(with_sort=False),
            "polling": any(e.status in ACTIVE for e in exports)}


@get("/t/{slug:str}/projects/{project_id:int}/exports", opt=requires("project:update", nav="projects"),
     name="exports")
@in_thread
def exports_page(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    form = {k: str(v) for k, v in request.query_params.items() if k in FILTER_FIELDS}
    return page(request, "workflow/exports.html", **_context(request, project_id, form={
        "format": "JSON", "include_predictions": "1", **form}))


@get("/t/{slug:str}/projects/{project_id:int}/exports/list", opt=requires("project:update"), name="exports_list")
@in_thread
def exports_list(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    return fragment(request, "workflow/partials/_exports.html", **_context(request, project_id))


@post("/t/{slug:str}/projects/{project_id:int}/exports", opt=requires("project:update", nav="projects"),
      name="create_export")
@in_thread
def create_export(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                  data: Form) -> Template | Redirect:
    form = {k: one(data, k) for k in ("format", "only_accepted", "include_predictions", "include_drafts",
                                      *FILTER_FIELDS)}
    db = _db(request)
    try:
        options = exporting.parse_options(form)
        export = exporting.queue_export(db, ctx_of(request), project_id, form["format"], options)
    except ServiceError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        return page(request, "workflow/exports.html", status=422,
                    **_context(request, project_id, errors={exc.field or "format": exc.message}, form=form))
    notice(request, f"Export #{export.id} ({FORMATS[export.format].title}) started; it is listed below.")
    return see_other(f"/t/{slug}/projects/{project_id}/exports")


@get("/t/{slug:str}/projects/{project_id:int}/exports/{export_id:int}/download", opt=requires("project:update"),
     name="download_export")
@in_thread
def download_export(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                    export_id: FromPath[int]) -> Redirect:
    db = _db(request)
    project = svc.get_project(db, project_id)
    export = exporting.get_export(db, project.id, export_id)
    return Redirect(path=exporting.download_url(runtime_of(request).media, export), status_code=303)


@post("/t/{slug:str}/projects/{project_id:int}/exports/{export_id:int}/delete", opt=requires("project:update"),
      name="delete_export")
@in_thread
def delete_export(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                  export_id: FromPath[int]) -> Redirect:
    db = _db(request)
    project = svc.get_project(db, project_id)
    export = exporting.get_export(db, project.id, export_id)
    try:
        exporting.delete_export(db, runtime_of(request).media, export)
        notice(request, f"Export #{export_id} deleted.")
    except ServiceError as exc:
        notice(request, exc.message, "error")
    return see_other(f"/t/{slug}/projects/{project_id}/exports")


route_handlers = [exports_page, exports_list, create_export, download_export, delete_export]
