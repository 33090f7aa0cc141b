"""Review records and annotation revisions.

``AnnotationRevision`` is append-only: one row per change to an annotation's result or status, with
the whole result as it was after the change (so any version can be shown without replaying), the
status, the lifecycle action and who took it. The app never updates or deletes a revision (a flush
guard below refuses it); rows go only when their annotation is deleted (database cascade).

``Review`` is a reviewer's verdict on an annotation (accepted, rejected, fixed) with their comment;
it is audited like every other model, so each verdict is an event of the audit chain.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, Session, mapped_column

from workspace.db.base import Audited, Base, TenantOwned, Timestamped
from workspace.lib.timeutil import utcnow
from workspace.workflow.models import BigId

__all__ = ["AnnotationRevision", "Review", "REVISION_ACTIONS", "VERDICTS"]

REVISION_ACTIONS = ("created", "submitted", "draft", "updated", "skipped", "accepted", "rejected", "fixed",
                    "resubmitted")
VERDICTS = ("accepted", "rejected", "fixed")


class AnnotationRevision(TenantOwned, Base):
    __tablename__ = "annotation_revision"
    __table_args__ = (UniqueConstraint("annotation_id", "number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotation.id", ondelete="CASCADE"), nullable=False)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)  # 1, 2, ... per annotation
    version: Mapped[int] = mapped_column(Integer, nullable=False)  # the annotation's version after the change
    result: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class Review(TenantOwned, Timestamped, Audited, Base):
    __tablename__ = "review"
    __audit_type__ = "review"
    __table_args__ = (Index("ix_review_annotation_id", "annotation_id", "id"),
                      Index("ix_review_project_id", "project_id", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), nullable=False)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), nullable=False)
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotation.id", ondelete="CASCADE"), nullable=False)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    verdict: Mapped[str] = mapped_column(String(16), nullable=False)
    comment: Mapped[str] = mapped_column(Text, default="", nullable=False)
    annotation_version: Mapped[int] = mapped_column(Integer, nullable=False)  # the version it produced

    def audit_verb(self, verb: str, changes: dict[str, list[object]]) -> str:
        return self.verdict if verb == "created" else verb

    def audit_label(self) -> str:
        return f"annotation #{self.annotation_id}"


@event.listens_for(Session, "before_flush")
def _revisions_are_append_only(session: Session, _ctx: object, _instances: object) -> None:
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, AnnotationRevision) and (obj in session.deleted or session.is_modified(obj)):
            raise RuntimeError("annotation revisions are append-only: never update or delete one")
