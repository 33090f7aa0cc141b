"""A project's ML backends.

``MLBackend`` is audited (who pointed a project at which model, every setting change, every new model
version); the trained model's bytes (``model_blob``) and their signature are bookkeeping, never
written to the audit chain, and loaded only when a job needs them (deferred column).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from workspace.db.base import Audited, Base, TenantOwned, Timestamped

__all__ = ["MLBackend", "KINDS", "CLASSIFIER", "TAGGER", "REMOTE", "READY", "UNTRAINED", "ERROR"]

CLASSIFIER, TAGGER, REMOTE = "builtin_classifier", "builtin_tagger", "remote"
KINDS = {CLASSIFIER: "Built-in text classifier", TAGGER: "Built-in dictionary tagger",
         REMOTE: "External ML backend (Label Studio protocol)"}
READY, UNTRAINED, ERROR = "ready", "untrained", "error"


class MLBackend(TenantOwned, Timestamped, Audited, Base):
    __tablename__ = "ml_backend"
    __audit_type__ = "ml_backend"
    __audit_exclude__ = frozenset({"model_blob", "model_signature", "updated_at"})
    __table_args__ = (Index("ix_ml_backend_project_id", "project_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    # tagger: {"terms": text, "patterns": text}; remote: {"url": str, "timeout": seconds}; classifier: {}
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    model_version: Mapped[str] = mapped_column(String(120), default="", nullable=False)
    retrain_every: Mapped[int | None] = mapped_column(Integer)  # classifier: retrain after this many new annotations
    trained_on: Mapped[int] = mapped_column(Integer, default=0, nullable=False)  # labeled annotations at the last training
    status: Mapped[str] = mapped_column(String(16), default=READY, nullable=False)
    last_error: Mapped[str] = mapped_column(Text, default="", nullable=False)
    model_blob: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    model_signature: Mapped[str] = mapped_column(String(64), default="", nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def audit_label(self) -> str:
        return self.name

    @property
    def kind_label(self) -> str:
        return KINDS.get(self.kind, self.kind)
