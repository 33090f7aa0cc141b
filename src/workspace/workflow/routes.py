"""Project pages: the list, creation, and per-project grants (the labeling core builds on these)."""

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
from workspace.web.render import ctx_of, notice, page, see_other
from workspace.web.uow import request_session as _db
from workspace.workflow import services as svc
from workspace.workflow.models import Project

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


@get("/t/{slug:str}/projects", opt=requires("project:read", nav="projects"), name="projects")
@in_thread
def list_projects(request: Request[Any, Any, Any], slug: FromPath[str]) -> Template:
    projects = list(_db(request).scalars(select(Project).order_by(Project.created_at.desc())))
    return page(request, "workflow/projects.html", projects=projects, errors={}, form={"title": ""})


@post("/t/{slug:str}/projects", opt=requires("project:create", nav="projects"), name="create_project")
@in_thread
def create_project(request: Request[Any, Any, Any], slug: FromPath[str], data: Form) -> Template | Redirect:
    try:
        project = svc.create_project(_db(request), ctx_of(request), one(data, "title"), one(data, "description"))
    except ServiceError as exc:
        _db(request).rollback()
        projects = list(_db(request).scalars(select(Project).order_by(Project.created_at.desc())))
        return page(request, "workflow/projects.html", status=422, projects=projects,
                    errors={exc.field or "title": exc.message}, form={"title": one(data, "title")})
    notice(request, f"Project {project.title} created.")
    return see_other(f"/t/{slug}/projects/{project.id}")


@get("/t/{slug:str}/projects/{project_id:int}", opt=requires("project:read", nav="projects"), name="project")
@in_thread
def get_project(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    db = _db(request)
    project = repo.fetch(db, Project, project_id, what="Project")
    grants = list(db.scalars(select(ProjectGrant).where(ProjectGrant.project_id == project.id)))
    users = {m.user_id: m.user for m in db.scalars(select(Membership)).unique()}
    teams = {t.id: t for t in repo.teams(db)}
    return page(request, "workflow/project.html", project=project, grants=grants, users=users, teams=teams,
                project_roles=PROJECT_ROLES, members=sorted(users.values(), key=lambda u: u.email))


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


route_handlers = [list_projects, create_project, get_project, grant_project, revoke_grant]
