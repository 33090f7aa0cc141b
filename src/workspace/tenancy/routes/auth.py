"""Sign-in, sign-out, the landing redirect, and accepting an invitation."""

from __future__ import annotations

from typing import Any

import anyio
from litestar import Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from workspace.tenancy import repositories as repo
from workspace.tenancy import services as svc
from workspace.tenancy.errors import Invalid
from workspace.tenancy.models import (
    User,
)
from workspace.web.forms import one
from workspace.web.blocking import in_thread
from workspace.web.guards import PUBLIC, SIGNED_IN, requires
from workspace.web.render import notice, page, see_other, user_of
from workspace.web.sessions import rotate_session
from workspace.web.uow import request_actor, runtime_of

from workspace.tenancy.routes._common import Form, db_of, record_for_user_tenants, safe_next


# --- sign in / out -----------------------------------------------------------------------------


@get("/login", opt=requires(PUBLIC, resolve_user=True), name="login")
@in_thread
def login_form(request: Request[Any, Any, Any], next: FromQuery[str | None] = None) -> Template | Redirect:
    if user_of(request) is not None:
        return see_other(safe_next(next))
    return page(request, "auth/login.html", next=safe_next(next), email="", error=None)


@post("/login", opt=requires(PUBLIC), name="login_submit")
async def login(request: Request[Any, Any, Any], data: Form) -> Template | Redirect:
    runtime = runtime_of(request)
    throttle = request.app.state["throttle"]
    email = one(data, "email").lower()
    password = one(data, "password")
    target = safe_next(one(data, "next"))
    client = request.client.host if request.client else "unknown"
    wait = await throttle.retry_after(email, client)
    if wait:
        minutes = max(1, round(wait / 60))
        return page(request, "auth/login.html", status=429, next=target, email=email,
                    error=f"Too many failed sign-in attempts. Try again in about {minutes} minute(s).")

    def check() -> User | None:
        return svc.authenticate(db_of(request), email, password)

    user = await anyio.to_thread.run_sync(check)
    if user is None:
        await throttle.failed(email, client)

        def log_failure() -> None:
            known = repo.user_by_email(db_of(request), email)
            known_id = known.id if known is not None else None
            db_of(request).rollback()  # the response is an error: nothing of this transaction stays
            if known_id is not None:
                actor = request_actor(request, type_="anonymous", label=email)
                # The request's transaction rolls back (401), so the failure is written in its own.
                with runtime.unit_of_work(actor=actor) as db:
                    record_for_user_tenants(db, known_id, "auth.login_failed", actor)

        await anyio.to_thread.run_sync(log_failure)
        return page(request, "auth/login.html", status=401, next=target, email=email,
                    error="That e-mail and password don't match an account.")
    await throttle.succeeded(email)
    rotate_session(request, {"uid": user.id, "ep": user.session_epoch})

    def log_success() -> None:
        actor = request_actor(request, type_="user", id_=str(user.id), label=user.email)
        record_for_user_tenants(db_of(request), user.id, "auth.login", actor)

    await anyio.to_thread.run_sync(log_success)
    return see_other(target)


@post("/logout", opt=requires(SIGNED_IN), name="logout")
@in_thread
def logout(request: Request[Any, Any, Any]) -> Redirect:
    user = user_of(request)
    db = db_of(request)
    if user is not None:
        actor = request_actor(request, type_="user", id_=str(user.id), label=user.email)
        record_for_user_tenants(db, user.id, "auth.logout", actor)
    request.clear_session()
    return see_other("/login")


@get("/", opt=requires(SIGNED_IN), name="root")
@in_thread
def root(request: Request[Any, Any, Any]) -> Template | Redirect:
    user = user_of(request)
    assert user is not None
    tenants = repo.active_memberships_of_user(db_of(request), user.id)
    if len(tenants) == 1:
        return see_other(f"/t/{tenants[0][0].slug}/")
    return page(request, "tenancy/choose_tenant.html", choices=[t for t, _ in tenants])


@get("/invite/{token:str}", opt=requires(PUBLIC, resolve_user=True), name="invitation")
@in_thread
def show_invitation(request: Request[Any, Any, Any], token: FromPath[str]) -> Template:
    pending = svc.find_invitation(db_of(request), token)
    return page(request, "auth/invitation.html", inv=pending, token=token, errors={}, name="")


@post("/invite/{token:str}", opt=requires(PUBLIC, resolve_user=True), name="accept_invitation")
@in_thread
def accept_invitation(request: Request[Any, Any, Any], token: FromPath[str], data: Form) -> Template | Redirect:
    db = db_of(request)
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


route_handlers = [
    login_form,
    login,
    logout,
    root,
    show_invitation,
    accept_invitation,
]
