"""The tenancy JSON API (API-token auth)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath, JSONBody

from workspace.tenancy import repositories as repo
from workspace.tenancy import services as svc
from workspace.tenancy.errors import Invalid
from workspace.tenancy.models import (
    Membership,
)
from workspace.web.blocking import in_thread
from workspace.web.guards import requires
from workspace.web.render import ctx_of

from workspace.tenancy.routes._common import db_of


# --- JSON API (token auth) ---------------------------------------------------------------------


def _member_json(m: Membership) -> dict[str, Any]:
    return {"id": m.id, "user_id": m.user_id, "email": m.user.email, "name": m.user.name, "role": m.role,
            "status": m.status}


@get("/api/ws/members", opt=requires("member:read"), name="api_members")
@in_thread
def api_list_members(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    db = db_of(request)
    return [_member_json(m) for m in repo.members(db)]


@post("/api/ws/members/{membership_id:int}/role", opt=requires("member:update"), name="api_member_role")
@in_thread
def api_member_role(request: Request[Any, Any, Any], membership_id: FromPath[int], data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    repo.fetch(db_of(request), Membership, membership_id, what="Member")
    role = data.get("role")
    if not isinstance(role, str):
        raise Invalid("Send {\"role\": \"<role key>\"}.", field="role")
    return _member_json(svc.change_role(db_of(request), ctx_of(request), membership_id, role))


@get("/api/ws/tokens", opt=requires("token:own"), name="api_tokens")
@in_thread
def api_list_tokens(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    ctx = ctx_of(request)
    tokens = repo.visible_tokens(db_of(request), ctx.user_id, all_members=ctx.has("token:manage"))
    return [{"id": t.id, "name": t.name, "prefix": t.prefix, "user": t.user.email,
             "revoked": t.revoked_at is not None} for t in tokens]


@post("/api/ws/tokens/{token_id:int}/revoke", opt=requires("token:own"), name="api_revoke_token")
@in_thread
def api_revoke_token(request: Request[Any, Any, Any], token_id: FromPath[int]) -> dict[str, Any]:
    token = svc.revoke_api_token(db_of(request), ctx_of(request), token_id)
    return {"id": token.id, "revoked": True}


@get("/api/ws/teams", opt=requires("team:read"), name="api_teams")
@in_thread
def api_list_teams(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    return [{"id": t.id, "name": t.name} for t in repo.teams(db_of(request))]


@post("/api/ws/teams", opt=requires("team:manage"), name="api_create_team", status_code=201)
@in_thread
def api_create_team(request: Request[Any, Any, Any], data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    team = svc.create_team(db_of(request), ctx_of(request), str(data.get("name") or ""), str(data.get("description") or ""))
    return {"id": team.id, "name": team.name}


route_handlers = [
    api_list_members,
    api_member_role,
    api_list_tokens,
    api_revoke_token,
    api_list_teams,
    api_create_team,
]
