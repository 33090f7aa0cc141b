"""The audit log's JSON API beside ``routes.py``: verifying the tenant's chain.

Listing (filters, keyset pages by ``seq``) is ``GET /api/ws/audit-events`` in ``routes.py``. API-token
auth; tenant-scoped by the guard.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, post

from workspace.audit.chain import record
from workspace.audit.verify import verify_tenant
from workspace.web.blocking import in_thread
from workspace.web.guards import requires
from workspace.web.render import ctx_of
from workspace.web.uow import request_session, runtime_of

__all__ = ["route_handlers"]

TAGS = ["Workspace: audit"]


class ChainReportOut(msgspec.Struct):
    ok: bool
    events: int
    broken_seq: int | None
    reason: str


@post("/api/ws/audit/verify", opt=requires("audit:verify"), name="api_audit_verify", status_code=200, tags=TAGS,
      summary="Verify the tenant's hash chain; the first broken sequence number, if any (recorded in the log)")
@in_thread
def api_audit_verify(request: Request[Any, Any, Any]) -> ChainReportOut:
    db = request_session(request)
    ctx = ctx_of(request)
    report = verify_tenant(db, runtime_of(request).settings.secret_key, ctx.tenant_id)
    record(db, "audit.verified", tenant_id=ctx.tenant_id, object_type="audit_chain",
           changes={"ok": report.ok, "events": report.events, "broken_seq": report.broken_seq})
    return ChainReportOut(ok=report.ok, events=report.events, broken_seq=report.broken_seq, reason=report.reason)


route_handlers = [api_audit_verify]
