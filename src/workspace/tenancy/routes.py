"""Pages and API endpoints of tenancy: sign-in, members, invitations, teams, roles, explain, tokens."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workspace.audit.chain import Actor, record
from workspace.tenancy import repositories as repo
from workspace.tenancy import services as svc
from workspace.tenancy.errors import Invalid, ServiceError
from workspace.tenancy.models import (
    Invitation,
    Membership,
    Role,
    Team,
    TeamMember,
    User,
)
from workspace.tenancy.permissions import BUILTIN_ORDER, BUILTIN_ROLES, CATALOGUE, builtin_permissions
from workspace.web.forms import int_or_none, many, one
from workspace.web.blocking import in_thread
from workspace.web.guards import PUBLIC, SIGNED_IN, requires
from workspace.web.render import ctx_of, fragment, is_htmx, notice, page, see_other, user_of
from workspace.web.sessions import rotate_session
from workspace.web.uow import request_actor, request_session, runtime_of

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _db(request: Request[Any, Any, Any]) -> Session:
    return request_session(request)


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _record_for_user_tenants(runtime, user_id: FromPath[int], action: str, actor: Actor, changes: dict | None = None) -> None:  # type: ignore[no-untyped-def]
    """Auth events belong to every tenant the user is a member of; written in their own transaction."""
    with runtime.unit_of_work(actor=actor) as db:
        for tenant, membership in repo.active_memberships_of_user(db, user_id):
            record(db, action, tenant_id=tenant.id, object_type="user", object_id=user_id,
                   object_label=actor.label, changes=changes or {}, actor=actor)


# --- sign in / out -----------------------------------------------------------------------------


@get("/login", opt=requires(PUBLIC, resolve_user=True), name="login")
@in_thread
def login_form(request: Request[Any, Any, Any], next: FromQuery[str | None] = None) -> Template | Redirect:
    if user_of(request) is not None:
        return see_other(_safe_next(next))
    return page(request, "auth/login.html", next=_safe_next(next), email="", error=None)


@post("/login", opt=requires(PUBLIC), name="login_submit")
async def login(request: Request[Any, Any, Any], data: Form) -> Template | Redirect:
    runtime = runtime_of(request)
    throttle = request.app.state["throttle"]
    email = one(data, "email").lower()
    password = one(data, "password")
    target = _safe_next(one(data, "next"))
    client = request.client.host if request.client else "unknown"
    wait = await throttle.retry_after(email, client)
    if wait:
        minutes = max(1, round(wait / 60))
        return page(request, "auth/login.html", status=429, next=target, email=email,
                    error=f"Too many failed sign-in attempts. Try again in about {minutes} minute(s).")

    def check() -> User | None:
        return svc.authenticate(_db(request), email, password)

    user = await anyio.to_thread.run_sync(check)
    if user is None:
        await throttle.failed(email, client)

        def log_failure() -> None:
            known = repo.user_by_email(_db(request), email)
            known_id = known.id if known is not None else None
            _db(request).rollback()  # the response is an error: nothing of this transaction stays
            if known_id is not None:
                actor = request_actor(request, type_="anonymous", label=email)
                _record_for_user_tenants(runtime, known_id, "auth.login_failed", actor)

        await anyio.to_thread.run_sync(log_failure)
        return page(request, "auth/login.html", status=401, next=target, email=email,
                    error="That e-mail and password don't match an account.")
    await throttle.succeeded(email)
    rotate_session(request, {"uid": user.id, "ep": user.session_epoch})

    def log_success() -> None:
        actor = request_actor(request, type_="user", id_=str(user.id), label=user.email)
        db = _db(request)
        for tenant, _m in repo.active_memberships_of_user(db, user.id):
            record(db, "auth.login", tenant_id=tenant.id, object_type="user", object_id=user.id,
                   object_label=user.email, actor=actor)

    await anyio.to_thread.run_sync(log_success)
    return see_other(target)


@post("/logout", opt=requires(SIGNED_IN), name="logout")
@in_thread
def logout(request: Request[Any, Any, Any]) -> Redirect:
    user = user_of(request)
    db = _db(request)
    if user is not None:
        actor = request_actor(request, type_="user", id_=str(user.id), label=user.email)
        for tenant, _m in repo.active_memberships_of_user(db, user.id):
            record(db, "auth.logout", tenant_id=tenant.id, object_type="user", object_id=user.id,
                   object_label=user.email, actor=actor)
    request.clear_session()
    return see_other("/login")


@get("/", opt=requires(SIGNED_IN), name="root")
@in_thread
def root(request: Request[Any, Any, Any]) -> Template | Redirect:
    user = user_of(request)
    assert user is not None
    tenants = repo.active_memberships_of_user(_db(request), user.id)
    if len(tenants) == 1:
        return see_other(f"/t/{tenants[0][0].slug}/")
    return page(request, "tenancy/choose_tenant.html", choices=[t for t, _ in tenants])


# --- tenant home -------------------------------------------------------------------------------


@get("/t/{slug:str}/", opt=requires("tenant:read", nav="home"), name="tenant_home")
@in_thread
def tenant_home(request: Request[Any, Any, Any], slug: FromPath[str]) -> Template:
    from workspace.audit.repositories import recent_events
    from workspace.workflow.models import Project

    db = _db(request)
    ctx = ctx_of(request)
    counts = {
        "members": db.scalar(select(func.count()).select_from(Membership).where(Membership.status == "active")),
        "teams": db.scalar(select(func.count()).select_from(Team)),
        "projects": db.scalar(select(func.count()).select_from(Project)),
    }
    events = recent_events(db, 8) if ctx.has("audit:read") else []
    return page(request, "tenancy/home.html", counts=counts, events=events,
                role_name=_role_name(db, ctx.role))


def _role_name(db: Session, key: str) -> str:
    if key in BUILTIN_ROLES:
        return BUILTIN_ROLES[key].name
    role = repo.custom_role(db, key)
    return role.name if role else key


# --- members and invitations -------------------------------------------------------------------


def _members_page(request: Request[Any, Any, Any], *, status: int = 200, errors: dict[str, str] | None = None,
                  form: dict[str, str] | None = None, new_link: str | None = None) -> Template:
    db = _db(request)
    ctx = ctx_of(request)
    members = repo.members(db)
    invitations = list(db.scalars(
        select(Invitation).where(Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))
        .order_by(Invitation.created_at.desc())
    ))
    choices = svc.role_choices(db, ctx)
    return page(request, "tenancy/members.html", status=status, members=members, invitations=invitations,
                roles=choices, role_names={k: n for k, n, _ in choices}, errors=errors or {},
                form=form or {"email": "", "role": "annotator"}, new_link=new_link)


@get("/t/{slug:str}/members", opt=requires("member:read", nav="members"), name="members")
@in_thread
def list_members(request: Request[Any, Any, Any], slug: FromPath[str]) -> Template:
    return _members_page(request)


@post("/t/{slug:str}/members/invite", opt=requires("member:invite", nav="members"), name="invite")
@in_thread
def create_invitation(request: Request[Any, Any, Any], slug: FromPath[str], data: Form) -> Template:
    ctx = ctx_of(request)
    form = {"email": one(data, "email"), "role": one(data, "role")}
    try:
        _inv, raw = svc.invite_member(_db(request), ctx, form["email"], form["role"],
                                      days=runtime_of(request).settings.invitation_days)
    except ServiceError as exc:
        _db(request).rollback()
        return _members_page(request, status=422, errors={exc.field or "email": exc.message}, form=form)
    link = f"{runtime_of(request).settings.public_url}/invite/{raw}"
    notice(request, f"Invitation for {form['email']} created. Send them the link below; it is shown only once.")
    return _members_page(request, new_link=link)


@post("/t/{slug:str}/invitations/{invitation_id:int}/revoke", opt=requires("member:invite"), name="revoke_invite")
@in_thread
def revoke_invitation(request: Request[Any, Any, Any], slug: FromPath[str], invitation_id: FromPath[int]) -> Redirect:
    svc.revoke_invitation(_db(request), ctx_of(request), invitation_id)
    notice(request, "Invitation revoked.")
    return see_other(f"/t/{slug}/members")


@post("/t/{slug:str}/members/{membership_id:int}/role", opt=requires("member:update"), name="member_role")
@in_thread
def update_member_role(request: Request[Any, Any, Any], slug: FromPath[str], membership_id: FromPath[int], data: Form) -> Template | Redirect:
    db = _db(request)
    ctx = ctx_of(request)
    try:
        member = svc.change_role(db, ctx, membership_id, one(data, "role"))
        message, ok = f"{member.user.email} is now {_role_name(db, member.role)}.", True
    except ServiceError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        member = repo.fetch(db, Membership, membership_id)
        message, ok = exc.message, False
    if is_htmx(request):
        choices = svc.role_choices(db, ctx)
        return fragment(request, "tenancy/partials/_member_row.html", status=200 if ok else 422, m=member,
                        roles=choices, role_names={k: n for k, n, _ in choices}, row_message=message, row_ok=ok)
    notice(request, message, "success" if ok else "error")
    return see_other(f"/t/{slug}/members")


@post("/t/{slug:str}/members/{membership_id:int}/status", opt=requires("member:deactivate"), name="member_status")
@in_thread
def update_member_status(request: Request[Any, Any, Any], slug: FromPath[str], membership_id: FromPath[int], data: Form) -> Redirect:
    db = _db(request)
    active = one(data, "active") == "true"
    try:
        member = svc.set_member_status(db, ctx_of(request), membership_id, active)
    except ServiceError as exc:
        if exc.status == 404:
            raise
        db.rollback()
        notice(request, exc.message, "error")
        return see_other(f"/t/{slug}/members")
    notice(request, f"{member.user.email} {'reactivated' if active else 'deactivated'}.")
    return see_other(f"/t/{slug}/members")


@get("/invite/{token:str}", opt=requires(PUBLIC, resolve_user=True), name="invitation")
@in_thread
def show_invitation(request: Request[Any, Any, Any], token: FromPath[str]) -> Template:
    pending = svc.find_invitation(_db(request), token)
    return page(request, "auth/invitation.html", inv=pending, token=token, errors={}, name="")


@post("/invite/{token:str}", opt=requires(PUBLIC, resolve_user=True), name="accept_invitation")
@in_thread
def accept_invitation(request: Request[Any, Any, Any], token: FromPath[str], data: Form) -> Template | Redirect:
    db = _db(request)
    current = user_of(request)
    try:
        tenant, user = svc.accept_invitation(
            db, token, current_user=current, name=one(data, "name"), password=one(data, "password"),
            actor=request_actor(request, type_="user"),
        )
    except Invalid as exc:
        db.rollback()
        pending = svc.find_invitation(db, token)
        return page(request, "auth/invitation.html", status=422, inv=pending, token=token,
                    errors={exc.field or "__all__": exc.message}, name=one(data, "name"))
    if current is None:
        rotate_session(request, {"uid": user.id, "ep": user.session_epoch})
    notice(request, f"Welcome to {tenant.name}.")
    return see_other(f"/t/{tenant.slug}/")


# --- teams -------------------------------------------------------------------------------------


@get("/t/{slug:str}/teams", opt=requires("team:read", nav="teams"), name="teams")
@in_thread
def list_teams(request: Request[Any, Any, Any], slug: FromPath[str]) -> Template:
    return _teams_page(request)


def _teams_page(request: Request[Any, Any, Any], *, status: int = 200, errors: dict[str, str] | None = None,
                form: dict[str, str] | None = None) -> Template:
    db = _db(request)
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
        team = svc.create_team(_db(request), ctx_of(request), form["name"], form["description"])
    except ServiceError as exc:
        _db(request).rollback()
        return _teams_page(request, status=422, errors={exc.field or "name": exc.message}, form=form)
    notice(request, f"Team {team.name} created.")
    return see_other(f"/t/{slug}/teams/{team.id}")


@get("/t/{slug:str}/teams/{team_id:int}", opt=requires("team:read", nav="teams"), name="team")
@in_thread
def get_team(request: Request[Any, Any, Any], slug: FromPath[str], team_id: FromPath[int]) -> Template:
    db = _db(request)
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
    db = _db(request)
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
    svc.delete_team(_db(request), ctx_of(request), team_id)
    notice(request, "Team deleted.")
    return see_other(f"/t/{slug}/teams")


# --- roles, matrix, explain --------------------------------------------------------------------


def _roles_page(request: Request[Any, Any, Any], *, status: int = 200, errors: dict[str, str] | None = None,
                form: dict[str, Any] | None = None) -> Template:
    db = _db(request)
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
        role = svc.save_custom_role(_db(request), ctx_of(request), form["key"], form["name"], form["permissions"])
    except ServiceError as exc:
        _db(request).rollback()
        return _roles_page(request, status=422, errors={exc.field or "key": exc.message}, form=form)
    notice(request, f"Role {role.name} saved.")
    return see_other(f"/t/{slug}/roles")


@post("/t/{slug:str}/roles/{role_id:int}/delete", opt=requires("role:manage"), name="delete_role")
@in_thread
def delete_role(request: Request[Any, Any, Any], slug: FromPath[str], role_id: FromPath[int]) -> Redirect:
    db = _db(request)
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
    db = _db(request)
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
                      "path": [_describe(db, node) for node in decision.path]}
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
        return f"role {_role_name(db, value)}"
    return node


# --- API tokens --------------------------------------------------------------------------------


def _tokens_page(request: Request[Any, Any, Any], *, status: int = 200, new_key: str | None = None,
                 errors: dict[str, str] | None = None) -> Template:
    db = _db(request)
    ctx = ctx_of(request)
    tokens = repo.visible_tokens(db, ctx.user_id, all_members=ctx.has("token:manage"))
    return page(request, "tenancy/tokens.html", status=status, tokens=tokens,
                new_key=new_key, errors=errors or {})


@get("/t/{slug:str}/tokens", opt=requires("token:own", nav="tokens"), name="tokens")
@in_thread
def list_tokens(request: Request[Any, Any, Any], slug: FromPath[str]) -> Template:
    return _tokens_page(request)


@post("/t/{slug:str}/tokens", opt=requires("token:own", nav="tokens"), name="create_token")
@in_thread
def create_token(request: Request[Any, Any, Any], slug: FromPath[str], data: Form) -> Template:
    ctx = ctx_of(request)
    try:
        days = int_or_none(one(data, "expires_days"), field="expires_days")
        minted = svc.create_api_token(_db(request), ctx.tenant_id, ctx.user_id, one(data, "name"), expires_days=days)
    except ServiceError as exc:
        _db(request).rollback()
        return _tokens_page(request, status=422, errors={exc.field or "name": exc.message})
    return _tokens_page(request, new_key=minted.key)


@post("/t/{slug:str}/tokens/{token_id:int}/revoke", opt=requires("token:own", nav="tokens"), name="revoke_token")
@in_thread
def revoke_token(request: Request[Any, Any, Any], slug: FromPath[str], token_id: FromPath[int]) -> Redirect:
    token = svc.revoke_api_token(_db(request), ctx_of(request), token_id)
    notice(request, f"Token {token.name} revoked.")
    return see_other(f"/t/{slug}/tokens")


# --- own account -------------------------------------------------------------------------------


@get("/t/{slug:str}/account", opt=requires("tenant:read", nav="account"), name="account")
@in_thread
def account(request: Request[Any, Any, Any], slug: FromPath[str]) -> Template:
    return page(request, "tenancy/account.html", errors={})


@post("/t/{slug:str}/account/password", opt=requires("tenant:read", nav="account"), name="change_password")
@in_thread
def change_password(request: Request[Any, Any, Any], slug: FromPath[str], data: Form) -> Template | Redirect:
    db = _db(request)
    user = user_of(request)
    assert user is not None
    try:
        svc.change_password(db, user, one(data, "current_password"), one(data, "new_password"),
                            one(data, "confirm_password"))
    except ServiceError as exc:
        db.rollback()
        return page(request, "tenancy/account.html", status=422, errors={exc.field or "__all__": exc.message})
    record(db, "user.password_changed", tenant_id=ctx_of(request).tenant_id, object_type="user",
           object_id=user.id, object_label=user.email)
    rotate_session(request, {"uid": user.id, "ep": user.session_epoch})
    notice(request, "Password changed. Your other sessions have been signed out.")
    return see_other(f"/t/{slug}/account")


# --- JSON API (token auth) ---------------------------------------------------------------------


def _member_json(m: Membership) -> dict[str, Any]:
    return {"id": m.id, "user_id": m.user_id, "email": m.user.email, "name": m.user.name, "role": m.role,
            "status": m.status}


@get("/api/current-user/whoami", opt=requires("tenant:read"), name="api_whoami")
@in_thread
def api_whoami(request: Request[Any, Any, Any]) -> dict[str, Any]:
    ctx = ctx_of(request)
    first, _, last = ctx.user_name.partition(" ")
    return {"id": ctx.user_id, "email": ctx.user_email, "username": ctx.user_email, "first_name": first,
            "last_name": last, "active_organization": ctx.tenant_id,
            "workspace": {"tenant": ctx.tenant_slug, "role": ctx.role, "permissions": sorted(ctx.permissions)}}


@get("/api/ws/members", opt=requires("member:read"), name="api_members")
@in_thread
def api_list_members(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    db = _db(request)
    return [_member_json(m) for m in repo.members(db)]


@post("/api/ws/members/{membership_id:int}/role", opt=requires("member:update"), name="api_member_role")
@in_thread
def api_member_role(request: Request[Any, Any, Any], membership_id: FromPath[int], data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    repo.fetch(_db(request), Membership, membership_id, what="Member")
    role = data.get("role")
    if not isinstance(role, str):
        raise Invalid("Send {\"role\": \"<role key>\"}.", field="role")
    return _member_json(svc.change_role(_db(request), ctx_of(request), membership_id, role))


@get("/api/ws/tokens", opt=requires("token:own"), name="api_tokens")
@in_thread
def api_list_tokens(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    ctx = ctx_of(request)
    tokens = repo.visible_tokens(_db(request), ctx.user_id, all_members=ctx.has("token:manage"))
    return [{"id": t.id, "name": t.name, "prefix": t.prefix, "user": t.user.email,
             "revoked": t.revoked_at is not None} for t in tokens]


@post("/api/ws/tokens/{token_id:int}/revoke", opt=requires("token:own"), name="api_revoke_token")
@in_thread
def api_revoke_token(request: Request[Any, Any, Any], token_id: FromPath[int]) -> dict[str, Any]:
    token = svc.revoke_api_token(_db(request), ctx_of(request), token_id)
    return {"id": token.id, "revoked": True}


@get("/api/ws/teams", opt=requires("team:read"), name="api_teams")
@in_thread
def api_list_teams(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    return [{"id": t.id, "name": t.name} for t in repo.teams(_db(request))]


@post("/api/ws/teams", opt=requires("team:manage"), name="api_create_team", status_code=201)
@in_thread
def api_create_team(request: Request[Any, Any, Any], data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    team = svc.create_team(_db(request), ctx_of(request), str(data.get("name") or ""), str(data.get("description") or ""))
    return {"id": team.id, "name": team.name}


route_handlers = [
    login_form, login, logout, root, tenant_home,
    list_members, create_invitation, revoke_invitation, update_member_role, update_member_status,
    show_invitation, accept_invitation,
    list_teams, create_team, get_team, update_team_members, delete_team,
    list_roles, create_role, delete_role, explain,
    list_tokens, create_token, revoke_token, account, change_password,
    api_whoami, api_list_members, api_member_role, api_list_tokens, api_revoke_token, api_list_teams, api_create_team,
]
