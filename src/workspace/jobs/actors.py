"""Actors of ``workspace worker`` processes (started through dramatiq's CLI, which imports this module).

The broker and the runtime come from the environment (``WORKSPACE_*``). ``run_job`` has the same
actor name and queue as the one every runtime's ``JobQueue`` sends to. Actors are thin: they load by
id and call a service.
"""

from __future__ import annotations

import logging

import dramatiq
from sqlalchemy import select

from workspace.config import Settings, load_settings
from workspace.jobs.broker import ensure_broker
from workspace.jobs.queue import ACTOR_OPTIONS, QUEUE_NAME
from workspace.jobs.runner import execute_job

log = logging.getLogger(__name__)
ensure_broker()

_settings: Settings | None = None
_runtime = None


def configure(settings: Settings) -> None:
    """Tests hand over settings; worker processes read the environment."""
    global _settings, _runtime
    _settings, _runtime = settings, None


def runtime():  # type: ignore[no-untyped-def]
    global _runtime
    if _runtime is None:
        from workspace.runtime import build_runtime

        _runtime = build_runtime(_settings or load_settings(), watch_policy=False)
    return _runtime


@dramatiq.actor(actor_name="run_job", queue_name=QUEUE_NAME, **ACTOR_OPTIONS)
def run_job(job_id: int) -> None:
    execute_job(runtime(), job_id)


@dramatiq.actor(queue_name="maintenance", max_retries=3)
def verify_audit_chains() -> None:
    """Verify every tenant's audit chain; a broken one is logged as an error (schedule it hourly)."""
    from workspace.audit.verify import verify_tenant
    from workspace.tenancy.models import Tenant

    rt = runtime()
    with rt.unit_of_work() as db:
        for tenant_id in list(db.scalars(select(Tenant.id))):
            report = verify_tenant(db, rt.settings.secret_key, tenant_id)
            if not report.ok:
                log.error("audit chain of tenant %s broken at %s: %s", tenant_id, report.broken_seq, report.reason)
