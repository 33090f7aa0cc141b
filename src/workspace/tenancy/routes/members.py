"""The tenant home, members and invitations."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy import func, select

from workspace.tenancy import repositories as repo
from workspace.tenancy import services as svc
from workspace.tenancy.errors import ServiceError
from workspace.tenancy.models import (
    Invitation,
    Membership,
    Team,
)
from workspace.web.forms import one
from workspace.web.blocking import in_thread
from workspace.web.guards import requires
from workspace.web.render import ctx_of, fragment, is_htmx, notice, page, see_other
from workspace.web.uow import runtime_of

from workspace.tenancy.routes._common import Form, db_of, role_name


# --- tenant home -------------------------------------------------------------------------------


@get("/t/{slug:str}/", opt=requires("tenant:read", nav="home"), name="tenant_home")
@in_thread
def tenant_home(request: Request[Any, Any, Any], slug: FromPath[str]) -> Template:
    from workspace.audit.repositories import recent_events
    from workspace.workflow.services import count_visible_projects

    db = db_of(request)
    ctx = ctx_of(request)
    counts = {
        "members": db.scalar(select(func.count()).select_from(Membership).where(Membership.status == "active")),
        "teams": db.scalar(select(func.count()).select_from(Team)),
        "projects": count_visible_projects(db, ctx),
    }
    events = recent_events(db, 8) if ctx.has("audit:read") else []
    return page(request, "tenancy/home.html", counts=counts, events=events,
                role_name=role_name(db, ctx.role))


# --- members and invitations -------------------------------------------------------------------


def _members_page(request: Request[Any, Any, Any], *, status: int = 200, errors: dict[str, str] | None = None,
                  form: dict[str, str] | None = None, new_link: str | None = None) -> Template:
    db = db_of(request)
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
        _inv, raw = svc.invite_member(db_of(request), ctx, form["email"], form["role"],
                                      days=runtime_of(request).settings.invitation_days)
    except ServiceError as exc:
        db_of(request).rollback()
        return _members_page(request, status=422, errors={exc.field or "email": exc.message}, form=form)
    link = f"{runtime_of(request).settings.public_url}/invite/{raw}"
    notice(request, f"Invitation for {form['email']} created. Send them the link below; it is shown only once.")
    return _members_page(request, new_link=link)


@post("/t/{slug:str}/invitations/{invitation_id:int}/revoke", opt=requires("member:invite"), name="revoke_invite")
@in_thread
def revoke_invitation(request: Request[Any, Any, Any], slug: FromPath[str], invitation_id: FromPath[int]) -> Redirect:
    svc.revoke_invitation(db_of(request), ctx_of(request), invitation_id)
    notice(request, "Invitation revoked.")
    return see_other(f"/t/{slug}/members")


@post("/t/{slug:str}/members/{membership_id:int}/role", opt=requires("member:update"), name="member_role")
@in_thread
def update_member_role(request: Request[Any, Any, Any], slug: FromPath[str], membership_id: FromPath[int], data: Form) -> Template | Redirect:
    db = db_of(request)
    ctx = ctx_of(request)
    try:
        member = svc.change_role(db, ctx, membership_id, one(data, "role"))
        message, ok = f"{member.user.email} is now {role_name(db, member.role)}.", True
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
    db = db_of(request)
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


route_handlers = [
    tenant_home,
    list_members,
    create_invitation,
    revoke_invitation,
    update_member_role,
    update_member_status,
]
