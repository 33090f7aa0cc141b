"""A project's task totals: tasks, labeled tasks, annotations (sum of ``Task.annotation_count``) and
predictions (sum of ``Task.prediction_count``).

On PostgreSQL they are read from ``task_tally``, whose delta rows triggers on task keep exact for
every way tasks change (imports by COPY, deletes, count updates, project deletion; migration 0015):
a few rows by index, whatever the project's size. SQLite has no such triggers and aggregates the
tasks. Here rather than in one API's services because any page showing project totals can use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from workspace.workflow.models import Task, TaskTally

__all__ = ["TaskTotals", "project_totals"]


class TaskTotals(NamedTuple):
    tasks: int = 0
    labeled: int = 0  # tasks with at least one counted annotation
    annotations: int = 0
    predictions: int = 0


def project_totals(session: Session, project_ids: Sequence[int]) -> dict[int, TaskTotals]:
    """Each project's totals (zeros for a project without tasks), as of this transaction's view."""
    out = {pid: TaskTotals() for pid in project_ids}
    if not out:
        return out
    ids = list(out)
    if session.get_bind().dialect.name == "postgresql":
        query = (select(TaskTally.project_id, func.sum(TaskTally.tasks), func.sum(TaskTally.labeled),
                        func.sum(TaskTally.annotations), func.sum(TaskTally.predictions))
                 .where(TaskTally.project_id.in_(ids)).group_by(TaskTally.project_id))
    else:
        query = (select(Task.project_id, func.count(), func.sum(case((Task.annotation_count > 0, 1), else_=0)),
                        func.sum(Task.annotation_count), func.sum(Task.prediction_count))
                 .where(Task.project_id.in_(ids)).group_by(Task.project_id))
    for pid, *values in session.execute(query):
        out[pid] = TaskTotals(*(int(v or 0) for v in values))
    return out
