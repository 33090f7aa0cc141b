"""The job record: what a background job is, how far it got, how it ended, and who started it.

Status moves queued → running → succeeded | failed | cancelled (and running → queued when a transient
error schedules a retry). Status changes go through the ORM and are audited; progress and heartbeats
are written with plain UPDATE statements, which the audit chain does not record (they change no
tenant data, and a million-row import would otherwise write hundreds of events).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from workspace.db.base import Audited, Base, TenantOwned, Timestamped

__all__ = ["Job", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "TERMINAL", "ACTIVE"]

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
ACTIVE = frozenset({QUEUED, RUNNING})


class Job(TenantOwned, Timestamped, Audited, Base):
    __tablename__ = "job"
    __audit_type__ = "job"
    __audit_exclude__ = frozenset({"progress_done", "progress_total", "heartbeat_at"})
    __table_args__ = (Index("ix_job_tenant_project_id", "tenant_id", "project_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    title: Mapped[str] = mapped_column(String(300), default="", nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED, nullable=False)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(String(500), default="", nullable=False)
    error: Mapped[str] = mapped_column(Text, default="", nullable=False)
    progress_done: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    progress_total: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def audit_verb(self, verb: str, changes: dict[str, list[object]]) -> str:
        if verb == "updated" and "status" in changes:
            return str(changes["status"][-1]) if changes["status"][-1] != QUEUED else "requeued"
        if verb == "updated" and "cancel_requested" in changes:
            return "cancel_requested"
        return "queued" if verb == "created" else verb

    def audit_label(self) -> str:
        return self.title or self.kind

    @property
    def percent(self) -> int | None:
        if not self.progress_total:
            return None
        return max(0, min(100, int(self.progress_done * 100 / self.progress_total)))

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL
