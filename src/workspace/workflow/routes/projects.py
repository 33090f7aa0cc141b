"""Project pages: the list, creation, and per-project grants (the labeling core builds on these).

Every member may open the list; it shows the projects they can see (all of them with tenant-wide
``project:read``, else the ones granted to them). Routes with a project in the path are checked by
the guard against the tenant's and that project's permissions.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from sqlalchemy import select

from workspace.tenancy import repositories as repo
from workspace.tenancy import services as tenancy
from workspace.tenancy.errors import Invalid, ServiceError
from workspace.tenancy.models import Membership, ProjectGrant
from workspace.tenancy.permissions import PROJECT_ROLES
from workspace.web.forms import one
from workspace.web.blocking import in_thread
from workspace.web.guards import requires
from workspace.web.render import ctx_of, fragment, notice, page, see_other
from workspace.web.uow import request_session as _db
from workspace.workflow import services as svc
from workspace.workflow.models import Project
from workspace.workflow.templates import TEMPLATES, template

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _projects_page(request: Request[Any, Any, Any], *, status: int = 200, errors: dict[str, str] | None = None,
                   form: dict[str, str] | None = None, problems: list[Any] | None = None) -> Template:
    projects = svc.visible_projects(_db(request), ctx_of(request))
    return page(request, "workflow/projects.html", status=status, projects=projects, templates=TEMPLATES,
                errors=errors or {}, problems=problems or [],
                form=form or {"title": "", "description": "", "template": TEMPLATES[0].key, "label_config": ""})


@get("/t/{slug:str}/projects", opt=requires("tenant:read", nav="projects"), name="projects")
@in_thread
def list_projects(request: Request[Any, Any, Any], slug: FromPath[str]) -> Template:
    return _projects_page(request)


@post("/t/{slug:str}/projects", opt=requires("project:create", nav="projects"), name="create_project")
@in_thread
def create_project(request: Request[Any, Any, Any], slug: FromPath[str], data: Form) -> Template | Redirect:
    form = {k: one(data, k) for k in ("title", "description", "template", "label_config")}
    chosen = template(form["template"])
    config = form["label_config"].strip() or (chosen.config if chosen else "")
    try:
        project = svc.create_project(_db(request), ctx_of(request), form["title"], form["description"],
                                     label_config=config)
    except ServiceError as exc:
        _db(request).rollback()
        return _projects_page(request, status=422, errors={exc.field or "title": exc.message}, form=form,
                              problems=getattr(exc, "problems", []))
    notice(request, f"Project {project.title} created.")
    return see_other(f"/t/{slug}/projects/{project.id}")


@post("/t/{slug:str}/projects/config-check", opt=requires("project:create"), name="check_new_config")
@in_thread
def check_new_config(request: Request[Any, Any, Any], slug: FromPath[str], data: Form) -> Template:
    """Live validation while a config is typed (htmx): problems with positions, or what it labels."""
    return _config_check(request, one(data, "label_config"))


def _config_check(request: Request[Any, Any, Any], text: str) -> Template:
    try:
        config = svc.check_label_config(text) if text.strip() else None
        problems: list[Any] = []
    except ServiceError as exc:
        config, problems = None, list(getattr(exc, "problems", [])) or [exc.message]
    return fragment(request, "workflow/partials/_config_check.html", config=config, problems=problems,
                    empty=not text.strip())


@get("/t/{slug:str}/projects/{project_id:int}", opt=requires("project:read", nav="projects"), name="project")
@in_thread
def get_project(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    return _project_page(request, project_id)


def _project_page(request: Request[Any, Any, Any], project_id: int, *, status: int = 200,
                  errors: dict[str, str] | None = None, form: dict[str, str] | None = None,
                  problems: list[Any] | None = None) -> Template:
    db = _db(request)
    project = repo.fetch(db, Project, project_id, what="Project")
    grants = list(db.scalars(select(ProjectGrant).where(ProjectGrant.project_id == project.id)))
    users = {m.user_id: m.user for m in db.scalars(select(Membership)).unique()}
    teams = {t.id: t for t in repo.teams(db)}
    return page(request, "workflow/project.html", project=project, grants=grants, users=users, teams=teams,
                project_roles=PROJECT_ROLES, members=sorted(users.values(), key=lambda u: u.email),
                errors=errors or {}, problems=problems or [], form=form or {
                    "title": project.title, "description": project.description,
                    "instructions": project.instructions, "label_config": project.label_config}, status=status)


@post("/t/{slug:str}/projects/{project_id:int}/grants", opt=requires("project:update", nav="projects"),
      name="grant_project")
@in_thread
def grant_project(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int], data: Form) -> Redirect:
    svc.get_project(_db(request), project_id)
    subject = one(data, "subject")
    kind, _, raw_id = subject.partition(":")
    if kind not in ("user", "team") or not raw_id.isdigit():
        raise Invalid("Pick a member or a team.", field="subject")
    tenancy.grant_project_role(_db(request), ctx_of(request), project_id, one(data, "role"),
                           user_id=int(raw_id) if kind == "user" else None,
                           team_id=int(raw_id) if kind == "team" else None)
    notice(request, "Grant saved.")
    return see_other(f"/t/{slug}/projects/{project_id}")


@post("/t/{slug:str}/projects/{project_id:int}/grants/{grant_id:int}/revoke", opt=requires("project:update"),
      name="revoke_grant")
@in_thread
def revoke_grant(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int], grant_id: FromPath[int]) -> Redirect:
    tenancy.revoke_project_grant(_db(request), ctx_of(request), grant_id, project_id=project_id)
    notice(request, "Grant removed.")
    return see_other(f"/t/{slug}/projects/{project_id}")


@post("/t/{slug:str}/projects/{project_id:int}/settings", opt=requires("project:update", nav="projects"),
      name="update_project")
@in_thread
def update_project(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                   data: Form) -> Template | Redirect:
    svc.get_project(_db(request), project_id)
    form = {k: one(data, k) for k in ("title", "description", "instructions", "label_config")}
    form["instructions"] = data.get("instructions", "") if isinstance(data.get("instructions"), str) else ""
    form["label_config"] = data.get("label_config", "") if isinstance(data.get("label_config"), str) else ""
    try:
        svc.update_project(_db(request), ctx_of(request), project_id, **form)
    except ServiceError as exc:
        if exc.status == 404:
            raise
        _db(request).rollback()
        return _project_page(request, project_id, status=422, errors={exc.field or "title": exc.message},
                             form=form, problems=getattr(exc, "problems", []))
    notice(request, "Project settings saved.")
    return see_other(f"/t/{slug}/projects/{project_id}")


@post("/t/{slug:str}/projects/{project_id:int}/config-check", opt=requires("project:update"),
      name="check_project_config")
@in_thread
def check_project_config(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                         data: Form) -> Template:
    svc.get_project(_db(request), project_id)
    text = data.get("label_config", "")
    return _config_check(request, text if isinstance(text, str) else "")


@post("/t/{slug:str}/projects/{project_id:int}/delete", opt=requires("project:delete", nav="projects"),
      name="delete_project")
@in_thread
def delete_project(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                   data: Form) -> Template | Redirect:
    project = svc.get_project(_db(request), project_id)
    if one(data, "confirm") != project.title:
        return _project_page(request, project_id, status=422,
                             errors={"confirm": "Type the project's title exactly to confirm the deletion."})
    title = project.title
    svc.delete_project(_db(request), ctx_of(request), project_id)
    notice(request, f"Project {title} and all its tasks and annotations were deleted.")
    return see_other(f"/t/{slug}/projects")


route_handlers = [list_projects, create_project, check_new_config, get_project, update_project, check_project_config,
                  delete_project, grant_project, revoke_grant]
