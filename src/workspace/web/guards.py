"""The one place permissions are enforced.

Every route declares its access in ``opt`` with ``requires(...)``: ``PUBLIC``, ``SIGNED_IN`` (a user,
no tenant) or a permission ``"resource:action"`` that the member must hold in the tenant of the URL
(pages, ``/t/{slug}/...``, session cookie) or of the API key (``/api/...``, token only). A route
without a declaration fails closed with a configuration error (and the test suite lists it).

When the path names a project (``{project_id}``), the permission may also come from a grant on that
project, and the request's context (``ctx.permissions``, the templates' ``can`` flags) holds the
tenant's permissions plus that project's. A member whose role is project-scoped (the annotator) and
who cannot read that project gets 404, exactly like a missing project: grants decide which projects
exist for them. Anyone else lacking the permission gets 403 (whether or not the project exists, so
neither answer tells an existing project from a missing one).
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any, NamedTuple

import anyio
from litestar.connection import ASGIConnection
from litestar.exceptions import ImproperlyConfiguredException, NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from sqlalchemy import select, update

from workspace.audit.chain import set_actor
from workspace.lib.timeutil import as_utc, utcnow
from workspace.tenancy import repositories as repo
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Forbidden, NotFound
from workspace.tenancy.models import MEMBER_ACTIVE, ApiToken, User
from workspace.tenancy.permissions import CATALOGUE, is_project_scoped
from workspace.tenancy.scoping import bind_tenant
from workspace.tenancy.services import resolve_api_key
from workspace.tenancy.personal_tokens import looks_like_jwt, resolve_access_token
from workspace.web.blocking import DEFERRED_GUARD, runs_deferred_guard
from workspace.web.uow import ONE_THREAD, request_actor, request_session, runtime_of

__all__ = ["PUBLIC", "SIGNED_IN", "requires", "authorize", "LoginRequired", "ACCESS_KEY", "STATE_CTX", "STATE_USER"]

PUBLIC = "public"
SIGNED_IN = "signed-in"
ACCESS_KEY = "access"
STATE_CTX = "ws_ctx"
STATE_USER = "ws_user"
TOKEN_TOUCH = timedelta(seconds=60)


class LoginRequired(Exception):
    """No valid signed-in session for a page that needs one."""


def requires(access: str, **extra: Any) -> dict[str, Any]:
    if access not in (PUBLIC, SIGNED_IN) and access not in CATALOGUE:
        raise ImproperlyConfiguredException(f"unknown permission {access!r}")
    return {ACCESS_KEY: access, **extra}


def is_api(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    return connection.scope["path"].startswith("/api/")


def _session_user(connection: ASGIConnection[Any, Any, Any, Any]) -> User:
    data = connection.scope.get("session") or {}
    uid = data.get("uid") if isinstance(data, dict) else None
    if not uid:
        raise LoginRequired()
    db = request_session(connection)
    user = db.scalars(select(User).where(User.id == uid)).first()
    if user is None or not user.is_active or data.get("ep") != user.session_epoch:
        connection.scope["session"] = {}
        raise LoginRequired()
    return user


def _api_caller(connection: ASGIConnection[Any, Any, Any, Any]) -> repo.ApiCaller:
    header = connection.headers.get("authorization") or ""
    scheme, _, key = header.partition(" ")
    api_key = connection.headers.get("x-api-key") if not header else None
    if api_key:  # the Label Studio SDK's custom-header style: a legacy key, or an access JWT
        scheme, key = ("bearer" if looks_like_jwt(api_key.strip()) else "token"), api_key
    if scheme.lower() not in ("token", "bearer") or not key.strip():
        raise NotAuthorizedException("Authentication credentials were not provided: send Authorization: Token <key>.")
    db = request_session(connection)
    key = key.strip()
    if scheme.lower() == "bearer" and looks_like_jwt(key):  # a personal access token's access JWT
        caller = resolve_access_token(db, key, runtime_of(connection).settings.secret_key)
    else:
        caller = resolve_api_key(db, key)
    if caller is None:
        raise NotAuthorizedException("Invalid token.")
    if caller.membership_id is None or caller.membership_status != MEMBER_ACTIVE or not caller.user_active:
        raise NotAuthorizedException("Invalid token.")
    return caller


def _resolve(connection: ASGIConnection[Any, Any, Any, Any], access: str) -> None:
    db = request_session(connection)
    runtime = runtime_of(connection)
    state = connection.scope.setdefault("state", {})
    if is_api(connection):
        caller = _api_caller(connection)
        bind_tenant(db, caller.tenant_id)
        set_actor(db, request_actor(connection, type_="token", id_=str(caller.id),
                                    label=f"{caller.user_email} ({caller.prefix}…)"))
        last = as_utc(caller.last_used_at)
        if last is None or utcnow() - last > TOKEN_TOUCH:
            db.execute(update(ApiToken).where(ApiToken.id == caller.id).values(last_used_at=utcnow()))
        member = _Member(caller.tenant_id, caller.tenant_slug, caller.tenant_name, caller.policy_version,
                         caller.user_id, caller.user_email, caller.user_name, caller.membership_id, caller.role or "")
        token_id: int | None = caller.id
    else:
        user = _session_user(connection)
        state[STATE_USER] = user
        set_actor(db, request_actor(connection, type_="user", id_=str(user.id), label=user.email))
        if access == SIGNED_IN:
            return
        slug = connection.path_params.get("slug")
        if not slug:
            raise ImproperlyConfiguredException(f"{connection.scope['path']}: a tenant permission needs /t/{{slug}}/")
        tenant = repo.tenant_by_slug(db, slug)
        if tenant is None:
            raise NotFound("Page not found")
        bind_tenant(db, tenant.id)
        membership = repo.membership_of(db, user.id)
        if membership is None or membership.status != MEMBER_ACTIVE or not user.is_active:
            raise NotFound("Page not found")  # not a member: the tenant does not exist for them
        member = _Member(tenant.id, tenant.slug, tenant.name, tenant.policy_version, user.id, user.email, user.name,
                         membership.id, membership.role)
        token_id = None
    runtime.authz.ensure_fresh(member.tenant_id, member.policy_version)
    raw_project = connection.path_params.get("project_id")
    project_id = int(raw_project) if raw_project is not None else None
    ctx = TenantContext(
        tenant_id=member.tenant_id,
        tenant_slug=member.tenant_slug,
        tenant_name=member.tenant_name,
        user_id=member.user_id,
        user_email=member.user_email,
        user_name=member.user_name,
        membership_id=member.membership_id,
        role=member.role,
        permissions=runtime.authz.permissions(member.user_id, member.tenant_id, project_id),
        via="token" if token_id is not None else "session",
        token_id=token_id,
    )
    state[STATE_CTX] = ctx
    if access == PUBLIC or access == SIGNED_IN:
        return
    if ctx.has(access):
        return
    if project_id is not None and not ctx.has("project:read") and is_project_scoped(member.role):
        # Outside their grants a project does not exist for this member: answer like a missing one.
        raise NotFound("Project not found")
    _record_denied(connection, ctx, access)
    raise Forbidden("You don't have permission to do that.")


class _Member(NamedTuple):
    """The member a request acts as, whether it came with a session cookie or an API credential."""

    tenant_id: int
    tenant_slug: str
    tenant_name: str
    policy_version: int
    user_id: int
    user_email: str
    user_name: str
    membership_id: int
    role: str


def _record_denied(connection: ASGIConnection[Any, Any, Any, Any], ctx: TenantContext, access: str) -> None:
    """The request's own transaction rolls back on 403, so the denial is written in its own."""
    runtime = runtime_of(connection)
    request_db = request_session(connection)
    actor = request_db.info["audit_actor"]
    request_db.rollback()  # it rolls back anyway; on SQLite it must also let go of the write lock
    with runtime.unit_of_work(ctx.tenant_id, actor) as db:
        from workspace.audit.chain import record

        record(db, "permission.denied", tenant_id=ctx.tenant_id, object_type="route",
               object_id=None, object_label=f"{connection.scope['method']} {connection.scope['path']}",
               changes={"permission": access})


async def authorize(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    access = handler.opt.get(ACCESS_KEY)
    if access is None:
        raise ImproperlyConfiguredException(
            f"route {connection.scope['path']} declares no access: add opt=requires(...)"
        )
    if access == PUBLIC and not handler.opt.get("resolve_user"):
        return
    if access == PUBLIC:
        try:
            await anyio.to_thread.run_sync(_resolve, connection, SIGNED_IN)
        except LoginRequired:
            pass
        return
    if handler.opt.get(ONE_THREAD) and runs_deferred_guard(handler.fn):
        # The handler runs in a worker thread anyway: resolve there, first thing, and save a thread hop.
        # (Its arguments are parsed first: a malformed body is a 400 before the credentials are read.)
        connection.scope.setdefault("state", {})[DEFERRED_GUARD] = functools.partial(_resolve, connection, access)
        return
    await anyio.to_thread.run_sync(_resolve, connection, access)
