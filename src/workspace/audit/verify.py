"""Verify tenants' audit chains: recompute every hash, check seq continuity and the sealed head."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from workspace.audit.chain import HASHED_FIELDS, event_hash, head_mac, payload_of
from workspace.audit.models import GENESIS_HASH, AuditEvent, AuditHead

__all__ = ["ChainReport", "verify_tenant"]

BATCH = 2000


@dataclass(frozen=True)
class ChainReport:
    tenant_id: int
    ok: bool
    events: int
    broken_seq: int | None = None
    reason: str = ""


def verify_tenant(session: Session, key: str, tenant_id: int) -> ChainReport:
    """Walk the chain in seq order (keyset batches; memory stays flat).

    Core statements on the tables: the verifier is the audit read side and reads across the
    tenant's rows by design; it is given the tenant explicitly.

    Writers may append while this runs, and under READ COMMITTED (PostgreSQL's default) every
    statement sees the newest commits: a head read after the walk can be ahead of the last event the
    walk saw without anything being wrong. An append commits its events and the head together, so
    when the head is ahead the walk goes on from where it stopped; events the head covers that still
    aren't there were removed.
    """
    ev = AuditEvent.__table__
    cols = [ev.c[name] for name in HASHED_FIELDS] + [ev.c.prev_hash, ev.c.hash]
    expected_seq = 1
    running = GENESIS_HASH
    count = 0
    last_seen = 0
    head_table = AuditHead.__table__
    while True:
        progressed = False
        while True:
            rows = session.execute(
                select(*cols)
                .where(ev.c.tenant_id == tenant_id, ev.c.seq > last_seen)
                .order_by(ev.c.seq)
                .limit(BATCH)
            ).mappings().all()
            if not rows:
                break
            progressed = True
            for row in rows:
                seq = row["seq"]
                if seq != expected_seq:
                    return ChainReport(tenant_id, False, count, expected_seq,
                                       f"event {expected_seq} is missing (next stored event is {seq})")
                if row["prev_hash"] != running:
                    return ChainReport(tenant_id, False, count, seq,
                                       "prev_hash does not match the hash of the event before it")
                recomputed = event_hash(running, payload_of(dict(row)))
                if not hmac.compare_digest(recomputed, row["hash"]):
                    return ChainReport(tenant_id, False, count, seq,
                                       "content does not match its hash (the row was altered)")
                running = row["hash"]
                expected_seq += 1
                count += 1
                last_seen = seq
        head = session.execute(select(head_table).where(head_table.c.tenant_id == tenant_id)).mappings().first()
        if head is None or head["last_seq"] <= last_seen or not progressed:
            break
        # The head is ahead of the walk: events were appended meanwhile (or removed); walk on.
    if head is None:
        if count:
            return ChainReport(tenant_id, False, count, 1, "the chain head is missing")
        return ChainReport(tenant_id, True, 0)
    if head["last_seq"] != last_seen:
        if head["last_seq"] > last_seen:
            return ChainReport(tenant_id, False, count, last_seen + 1,
                               f"events {last_seen + 1}..{head['last_seq']} are missing "
                               f"(the chain head says it ends at {head['last_seq']})")
        return ChainReport(tenant_id, False, count, head["last_seq"] + 1,
                           f"events after {head['last_seq']} are not sealed by the chain head")
    if head["last_hash"] != running:
        return ChainReport(tenant_id, False, count, last_seen, "the chain head's hash does not match the last event")
    if count and not hmac.compare_digest(head["mac"], head_mac(key, tenant_id, head["last_seq"], head["last_hash"])):
        return ChainReport(tenant_id, False, count, last_seen,
                           "the chain head's seal is invalid (rewritten without the server key)")
    return ChainReport(tenant_id, True, count)
