"""Project use cases (the labeling core issue grows this module)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Invalid
from workspace.workflow.models import Project

__all__ = ["create_project"]


def create_project(session: Session, ctx: TenantContext, title: str, description: str = "") -> Project:
    title = (title or "").strip()
    if not title or len(title) > 200:
        raise Invalid("Give the project a title of 1-200 characters.", field="title")
    project = Project(title=title, description=(description or "").strip(), created_by_id=ctx.user_id)
    session.add(project)
    session.flush()
    return project
