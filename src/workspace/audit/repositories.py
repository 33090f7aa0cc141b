"""The audit log's read side: filters and keyset pagination (newest first, by seq)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from workspace.audit.models import AuditEvent

__all__ = ["EventFilter", "list_events", "recent_events", "distinct_actions"]


@dataclass(frozen=True)
class EventFilter:
    actor: str = ""
    action: str = ""
    object: str = ""
    since: datetime | None = None
    until: datetime | None = None


def list_events(session: Session, filters: EventFilter, *, before_seq: int | None = None,
                limit: int = 50) -> tuple[list[AuditEvent], int | None]:
    """One page of events (tenant-scoped by the session) and the cursor for the next page."""
    stmt = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit + 1)
    if before_seq is not None:
        stmt = stmt.where(AuditEvent.seq < before_seq)
    if filters.actor:
        like = f"%{filters.actor.lower()}%"
        stmt = stmt.where(or_(AuditEvent.actor_label.ilike(like), AuditEvent.actor_id == filters.actor))
    if filters.action:
        stmt = stmt.where(AuditEvent.action.ilike(f"{filters.action}%"))
    if filters.object:
        kind, _, oid = filters.object.partition(":")
        stmt = stmt.where(AuditEvent.object_type == kind.strip())
        if oid.strip():
            stmt = stmt.where(AuditEvent.object_id == oid.strip())
    if filters.since is not None:
        stmt = stmt.where(AuditEvent.created_at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(AuditEvent.created_at < filters.until)
    rows = list(session.scalars(stmt))
    cursor = rows[limit - 1].seq if len(rows) > limit else None
    return rows[:limit], cursor


def recent_events(session: Session, limit: int = 10) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)))


def distinct_actions(session: Session) -> list[str]:
    return [a for (a,) in session.execute(select(AuditEvent.action).distinct().order_by(AuditEvent.action))]
