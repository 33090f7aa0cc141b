"""Teams, roles and the permission matrix, and the explain view."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workspace.tenancy import repositories as repo
from workspace.tenancy import services as svc
from workspace.tenancy.errors import ServiceError
from workspace.tenancy.models import (
    Membership,
    Role,
    Team,
    TeamMember,
    User,
)
from workspace.tenancy.permissions import (
    BUILTIN_ORDER,
    BUILTIN_ROLES,
    CATALOGUE,
    PROJECT_PERMISSIONS,
    builtin_permissions,
    is_project_scoped,
)
from workspace.web.forms import int_or_none, many, one
from workspace.web.blocking import in_thread
from workspace.web.guards import requires
from workspace.web.render import ctx_of, notice, page, see_other
from workspace.web.uow import runtime_of

from workspace.tenancy.routes._common import Form, db_of, role_name


# --- teams -------------------------------------------------------------------------------------


@get("/t/{slug:str}/teams", opt=requires("team:read", nav="teams"), name="teams")
@in_thread
def list_teams(request: Request[Any, Any, Any], slug: FromPath[str]) -> Template:
    return _teams_page(request)


def _teams_page(request: Request[Any, Any, Any], *, status: int = 200, errors: dict[str, str] | None = None,
                form: dict[str, str] | None = None) -> Template:
    db = db_of(request)
    rows = db.execute(
        select(Team, func.count(TeamMember.id)).outerjoin(TeamMember, TeamMember.team_id == Team.id)
        .group_by(Team.id).order_by(Team.name)
    ).all()
    return page(request, "tenancy/teams.html", status=status, teams=rows, errors=errors or {},
                form=form or {"name": "", "description": ""})


@post("/t/{slug:str}/teams", opt=requires("team:manage", nav="teams"), name="create_team")
@in_thread
def create_team(request: Request[Any, Any, Any], slug: FromPath[str], data: Form) -> Template | Redirect:
    form = {"name": one(data, "name"), "description": one(data, "description")}
    try:
        team = svc.create_team(db_of(request), ctx_of(request), form["name"], form["description"])
    except ServiceError as exc:
        db_of(request).rollback()
        return _teams_page(request, status=422, errors={exc.field or "name": exc.message}, form=form)
    notice(request, f"Team {team.name} created.")
    return see_other(f"/t/{slug}/teams/{team.id}")


@get("/t/{slug:str}/teams/{team_id:int}", opt=requires("team:read", nav="teams"), name="team")
@in_thread
def get_team(request: Request[Any, Any, Any], slug: FromPath[str], team_id: FromPath[int]) -> Template:
    db = db_of(request)
    team = repo.fetch(db, Team, team_id, what="Team")
    members = repo.team_members(db, team.id)
    in_team = {tm.user_id for tm in members}
    candidates = [m for m in repo.members(db)
                  if m.user_id not in in_team and m.status == "active"]
    return page(request, "tenancy/team.html", team=team, members=members, candidates=candidates)


@post("/t/{slug:str}/teams/{team_id:int}/members", opt=requires("team:manage", nav="teams"), name="team_members")
@in_thread
def update_team_members(request: Request[Any, Any, Any], slug: FromPath[str], team_id: FromPath[int], data: Form) -> Redirect:
    """Bulk: add or remove several members at once; any unknown or foreign id applies nothing (404)."""
    db = db_of(request)
    ctx = ctx_of(request)
    repo.fetch(db, Team, team_id, what="Team")
    present = one(data, "action", "add") == "add"
    user_ids = [int_or_none(v, field="user_ids") for v in many(data, "user_ids")]
    if not user_ids:
        notice(request, "Pick at least one member.", "error")
        return see_other(f"/t/{slug}/teams/{team_id}")
    for uid in user_ids:
        svc.set_team_membership(db, ctx, team_id, uid, present)  # type: ignore[arg-type]
    notice(request, f"{len(user_ids)} member(s) {'added' if present else 'removed'}.")
    return see_other(f"/t/{slug}/teams/{team_id}")


@post("/t/{slug:str}/teams/{team_id:int}/delete", opt=requires("team:manage"), name="delete_team")
@in_thread
def delete_team(request: Request[Any, Any, Any], slug: FromPath[str], team_id: FromPath[int]) -> Redirect:
    svc.delete_team(db_of(request), ctx_of(request), team_id)
    notice(request, "Team deleted.")
    return see_other(f"/t/{slug}/teams")


# --- roles, matrix, explain --------------------------------------------------------------------


def _roles_page(request: Request[Any, Any, Any], *, status: int = 200, errors: dict[str, str] | None = None,
                form: dict[str, Any] | None = None) -> Template:
    db = db_of(request)
    custom = list(db.scalars(select(Role).order_by(Role.name)))
    columns = [(k, BUILTIN_ROLES[k].name, builtin_permissions(k), True, None) for k in BUILTIN_ORDER]
    columns += [(r.key, r.name, frozenset(r.permissions), False, r.id) for r in custom]
    usage = dict(db.execute(select(Membership.role, func.count()).group_by(Membership.role)).all())
    return page(request, "tenancy/roles.html", status=status, columns=columns, catalogue=CATALOGUE, usage=usage,
                errors=errors or {}, form=form or {"key": "", "name": "", "permissions": []})


@get("/t/{slug:str}/roles", opt=requires("role:read", nav="roles"), name="roles")
@in_thread
def list_roles(request: Request[Any, Any, Any], slug: FromPath[str]) -> Template:
    return _roles_page(request)


@post("/t/{slug:str}/roles", opt=requires("role:manage", nav="roles"), name="create_role")
@in_thread
def create_role(request: Request[Any, Any, Any], slug: FromPath[str], data: Form) -> Template | Redirect:
    form = {"key": one(data, "key"), "name": one(data, "name"), "permissions": many(data, "permissions")}
    try:
        role = svc.save_custom_role(db_of(request), ctx_of(request), form["key"], form["name"], form["permissions"])
    except ServiceError as exc:
        db_of(request).rollback()
        return _roles_page(request, status=422, errors={exc.field or "key": exc.message}, form=form)
    notice(request, f"Role {role.name} saved.")
    return see_other(f"/t/{slug}/roles")


@post("/t/{slug:str}/roles/{role_id:int}/delete", opt=requires("role:manage"), name="delete_role")
@in_thread
def delete_role(request: Request[Any, Any, Any], slug: FromPath[str], role_id: FromPath[int]) -> Redirect:
    db = db_of(request)
    try:
        svc.delete_custom_role(db, ctx_of(request), role_id)
    except ServiceError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        notice(request, exc.message, "error")
        return see_other(f"/t/{slug}/roles")
    notice(request, "Role deleted.")
    return see_other(f"/t/{slug}/roles")


@get("/t/{slug:str}/explain", opt=requires("authz:explain", nav="roles"), name="explain")
@in_thread
def explain(
    request: Request[Any, Any, Any], slug: FromPath[str], member: FromQuery[int | None] = None, permission: FromQuery[str | None] = None,
    project: FromQuery[str | None] = None,
) -> Template:
    from workspace.workflow.models import Project

    # The form's "the whole organization" option submits project= (empty), which an int parameter rejects.
    project_id = int_or_none(project or "", field="project")
    db = db_of(request)
    ctx = ctx_of(request)
    members = repo.members(db)
    projects = list(db.scalars(select(Project).order_by(Project.title)))
    answer = None
    error = None
    if member is not None and permission:
        if permission not in CATALOGUE:
            error = f"Unknown permission {permission!r}."
        else:
            target = repo.fetch(db, Membership, member, what="Member")
            if project_id is not None:
                repo.fetch(db, Project, project_id, what="Project")
            authz = runtime_of(request).authz
            decision = authz.explain(target.user_id, ctx.tenant_id, permission, project_id)
            answer = {"member": target, "decision": decision, "active": target.status == "active",
                      "path": [_describe(db, node) for node in decision.path],
                      # The role holds it, but only inside granted projects: say so rather than a bare "no".
                      "project_scoped_role": role_name(db, target.role) if (
                          not decision.allowed and permission in PROJECT_PERMISSIONS
                          and is_project_scoped(target.role)) else None,
                      "on_project": project_id is not None}
    return page(request, "tenancy/explain.html", members=members, projects=projects, catalogue=CATALOGUE,
                selected={"member": member, "permission": permission or "", "project": project_id},
                answer=answer, error=error)


def _describe(db: Session, node: str) -> str:
    kind, _, value = node.partition(":")
    if kind == "u":
        user = db.get(User, int(value))
        return f"member {user.email}" if user else node
    if kind == "team":
        team = db.scalars(select(Team).where(Team.id == int(value))).first()
        return f"team {team.name}" if team else node
    if kind == "role":
        return f"role {role_name(db, value)}"
    return node


route_handlers = [
    list_teams,
    create_team,
    get_team,
    update_team_members,
    delete_team,
    list_roles,
    create_role,
    delete_role,
    explain,
]
