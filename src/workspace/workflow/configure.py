"""Changing a project's workflow settings (overlap, distribution, reservations, skip policy, blind
overlap, review, rejected work, order, caps). Services flush, never commit.

The settings live in ``Project.workflow`` (JSON); ``Project`` is audited, so a save is one
``project.updated`` event with the old and new settings. Every field of a form or JSON body is
checked on its own so that each bad one gets its own message (shown next to it); nothing is saved
unless all of them are valid.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Invalid
from workspace.tenancy.repositories import fetch
from workspace.workflow.models import Project
from workspace.workflow.settings import WorkflowSettings, parse_workflow, workflow_settings

__all__ = ["SettingsInvalid", "FIELDS", "settings_of", "check_workflow", "update_workflow"]

FIELDS = ("overlap", "overlap_share", "distribution", "reservation_minutes", "skipped", "blind", "review",
          "review_share", "rejected_returns", "order", "annotator_cap")


class SettingsInvalid(Invalid):
    """One or more fields are invalid; ``errors`` maps each field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        first = next(iter(errors))
        super().__init__(errors[first] if len(errors) == 1 else
                         f"{len(errors)} settings need fixing; first: {errors[first]}", field=first)
        self.errors = errors


def settings_of(project: Project) -> WorkflowSettings:
    return workflow_settings(project.workflow)


def check_workflow(data: dict[str, Any], current: WorkflowSettings) -> WorkflowSettings:
    """The new settings, or SettingsInvalid with a message per bad field. Unknown keys are refused
    (a typo in an API call should not be silently ignored)."""
    errors: dict[str, str] = {}
    unknown = sorted(k for k in data if k not in FIELDS)
    for key in unknown:
        errors[key] = f"“{key}” is not a workflow setting; use: {', '.join(FIELDS)}."
    for key in FIELDS:
        if key in data:
            try:
                parse_workflow({key: data[key]}, current)
            except Invalid as exc:
                errors[exc.field or key] = exc.message
    if errors:
        raise SettingsInvalid(errors)
    return parse_workflow({k: data[k] for k in FIELDS if k in data}, current)


def update_workflow(session: Session, ctx: TenantContext, project_id: int, data: dict[str, Any]) -> WorkflowSettings:
    """Validate ``data`` (only the keys present change) and store the result on the project."""
    project = fetch(session, Project, project_id, what="Project")
    new = check_workflow(data, settings_of(project))
    stored = new.to_json()
    if stored != (project.workflow or {}):
        project.workflow = stored
        session.flush()
    return new
