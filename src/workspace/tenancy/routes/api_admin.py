"""The tenancy JSON API beside ``api.py``: the tenant, members, invitations, teams and roles.

API-token auth (``Authorization: Token <key>`` or ``Bearer <access JWT>``); every call is scoped to the
token's tenant and checked against its member's role by the one guard. Writes go through the tenancy
services, so their object rules (nobody grants above their own role, the last owner stays) and the
audit trail (Audited models record themselves in the same transaction) are the pages'.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, delete, get, post
from litestar.params import FromPath, JSONBody
from sqlalchemy import func, select

from workspace.tenancy import repositories as repo
from workspace.tenancy import services as svc
from workspace.tenancy.errors import Invalid
from workspace.tenancy.models import Invitation, Membership, Role, Team, TeamMember, User
from workspace.tenancy.permissions import BUILTIN_ORDER, BUILTIN_ROLES, CATALOGUE, builtin_permissions
from workspace.tenancy.routes._common import db_of
from workspace.web.blocking import in_thread
from workspace.web.guards import requires
from workspace.web.render import ctx_of
from workspace.web.uow import runtime_of

__all__ = ["route_handlers"]

TAGS = ["Workspace: members, teams and roles"]


# --- shapes ------------------------------------------------------------------------------------


class TenantOut(msgspec.Struct):
    id: int
    slug: str
    name: str
    role: str
    permissions: list[str]


class MemberOut(msgspec.Struct):
    id: int
    user_id: int
    email: str
    name: str
    role: str
    status: str


class MemberStatusIn(msgspec.Struct, forbid_unknown_fields=True):
    active: bool | None = None  # required; checked after the member is found (a foreign id answers 404 first)


class InvitationIn(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    role: str = "annotator"


class InvitationOut(msgspec.Struct):
    id: int
    email: str
    role: str
    expires_at: datetime
    invited_by_id: int | None
    link: str | None = None  # only in the answer to the invite: the link is shown once


class TeamMemberIn(msgspec.Struct, forbid_unknown_fields=True):
    user_id: int | None = None  # required; checked after the team is found (a foreign id answers 404 first)


class TeamMemberOut(msgspec.Struct):
    user_id: int
    email: str
    name: str


class TeamOut(msgspec.Struct):
    id: int
    name: str
    description: str
    members: list[TeamMemberOut]


class RoleIn(msgspec.Struct, forbid_unknown_fields=True):
    key: str
    name: str
    permissions: list[str] = []


class RoleOut(msgspec.Struct):
    key: str
    name: str
    builtin: bool
    permissions: list[str]
    members: int
    id: int | None = None
    description: str = ""


class PermissionOut(msgspec.Struct):
    key: str
    description: str


def _member(m: Membership) -> MemberOut:
    return MemberOut(id=m.id, user_id=m.user_id, email=m.user.email, name=m.user.name, role=m.role, status=m.status)


def _invitation(inv: Invitation, link: str | None = None) -> InvitationOut:
    return InvitationOut(id=inv.id, email=inv.email, role=inv.role, expires_at=inv.expires_at,
                         invited_by_id=inv.invited_by_id, link=link)


def _team(request: Request[Any, Any, Any], team: Team) -> TeamOut:
    rows = db_of(request).execute(
        select(User.id, User.email, User.name).join(TeamMember, TeamMember.user_id == User.id)
        .where(TeamMember.team_id == team.id).order_by(User.email)).all()
    return TeamOut(id=team.id, name=team.name, description=team.description,
                   members=[TeamMemberOut(user_id=uid, email=email, name=name) for uid, email, name in rows])


# --- the tenant --------------------------------------------------------------------------------


@get("/api/ws/tenant", opt=requires("tenant:read"), name="api_tenant", tags=TAGS,
     summary="The token's tenant, and the member's role and permissions in it")
@in_thread
def api_tenant(request: Request[Any, Any, Any]) -> TenantOut:
    ctx = ctx_of(request)
    return TenantOut(id=ctx.tenant_id, slug=ctx.tenant_slug, name=ctx.tenant_name, role=ctx.role,
                     permissions=sorted(ctx.permissions))


# --- members and invitations -------------------------------------------------------------------


@get("/api/ws/members/{membership_id:int}", opt=requires("member:read"), name="api_member", tags=TAGS,
     summary="One member")
@in_thread
def api_member(request: Request[Any, Any, Any], membership_id: FromPath[int]) -> MemberOut:
    return _member(repo.fetch(db_of(request), Membership, membership_id, what="Member"))


@post("/api/ws/members/{membership_id:int}/status", opt=requires("member:deactivate"), name="api_member_status",
      status_code=200, tags=TAGS, summary="Deactivate or reactivate a member (their API tokens stop at once)")
@in_thread
def api_member_status(request: Request[Any, Any, Any], membership_id: FromPath[int],
                      data: JSONBody[MemberStatusIn]) -> MemberOut:
    db = db_of(request)
    repo.fetch(db, Membership, membership_id, what="Member")
    if data.active is None:
        raise Invalid('Send {"active": true} to reactivate or {"active": false} to deactivate.', field="active")
    return _member(svc.set_member_status(db, ctx_of(request), membership_id, data.active))


@get("/api/ws/invitations", opt=requires("member:invite"), name="api_invitations", tags=TAGS,
     summary="Pending invitations")
@in_thread
def api_invitations(request: Request[Any, Any, Any]) -> list[InvitationOut]:
    rows = db_of(request).scalars(
        select(Invitation).where(Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))
        .order_by(Invitation.id.desc()))
    return [_invitation(inv) for inv in rows]


@post("/api/ws/invitations", opt=requires("member:invite"), name="api_invite", status_code=201, tags=TAGS,
      summary="Invite someone by e-mail with a role; the answer holds the invitation link, shown once")
@in_thread
def api_invite(request: Request[Any, Any, Any], data: JSONBody[InvitationIn]) -> InvitationOut:
    settings = runtime_of(request).settings
    invitation, raw = svc.invite_member(db_of(request), ctx_of(request), data.email, data.role,
                                        days=settings.invitation_days)
    return _invitation(invitation, link=f"{settings.public_url}/invite/{raw}")


@delete("/api/ws/invitations/{invitation_id:int}", opt=requires("member:invite"), name="api_revoke_invitation",
        tags=TAGS, summary="Revoke a pending invitation")
@in_thread
def api_revoke_invitation(request: Request[Any, Any, Any], invitation_id: FromPath[int]) -> None:
    svc.revoke_invitation(db_of(request), ctx_of(request), invitation_id)


# --- teams -------------------------------------------------------------------------------------


@get("/api/ws/teams/{team_id:int}", opt=requires("team:read"), name="api_team", tags=TAGS,
     summary="One team with its members")
@in_thread
def api_team(request: Request[Any, Any, Any], team_id: FromPath[int]) -> TeamOut:
    return _team(request, repo.fetch(db_of(request), Team, team_id, what="Team"))


@delete("/api/ws/teams/{team_id:int}", opt=requires("team:manage"), name="api_delete_team", tags=TAGS,
        summary="Delete a team (its project grants go with it)")
@in_thread
def api_delete_team(request: Request[Any, Any, Any], team_id: FromPath[int]) -> None:
    svc.delete_team(db_of(request), ctx_of(request), team_id)


@post("/api/ws/teams/{team_id:int}/members", opt=requires("team:manage"), name="api_add_team_member",
      status_code=200, tags=TAGS, summary="Add a member to a team")
@in_thread
def api_add_team_member(request: Request[Any, Any, Any], team_id: FromPath[int],
                        data: JSONBody[TeamMemberIn]) -> TeamOut:
    db = db_of(request)
    repo.fetch(db, Team, team_id, what="Team")
    if data.user_id is None:
        raise Invalid('Send {"user_id": <id of a member>}.', field="user_id")
    svc.set_team_membership(db, ctx_of(request), team_id, data.user_id, True)
    return _team(request, repo.fetch(db, Team, team_id, what="Team"))


@delete("/api/ws/teams/{team_id:int}/members/{user_id:int}", opt=requires("team:manage"),
        name="api_remove_team_member", tags=TAGS, summary="Remove a member from a team")
@in_thread
def api_remove_team_member(request: Request[Any, Any, Any], team_id: FromPath[int], user_id: FromPath[int]) -> None:
    svc.set_team_membership(db_of(request), ctx_of(request), team_id, user_id, False)


# --- roles -------------------------------------------------------------------------------------


@get("/api/ws/roles", opt=requires("role:read"), name="api_roles", tags=TAGS,
     summary="Built-in and custom roles with their permissions and how many members hold them")
@in_thread
def api_roles(request: Request[Any, Any, Any]) -> list[RoleOut]:
    db = db_of(request)
    usage: dict[str, int] = {k: n for k, n in db.execute(
        select(Membership.role, func.count()).group_by(Membership.role)).all()}
    out = [RoleOut(key=k, name=BUILTIN_ROLES[k].name, builtin=True, permissions=sorted(builtin_permissions(k)),
                   members=usage.get(k, 0), description=BUILTIN_ROLES[k].description) for k in BUILTIN_ORDER]
    out += [RoleOut(key=r.key, name=r.name, builtin=False, permissions=sorted(r.permissions),
                    members=usage.get(r.key, 0), id=r.id) for r in db.scalars(select(Role).order_by(Role.name))]
    return out


@post("/api/ws/roles", opt=requires("role:manage"), name="api_create_role", status_code=201, tags=TAGS,
      summary="Create a custom role (only from permissions the caller holds)")
@in_thread
def api_create_role(request: Request[Any, Any, Any], data: JSONBody[RoleIn]) -> RoleOut:
    role = svc.save_custom_role(db_of(request), ctx_of(request), data.key, data.name, list(data.permissions))
    return RoleOut(key=role.key, name=role.name, builtin=False, permissions=list(role.permissions), members=0,
                   id=role.id)


@delete("/api/ws/roles/{role_id:int}", opt=requires("role:manage"), name="api_delete_role", tags=TAGS,
        summary="Delete a custom role no member holds")
@in_thread
def api_delete_role(request: Request[Any, Any, Any], role_id: FromPath[int]) -> None:
    svc.delete_custom_role(db_of(request), ctx_of(request), role_id)


@get("/api/ws/permissions", opt=requires("role:read"), name="api_permissions", tags=TAGS,
     summary="The permission catalogue")
@in_thread
def api_permissions_catalogue() -> list[PermissionOut]:
    return [PermissionOut(key=k, description=v) for k, v in CATALOGUE.items()]


route_handlers = [
    api_tenant,
    api_member,
    api_member_status,
    api_invitations,
    api_invite,
    api_revoke_invitation,
    api_team,
    api_delete_team,
    api_add_team_member,
    api_remove_team_member,
    api_roles,
    api_create_role,
    api_delete_role,
    api_permissions_catalogue,
]
