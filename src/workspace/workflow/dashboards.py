"""Dashboard figures: aggregate SQL only (GROUP BY over indexed columns), so a page costs a few
queries whatever the project's size; no HTTP here.

Every function takes ``user_id``: ``None`` for everyone's numbers (report:read), or one member's id
for their own numbers only (an annotator's view: the filter is in the SQL, so nobody else's rows
are ever read).

Task states (:func:`progress`), in this order of precedence:

* ``unlabeled`` — no counted annotation;
* ``rejected`` — at least one of its annotations is currently rejected (waiting for its fix);
* ``in_progress`` — fewer counted annotations than the task wants (the project's overlap);
* ``accepted`` — as many as it wants, and every one of them accepted;
* ``submitted`` — as many as it wants, some still waiting for review (or no review).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Integer, case, cast, func, literal, select, tuple_
from sqlalchemy.orm import Session

from workspace.lib.timeutil import utcnow
from workspace.tenancy.models import User
from workspace.workflow.agreement import ProjectAgreement, choices_of, summarize
from workspace.workflow.label_config import LabelConfigError, parse_label_config
from workspace.workflow.models import ACCEPTED, COUNTED_STATUSES, REJECTED, Annotation, Project, Task
from workspace.workflow.review_models import Review
from workspace.workflow.settings import workflow_settings
from workspace.workflow.tally import project_totals

__all__ = ["STATES", "progress", "throughput", "lead_times", "acceptance", "agreement_histogram",
           "gt_accuracy", "choices_agreement", "tenant_overview", "emails", "Histogram", "PersonFigure",
           "ProjectRow", "THROUGHPUT_DAYS", "AGREEMENT_SAMPLE"]

STATES = {"unlabeled": "Unlabeled", "in_progress": "In progress", "submitted": "Submitted",
          "accepted": "Accepted", "rejected": "Rejected"}
THROUGHPUT_DAYS = 30
AGREEMENT_SAMPLE = 2000  # project-level kappa/alpha: the latest tasks with overlap
_COUNTED = sorted(COUNTED_STATUSES)


def _wanted(project: Project, task_id: Any) -> ColumnElement[Any]:
    """The annotations a task wants, in SQL (the same stable hash as WorkflowSettings.wants)."""
    settings = workflow_settings(project.workflow)
    if settings.overlap <= 1 or settings.overlap_share >= 100:
        return literal(settings.overlap)
    return case(((task_id * 2654435761) % 100 < settings.overlap_share, settings.overlap), else_=1)


def progress(session: Session, project: Project) -> dict[str, int]:
    """Tasks per state (see the module doc); every state present, zeros included.

    Two aggregates and no join (a join of a million tasks with their annotations is the slow part):
    the project's task count, and one GROUP BY over its counted annotations that classifies each
    labeled task; unlabeled = tasks − labeled tasks."""
    total = project_totals(session, [project.id])[project.id].tasks  # kept by triggers on PostgreSQL
    per_task = (select(Annotation.task_id.label("task_id"), func.count().label("n"),
                       func.sum(case((Annotation.status == ACCEPTED, 1), else_=0)).label("accepted"),
                       func.sum(case((Annotation.status == REJECTED, 1), else_=0)).label("rejected"))
                .where(Annotation.project_id == project.id, Annotation.status.in_(_COUNTED))
                .group_by(Annotation.task_id).subquery())
    state = case((per_task.c.rejected > 0, "rejected"), (per_task.c.n < _wanted(project, per_task.c.task_id), "in_progress"),
                 (per_task.c.accepted >= per_task.c.n, "accepted"), else_="submitted").label("state")
    out = dict.fromkeys(STATES, 0)
    for name, count in session.execute(select(state, func.count()).select_from(per_task).group_by(state)):
        out[name] = int(count)
    out["unlabeled"] = max(0, int(total) - sum(out.values()))
    return out


def _day(session: Session, column: Any) -> ColumnElement[Any]:
    """A timestamp's UTC day as ``YYYY-MM-DD`` text."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD").label("day")
    return func.strftime("%Y-%m-%d", column).label("day")


def throughput(session: Session, project_id: int, *, user_id: int | None = None, days: int = THROUGHPUT_DAYS,
               today: date | None = None) -> tuple[list[date], dict[int, list[int]]]:
    """Counted annotations created per annotator per UTC day over the last ``days`` days (today
    included): the days, and for each annotator one count per day."""
    end = today or utcnow().date()
    start = end - timedelta(days=days - 1)
    since = datetime(start.year, start.month, start.day, tzinfo=UTC)
    day = _day(session, Annotation.created_at)
    where = [Annotation.project_id == project_id, Annotation.status.in_(_COUNTED), Annotation.created_at >= since,
             Annotation.completed_by_id.is_not(None)]
    if user_id is not None:
        where.append(Annotation.completed_by_id == user_id)
    stmt = select(Annotation.completed_by_id, day, func.count()).where(*where).group_by(Annotation.completed_by_id, day)
    axis = [start + timedelta(days=n) for n in range(days)]
    index = {d.isoformat(): n for n, d in enumerate(axis)}
    series: dict[int, list[int]] = defaultdict(lambda: [0] * days)
    for uid, raw_day, count in session.execute(stmt):
        n = index.get(str(raw_day)[:10])
        if n is not None:
            series[int(uid)][n] += int(count)
    return axis, dict(series)


@dataclass
class PersonFigure:
    user_id: int
    value: float | None
    count: int
    extra: dict[str, Any] = field(default_factory=dict)


def lead_times(session: Session, project_id: int, *, user_id: int | None = None) -> tuple[float | None, list[PersonFigure]]:
    """Median seconds per task (``lead_time`` of counted annotations): overall, and per annotator.
    PostgreSQL: ``percentile_cont`` over grouping sets, one pass. SQLite (embedded mode): the counts
    per annotator, then the middle row(s) of each by ORDER BY ... LIMIT/OFFSET."""
    where = [Annotation.project_id == project_id, Annotation.status.in_(_COUNTED), Annotation.lead_time.is_not(None),
             Annotation.completed_by_id.is_not(None)]
    if user_id is not None:
        where.append(Annotation.completed_by_id == user_id)

    def median_of(extra: list[ColumnElement[bool]], n: int) -> float:
        # The middle one or two values: an ORDER BY ... LIMIT/OFFSET on that member's rows.
        values = list(session.scalars(select(Annotation.lead_time).where(*where, *extra).order_by(Annotation.lead_time)
                                      .limit(2 - n % 2).offset((n - 1) // 2)))
        return sum(values) / len(values)

    if session.get_bind().dialect.name == "postgresql":  # one sort per annotator, no window pass
        median = func.percentile_cont(0.5).within_group(Annotation.lead_time)
        rows = session.execute(select(Annotation.completed_by_id, median, func.count()).where(*where)
                               .group_by(func.grouping_sets(tuple_(Annotation.completed_by_id), tuple_()))).all()
        overall_row = next((m for w, m, _n in rows if w is None), None)
        people = [PersonFigure(int(w), float(m), int(n)) for w, m, n in rows if w is not None]
        return (float(overall_row) if overall_row is not None else None), sorted(people, key=lambda p: p.user_id)
    counts = [(int(w), int(n)) for w, n in session.execute(
        select(Annotation.completed_by_id, func.count()).where(*where).group_by(Annotation.completed_by_id))]
    total = sum(n for _w, n in counts)
    people = [PersonFigure(w, median_of([Annotation.completed_by_id == w], n), n) for w, n in counts]
    return (median_of([], total) if total else None), sorted(people, key=lambda p: p.user_id)


def acceptance(session: Session, project_id: int, *, user_id: int | None = None) -> list[PersonFigure]:
    """Per annotator: the share of review verdicts on their annotations that accepted them (accepted
    or fixed-and-accepted) out of all verdicts; every verdict counts, so a rejection stays counted
    after the annotation is fixed and resubmitted. ``value`` None: nothing reviewed yet."""
    ok = func.sum(case((Review.verdict.in_(("accepted", "fixed")), 1), else_=0))
    bad = func.sum(case((Review.verdict == "rejected", 1), else_=0))
    where = [Review.project_id == project_id, Annotation.completed_by_id.is_not(None)]
    if user_id is not None:
        where.append(Annotation.completed_by_id == user_id)
    stmt = (select(Annotation.completed_by_id, ok, bad).join(Annotation, Annotation.id == Review.annotation_id)
            .where(*where).group_by(Annotation.completed_by_id).order_by(Annotation.completed_by_id))
    out = []
    for uid, accepted, rejected in session.execute(stmt):
        accepted, rejected = int(accepted or 0), int(rejected or 0)
        total = accepted + rejected
        out.append(PersonFigure(int(uid), accepted / total if total else None, total,
                                {"accepted": accepted, "rejected": rejected}))
    return out


@dataclass
class Histogram:
    bins: list[tuple[float, float, int]]  # (from, to, tasks): ten bins of 0.1; the last includes 1.0
    tasks: int
    mean: float | None


def agreement_histogram(session: Session, project_id: int) -> Histogram:
    """Distribution of the stored per-task agreement (tasks with two or more annotations)."""
    bucket = case((Task.agreement >= 1.0, 9), else_=cast(Task.agreement * 10, Integer)).label("bucket")
    rows = session.execute(select(bucket, func.count()).where(Task.project_id == project_id,
                                                               Task.agreement.is_not(None)).group_by(bucket))
    counts = [0] * 10
    for b, count in rows:
        counts[max(0, min(9, int(b)))] += int(count)
    total, mean = session.execute(select(func.count(), func.avg(Task.agreement))
                                  .where(Task.project_id == project_id, Task.agreement.is_not(None))).one()
    return Histogram([(n / 10, (n + 1) / 10, counts[n]) for n in range(10)], int(total or 0),
                     float(mean) if mean is not None else None)


def gt_accuracy(session: Session, project_id: int, *, user_id: int | None = None) -> list[PersonFigure]:
    """Per annotator: mean agreement of their counted annotations with the task's ground truth."""
    where = [Annotation.project_id == project_id, Annotation.gt_score.is_not(None),
             Annotation.status.in_(_COUNTED), Annotation.completed_by_id.is_not(None)]
    if user_id is not None:
        where.append(Annotation.completed_by_id == user_id)
    stmt = (select(Annotation.completed_by_id, func.avg(Annotation.gt_score), func.count()).where(*where)
            .group_by(Annotation.completed_by_id).order_by(Annotation.completed_by_id))
    return [PersonFigure(int(uid), float(avg), int(n)) for uid, avg, n in session.execute(stmt)]


def choices_agreement(session: Session, project: Project, *, sample: int = AGREEMENT_SAMPLE) -> list[ProjectAgreement]:
    """Krippendorff's alpha, Fleiss' kappa and pairwise Cohen's kappa for each single-choice control,
    over the latest ``sample`` tasks with two or more annotations (bounded work at any size)."""
    try:
        config = parse_label_config(project.label_config)
    except LabelConfigError:
        return []
    controls = [c.name for c in config.controls
                if c.result_type == "choices" and c.options.get("choice", "single") != "multiple"]
    if not controls:
        return []
    task_ids = list(session.scalars(select(Task.id).where(Task.project_id == project.id, Task.annotation_count >= 2)
                                    .order_by(Task.id.desc()).limit(sample)))
    if not task_ids:
        return []
    rows = session.execute(select(Annotation.task_id, Annotation.completed_by_id, Annotation.result)
                           .where(Annotation.task_id.in_(task_ids), Annotation.status.in_(_COUNTED),
                                  Annotation.completed_by_id.is_not(None)).order_by(Annotation.id))
    ratings: dict[str, dict[int, dict[int, str]]] = {c: defaultdict(dict) for c in controls}
    for task_id, uid, result in rows:
        for control in controls:
            picked = choices_of(result, control)
            if picked and len(picked) == 1:
                ratings[control][task_id][uid] = next(iter(picked))
    return [summarize(c, ratings[c]) for c in controls if any(len(r) >= 2 for r in ratings[c].values())]


def emails(session: Session, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    return {uid: email for uid, email in session.execute(select(User.id, User.email).where(User.id.in_(sorted(user_ids))))}


@dataclass
class ProjectRow:
    project: Project
    tasks: int = 0
    labeled: int = 0
    annotations: int = 0
    accepted: int = 0
    rejected: int = 0
    agreement: float | None = None
    agreement_tasks: int = 0

    @property
    def done_share(self) -> float:
        return self.labeled / self.tasks if self.tasks else 0.0

    @property
    def acceptance(self) -> float | None:
        total = self.accepted + self.rejected
        return self.accepted / total if total else None


def tenant_overview(session: Session, projects: list[Project]) -> list[ProjectRow]:
    """One row per project: tasks, labeled tasks, counted annotations, review verdicts, mean agreement —
    three GROUP BY queries for all the projects together."""
    rows = {p.id: ProjectRow(p) for p in projects}
    if not rows:
        return []
    ids = list(rows)
    for pid, tasks, labeled, agreement, agreed in session.execute(
            select(Task.project_id, func.count(), func.sum(case((Task.annotation_count > 0, 1), else_=0)),
                   func.avg(Task.agreement), func.count(Task.agreement))
            .where(Task.project_id.in_(ids)).group_by(Task.project_id)):
        row = rows[pid]
        row.tasks, row.labeled, row.agreement_tasks = int(tasks), int(labeled or 0), int(agreed or 0)
        row.agreement = float(agreement) if agreement is not None else None
    for pid, count in session.execute(select(Annotation.project_id, func.count())
                                      .where(Annotation.project_id.in_(ids), Annotation.status.in_(_COUNTED))
                                      .group_by(Annotation.project_id)):
        rows[pid].annotations = int(count)
    for pid, ok, bad in session.execute(
            select(Review.project_id, func.sum(case((Review.verdict.in_(("accepted", "fixed")), 1), else_=0)),
                   func.sum(case((Review.verdict == "rejected", 1), else_=0)))
            .where(Review.project_id.in_(ids)).group_by(Review.project_id)):
        rows[pid].accepted, rows[pid].rejected = int(ok or 0), int(bad or 0)
    return list(rows.values())
