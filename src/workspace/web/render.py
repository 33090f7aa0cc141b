"""Page rendering: one layout, computed permission flags, flash messages, HTMX fragments."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from workspace.tenancy.context import TenantContext
from workspace.tenancy.models import User
from workspace.tenancy.repositories import active_memberships_of_user
from workspace.web.guards import STATE_CTX, STATE_USER
from workspace.web.uow import request_session

__all__ = ["page", "fragment", "ctx_of", "user_of", "notice", "see_other", "is_htmx"]


def ctx_of(request: Request[Any, Any, Any]) -> TenantContext:
    return request.scope["state"][STATE_CTX]


def user_of(request: Request[Any, Any, Any]) -> User | None:
    return request.scope.get("state", {}).get(STATE_USER)


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true" and request.headers.get("hx-boosted") != "true"


def _base_context(request: Request[Any, Any, Any]) -> dict[str, Any]:
    state = request.scope.get("state", {})
    ctx: TenantContext | None = state.get(STATE_CTX)
    user: User | None = state.get(STATE_USER)
    tenants = []
    if user is not None:
        tenants = [
            {"slug": t.slug, "name": t.name, "current": ctx is not None and t.id == ctx.tenant_id}
            for t, _m in active_memberships_of_user(request_session(request), user.id)
        ]
    return {
        "request": request,
        "ctx": ctx,
        "can": ctx.flags if ctx else {},
        "current_user": user,
        "tenants": tenants,
        "nav": request.scope.get("route_handler").opt.get("nav") if request.scope.get("route_handler") else None,
    }


def page(request: Request[Any, Any, Any], template: str, *, status: int = 200, **context: Any) -> Template:
    return Template(template_name=template, context={**_base_context(request), **context}, status_code=status)


def fragment(request: Request[Any, Any, Any], template: str, *, status: int = 200, **context: Any) -> Template:
    ctx = request.scope.get("state", {}).get(STATE_CTX)
    base = {"request": request, "ctx": ctx, "can": ctx.flags if ctx else {}}
    return Template(template_name=template, context={**base, **context}, status_code=status)


def notice(request: Request[Any, Any, Any], message: str, category: str = "success") -> None:
    flash(request, message, category)


def see_other(path: str) -> Redirect:
    return Redirect(path=path, status_code=303)

