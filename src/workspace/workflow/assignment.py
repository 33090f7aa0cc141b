"""Assigning tasks to members as annotator or reviewer, in bulk from the data manager (no HTTP).

A selection is either task ids (already checked by :func:`workspace.workflow.datamanager.selected_ids`)
or every task matching a data manager filter. Assignees are members and/or teams.

**A team is expanded to its members at assignment time** (each row keeps the team it came through,
``team_id``). Why: the queue, the review stream and the data manager then ask one indexed question,
"is this task assigned to this user", and a later change to a team never silently moves work that was
already handed out; unassigning a team removes the rows of its current members. The audit event lists
the users the team expanded to.

Each bulk action writes **one** audit event (``task.bulk_assigned`` / ``task.bulk_unassigned``) with
its counts and selection, like an import; the rows themselves are not audited one by one.
Assignments are inserted with ``INSERT ... SELECT`` per assignee, so assigning every task matching a
filter costs a statement per assignee, not a round trip per task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import DateTime, Integer, Select, String, delete, exists, func, insert, literal, null, select
from sqlalchemy.orm import Session

from workspace.audit.chain import record
from workspace.lib.timeutil import utcnow
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Invalid
from workspace.tenancy.models import MEMBER_ACTIVE, Membership, ProjectGrant, Team, TeamMember, User
from workspace.tenancy.permissions import is_project_scoped
from workspace.tenancy.repositories import fetch
from workspace.tenancy.scoping import bulk_tenant_id
from workspace.workflow import datamanager as dm
from workspace.workflow.models import ANNOTATOR, REVIEWER, Project, Task, TaskAssignment

__all__ = ["ROLES", "Assignees", "assigned_task_ids", "has_assignments", "resolve_assignees", "assign_tasks",
           "unassign_tasks", "assignees_of", "assignee_choices"]

ROLES = {ANNOTATOR: "Annotator", REVIEWER: "Reviewer"}
MAX_ASSIGNEES = 500


def assigned_task_ids(project_id: int, user_id: int, role: str = ANNOTATOR) -> Select[tuple[int]]:
    """Ids of the project's tasks assigned to the user in ``role`` (a select, to use as a subquery)."""
    return select(TaskAssignment.task_id).where(TaskAssignment.project_id == project_id,
                                                TaskAssignment.user_id == user_id, TaskAssignment.role == role)


def has_assignments(session: Session, project_id: int, role: str = ANNOTATOR) -> bool:
    """Whether any task of the project is assigned in ``role`` (the review stream uses assignments
    only when the project has some)."""
    return bool(session.scalar(select(exists().where(TaskAssignment.project_id == project_id,
                                                     TaskAssignment.role == role))))


@dataclass(frozen=True)
class Assignees:
    """Who an action is for: ``users`` maps each user id to the team it came through (or None)."""

    users: dict[int, int | None]
    user_ids: list[int]  # chosen directly
    team_ids: list[int]  # chosen as teams

    def describe(self) -> dict[str, Any]:
        return {"users": sorted(self.users), "chosen_users": self.user_ids, "teams": self.team_ids}


def _ids(raw: Sequence[str | int], what: str) -> list[int]:
    out: set[int] = set()
    for value in raw:
        text = str(value).strip()
        if not text:
            continue
        if not text.isdigit() or len(text) > 12:
            raise Invalid(f"Pick {what} from the list.", field="assignees")
        out.add(int(text))
    return sorted(out)


def resolve_assignees(session: Session, project_id: int, user_ids: Sequence[str | int],
                      team_ids: Sequence[str | int]) -> Assignees:
    """Members and teams of the bound tenant, teams expanded to their active members.

    Refused (Invalid naming them): a user who is not an active member here, a team that does not
    exist here (another tenant's looks the same), an empty choice, and a member whose role reaches
    projects only through grants (annotators) without a grant on this project — they could not open
    the task, so assigning it would strand it.
    """
    users, teams = _ids(user_ids, "members"), _ids(team_ids, "teams")
    if not users and not teams:
        raise Invalid("Choose at least one member or team to assign.", field="assignees")
    chosen: dict[int, int | None] = {}
    if users:
        active = {m.user_id: m for m in session.scalars(
            select(Membership).where(Membership.user_id.in_(users), Membership.status == MEMBER_ACTIVE)).unique()}
        missing = [u for u in users if u not in active]
        if missing:
            raise Invalid("Only active members of this organization can be assigned tasks.", field="assignees")
        chosen.update({u: None for u in users})
    for team_id in teams:
        fetch(session, Team, team_id, what="Team")
        rows = session.execute(
            select(TeamMember.user_id).join(Membership, Membership.user_id == TeamMember.user_id)
            .where(TeamMember.team_id == team_id, Membership.status == MEMBER_ACTIVE)).all()
        for (user_id,) in rows:
            chosen.setdefault(user_id, team_id)
    if not chosen:
        raise Invalid("The chosen team has no active members yet: add members to it first.", field="assignees")
    if len(chosen) > MAX_ASSIGNEES:
        raise Invalid(f"Assign to at most {MAX_ASSIGNEES} people at once.", field="assignees")
    _refuse_without_access(session, project_id, chosen)
    return Assignees(chosen, users, teams)


def _refuse_without_access(session: Session, project_id: int, chosen: dict[int, int | None]) -> None:
    scoped = [m for m in session.scalars(select(Membership).where(Membership.user_id.in_(list(chosen)))).unique()
              if is_project_scoped(m.role)]
    if not scoped:
        return
    grants = session.execute(select(ProjectGrant.user_id, ProjectGrant.team_id).where(
        ProjectGrant.project_id == project_id)).all()
    direct = {u for u, _t in grants if u is not None}
    granted_teams = {t for _u, t in grants if t is not None}
    via_team = {u for (u,) in session.execute(select(TeamMember.user_id).where(
        TeamMember.team_id.in_(granted_teams), TeamMember.user_id.in_([m.user_id for m in scoped])))
                } if granted_teams else set()
    lacking = sorted(m.user.email for m in scoped if m.user_id not in direct and m.user_id not in via_team)
    if lacking:
        raise Invalid(f"{', '.join(lacking[:5])}{' and others' if len(lacking) > 5 else ''} cannot open this "
                      "project: grant them a role on the project page first.", field="assignees")


def _selection(session: Session, project_id: int, ids: Sequence[int] | None, filters: dm.Filters | None,
               only_own_of: int | None) -> tuple[Select[tuple[int]], dict[str, Any]]:
    if ids is not None:
        return (select(Task.id).where(Task.project_id == project_id, Task.id.in_(list(ids))),
                {"ids": list(ids)[:1000]})
    if filters is not None:
        return (select(Task.id).where(*dm.conditions(session, project_id, filters, only_own_of=only_own_of)),
                {"all_matching": True, **filters.query(with_sort=False)})
    raise Invalid("Select the tasks to assign first.")


def _role(role: str) -> str:
    if role not in ROLES:
        raise Invalid(f"Assign as one of: {', '.join(ROLES)}; “{role}” is not a role here.", field="role")
    return role


def assign_tasks(session: Session, ctx: TenantContext, project_id: int, assignees: Assignees, role: str, *,
                 ids: Sequence[int] | None = None, filters: dm.Filters | None = None,
                 only_own_of: int | None = None) -> dict[str, int]:
    """Assign the selected tasks to every assignee in ``role``; existing assignments stay as they
    are. Returns ``{"tasks": n selected, "added": n new rows, "assignees": n people}``."""
    role = _role(role)
    project = fetch(session, Project, project_id, what="Project")
    chosen, described = _selection(session, project.id, ids, filters, only_own_of)
    tasks = session.scalar(select(func.count()).select_from(chosen.subquery())) or 0
    tenant_id, now = bulk_tenant_id(session), utcnow()
    added = 0
    for user_id, team_id in sorted(assignees.users.items()):
        already = exists().where(TaskAssignment.task_id == Task.id, TaskAssignment.user_id == user_id,
                                 TaskAssignment.role == role)
        source = select(literal(tenant_id, Integer), literal(project.id, Integer), Task.id,
                        literal(user_id, Integer), literal(role, String),
                        null() if team_id is None else literal(team_id, Integer),
                        null() if ctx.user_id is None else literal(ctx.user_id, Integer),
                        literal(now, DateTime(timezone=True))).where(
            Task.id.in_(chosen), ~already)
        # Counted first: drivers disagree on the row count of INSERT ... SELECT (psycopg says -1).
        fresh = session.scalar(select(func.count()).select_from(source.subquery())) or 0
        if fresh:
            session.execute(insert(TaskAssignment.__table__).from_select(
                ["tenant_id", "project_id", "task_id", "user_id", "role", "team_id", "assigned_by_id", "created_at"],
                source))
            added += fresh
    counts = {"tasks": tasks, "added": added, "assignees": len(assignees.users)}
    record(session, "task.bulk_assigned", tenant_id=ctx.tenant_id, object_type="project", object_id=project.id,
           object_label=project.title, changes={"role": role, **counts, **assignees.describe(), "selection": described})
    return counts


def unassign_tasks(session: Session, ctx: TenantContext, project_id: int, assignees: Assignees, role: str, *,
                   ids: Sequence[int] | None = None, filters: dm.Filters | None = None,
                   only_own_of: int | None = None) -> dict[str, int]:
    """Remove the assignees' ``role`` assignments of the selected tasks (their annotations stay)."""
    role = _role(role)
    project = fetch(session, Project, project_id, what="Project")
    chosen, described = _selection(session, project.id, ids, filters, only_own_of)
    tasks = session.scalar(select(func.count()).select_from(chosen.subquery())) or 0
    result = session.execute(
        delete(TaskAssignment).where(TaskAssignment.project_id == project.id, TaskAssignment.role == role,
                                     TaskAssignment.user_id.in_(list(assignees.users)),
                                     TaskAssignment.task_id.in_(chosen))
        .execution_options(synchronize_session=False))
    removed = int(result.rowcount or 0)  # type: ignore[attr-defined]
    counts = {"tasks": tasks, "removed": removed, "assignees": len(assignees.users)}
    record(session, "task.bulk_unassigned", tenant_id=ctx.tenant_id, object_type="project", object_id=project.id,
           object_label=project.title, changes={"role": role, **counts, **assignees.describe(), "selection": described})
    return counts


def assignees_of(session: Session, task_ids: Sequence[int], *, only: int | None = None) -> dict[int, list[tuple[str, str]]]:
    """Per task id, its assignees as ``(email, role)`` sorted (one query for a page of tasks);
    ``only``: just that member's own assignments (what an annotator may see)."""
    out: dict[int, list[tuple[str, str]]] = {}
    if not task_ids:
        return out
    stmt = (select(TaskAssignment.task_id, User.email, TaskAssignment.role)
            .join(User, User.id == TaskAssignment.user_id)
            .where(TaskAssignment.task_id.in_(list(task_ids)))
            .order_by(TaskAssignment.task_id, TaskAssignment.role, User.email))
    if only is not None:
        stmt = stmt.where(TaskAssignment.user_id == only)
    for task_id, email, role in session.execute(stmt):
        out.setdefault(task_id, []).append((email, role))
    return out


def assignee_choices(session: Session) -> tuple[list[tuple[int, str, str]], list[tuple[int, str, int]]]:
    """Active members ``(user id, email, name)`` and teams ``(id, name, member count)`` to pick from."""
    members = [(uid, email, name) for uid, email, name in session.execute(
        select(User.id, User.email, User.name).join(Membership, Membership.user_id == User.id)
        .where(Membership.status == MEMBER_ACTIVE).order_by(User.email))]
    counts = dict(session.execute(select(TeamMember.team_id, func.count(TeamMember.id)).group_by(TeamMember.team_id)).all())
    teams = [(t.id, t.name, int(counts.get(t.id, 0))) for t in session.scalars(select(Team).order_by(Team.name))]
    return members, teams
