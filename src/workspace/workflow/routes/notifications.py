"""A member's notifications: the header bell (unread count, polled by htmx), the list with mark-read
and mark-all-read, and "open" (marks it read and goes to what it is about, e.g. the task)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy import select

from workspace.notifications import services as inbox
from workspace.tenancy.models import User
from workspace.web.blocking import in_thread
from workspace.web.guards import requires
from workspace.web.render import ctx_of, fragment, notice, page, see_other
from workspace.web.uow import request_session as _db


def _home(request: Request[Any, Any, Any]) -> str:
    return f"/t/{ctx_of(request).tenant_slug}/notifications"


@get("/t/{slug:str}/notifications", opt=requires("tenant:read", nav="notifications"), name="notifications")
@in_thread
def notifications_page(request: Request[Any, Any, Any], slug: FromPath[str]) -> Template:
    db = _db(request)
    ctx = ctx_of(request)
    unread_only = request.query_params.get("show") == "unread"
    raw_before = request.query_params.get("before") or ""
    before = int(raw_before) if raw_before.isdigit() else None
    notes = inbox.inbox(db, ctx.user_id, unread_only=unread_only, before=before, limit=inbox.PAGE_SIZE + 1)
    more = len(notes) > inbox.PAGE_SIZE
    notes = notes[: inbox.PAGE_SIZE]
    actor_ids = {n.actor_id for n in notes if n.actor_id is not None}
    actors = {u.id: u for u in db.scalars(select(User).where(User.id.in_(actor_ids)))} if actor_ids else {}
    rows = [{"note": n, "actor": (actors[n.actor_id].name or actors[n.actor_id].email) if n.actor_id in actors else ""}
            for n in notes]
    return page(request, "workflow/notifications.html", rows=rows, unread=inbox.unread_count(db, ctx.user_id),
                unread_only=unread_only, next_before=notes[-1].id if more and notes else None)


@get("/t/{slug:str}/notifications/bell", opt=requires("tenant:read"), name="notification_bell")
@in_thread
def notification_bell(request: Request[Any, Any, Any], slug: FromPath[str]) -> Template:
    ctx = ctx_of(request)
    return fragment(request, "workflow/partials/_bell.html", unread=inbox.unread_count(_db(request), ctx.user_id),
                    bell_trigger="every 30s")


@post("/t/{slug:str}/notifications/{notification_id:int}/open", opt=requires("tenant:read"),
      name="open_notification")
@in_thread
def open_notification(request: Request[Any, Any, Any], slug: FromPath[str], notification_id: FromPath[int]) -> Redirect:
    db = _db(request)
    note = inbox.mark_read(db, inbox.get_own(db, ctx_of(request).user_id, notification_id))
    # Only a path inside this organization is followed (links are written by the app, never by users).
    inside = f"/t/{ctx_of(request).tenant_slug}/"
    return see_other(note.link if note.link.startswith(inside) and "//" not in note.link else _home(request))


@post("/t/{slug:str}/notifications/{notification_id:int}/read", opt=requires("tenant:read"),
      name="read_notification")
@in_thread
def read_notification(request: Request[Any, Any, Any], slug: FromPath[str], notification_id: FromPath[int]) -> Redirect:
    db = _db(request)
    inbox.mark_read(db, inbox.get_own(db, ctx_of(request).user_id, notification_id))
    return see_other(_home(request))


@post("/t/{slug:str}/notifications/read-all", opt=requires("tenant:read"), name="read_all_notifications")
@in_thread
def read_all_notifications(request: Request[Any, Any, Any], slug: FromPath[str]) -> Redirect:
    count = inbox.mark_all_read(_db(request), ctx_of(request).user_id)
    notice(request, f"{count} notification{'' if count == 1 else 's'} marked read." if count else "Nothing unread.")
    return see_other(_home(request))


route_handlers = [notifications_page, notification_bell, open_notification, read_notification, read_all_notifications]
