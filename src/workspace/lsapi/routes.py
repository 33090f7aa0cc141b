"""The Label Studio–compatible REST API: the paths, parameters, bodies, status codes and shapes that
``label-studio-sdk`` 2.1.2 uses (``shared/LS_API.md``), served from Workspace's services.

Auth is the API's: ``Authorization: Token <key>`` (a legacy key) or ``Bearer <access JWT>`` (from a
personal access token, exchanged at ``POST /api/token/refresh/``). Each key belongs to one member of
one tenant; every call is scoped to that tenant and checked against that member's role by the one
guard (``web.guards``). Routes whose path names the project declare the project permission directly;
routes that reach a project through a task, annotation or prediction declare ``tenant:read`` plus the
project permission in ``opt[LS_PERM]``, checked by :func:`_project_ctx` once the object (and so its
project) is loaded: another tenant's object answers 404, a project outside an annotator's grants
404, a missing permission 403, exactly like the pages.

Status codes: the SDK retries 408, 409, 429 and 5xx even for POST, so a service's conflict answers
400 here (it changed nothing, but a retry would not help either), and nothing that took effect is
answered with one of those. A page past the end answers 404 ``{"detail": "Invalid page."}``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Annotated, Any, TypeVar

import anyio
from sqlalchemy import select
from sqlalchemy.orm import Session
from litestar import Request, Response, Router, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Stream

import workspace
from workspace.audit.chain import record, set_actor
from workspace.db.engine import readonly_engine
from workspace.lsapi import serializers as ser
from workspace.lsapi import services as svc
from workspace.tenancy import repositories as tenancy_repo
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Forbidden, Invalid, NotFound, ServiceError
from workspace.tenancy.permissions import PROJECT_PERMISSIONS, is_project_scoped
from workspace.tenancy.personal_tokens import (
    create_personal_token,
    is_personal,
    refresh_access_token,
    revoke_personal_token,
)
from workspace.tenancy.scoping import bind_tenant
from workspace.web.blocking import in_thread
from workspace.web.guards import PUBLIC, requires
from workspace.web.guards import _record_denied  # the guard's own audit of a denial, reused for object rules
from workspace.web.render import ctx_of
from workspace.web.uow import DEFERRED_TX, ONE_THREAD, request_actor, request_session, runtime_of
from workspace.workflow import services as projects
from workspace.workflow.datamanager import Filters, delete_tasks
from workspace.workflow.export_formats import FORMATS, unsupported_reason, write_export
from workspace.workflow.exporting import ExportOptions, iter_export_tasks
from workspace.workflow.label_config import parse_label_config, removed_labels
from workspace.workflow.models import Annotation, Prediction, Project, Task

__all__ = ["route_handlers", "LS_PERM"]

log = logging.getLogger(__name__)

LS_PERM = "ls_project_permission"
READ = {DEFERRED_TX: True}  # GETs begin a deferred transaction on SQLite: reads never queue behind writes
TASK_PAGE_SIZE = 100
MAX_TASK_PAGE_SIZE = 10_000
PROJECT_PAGE_SIZE = 30
MAX_PROJECT_PAGE_SIZE = 100
LS_RELEASE = "1.23.2"

Json = dict[str, Any]
T = TypeVar("T")


# --- plumbing ----------------------------------------------------------------------------------


def _db(request: Request[Any, Any, Any]) -> Session:
    return request_session(request)


def _project_ctx(request: Request[Any, Any, Any], project_id: int) -> TenantContext:
    """The member's context in this project, holding the permission the route declares in
    ``opt[LS_PERM]`` — or 404 (a project outside an annotator's grants) or 403 (audited)."""
    ctx = ctx_of(request)
    needed: str = request.route_handler.opt[LS_PERM]
    # The guard's context holds the tenant-wide permissions; add what grants give inside this project
    # (only project permissions matter here, and asking for the few missing ones is much cheaper).
    authz = runtime_of(request).authz
    granted = {p for p in PROJECT_PERMISSIONS - ctx.permissions
               if authz.can(ctx.user_id, ctx.tenant_id, p, project_id)}
    pctx = replace(ctx, permissions=ctx.permissions | granted) if granted else ctx
    if pctx.has(needed):
        return pctx
    if not pctx.has("project:read") and is_project_scoped(ctx.role):
        raise NotFound("Project not found")
    _record_denied(request, ctx, needed)
    raise Forbidden("You don't have permission to do that.")


def _object_rule(request: Request[Any, Any, Any], ctx: TenantContext, action: Callable[[], T]) -> T:
    """Run a service call whose object rule may say no (only its author changes an annotation): that
    denial is audited like the guard's."""
    try:
        return action()
    except Forbidden as exc:
        _record_denied(request, ctx, f"{request.route_handler.opt[LS_PERM]} ({exc.message})")
        raise


def _in_project(request: Request[Any, Any, Any]) -> TenantContext:
    """The guard's context of a route whose path names the project (it holds that project's grants)."""
    return ctx_of(request)


def _flag(value: str | bool | None) -> bool:
    if isinstance(value, bool):
        return value
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _ls_error(request: Request[Any, Any, Any], exc: ServiceError) -> Response[Any]:
    """Label Studio's error body; never a status the SDK retries for a request that changed nothing
    it could fix by retrying (its conflicts are 400 here)."""
    status = exc.status if exc.status in (400, 401, 403, 404, 413) else 400
    body: dict[str, Any] = {"detail": exc.message}
    if exc.field:
        body["field"] = exc.field
        body["validation_errors"] = {exc.field: [exc.message]}
    if isinstance(exc, projects.ConfigInvalid):
        body["validation_errors"] = {"label_config": [str(p) for p in exc.problems]}
    return Response(body, status_code=status)


def _label_config(body: Json) -> str | None:
    value = body.get("label_config")
    if value is not None and not isinstance(value, str):
        raise Invalid('"label_config" must be an XML string.', field="label_config")
    return value


def _text(body: Json, key: str, limit: int = 100_000) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise Invalid(f'"{key}" must be a string of at most {limit} characters.', field=key)
    return value


def _project_json(request: Request[Any, Any, Any], project: Project, *, counters: bool = True) -> ser.ProjectOut:
    db = _db(request)
    counted = svc.project_counters(db, [project.id])[project.id] if counters else None
    users = svc.users_by_id(db, [project.created_by_id])
    return ser.project_json(project, counters=counted, creator=users.get(project.created_by_id or 0),
                            maximum_annotations=svc.maximum_annotations(project))


# --- user, version -----------------------------------------------------------------------------


@get("/api/current-user/whoami", opt=requires("tenant:read", **READ), name="ls_whoami")
@in_thread
def whoami(request: Request[Any, Any, Any]) -> Json:
    """The caller (Label Studio's user object), plus Workspace's view: tenant, role, permissions."""
    ctx = ctx_of(request)
    first, _, last = ctx.user_name.partition(" ")
    return {"id": ctx.user_id, "email": ctx.user_email, "username": "", "first_name": first, "last_name": last,
            "avatar": None, "initials": ((first[:1] + last[:1]) or ctx.user_email[:2]).lower(), "phone": "",
            "active_organization": ctx.tenant_id,
            "active_organization_meta": {"title": ctx.tenant_name, "email": ""},
            "custom_hotkeys": {}, "allow_newsletters": False, "date_joined": None, "last_activity": None,
            "permissions": sorted(ctx.permissions),
            "workspace": {"tenant": ctx.tenant_slug, "role": ctx.role, "permissions": sorted(ctx.permissions)}}


@get("/api/version", opt=requires("tenant:read", **READ), name="ls_version", sync_to_thread=False)
def version(request: Request[Any, Any, Any]) -> Json:
    """``edition: Community`` tells the SDK to export with the synchronous ``GET …/export``."""
    return {"release": LS_RELEASE, "edition": "Community", "workspace": workspace.__version__,
            "label-studio-os-package": {"version": LS_RELEASE}}


# --- personal access tokens --------------------------------------------------------------------


def _secret(request: Request[Any, Any, Any]) -> str:
    return runtime_of(request).settings.secret_key


@post("/api/token/", opt=requires("token:own"), name="ls_token_create", status_code=201)
@in_thread
def token_create(request: Request[Any, Any, Any]) -> Json:
    """A new personal access token for the caller (a JWT refresh token; shown once, stored hashed).
    Unlike Label Studio, a member may hold several: a second one is not a 409 (which the SDK retries)."""
    ctx = ctx_of(request)
    minted = create_personal_token(_db(request), ctx.tenant_id, ctx.user_id, "Created through the API", _secret(request))
    return {"token": minted.key, "id": minted.token.id, "expires_at": ser.iso(minted.token.expires_at)}


@get("/api/token/", opt=requires("token:own", **READ), name="ls_token_list")
@in_thread
def token_list(request: Request[Any, Any, Any]) -> list[Json]:
    ctx = ctx_of(request)
    tokens = tenancy_repo.visible_tokens(_db(request), ctx.user_id, all_members=False)
    return [{"token": f"{t.prefix}…", "id": t.id, "name": t.name, "created_at": ser.iso(t.created_at),
             "expires_at": ser.iso(t.expires_at)} for t in tokens if is_personal(t) and t.revoked_at is None]


def _refresh_value(data: Json) -> str:
    value = data.get("refresh")
    return value if isinstance(value, str) else ""


@post("/api/token/refresh/", opt=requires(PUBLIC), name="ls_token_refresh", status_code=200)
@in_thread
def token_refresh(request: Request[Any, Any, Any], data: JSONBody[Json]) -> Response[Json]:
    """Trade a personal access token for a five-minute access JWT (no Authorization header needed)."""
    access = refresh_access_token(_db(request), _refresh_value(data), _secret(request))
    if access is None:
        return Response({"detail": "Token is invalid", "code": "token_not_valid"}, status_code=401)
    return Response({"access": access}, status_code=200)


@post("/api/token/blacklist/", opt=requires(PUBLIC), name="ls_token_blacklist", status_code=200)
@in_thread
def token_blacklist(request: Request[Any, Any, Any], data: JSONBody[Json]) -> Response[Json]:
    """Revoke the personal access token presented (holding it is the authority to revoke it)."""
    db = _db(request)
    set_actor(db, request_actor(request, type_="token", label="personal access token (revoked by its holder)"))
    token = revoke_personal_token(db, _refresh_value(data), _secret(request))
    if token is None:
        return Response({"detail": "Token is invalid", "code": "token_not_valid"}, status_code=401)
    return Response({}, status_code=200)


# --- projects ----------------------------------------------------------------------------------


@get("/api/projects/", opt=requires("tenant:read", **READ), name="ls_projects")
@in_thread
def project_list(
    request: Request[Any, Any, Any], page: FromQuery[int] = 1,
    page_size: Annotated[int, QueryParameter(ge=1, le=10_000)] = PROJECT_PAGE_SIZE,
    title: FromQuery[str | None] = None, ids: FromQuery[str | None] = None,
    ordering: FromQuery[str | None] = None,
) -> ser.ProjectPage:
    """Projects the caller sees (annotators: those granted to them), ``{count, next, previous, results}``."""
    ctx = ctx_of(request)
    db = _db(request)
    page_size = min(page_size, MAX_PROJECT_PAGE_SIZE)
    found = projects.visible_projects(db, ctx)
    if title:
        found = [p for p in found if title.lower() in p.title.lower()]
    if ids:
        try:
            wanted = {int(i) for i in ids.split(",") if i.strip()}
        except ValueError:
            raise Invalid('"ids" is a comma-separated list of project ids.', field="ids") from None
        found = [p for p in found if p.id in wanted]
    if ordering in ("id", "-id", "title", "-title", "created_at", "-created_at"):
        key = ordering.lstrip("-")
        found.sort(key=lambda p: getattr(p, key), reverse=ordering.startswith("-"))
    offset = (page - 1) * page_size
    if page < 1 or (page > 1 and offset >= len(found)):
        raise NotFound("Invalid page.")
    chunk = found[offset: offset + page_size]
    counters = svc.project_counters(db, [p.id for p in chunk])
    users = svc.users_by_id(db, [p.created_by_id for p in chunk])
    base = str(request.url.with_replacements(query=""))

    def link(n: int) -> str:
        return f"{base}?page={n}&page_size={page_size}"

    return {"count": len(found), "next": link(page + 1) if offset + page_size < len(found) else None,
            "previous": link(page - 1) if page > 1 else None,
            "results": [ser.project_json(p, counters=counters[p.id], creator=users.get(p.created_by_id or 0),
                                         maximum_annotations=svc.maximum_annotations(p)) for p in chunk]}


@post("/api/projects/", opt=requires("project:create"), name="ls_project_create", status_code=201)
@in_thread
def project_create(request: Request[Any, Any, Any], data: JSONBody[Json]) -> ser.ProjectOut:
    ctx = ctx_of(request)
    title = data.get("title")
    if title is None:
        title = "New project"
    if not isinstance(title, str):
        raise Invalid('"title" must be a string.', field="title")
    project = projects.create_project(_db(request), ctx, title, _text(data, "description") or "",
                                      label_config=_label_config(data),
                                      instructions=_text(data, "expert_instruction") or "")
    return _project_json(request, project, counters=False)


@get("/api/projects/{project_id:int}/", opt=requires("project:read", **READ), name="ls_project")
@in_thread
def project_get(request: Request[Any, Any, Any], project_id: FromPath[int]) -> ser.ProjectOut:
    return _project_json(request, projects.get_project(_db(request), project_id))


@patch("/api/projects/{project_id:int}/", opt=requires("project:update"), name="ls_project_update")
@in_thread
def project_update(request: Request[Any, Any, Any], project_id: FromPath[int], data: JSONBody[Json]) -> ser.ProjectOut:
    """Only the fields sent change; Label Studio fields Workspace does not keep are accepted and ignored."""
    title = data.get("title")
    if title is not None and not isinstance(title, str):
        raise Invalid('"title" must be a string.', field="title")
    project = projects.update_project(_db(request), _in_project(request), project_id, title=title,
                                      description=_text(data, "description"),
                                      instructions=_text(data, "expert_instruction"),
                                      label_config=_label_config(data))
    return _project_json(request, project)


@delete("/api/projects/{project_id:int}/", opt=requires("project:delete"), name="ls_project_delete",
        status_code=204)
@in_thread
def project_delete(request: Request[Any, Any, Any], project_id: FromPath[int]) -> None:
    projects.delete_project(_db(request), _in_project(request), project_id)


@post("/api/projects/{project_id:int}/validate/", opt=requires("project:update"), name="ls_validate_config",
      status_code=200)
@in_thread
def project_validate_config(request: Request[Any, Any, Any], project_id: FromPath[int], data: JSONBody[Json]) -> Json:
    """400 with every problem, or 200 telling whether the config drops labels the project had."""
    project = projects.get_project(_db(request), project_id)
    new = projects.check_label_config(_label_config(data) or "")
    dropped = removed_labels(parse_label_config(project.label_config), new)
    return {"config_essential_data_has_changed": bool(dropped)}


# --- import ------------------------------------------------------------------------------------


async def _run(fn: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(lambda: fn(*args))


@post("/api/projects/{project_id:int}/import", opt=requires("project:update"), name="ls_import", status_code=201)
async def project_import(request: Request[Any, Any, Any], project_id: FromPath[int],
                         return_task_ids: FromQuery[str | None] = None) -> ser.ImportOut:
    """A JSON array of tasks (bare data, or ``{"data", "annotations", "predictions"}``), all or nothing:
    a task lacking a field the label config uses rejects the whole request (400)."""
    body = await request.body()
    started = time.perf_counter()

    def work() -> svc.ImportResult:
        return svc.import_json(_db(request), _in_project(request), project_id, body,
                               want_ids=_flag(return_task_ids))

    result = await _run(work)
    out: ser.ImportOut = {"task_count": result.task_count, "annotation_count": result.annotation_count,
                 "prediction_count": result.prediction_count, "predictions_count": result.prediction_count,
                 "duration": round(time.perf_counter() - started, 3), "file_upload_ids": [],
                 "could_be_tasks_list": False, "found_formats": [], "data_columns": []}
    if _flag(return_task_ids):
        out["task_ids"] = result.task_ids
    return out


@post("/api/projects/{project_id:int}/import/predictions", opt=requires("project:update"),
      name="ls_import_predictions", status_code=201)
@in_thread
def project_import_predictions(request: Request[Any, Any, Any], project_id: FromPath[int],
                               data: JSONBody[list[Json] | Json]) -> Json:
    made = svc.import_predictions(_db(request), _in_project(request), project_id, data)
    return {"created": made}


# --- export ------------------------------------------------------------------------------------


class _Pipe:
    """A write-only binary stream feeding a bounded queue: the export writer runs in a thread and
    the response reads from the queue, so memory stays bounded whatever the project's size."""

    def __init__(self) -> None:
        self.queue: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=16)
        self.cancelled = threading.Event()

    def _put(self, item: bytes | BaseException | None) -> None:
        while not self.cancelled.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        if item is not None and not isinstance(item, BaseException):
            raise _Cancelled()

    def write(self, data: bytes) -> int:
        if data:
            self._put(bytes(data))
        return len(data)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass


class _Cancelled(Exception):
    """The client went away: stop writing."""


def _export_thread(request: Request[Any, Any, Any], tenant_id: int, project_id: int, fmt: str, only_annotated: bool,
                   ids: set[int] | None, pipe: _Pipe) -> None:
    runtime = runtime_of(request)
    session = runtime.session_factory(bind=readonly_engine(runtime.engine))
    bind_tenant(session, tenant_id)
    try:
        project = projects.get_project(session, project_id)
        options = ExportOptions(include_predictions=True, filters={"state": "labeled"} if only_annotated else {})
        tasks = iter_export_tasks(session, project_id, options)
        if ids is not None:
            tasks = (t for t in tasks if t["id"] in ids)
        write_export(fmt, parse_label_config(project.label_config), tasks, pipe,  # type: ignore[arg-type]
                     project_title=project.title)
        pipe._put(None)
    except _Cancelled:
        pass
    except BaseException as exc:  # the response is under way: end it early
        log.exception("export of project %s failed while streaming", project_id)
        pipe._put(exc)
    finally:
        session.rollback()
        session.close()


@get("/api/projects/{project_id:int}/export", opt=requires("project:update", **READ), name="ls_export")
async def project_export(
    request: Request[Any, Any, Any], project_id: FromPath[int],
    export_type: FromQuery[str | None] = None,
    export_type_camel: Annotated[str | None, QueryParameter(name="exportType")] = None,
    download_all_tasks: FromQuery[str | None] = None,
    download_resources: FromQuery[str | None] = None,
    ids: FromQuery[list[int] | None] = None,
) -> Stream:
    """The project's tasks in a Label Studio export format, streamed as it is written (no job, no
    stored file). Without ``download_all_tasks=true`` only tasks with annotations; ``ids`` (repeated)
    narrows it to those tasks."""
    fmt = (export_type or export_type_camel or "JSON").strip().upper()
    ctx = _in_project(request)

    def check() -> Project:
        db = _db(request)
        project = projects.get_project(db, project_id)
        if fmt not in FORMATS:
            raise Invalid(f"Unknown export type {fmt!r}; use one of {', '.join(FORMATS)}.", field="export_type")
        reason = unsupported_reason(fmt, parse_label_config(project.label_config))
        if reason:
            raise Invalid(f"{FORMATS[fmt].title} does not fit this project: {reason}", field="export_type")
        record(db, "project.exported", tenant_id=ctx.tenant_id, object_type="project", object_id=project.id,
               object_label=project.title, changes={"format": fmt, "download_all_tasks": _flag(download_all_tasks),
                                                     "ids": len(ids) if ids else None, "via": "api"})
        return project

    project = await _run(check)
    pipe = _Pipe()
    wanted = set(ids) if ids else None
    thread = threading.Thread(target=_export_thread, name="ls-export", daemon=True,
                              args=(request, ctx.tenant_id, project.id, fmt, not _flag(download_all_tasks), wanted,
                                    pipe))

    async def body() -> AsyncIterator[bytes]:
        thread.start()
        try:
            while True:
                item = await anyio.to_thread.run_sync(pipe.queue.get)
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            pipe.cancelled.set()
            while not pipe.queue.empty():  # let a blocked writer see the cancel
                pipe.queue.get_nowait()

    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())
    info = FORMATS[fmt]
    return Stream(body(), media_type=info.content_type, headers={
        "content-disposition": f'attachment; filename="project-{project.id}-at-{stamp}.{info.extension}"'})


@get("/api/projects/{project_id:int}/export/formats", opt=requires("project:update", **READ),
     name="ls_export_formats")
@in_thread
def project_export_formats(request: Request[Any, Any, Any], project_id: FromPath[int]) -> list[Json]:
    config = parse_label_config(projects.get_project(_db(request), project_id).label_config)
    return [{"name": f.key, "title": f.title, "description": f.description,
             "link": f"/api/projects/{project_id}/export?exportType={f.key}",
             "disabled": unsupported_reason(f.key, config) is not None} for f in FORMATS.values()]


# --- tasks -------------------------------------------------------------------------------------


def _task_json(request: Request[Any, Any, Any], ctx: TenantContext, task: Task, *, expand: bool = True) -> ser.TaskOut:
    db = _db(request)
    project = projects.get_project(db, task.project_id)
    annotations, predictions = svc.task_children(db, ctx, [task])
    users = svc.users_by_id(db, [a.completed_by_id for a in annotations[task.id]])
    return ser.task_json(task, inner_id=svc.inner_id(db, task), annotations=annotations[task.id],
                         predictions=predictions[task.id], users=users,
                         maximum_annotations=svc.maximum_annotations(project), expand_users=expand)


@get("/api/tasks/", opt=requires("tenant:read", **{LS_PERM: "project:read"}, **READ), name="ls_tasks")
@in_thread
def task_list(
    request: Request[Any, Any, Any], project: FromQuery[int | None] = None, page: FromQuery[int] = 1,
    page_size: Annotated[int, QueryParameter(ge=1)] = TASK_PAGE_SIZE, fields: FromQuery[str | None] = None,
    only_annotated: FromQuery[str | None] = None,
) -> ser.TaskPage:
    """``{tasks, total, total_annotations, total_predictions}`` by task id; annotators see their own
    tasks (as in the data manager). A page past the end is 404, page 1 of nothing is an empty 200.
    Without ``project``, the tasks of every project the caller sees."""
    db = _db(request)
    # The projects stay referenced for the whole request: the session's identity map holds rows only
    # weakly, and the serializer below looks them up again.
    if project is None:
        ctx = ctx_of(request)
        shown = projects.visible_projects(db, ctx)
    else:
        shown = [projects.get_project(db, project)]
        ctx = _project_ctx(request, project)
    project_ids = [p.id for p in shown]
    found = svc.task_page(db, ctx, project_ids, page, min(page_size, MAX_TASK_PAGE_SIZE),
                          only_annotated=_flag(only_annotated))
    full = (fields or "").lower() == "all"
    annotations, predictions = svc.task_children(db, ctx, found.tasks) if full else ({}, {})
    users = svc.users_by_id(db, [a.completed_by_id for items in annotations.values() for a in items])
    overlaps = {p.id: svc.maximum_annotations(p) for p in shown}
    return {"tasks": [ser.task_json(t, inner_id=t.inner_id or (found.offset + i + 1 if project is not None else None),
                                    annotations=annotations.get(t.id) if full else None,
                                    predictions=predictions.get(t.id) if full else None, users=users,
                                    maximum_annotations=overlaps[t.project_id]) for i, t in enumerate(found.tasks)],
            "total": found.total, "total_annotations": found.total_annotations,
            "total_predictions": found.total_predictions}


@post("/api/tasks/", opt=requires("tenant:read", **{LS_PERM: "project:update"}), name="ls_task_create",
      status_code=201)
@in_thread
def task_create(request: Request[Any, Any, Any], data: JSONBody[Json]) -> ser.TaskOut:
    project_id = data.get("project")
    if not isinstance(project_id, int) or isinstance(project_id, bool):
        raise Invalid('Give the project id as "project".', field="project")
    projects.get_project(_db(request), project_id)
    ctx = _project_ctx(request, project_id)
    task = svc.create_task(_db(request), ctx, project_id, data.get("data"))
    return _task_json(request, ctx, task)


def _task_for(request: Request[Any, Any, Any], task_id: int) -> tuple[Task, TenantContext]:
    db = _db(request)
    task, project = svc.task_and_project(db, task_id)  # both held: the serializer reads the project
    request.scope.setdefault("state", {})["ls_project"] = project
    ctx = _project_ctx(request, task.project_id)
    return svc.visible_task(db, ctx, task.id), ctx


@get("/api/tasks/{task_id:int}/", opt=requires("tenant:read", **{LS_PERM: "project:read"}, **READ), name="ls_task")
@in_thread
def task_get(request: Request[Any, Any, Any], task_id: FromPath[int]) -> ser.TaskOut:
    task, ctx = _task_for(request, task_id)
    return _task_json(request, ctx, task)


@patch("/api/tasks/{task_id:int}/", opt=requires("tenant:read", **{LS_PERM: "project:update"}),
       name="ls_task_update")
@in_thread
def task_update(request: Request[Any, Any, Any], task_id: FromPath[int], data: JSONBody[Json]) -> ser.TaskOut:
    """``data`` is replaced (checked against the label config). ``meta`` and ``is_labeled`` are not
    kept by Workspace: they are accepted and ignored."""
    task, ctx = _task_for(request, task_id)
    if "data" in data:
        svc.update_task(_db(request), ctx, task, data["data"])
    return _task_json(request, ctx, task, expand=False)


@delete("/api/tasks/{task_id:int}/", opt=requires("tenant:read", **{LS_PERM: "project:update"}),
        name="ls_task_delete", status_code=204)
@in_thread
def task_delete(request: Request[Any, Any, Any], task_id: FromPath[int]) -> None:
    task, ctx = _task_for(request, task_id)
    svc.delete_task(_db(request), ctx, task)


@delete("/api/projects/{project_id:int}/tasks/", opt=requires("project:update"), name="ls_project_tasks_delete",
        status_code=204)
@in_thread
def project_tasks_delete(request: Request[Any, Any, Any], project_id: FromPath[int]) -> None:
    projects.get_project(_db(request), project_id)
    delete_tasks(_db(request), _in_project(request), project_id, filters=Filters())


# --- annotations -------------------------------------------------------------------------------


@post("/api/tasks/{task_id:int}/annotations/", opt=requires("tenant:read", **{LS_PERM: "project:annotate"}),
      name="ls_annotation_create", status_code=201)
@in_thread
def annotation_create(request: Request[Any, Any, Any], task_id: FromPath[int], data: JSONBody[Json]) -> ser.AnnotationOut:
    """The caller's annotation (``completed_by`` is always the caller), validated against the label
    config and submitted like on the labeling page: it enters the same review workflow."""
    db = _db(request)
    task, _project = svc.task_and_project(db, task_id)  # the project stays loaded for the service
    ctx = _project_ctx(request, task.project_id)
    return ser.annotation_json(svc.create_annotation(db, ctx, task, data))


@get("/api/tasks/{task_id:int}/annotations/", opt=requires("tenant:read", **{LS_PERM: "project:read"}, **READ),
     name="ls_annotations")
@in_thread
def annotation_list(request: Request[Any, Any, Any], task_id: FromPath[int]) -> list[ser.AnnotationOut]:
    task, ctx = _task_for(request, task_id)
    annotations, _ = svc.task_children(_db(request), ctx, [task])
    return [ser.annotation_json(a) for a in annotations[task.id]]


def _annotation_for(request: Request[Any, Any, Any], annotation_id: int) -> tuple[Annotation, TenantContext]:
    db = _db(request)
    found = tenancy_repo.fetch(db, Annotation, annotation_id, what="Annotation")
    ctx = _project_ctx(request, found.project_id)
    return svc.annotation_of(db, ctx, found.id), ctx


@get("/api/annotations/{annotation_id:int}/", opt=requires("tenant:read", **{LS_PERM: "project:read"}, **READ),
     name="ls_annotation")
@in_thread
def annotation_get(request: Request[Any, Any, Any], annotation_id: FromPath[int]) -> ser.AnnotationOut:
    return ser.annotation_json(_annotation_for(request, annotation_id)[0])


@patch("/api/annotations/{annotation_id:int}/", opt=requires("tenant:read", **{LS_PERM: "project:annotate"}),
       name="ls_annotation_update")
@in_thread
def annotation_update(request: Request[Any, Any, Any], annotation_id: FromPath[int], data: JSONBody[Json]) -> ser.AnnotationOut:
    annotation, ctx = _annotation_for(request, annotation_id)
    return ser.annotation_json(_object_rule(request, ctx, lambda: svc.update_annotation(_db(request), ctx, annotation,
                                                                                        data)))


@delete("/api/annotations/{annotation_id:int}/", opt=requires("tenant:read", **{LS_PERM: "project:annotate"}),
        name="ls_annotation_delete", status_code=204)
@in_thread
def annotation_delete(request: Request[Any, Any, Any], annotation_id: FromPath[int]) -> None:
    annotation, ctx = _annotation_for(request, annotation_id)
    _object_rule(request, ctx, lambda: svc.delete_annotation(_db(request), ctx, annotation))


# --- predictions -------------------------------------------------------------------------------


@post("/api/predictions/", opt=requires("tenant:read", **{LS_PERM: "project:update"}), name="ls_prediction_create",
      status_code=201)
@in_thread
def prediction_create(request: Request[Any, Any, Any], data: JSONBody[Json]) -> ser.PredictionOut:
    task_id = data.get("task")
    if not isinstance(task_id, int) or isinstance(task_id, bool):
        raise Invalid('Give the task id as "task".', field="task")
    db = _db(request)
    target = svc.prediction_target(db, task_id)
    ctx = _project_ctx(request, target.project_id)
    return ser.prediction_json(svc.create_prediction(db, ctx, target, data))


@get("/api/predictions/", opt=requires("tenant:read", **{LS_PERM: "project:read"}, **READ), name="ls_predictions")
@in_thread
def prediction_list(request: Request[Any, Any, Any], task: FromQuery[int | None] = None,
                    project: FromQuery[int | None] = None, task__project: FromQuery[int | None] = None) -> list[ser.PredictionOut]:
    """Predictions of a task or of a project (a plain array, by id)."""
    db = _db(request)
    if task is not None:
        found, _ctx = _task_for(request, task)
        rows = db.scalars(select(Prediction).where(Prediction.task_id == found.id).order_by(Prediction.id))
    else:
        project_id = project if project is not None else task__project
        if project_id is None:  # every project the caller sees
            visible = [p.id for p in projects.visible_projects(db, ctx_of(request))]
            rows = db.scalars(select(Prediction).where(Prediction.project_id.in_(visible)).order_by(Prediction.id))
        else:
            projects.get_project(db, project_id)
            _project_ctx(request, project_id)
            rows = db.scalars(select(Prediction).where(Prediction.project_id == project_id).order_by(Prediction.id))
    return [ser.prediction_json(p) for p in rows]


def _prediction_for(request: Request[Any, Any, Any], prediction_id: int) -> tuple[Prediction, TenantContext]:
    found = svc.prediction_of(_db(request), prediction_id)
    return found, _project_ctx(request, found.project_id)


@get("/api/predictions/{prediction_id:int}/", opt=requires("tenant:read", **{LS_PERM: "project:read"}, **READ),
     name="ls_prediction")
@in_thread
def prediction_get(request: Request[Any, Any, Any], prediction_id: FromPath[int]) -> ser.PredictionOut:
    return ser.prediction_json(_prediction_for(request, prediction_id)[0])


@patch("/api/predictions/{prediction_id:int}/", opt=requires("tenant:read", **{LS_PERM: "project:update"}),
       name="ls_prediction_update")
@in_thread
def prediction_update(request: Request[Any, Any, Any], prediction_id: FromPath[int], data: JSONBody[Json]) -> ser.PredictionOut:
    found, ctx = _prediction_for(request, prediction_id)
    return ser.prediction_json(svc.update_prediction(_db(request), ctx, found, data))


@delete("/api/predictions/{prediction_id:int}/", opt=requires("tenant:read", **{LS_PERM: "project:update"}),
        name="ls_prediction_delete", status_code=204)
@in_thread
def prediction_delete(request: Request[Any, Any, Any], prediction_id: FromPath[int]) -> None:
    found, ctx = _prediction_for(request, prediction_id)
    svc.delete_prediction(_db(request), ctx, found)


HANDLERS = [
    whoami, version, token_create, token_list, token_refresh, token_blacklist,
    project_list, project_create, project_get, project_update, project_delete, project_validate_config,
    project_import, project_import_predictions, project_export, project_export_formats, project_tasks_delete,
    task_list, task_create, task_get, task_update, task_delete,
    annotation_create, annotation_list, annotation_get, annotation_update, annotation_delete,
    prediction_create, prediction_list, prediction_get, prediction_update, prediction_delete,
]

route_handlers = [Router(path="/", route_handlers=HANDLERS, exception_handlers={ServiceError: _ls_error},
                          opt={ONE_THREAD: True})]  # every handler here returns plain data
