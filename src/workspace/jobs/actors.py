"""Actors are thin: load by id, enter the tenant scope, call a service."""

from __future__ import annotations

import logging

import dramatiq
from sqlalchemy import select

from workspace.config import load_settings
from workspace.jobs.broker import configure_broker

log = logging.getLogger(__name__)
_settings = load_settings()
configure_broker(_settings)
_runtime = None


def runtime():  # type: ignore[no-untyped-def]
    global _runtime
    if _runtime is None:
        from workspace.runtime import build_runtime

        _runtime = build_runtime(_settings)
    return _runtime


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def verify_audit_chains() -> None:
    """Verify every tenant's audit chain and log the result (schedule it, e.g. hourly)."""
    from workspace.audit.verify import verify_tenant
    from workspace.tenancy.models import Tenant

    rt = runtime()
    with rt.unit_of_work() as db:
        for tenant_id in db.scalars(select(Tenant.id)):
            report = verify_tenant(db, rt.settings.secret_key, tenant_id)
            if not report.ok:
                log.error("audit chain of tenant %s broken at %s: %s", tenant_id, report.broken_seq, report.reason)
