"""The embedded job worker runs actors in-process (production runs them in `workspace worker`)."""

from __future__ import annotations

import logging

from conftest import make_tenant


def test_embedded_worker_runs_jobs_in_process(settings, runtime, caplog):
    from workspace.jobs.worker import start_embedded_worker

    world = make_tenant(runtime, "acme")
    worker = start_embedded_worker(settings)
    try:
        from workspace.jobs import actors

        # Break the chain so that the job has something to say.
        with runtime.engine.begin() as conn:
            from sqlalchemy import text

            if settings.is_sqlite:
                conn.execute(text("DROP TRIGGER audit_event_no_update"))
                conn.execute(text(f"UPDATE audit_event SET action = 'forged' WHERE seq = 1 AND tenant_id = {world.tenant_id}"))
            else:
                conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
                conn.execute(text(f"UPDATE audit_event SET action = 'forged' WHERE seq = 1 AND tenant_id = {world.tenant_id}"))
                conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
        with caplog.at_level(logging.ERROR, logger="workspace.jobs.actors"):
            actors.verify_audit_chains.send()
            worker.broker.join(actors.verify_audit_chains.queue_name, timeout=30_000)
            worker.join()
        assert any("broken at 1" in r.getMessage() for r in caplog.records), caplog.text
    finally:
        worker.stop()
        from workspace.jobs import actors

        if actors._runtime is not None:
            actors._runtime.close()
