"""Webhooks and their deliveries.

A ``Webhook`` is audited (who pointed the tenant's events where); its ``secret`` is stored sealed
(AES-GCM under a key derived from the application's secret key, ``sealed1:...``; signing needs the
secret itself, so it cannot be a one-way digest; see ``services.signing_secret``) and never written
to the audit chain. ``project_id`` None: a tenant-wide webhook, hearing the events of every project
of the tenant. A ``WebhookDelivery`` is the log of one event sent to one webhook: not audited (it
changes no tenant data), updated after every attempt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from workspace.db.base import Audited, Base, TenantOwned, Timestamped

__all__ = ["Webhook", "WebhookDelivery", "EVENTS", "PENDING", "SUCCEEDED", "FAILED"]

EVENTS = ("import.completed", "export.ready", "annotation.created", "annotation.updated")
PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"


class Webhook(TenantOwned, Timestamped, Audited, Base):
    __tablename__ = "webhook"
    __audit_type__ = "webhook"
    __audit_exclude__ = frozenset({"secret"})
    __table_args__ = (Index("ix_webhook_tenant_project", "tenant_id", "project_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))  # None: tenant-wide
    url: Mapped[str] = mapped_column(String(2000), nullable=False)
    events: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)
    secret: Mapped[str] = mapped_column(String(100), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))

    def audit_label(self) -> str:
        return self.url


class WebhookDelivery(TenantOwned, Base):
    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_webhook_id", "webhook_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhook.id", ondelete="CASCADE"), nullable=False)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=PENDING, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_excerpt: Mapped[str] = mapped_column(Text, default="", nullable=False)
    error: Mapped[str] = mapped_column(Text, default="", nullable=False)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
