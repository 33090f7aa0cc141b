"""Appending to a tenant's hash chain, and the one hook that audits every model change.

``hash = SHA-256(prev_hash || canonical_json(event))`` with a gap-free ``seq`` per tenant. Appends
lock the tenant's ``audit_head`` row, so concurrent writers queue instead of forking the chain.
Everything runs on the caller's connection: the events commit or roll back with the change.

The flush hook collects events; they are appended in ``before_commit`` (after a last flush), so a
long transaction (a million-row import) holds its tenant's chain head only for the moment of its
commit, not for its whole duration, and other members' changes don't queue behind it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, event, inspect, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from workspace.audit.models import GENESIS_HASH, AuditEvent, AuditHead
from workspace.db.base import Audited, TenantOwned
from workspace.lib.canonical import canonical_json, iso_utc
from workspace.lib.timeutil import utcnow

__all__ = [
    "Actor",
    "SYSTEM",
    "set_actor",
    "get_actor",
    "record",
    "record_created",
    "write_pending",
    "append",
    "event_hash",
    "head_mac",
    "HASHED_FIELDS",
    "install",
]

ACTOR_KEY = "audit_actor"
KEY_KEY = "audit_key"
PENDING_KEY = "audit_pending"  # events collected by flushes, appended just before commit
_ONE_STATEMENT_ROWS = 32  # up to this many events are written with the head in one statement (PostgreSQL)

HASHED_FIELDS = (
    "tenant_id",
    "seq",
    "created_at",
    "actor_type",
    "actor_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "object_label",
    "changes",
    "ip",
    "user_agent",
    "request_id",
)


@dataclass(frozen=True)
class Actor:
    type: str  # "user", "token" or "system"
    id: str | None = None
    label: str = ""
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


SYSTEM = Actor(type="system", label="system")


def set_actor(session: Session, actor: Actor) -> None:
    session.info[ACTOR_KEY] = actor


def get_actor(session: Session) -> Actor:
    return session.info.get(ACTOR_KEY) or SYSTEM


def event_hash(prev_hash: str, payload: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_json(payload)).hexdigest()


def head_mac(key: str, tenant_id: int, seq: int, last_hash: str) -> str:
    message = f"{tenant_id}:{seq}:{last_hash}".encode("ascii")
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return str(value)


def payload_of(row: dict[str, Any]) -> dict[str, Any]:
    """The hashed form of an event row (as stored or as about to be stored)."""
    data = {name: row[name] for name in HASHED_FIELDS}
    data["created_at"] = iso_utc(row["created_at"])
    return data


def append(conn: Connection, key: str, tenant_id: int, entries: list[dict[str, Any]], *,
           and_commit: bool = False) -> list[int]:
    """Append entries (action, object_type, object_id, object_label, changes, actor) to the chain.

    ``and_commit`` (the transaction's last step): on PostgreSQL, for a request's few events, the append
    and the COMMIT go to the server together, in one round trip, so the head stays locked one round trip
    less; otherwise SQLAlchemy's commit follows as usual."""
    if not entries:
        return []
    row = conn.execute(_LOCK_HEAD, {"tenant_id": tenant_id}).first()
    if row is None:
        conn.execute(insert(_HEAD).values(tenant_id=tenant_id, last_seq=0, last_hash=GENESIS_HASH, mac=""))
        last_seq, last_hash = 0, GENESIS_HASH
    else:
        last_seq, last_hash = row
    now = utcnow()
    rows = []
    for entry in entries:
        actor: Actor = entry["actor"]
        last_seq += 1
        values = {
            "tenant_id": tenant_id,
            "seq": last_seq,
            "created_at": now,
            "actor_type": actor.type,
            "actor_id": actor.id,
            "actor_label": actor.label,
            "action": entry["action"],
            "object_type": entry.get("object_type", ""),
            "object_id": None if entry.get("object_id") is None else str(entry["object_id"]),
            "object_label": entry.get("object_label", "") or "",
            "changes": _json_safe(entry.get("changes") or {}),
            "ip": actor.ip,
            "user_agent": actor.user_agent,
            "request_id": actor.request_id,
        }
        values["prev_hash"] = last_hash
        values["hash"] = last_hash = event_hash(last_hash, payload_of(values))
        rows.append(values)
    mac = head_mac(key, tenant_id, last_seq, last_hash)
    if conn.dialect.name == "postgresql" and len(rows) <= _ONE_STATEMENT_ROWS:
        # A request's few events and the head move in one round trip (the head row is locked meanwhile),
        # as one fixed statement (compiled once; a multi-row VALUES would be compiled per call).
        params = {"rows": json.dumps([{**r, "created_at": iso_utc(r["created_at"])} for r in rows],
                                     ensure_ascii=False, separators=(",", ":")),
                  "tenant_id": tenant_id, "last_seq": last_seq, "last_hash": last_hash, "mac": mac}
        if and_commit:
            raw = conn.connection.driver_connection
            with raw.pipeline():  # psycopg: both statements queued, one sync
                raw.execute(_APPEND_PG, params)
                raw.commit()  # SQLAlchemy's own COMMIT then finds no transaction open: a no-op
        else:
            conn.exec_driver_sql(_APPEND_PG, params)
    else:
        conn.execute(insert(AuditEvent.__table__), rows)
        conn.execute(update(_HEAD).where(_HEAD.c.tenant_id == tenant_id)
                     .values(last_seq=last_seq, last_hash=last_hash, mac=mac))
    return [r["seq"] for r in rows]


_HEAD = AuditHead.__table__
_LOCK_HEAD = (select(_HEAD.c.last_seq, _HEAD.c.last_hash)
              .where(_HEAD.c.tenant_id == bindparam("tenant_id")).with_for_update())
_EVENT_COLUMNS = ", ".join(("tenant_id", "seq", "created_at", "actor_type", "actor_id", "actor_label", "action",
                            "object_type", "object_id", "object_label", "changes", "ip", "user_agent",
                            "request_id", "prev_hash", "hash"))
# In the driver's own parameter style: it also goes straight to psycopg, in a pipeline SQLAlchemy can't drive.
_APPEND_PG = (
    f"WITH appended AS (INSERT INTO audit_event ({_EVENT_COLUMNS}) "
    f"SELECT {_EVENT_COLUMNS} FROM json_populate_recordset(NULL::audit_event, CAST(%(rows)s AS json))) "
    "UPDATE audit_head SET last_seq = %(last_seq)s, last_hash = %(last_hash)s, mac = %(mac)s "
    "WHERE tenant_id = %(tenant_id)s")


def _key(session: Session) -> str:
    key = session.info.get(KEY_KEY)
    if not key:
        raise RuntimeError("session has no audit key; build sessions with workspace.db session factory")
    return key


def record(
    session: Session,
    action: str,
    *,
    tenant_id: int,
    object_type: str = "",
    object_id: Any = None,
    object_label: str = "",
    changes: dict[str, Any] | None = None,
    actor: Actor | None = None,
) -> None:
    """Add one event to the session's transaction, after the events of earlier flushes. Like the flush
    hook's events it is chained just before commit: the tenant's chain head is locked only for the
    moment of the commit, so concurrent writers of a tenant queue for that moment, not for their
    whole transactions; a rollback drops it with the change it describes."""
    session.flush()
    entry = {
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "object_label": object_label,
        "changes": changes or {},
        "actor": actor or get_actor(session),
    }
    session.info.setdefault(PENDING_KEY, {}).setdefault(tenant_id, []).append(entry)


# --- the flush hook: every change to an Audited model becomes an event -------------------------


def _column_values(obj: Audited) -> dict[str, Any]:
    mapper = inspect(obj).mapper
    return {
        col.key: getattr(obj, col.key)
        for col in mapper.column_attrs
        if col.key not in obj.__audit_exclude__ and col.key not in {"id", "tenant_id", "created_at"}
    }


def _tenant_of(session: Session, obj: Audited) -> int | None:
    if isinstance(obj, TenantOwned):
        return obj.tenant_id
    if getattr(obj, "__audit_type__", "") == "tenant":
        return obj.id  # type: ignore[attr-defined]
    return session.info.get("tenant_id")


def _entry(obj: Audited, verb: str, changes: dict[str, Any], actor: Actor) -> dict[str, Any]:
    return {
        "action": f"{obj.__audit_type__}.{obj.audit_verb(verb, changes)}",
        "object_type": obj.__audit_type__,
        "object_id": getattr(obj, "id", None),
        "object_label": obj.audit_label(),
        "changes": obj.audit_changes(changes),
        "actor": actor,
    }


def _created(obj: Audited) -> dict[str, Any]:
    return {k: [None, v] for k, v in _column_values(obj).items() if v is not None}


def record_created(session: Session, obj: Audited) -> None:
    """The event the flush hook writes for an inserted ``obj``, for a row a fast path inserted with a
    statement of its own (the object holds the row's values, id included). Changes made through the
    ORM before it are flushed first, so the events keep the order of the changes."""
    if session.new or session.deleted or session.dirty:
        session.flush()
    tenant_id = _tenant_of(session, obj)
    if tenant_id is not None:
        entry = _entry(obj, "created", _created(obj), get_actor(session))
        session.info.setdefault(PENDING_KEY, {}).setdefault(tenant_id, []).append(entry)


def _after_flush(session: Session, _ctx) -> None:  # type: ignore[no-untyped-def]
    per_tenant: dict[int, list[dict[str, Any]]] = {}
    actor = get_actor(session)

    def add(obj: Audited, verb: str, changes: dict[str, Any]) -> None:
        tenant_id = _tenant_of(session, obj)
        if tenant_id is None:
            return  # a global identity changed outside any tenant (no tenant's business)
        per_tenant.setdefault(tenant_id, []).append(_entry(obj, verb, changes, actor))

    for obj in session.new:
        if isinstance(obj, Audited):
            add(obj, "created", _created(obj))
    for obj in session.dirty:
        if not isinstance(obj, Audited) or not session.is_modified(obj, include_collections=False):
            continue
        state = inspect(obj)
        changes: dict[str, Any] = {}
        for col in state.mapper.column_attrs:
            if col.key in obj.__audit_exclude__:
                continue
            hist = state.attrs[col.key].history
            if hist.has_changes():
                old = hist.deleted[0] if hist.deleted else None
                new = hist.added[0] if hist.added else None
                if old != new:
                    changes[col.key] = [old, new]
        if changes:
            add(obj, "updated", changes)
    for obj in session.deleted:
        if isinstance(obj, Audited):
            add(obj, "deleted", {k: [v, None] for k, v in _column_values(obj).items() if v is not None})
    if not per_tenant:
        return
    pending: dict[int, list[dict[str, Any]]] = session.info.setdefault(PENDING_KEY, {})
    for tenant_id, entries in per_tenant.items():
        pending.setdefault(tenant_id, []).extend(entries)


def write_pending(session: Session) -> None:
    """Chain the events collected so far now instead of at commit (locks each chain head until then):
    for code that must read its own events back inside the transaction."""
    session.flush()
    _drain(session)


def _drain(session: Session, *, committing: bool = False) -> None:
    """Append the events collected by flushes to their chains (locks each chain head until commit).
    ``committing``: this is the outermost transaction's commit; on PostgreSQL the last append carries
    the COMMIT with it."""
    pending = session.info.pop(PENDING_KEY, None)
    if not pending:
        return
    conn = session.connection()
    key = _key(session)
    tenants = sorted(pending)
    last = tenants[-1] if committing and not session.in_nested_transaction() else None
    for tenant_id in tenants:  # append() takes the COMMIT along only where it can (PostgreSQL, few events)
        append(conn, key, tenant_id, pending[tenant_id], and_commit=tenant_id == last)


def _before_commit(session: Session) -> None:
    """Registered after every other ``before_commit`` hook: the last thing the transaction does."""
    session.flush()
    _drain(session, committing=True)


def _discard(session: Session, *_args: object) -> None:
    session.info.pop(PENDING_KEY, None)


_installed = False


def install() -> None:
    global _installed
    if not _installed:
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "before_commit", _before_commit)
        event.listen(Session, "after_rollback", _discard)
        _installed = True


install()
