"""A notification in one member's inbox.

Not audited: it records no change to the tenant's data (the comment that caused it is audited), and
reading it changes only its recipient's inbox. ``link`` is a path inside the app, built by the
feature that notifies; ``project_id``/``task_id``/``comment_id`` say what it is about, so that a
deleted task or comment takes its notifications with it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from workspace.db.base import Base, TenantOwned, Timestamped

__all__ = ["Notification", "MENTION", "REPLY", "KINDS"]

BigId = BigInteger().with_variant(Integer, "sqlite")

MENTION = "mention"  # someone wrote @you in a comment
REPLY = "reply"  # someone replied to a thread you started
KINDS = (MENTION, REPLY)


class Notification(TenantOwned, Timestamped, Base):
    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_user_read", "user_id", "read_at"),
                      Index("ix_notification_user_id", "user_id", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(String(500), nullable=False)
    link: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    project_id: Mapped[int | None] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    task_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("task.id", ondelete="CASCADE"))
    comment_id: Mapped[int | None] = mapped_column(ForeignKey("task_comment.id", ondelete="CASCADE"))
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
