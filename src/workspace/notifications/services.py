"""A member's inbox. Services flush, never commit. Every read and write is about the calling member's
own notifications: another member's notification answers 404 exactly like a missing one."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from workspace.lib.timeutil import utcnow
from workspace.notifications.models import KINDS, Notification
from workspace.tenancy.errors import NotFound

__all__ = ["notify", "inbox", "unread_count", "get_own", "mark_read", "mark_all_read", "PAGE_SIZE"]

PAGE_SIZE = 50
MAX_TEXT = 500


def notify(session: Session, user_id: int, kind: str, text: str, *, actor_id: int | None = None, link: str = "",
           project_id: int | None = None, task_id: int | None = None, comment_id: int | None = None) -> Notification:
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 1] + "…"
    note = Notification(user_id=user_id, kind=kind, actor_id=actor_id, text=text, link=link, project_id=project_id,
                        task_id=task_id, comment_id=comment_id, created_at=utcnow())
    session.add(note)
    session.flush()
    return note


def inbox(session: Session, user_id: int, *, unread_only: bool = False, before: int | None = None,
          limit: int = PAGE_SIZE) -> list[Notification]:
    """The member's notifications, newest first (keyset pages: ``before`` is the last id seen)."""
    stmt = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    if before is not None:
        stmt = stmt.where(Notification.id < before)
    return list(session.scalars(stmt.order_by(Notification.id.desc()).limit(limit)))


def unread_count(session: Session, user_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Notification)
                          .where(Notification.user_id == user_id, Notification.read_at.is_(None))) or 0


def get_own(session: Session, user_id: int, notification_id: int) -> Notification:
    note = session.scalars(select(Notification).where(Notification.id == notification_id,
                                                      Notification.user_id == user_id)).first()
    if note is None:
        raise NotFound("Notification not found")
    return note


def mark_read(session: Session, note: Notification) -> Notification:
    if note.read_at is None:
        note.read_at = utcnow()
        session.flush()
    return note


def mark_all_read(session: Session, user_id: int) -> int:
    """Marks every unread notification of the member read; how many there were."""
    result = session.execute(update(Notification)
                             .where(Notification.user_id == user_id, Notification.read_at.is_(None))
                             .values(read_at=utcnow()))
    return result.rowcount or 0
