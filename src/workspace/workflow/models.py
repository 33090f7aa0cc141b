"""Workflow models. Projects have integer ids (Label Studio's API treats them as integers)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from workspace.db.base import Audited, Base, TenantOwned, Timestamped

__all__ = ["Project"]


class Project(TenantOwned, Timestamped, Audited, Base):
    __tablename__ = "project"
    __audit_type__ = "project"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
