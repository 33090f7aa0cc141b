"""The auditor's pages and API: filtered, keyset-paginated events and chain verification."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from workspace.audit.chain import record
from workspace.audit.repositories import EventFilter, distinct_actions, list_events
from workspace.audit.verify import verify_tenant
from workspace.tenancy.errors import Invalid
from workspace.web.blocking import in_thread
from workspace.web.guards import requires
from workspace.web.render import ctx_of, fragment, is_htmx, page
from workspace.web.uow import request_session, runtime_of



def _date(value: str | None, field: str, *, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        raise Invalid("Use a date like 2026-11-28.", field=field) from None
    return day + timedelta(days=1) if end else day


def _filters(actor: str | None, action: str | None, object: str | None, since: str | None,
             until: str | None) -> EventFilter:
    return EventFilter(actor=(actor or "").strip(), action=(action or "").strip(), object=(object or "").strip(),
                       since=_date(since, "since"), until=_date(until, "until", end=True))


@get("/t/{slug:str}/audit", opt=requires("audit:read", nav="audit"), name="audit_log")
@in_thread
def audit_log(
    request: Request[Any, Any, Any], slug: FromPath[str], actor: FromQuery[str | None] = None,
    action: FromQuery[str | None] = None, object: FromQuery[str | None] = None, since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None, before: FromQuery[int | None] = None,
) -> Template:
    db = request_session(request)
    query = {"actor": actor or "", "action": action or "", "object": object or "", "since": since or "",
             "until": until or ""}
    try:
        filters = _filters(actor, action, object, since, until)
        error = None
    except Invalid as exc:
        filters, error = EventFilter(), {exc.field: exc.message}
    events, cursor = list_events(db, filters, before_seq=before)
    context = {"events": events, "cursor": cursor, "query": query}
    if is_htmx(request) and before is not None:
        return fragment(request, "audit/partials/_rows.html", **context)
    return page(request, "audit/log.html", actions=distinct_actions(db), errors=error or {}, verification=None,
                **context)


@post("/t/{slug:str}/audit/verify", opt=requires("audit:verify", nav="audit"), name="audit_verify")
@in_thread
def audit_verify(request: Request[Any, Any, Any], slug: FromPath[str]) -> Template:
    db = request_session(request)
    ctx = ctx_of(request)
    report = verify_tenant(db, runtime_of(request).settings.secret_key, ctx.tenant_id)
    record(db, "audit.verified", tenant_id=ctx.tenant_id, object_type="audit_chain",
           changes={"ok": report.ok, "events": report.events, "broken_seq": report.broken_seq})
    return fragment(request, "audit/partials/_verification.html", verification=report)


@get("/api/ws/audit-events", opt=requires("audit:read"), name="api_audit_events")
@in_thread
def api_audit_events(
    request: Request[Any, Any, Any], actor: FromQuery[str | None] = None, action: FromQuery[str | None] = None,
    object: FromQuery[str | None] = None, since: FromQuery[str | None] = None, until: FromQuery[str | None] = None,
    before: FromQuery[int | None] = None,
) -> dict[str, Any]:
    events, cursor = list_events(request_session(request), _filters(actor, action, object, since, until),
                                 before_seq=before, limit=100)
    return {
        "results": [
            {"seq": e.seq, "created_at": e.created_at, "actor_type": e.actor_type, "actor_id": e.actor_id,
             "actor": e.actor_label, "action": e.action, "object_type": e.object_type, "object_id": e.object_id,
             "object_label": e.object_label, "changes": e.changes, "ip": e.ip, "request_id": e.request_id,
             "hash": e.hash}
            for e in events
        ],
        "next_before": cursor,
    }


route_handlers = [audit_log, audit_verify, api_audit_events]
