"""Project use cases (the labeling core issue grows this module)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Invalid
from workspace.tenancy.repositories import fetch
from workspace.workflow.models import Project

__all__ = ["create_project", "get_project"]


def create_project(session: Session, ctx: TenantContext, title: str, description: str = "") -> Project:
    title = (title or "").strip()
    if not title or len(title) > 200:
        raise Invalid("Give the project a title of 1-200 characters.", field="title")
    project = Project(title=title, description=(description or "").strip(), created_by_id=ctx.user_id)
    session.add(project)
    session.flush()
    return project


def get_project(session: Session, project_id: int) -> Project:
    """A project of the bound tenant, or NotFound (another tenant's id answers the same)."""
    return fetch(session, Project, project_id, what="Project")
