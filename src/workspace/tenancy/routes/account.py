"""API tokens and the member's own account."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from workspace.audit.chain import record
from workspace.tenancy import repositories as repo
from workspace.tenancy import services as svc
from workspace.tenancy.errors import ServiceError
from workspace.tenancy.personal_tokens import create_personal_token
from workspace.web.forms import int_or_none, one
from workspace.web.blocking import in_thread
from workspace.web.guards import requires
from workspace.web.render import ctx_of, notice, page, see_other, user_of
from workspace.web.sessions import rotate_session
from workspace.web.uow import runtime_of

from workspace.tenancy.routes._common import Form, db_of


# --- API tokens --------------------------------------------------------------------------------


def _tokens_page(request: Request[Any, Any, Any], *, status: int = 200, new_key: str | None = None,
                 errors: dict[str, str] | None = None) -> Template:
    db = db_of(request)
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
        if one(data, "kind") == "pat":  # a personal access token: the Label Studio SDK's JWT
            secret = runtime_of(request).settings.secret_key
            key = create_personal_token(db_of(request), ctx.tenant_id, ctx.user_id, one(data, "name"), secret,
                                        expires_days=days).key
        else:
            key = svc.create_api_token(db_of(request), ctx.tenant_id, ctx.user_id, one(data, "name"),
                                       expires_days=days).key
    except ServiceError as exc:
        db_of(request).rollback()
        return _tokens_page(request, status=422, errors={exc.field or "name": exc.message})
    return _tokens_page(request, new_key=key)


@post("/t/{slug:str}/tokens/{token_id:int}/revoke", opt=requires("token:own", nav="tokens"), name="revoke_token")
@in_thread
def revoke_token(request: Request[Any, Any, Any], slug: FromPath[str], token_id: FromPath[int]) -> Redirect:
    token = svc.revoke_api_token(db_of(request), ctx_of(request), token_id)
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
    db = db_of(request)
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


route_handlers = [
    list_tokens,
    create_token,
    revoke_token,
    account,
    change_password,
]
