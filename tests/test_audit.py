"""The audit chain: one mechanism, same transaction, gap-free, tamper-evident; the auditor's page."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select, text

from conftest import add_member, login, make_tenant, post_form
from workspace.audit.models import AuditEvent
from workspace.audit.verify import verify_tenant
from workspace.tenancy.models import Team


def _verify(runtime, tenant_id):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work() as db:
        return verify_tenant(db, runtime.settings.secret_key, tenant_id)


def _events(runtime, tenant_id):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(tenant_id) as db:
        return list(db.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def test_model_changes_are_audited_by_the_flush_hook_with_before_after(runtime):
    world = make_tenant(runtime, "acme")
    with runtime.unit_of_work(world.tenant_id) as db:
        team = Team(name="Alpha")
        db.add(team)
        db.flush()
        team.name = "Beta"
        db.flush()
        db.delete(team)
    events = [e for e in _events(runtime, world.tenant_id) if e.object_type == "team"]
    assert [e.action for e in events] == ["team.created", "team.updated", "team.deleted"]
    assert events[1].changes == {"name": ["Alpha", "Beta"]}
    assert events[0].actor_type == "system"


def test_a_rolled_back_change_leaves_no_event_and_no_gap(runtime):
    world = make_tenant(runtime, "acme")
    before = _events(runtime, world.tenant_id)
    with pytest.raises(RuntimeError):
        with runtime.unit_of_work(world.tenant_id) as db:
            db.add(Team(name="doomed"))
            db.flush()
            raise RuntimeError("boom")
    assert len(_events(runtime, world.tenant_id)) == len(before)
    with runtime.unit_of_work(world.tenant_id) as db:
        db.add(Team(name="kept"))
    after = _events(runtime, world.tenant_id)
    assert [e.seq for e in after] == list(range(1, len(after) + 1))
    assert _verify(runtime, world.tenant_id).ok


def test_secrets_never_reach_the_log(runtime):
    from workspace.tenancy.services import create_api_token

    world = make_tenant(runtime, "acme")
    with runtime.unit_of_work(world.tenant_id) as db:
        key = create_api_token(db, world.tenant_id, world.owner.user_id, "ci").key
    dump = " ".join(str(e.changes) for e in _events(runtime, world.tenant_id))
    assert "token_hash" not in dump and "password_hash" not in dump and key not in dump
    assert any(e.action == "api_token.created" for e in _events(runtime, world.tenant_id))


def test_chains_are_per_tenant(runtime):
    a = make_tenant(runtime, "alpha")
    b = make_tenant(runtime, "bravo")
    with runtime.unit_of_work(a.tenant_id) as db:
        db.add(Team(name="x"))
    assert [e.seq for e in _events(runtime, b.tenant_id)] == list(range(1, len(_events(runtime, b.tenant_id)) + 1))
    for world in (a, b):
        assert _verify(runtime, world.tenant_id).ok


def test_concurrent_writers_keep_the_chain_gap_free(runtime, database):
    world = make_tenant(runtime, "acme")
    errors = []

    def writer(n: int) -> None:
        try:
            for i in range(5):
                with runtime.unit_of_work(world.tenant_id) as db:
                    db.add(Team(name=f"t{n}-{i}"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    events = _events(runtime, world.tenant_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert sum(e.action == "team.created" for e in events) == 30
    assert _verify(runtime, world.tenant_id).ok


def _tamper(runtime, database, sql: str, table: str = "audit_event") -> None:  # type: ignore[no-untyped-def]
    with runtime.engine.begin() as conn:
        if database.kind == "postgresql":
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            conn.execute(text(sql))
            conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        else:
            triggers = conn.execute(text(
                f"SELECT name, sql FROM sqlite_master WHERE type='trigger' AND tbl_name='{table}'")).all()
            for name, _ in triggers:
                conn.execute(text(f"DROP TRIGGER {name}"))
            conn.execute(text(sql))
            for _, ddl in triggers:
                conn.execute(text(ddl))


def test_verifier_finds_an_altered_row(runtime, database):
    world = make_tenant(runtime, "acme")
    for i in range(3):
        with runtime.unit_of_work(world.tenant_id) as db:
            db.add(Team(name=f"t{i}"))
    _tamper(runtime, database, f"UPDATE audit_event SET actor_label = 'someone else' WHERE seq = 3 "
                               f"AND tenant_id = {world.tenant_id}")
    report = _verify(runtime, world.tenant_id)
    assert not report.ok and report.broken_seq == 3 and "altered" in report.reason


def test_verifier_finds_truncation_and_a_forged_head(runtime, database):
    world = make_tenant(runtime, "acme")
    for i in range(4):
        with runtime.unit_of_work(world.tenant_id) as db:
            db.add(Team(name=f"t{i}"))
    total = len(_events(runtime, world.tenant_id))
    _tamper(runtime, database, f"DELETE FROM audit_event WHERE seq > {total - 2} AND tenant_id = {world.tenant_id}")
    report = _verify(runtime, world.tenant_id)
    assert not report.ok and report.broken_seq == total - 1 and "missing" in report.reason
    # Rewinding the head to hide it needs the server key: the seal no longer matches.
    last = _events(runtime, world.tenant_id)[-1]
    _tamper(runtime, database, f"UPDATE audit_head SET last_seq = {last.seq}, last_hash = '{last.hash}' "
                               f"WHERE tenant_id = {world.tenant_id}", table="audit_head")
    report = _verify(runtime, world.tenant_id)
    assert not report.ok and "seal" in report.reason


def test_database_refuses_update_and_delete_of_audit_rows(runtime):
    world = make_tenant(runtime, "acme")
    for sql in ("UPDATE audit_event SET action = 'x'", "DELETE FROM audit_event",
                "UPDATE audit_head SET last_seq = 0"):
        with pytest.raises(Exception) as info:
            with runtime.engine.begin() as conn:
                conn.execute(text(sql))
        assert "append-only" in str(info.value) or "only moves forward" in str(info.value)
    assert len(_events(runtime, world.tenant_id)) >= 1


def test_audit_page_filters_paginates_and_verifies(client, runtime):
    world = make_tenant(runtime, "acme")
    add_member(runtime, world, "bob@acme.example", "annotator")
    with runtime.unit_of_work(world.tenant_id) as db:
        for i in range(60):
            db.add(Team(name=f"team-{i:02d}"))
    login(client, world.owner)
    page = client.get("/t/acme/audit")
    assert page.status_code == 200
    assert page.text.count('data-testid="audit-row"') == 50
    cursor = page.text.split("before=")[1].split("&")[0]
    more = client.get(f"/t/acme/audit?before={cursor}", headers={"HX-Request": "true"})
    assert more.status_code == 200 and "<html" not in more.text
    assert more.text.count('data-testid="audit-row"') > 0
    filtered = client.get("/t/acme/audit?action=membership.")
    assert filtered.text.count('data-testid="audit-row"') == 2  # the owner's and bob's memberships
    by_actor = client.get("/t/acme/audit?actor=owner@acme.example")
    assert 'data-action="auth.login"' in by_actor.text
    bad = client.get("/t/acme/audit?since=yesterday")
    assert bad.status_code == 200 and "Use a date like" in bad.text
    verified = post_form(client, "/t/acme/audit/verify", headers={"HX-Request": "true"})
    assert "Chain intact" in verified.text
    with runtime.unit_of_work(world.tenant_id) as db:
        assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "audit.verified")) == 1


def test_request_events_carry_who_and_where(client, runtime):
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    post_form(client, "/t/acme/teams", {"name": "Ops"}, headers={"User-Agent": "pytest-agent", "X-Request-ID": "req-42"})
    event = [e for e in _events(runtime, world.tenant_id) if e.action == "team.created"][0]
    assert event.actor_type == "user" and event.actor_label == world.owner.email
    assert event.user_agent == "pytest-agent" and event.request_id == "req-42" and event.ip


def test_the_chain_append_is_the_last_before_commit_hook():
    """On PostgreSQL the chain's append carries the COMMIT: a before_commit hook registered after it
    would write outside the transaction. (Reads SQLAlchemy's class-level listener list.)"""
    import workspace.app.factory  # noqa: F401  (imports every feature, so every hook is registered)
    from sqlalchemy.orm import Session

    from workspace.audit import chain

    listeners = list(Session.dispatch.before_commit._clslevel[Session])
    assert listeners[-1] is chain._before_commit


def test_an_append_failing_with_the_commit_keeps_nothing_and_the_connection_usable(runtime, database, monkeypatch):
    """PostgreSQL sends the append and the COMMIT together: when that round trip fails, neither the
    change nor its events stay, and the pooled connection serves the next transaction."""
    if database.kind != "postgresql":
        pytest.skip("the append carries the COMMIT on PostgreSQL only")
    from workspace.audit import chain

    world = make_tenant(runtime, "acme")
    before = _events(runtime, world.tenant_id)
    monkeypatch.setattr(chain, "_APPEND_PG", "SELECT 1 / (%(last_seq)s - %(last_seq)s)")
    with pytest.raises(Exception, match="division by zero"):
        with runtime.unit_of_work(world.tenant_id) as db:
            db.add(Team(name="doomed"))
    monkeypatch.undo()
    with runtime.unit_of_work(world.tenant_id) as db:
        assert db.scalar(select(func.count(Team.id)).where(Team.name == "doomed")) == 0
        db.add(Team(name="kept"))
    after = _events(runtime, world.tenant_id)
    assert len(after) == len(before) + 1 and after[-1].object_label == "kept"
    assert [e.seq for e in after] == list(range(1, len(after) + 1))
    assert _verify(runtime, world.tenant_id).ok


TRICKY = ['émoji 🎉 and 中文', 'quotes " and \\ backslash', "line\nbreak\ttab", '"seq":1', "\u2028 separator"]


def test_events_written_as_json_rows_hash_as_the_verifier_recomputes(runtime, database):
    """PostgreSQL writes a transaction's events from one JSON document (json_populate_recordset); the
    verifier recomputes every hash from the stored rows: both must agree on any content."""
    from workspace.audit import chain

    world = make_tenant(runtime, "acme")
    with runtime.unit_of_work(world.tenant_id) as db:
        for label in TRICKY:
            chain.record(db, "test.tricky", tenant_id=world.tenant_id, object_type="test", object_label=label,
                         changes={"seq": [1, 2], "nested": {"seq": label, "n": 1.5, "none": None}, "list": [label]})
    with runtime.unit_of_work(world.tenant_id) as db:
        db.add(Team(name=TRICKY[0]))
    events = _events(runtime, world.tenant_id)
    assert [e.object_label for e in events if e.action == "test.tricky"] == TRICKY
    assert _verify(runtime, world.tenant_id).ok
