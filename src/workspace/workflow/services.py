"""Project use cases. Services flush, never commit; the request or job boundary commits."""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from workspace.tenancy.authz import policy
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Conflict, Invalid
from workspace.tenancy.repositories import fetch, granted_project_ids
from workspace.workflow.label_config import LabelConfig, LabelConfigError, parse_label_config, removed_labels
from workspace.workflow.models import DEFAULT_LABEL_CONFIG, DRAFT, Annotation, Project

__all__ = ["create_project", "get_project", "update_project", "delete_project", "check_label_config",
           "labels_in_use", "visible_projects", "count_visible_projects"]

MAX_CONFIG_BYTES = 256 * 1024


class ConfigInvalid(Invalid):
    """The label config has problems; ``problems`` lists them with line and column."""

    def __init__(self, error: LabelConfigError) -> None:
        first = error.problems[0]
        super().__init__(f"The label config has {len(error.problems)} problem(s); first: {first}",
                         field="label_config")
        self.problems = error.problems


def check_label_config(text: str) -> LabelConfig:
    """Parse a config or raise ``ConfigInvalid`` with every problem and its position."""
    if len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
        raise Invalid("The label config is larger than 256 KiB.", field="label_config")
    try:
        return parse_label_config(text)
    except LabelConfigError as exc:
        raise ConfigInvalid(exc) from None


def create_project(session: Session, ctx: TenantContext, title: str, description: str = "", *,
                   label_config: str | None = None, instructions: str = "") -> Project:
    title = (title or "").strip()
    if not title or len(title) > 200:
        raise Invalid("Give the project a title of 1-200 characters.", field="title")
    config = label_config if label_config and label_config.strip() else DEFAULT_LABEL_CONFIG
    check_label_config(config)
    project = Project(title=title, description=(description or "").strip(), label_config=config,
                      instructions=instructions or "", created_by_id=ctx.user_id)
    session.add(project)
    session.flush()
    return project


def get_project(session: Session, project_id: int) -> Project:
    """A project of the bound tenant, or NotFound (another tenant's id answers the same)."""
    return fetch(session, Project, project_id, what="Project")


def _visible(ctx: TenantContext) -> Select[tuple[Project]]:
    stmt = select(Project)
    if not ctx.has("project:read"):
        stmt = stmt.where(Project.id.in_(granted_project_ids(ctx.user_id)))
    return stmt


def visible_projects(session: Session, ctx: TenantContext) -> list[Project]:
    """The projects this member sees, newest first: every project with ``project:read`` tenant-wide,
    else (annotators, project-scoped roles) those granted to them directly or through a team.

    ``ctx`` is the context of a tenant-level request (no project in the path), so its permissions
    are the tenant-wide ones.
    """
    return list(session.scalars(_visible(ctx).order_by(Project.created_at.desc(), Project.id.desc())))


def count_visible_projects(session: Session, ctx: TenantContext) -> int:
    return session.scalar(select(func.count()).select_from(_visible(ctx).subquery())) or 0


def labels_in_use(session: Session, project_id: int) -> dict[str, set[str]]:
    """Label values that the project's annotations store, per control name (streamed, not loaded).
    Drafts do not count: the labeling page drops what no longer fits the config when it restores one."""
    used: dict[str, set[str]] = {}
    rows = session.execute(
        select(Annotation.result).where(Annotation.project_id == project_id, Annotation.status != DRAFT)
        .execution_options(yield_per=1000)
    )
    for (result,) in rows:
        for region in result or []:
            value = region.get("value") or {}
            kind = region.get("type")
            values = value.get(kind) if isinstance(value, dict) and kind else None
            if isinstance(values, list):
                used.setdefault(region.get("from_name", ""), set()).update(str(v) for v in values)
    return used


def update_project(session: Session, ctx: TenantContext, project_id: int, *, title: str | None = None,
                   description: str | None = None, instructions: str | None = None,
                   label_config: str | None = None) -> Project:
    """Validates everything first, then applies it: one save is one audited change."""
    project = get_project(session, project_id)
    if title is not None:
        title = title.strip()
        if not title or len(title) > 200:
            raise Invalid("Give the project a title of 1-200 characters.", field="title")
    new_config = label_config if label_config is not None and label_config != project.label_config else None
    if new_config is not None:
        _refuse_removing_used_labels(session, project, check_label_config(new_config))
    if title is not None:
        project.title = title
    if description is not None:
        project.description = description.strip()
    if instructions is not None:
        project.instructions = instructions
    if new_config is not None:
        project.label_config = new_config
    session.flush()
    return project


def _refuse_removing_used_labels(session: Session, project: Project, new: LabelConfig) -> None:
    dropped = removed_labels(parse_label_config(project.label_config), new)
    if not dropped:
        return
    in_use = labels_in_use(session, project.id)
    blocking = {control: sorted(values & in_use.get(control, set()))
                for control, values in dropped.items() if values & in_use.get(control, set())}
    if blocking:
        listing = "; ".join(f"{control}: {', '.join(values)}" for control, values in sorted(blocking.items()))
        raise Conflict(f"Annotations still use labels this config removes ({listing}). "
                       "Keep those labels, or change the annotations first.", field="label_config")


def delete_project(session: Session, ctx: TenantContext, project_id: int) -> None:
    """Deletes the project with its tasks, annotations and predictions (database cascade)."""
    project = get_project(session, project_id)
    policy.drop_project(session, ctx.tenant_id, project.id)
    session.delete(project)
    session.flush()
