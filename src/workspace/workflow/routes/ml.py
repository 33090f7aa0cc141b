"""A project's ML backends: add a built-in classifier, a dictionary tagger or an external backend,
train the classifier, run a backend over all, filtered or selected tasks (a ``predict`` job), and
follow those jobs live."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template

from workspace.jobs.models import ACTIVE, RUNNING
from workspace.jobs.services import JOB_KINDS, list_jobs
from workspace.ml import services as ml
from workspace.ml.models import CLASSIFIER, KINDS, REMOTE, TAGGER
from workspace.ml.remote import DEFAULT_TIMEOUT
from workspace.tenancy.errors import ServiceError
from workspace.web.blocking import in_thread
from workspace.web.forms import many, one
from workspace.web.guards import requires
from workspace.web.render import ctx_of, fragment, notice, page, see_other
from workspace.web.uow import request_session as _db
from workspace.web.uow import runtime_of
from workspace.workflow import services as svc
from workspace.workflow.datamanager import FILTER_FIELDS, parse_filters
from workspace.workflow.label_config import parse_label_config

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
ML_JOB_KINDS = ("predict", "ml_train")
FIELDS = ("kind", "name", "terms", "patterns", "url", "timeout", "retrain_every")


def _job_rows(request: Request[Any, Any, Any], project_id: int) -> list[dict[str, Any]]:
    board = runtime_of(request).job_board
    rows = []
    for job in list_jobs(_db(request), project_id=project_id, limit=200):
        if job.kind not in ML_JOB_KINDS:
            continue
        live = board.progress(job.id) if job.status == RUNNING else None
        done, total, message = (live.done, live.total, live.message or job.message) if live else (
            job.progress_done, job.progress_total, job.message)
        percent = max(0, min(100, int(done * 100 / total))) if total else None
        rows.append({"job": job, "label": JOB_KINDS[job.kind].label, "percent": percent, "message": message,
                     "active": job.status in ACTIVE})
        if len(rows) >= 15:
            break
    return rows


def _context(request: Request[Any, Any, Any], project_id: int, *, errors: dict[str, str] | None = None,
             form: dict[str, str] | None = None, edit_errors: dict[int, dict[str, str]] | None = None) -> dict[str, Any]:
    db = _db(request)
    project = svc.get_project(db, project_id)
    query = {k: str(v) for k, v in request.query_params.items() if k in FILTER_FIELDS and v}
    filters, _ = parse_filters(query)
    ids = [i for i in request.query_params.getall("ids", []) if i.isdigit()] if "ids" in request.query_params else []
    labeled = ml.labeled_count(db, project.id)
    backends = [{"backend": b, "labeled": labeled, "new": max(0, labeled - b.trained_on),
                 "errors": (edit_errors or {}).get(b.id, {})} for b in ml.list_backends(db, project.id)]
    rows = _job_rows(request, project.id)
    try:
        tagger_labels = ml.tagger_target(parse_label_config(project.label_config)).control.label_values
    except (ServiceError, ValueError):
        tagger_labels = ()
    return {"project": project, "tagger_labels": tagger_labels, "backends": backends, "kinds": KINDS, "errors": errors or {}, "form": form or {},
            "filters": filters.query(with_sort=False), "ids": ids, "rows": rows, "labeled": labeled,
            "polling": any(r["active"] for r in rows), "default_timeout": int(DEFAULT_TIMEOUT),
            "CLASSIFIER": CLASSIFIER, "TAGGER": TAGGER, "REMOTE": REMOTE}


@contextmanager
def _refusal_as_notice(request: Request[Any, Any, Any], db: Any) -> Iterator[None]:
    """Run a button's action: a refusal is rolled back and shown as an error notice on the page it
    returns to; a 404 (another tenant's or a missing object) still answers 404."""
    try:
        yield
    except ServiceError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        notice(request, exc.message, "error")


def _back(slug: str, project_id: int) -> Redirect:
    return see_other(f"/t/{slug}/projects/{project_id}/ml")


@get("/t/{slug:str}/projects/{project_id:int}/ml", opt=requires("project:update", nav="projects"), name="ml")
@in_thread
def ml_page(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    return page(request, "workflow/ml.html", **_context(request, project_id))


@get("/t/{slug:str}/projects/{project_id:int}/ml/jobs", opt=requires("project:update"), name="ml_jobs")
@in_thread
def ml_jobs(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    project = svc.get_project(_db(request), project_id)
    rows = _job_rows(request, project.id)
    return fragment(request, "workflow/partials/_ml_jobs.html", project=project, rows=rows,
                    polling=any(r["active"] for r in rows))


@post("/t/{slug:str}/projects/{project_id:int}/ml", opt=requires("project:update", nav="projects"),
      name="create_ml_backend")
@in_thread
def create_ml_backend(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                      data: Form) -> Template | Redirect:
    db = _db(request)
    form = {k: one(data, k) for k in FIELDS}
    try:
        backend = ml.create_backend(db, ctx_of(request), project_id, form)
    except ServiceError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        return page(request, "workflow/ml.html", status=422,
                    **_context(request, project_id, errors={exc.field or "kind": exc.message}, form=form))
    notice(request, f"{backend.name} added. Run it over the project's tasks below"
           + (" once it is trained." if backend.kind == CLASSIFIER else "."))
    return _back(slug, project_id)


@post("/t/{slug:str}/projects/{project_id:int}/ml/{backend_id:int}/update", opt=requires("project:update"),
      name="update_ml_backend")
@in_thread
def update_ml_backend(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                      backend_id: FromPath[int], data: Form) -> Template | Redirect:
    db = _db(request)
    form = {k: one(data, k) for k in FIELDS}
    try:
        backend = ml.update_backend(db, ctx_of(request), project_id, backend_id, form)
    except ServiceError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        return page(request, "workflow/ml.html", status=422, **_context(
            request, project_id, edit_errors={backend_id: {exc.field or "name": exc.message}}))
    notice(request, f"{backend.name} saved.")
    return _back(slug, project_id)


@post("/t/{slug:str}/projects/{project_id:int}/ml/{backend_id:int}/delete", opt=requires("project:update"),
      name="delete_ml_backend")
@in_thread
def delete_ml_backend(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                      backend_id: FromPath[int]) -> Redirect:
    db = _db(request)
    with _refusal_as_notice(request, db):
        ml.delete_backend(db, ctx_of(request), svc.get_project(db, project_id).id, backend_id)
        notice(request, f"ML backend #{backend_id} deleted; the predictions it made stay.")
    return _back(slug, project_id)


@post("/t/{slug:str}/projects/{project_id:int}/ml/{backend_id:int}/train", opt=requires("project:update"),
      name="train_ml_backend")
@in_thread
def train_ml_backend(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                     backend_id: FromPath[int]) -> Redirect:
    db = _db(request)
    with _refusal_as_notice(request, db):
        job = ml.queue_train(db, ctx_of(request), svc.get_project(db, project_id).id, backend_id)
        notice(request, f"Training started (job #{job.id}); it is listed below.")
    return _back(slug, project_id)


@post("/t/{slug:str}/projects/{project_id:int}/ml/{backend_id:int}/predict", opt=requires("project:update"),
      name="run_ml_backend")
@in_thread
def run_ml_backend(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                   backend_id: FromPath[int], data: Form) -> Redirect:
    db = _db(request)
    filters = {k: one(data, k) for k in FILTER_FIELDS}
    with _refusal_as_notice(request, db):
        job = ml.queue_predict(db, ctx_of(request), svc.get_project(db, project_id).id, backend_id,
                               scope=one(data, "scope", "all"), filters=filters, task_ids=many(data, "ids"))
        notice(request, f"Predictions started (job #{job.id}); follow it below.")
    return _back(slug, project_id)


route_handlers = [ml_page, ml_jobs, create_ml_backend, update_ml_backend, delete_ml_backend, train_ml_backend,
                  run_ml_backend]
