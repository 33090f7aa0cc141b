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


def test_a_job_is_sent_only_when_the_outermost_transaction_commits(database, runtime):
    """Releasing or rolling back a SAVEPOINT is not the commit: the message waits for the real one."""
    from workspace.jobs.services import DISPATCH_KEY, create_job
    from workspace.tenancy.context import TenantContext
    from workspace.tenancy.scoping import bind_tenant

    world = make_tenant(runtime, "acme")
    sent: list[int] = []
    with runtime.session_factory() as session:
        bind_tenant(session, world.tenant_id)
        session.info[DISPATCH_KEY] = sent.append
        ctx = TenantContext(tenant_id=world.tenant_id, tenant_slug="acme", tenant_name="Acme",
                            user_id=world.owner.user_id, user_email=world.owner.email, user_name="Owner",
                            membership_id=world.owner.membership_id, role="owner")
        job = create_job(session, ctx, "export", title="one")
        with session.begin_nested():
            pass
        try:
            with session.begin_nested():
                raise ValueError("a savepoint rolled back")
        except ValueError:
            pass
        assert sent == []  # the row is not committed yet: a worker would not find it
        session.commit()
    assert sent == [job.id]
