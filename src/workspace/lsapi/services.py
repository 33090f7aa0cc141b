"""The Label Studio API's use cases, composed from the workflow services (no HTTP here).

Everything that the pages also do goes through the same service (projects, imports, submitting and
skipping annotations, deleting tasks, exports), so the API gets the same rules, audit events and
webhooks. What only the API does is here: paging by page number, task create/update, annotation
update/delete by id, predictions written one by one. Services flush, never commit.
"""

from __future__ import annotations

import io
import json
import secrets
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import msgspec
from sqlalchemy import BigInteger, Text, any_, bindparam, cast, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.orm import Session, make_transient_to_detached

from workspace.audit.chain import record
from workspace.lib.timeutil import utcnow
from workspace.lsapi.serializers import ProjectCounters, UserInfo
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Forbidden, Invalid, NotFound
from workspace.tenancy.models import User
from workspace.tenancy.repositories import fetch
from workspace.tenancy.scoping import bulk_tenant_id
from workspace.workflow.annotations import skip_task, submit_annotation, validate_draft
from workspace.workflow.datamanager import Filters, conditions, delete_tasks, own_tasks
from workspace.workflow.imports import import_tasks
from workspace.workflow.label_config import LabelConfig, parse_label_config
from workspace.workflow.models import (
    COUNTED_STATUSES,
    DRAFT,
    REJECTED,
    SKIPPED,
    SUBMITTED,
    Annotation,
    Prediction,
    Project,
    Task,
    TaskTally,
)
from workspace.workflow.revisions import parse_version
from workspace.workflow.settings import workflow_settings
from workspace.workflow.tally import TaskTotals, project_totals

__all__ = ["ImportResult", "TaskPage", "import_json", "task_page", "project_counters", "users_by_id",
           "inner_id", "visible_task", "task_and_project", "prediction_target", "PredictionTarget", "task_children",
           "create_task", "update_task", "delete_task", "create_annotation", "update_annotation", "delete_annotation", "annotation_of", "create_prediction",
           "update_prediction", "delete_prediction", "prediction_of", "import_predictions", "maximum_annotations",
           "visible_annotations"]

MAX_PREDICTION_BYTES = 5_000_000
# An API client sends its tasks in requests of a few thousand (Label Studio's SDK and scripts: 10,000
# at most is usual): written as one batch, a request takes one inner-id block and one COPY.
API_IMPORT_BATCH = 10_000


def maximum_annotations(project: Project) -> int:
    return workflow_settings(project.workflow).overlap


# --- import ------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    task_count: int
    annotation_count: int
    prediction_count: int
    task_ids: list[int]


def import_json(session: Session, ctx: TenantContext, project_id: int, body: bytes, *, want_ids: bool) -> ImportResult:
    """Import a JSON array of tasks (bare data or ``{"data", "annotations", "predictions"}``) through the
    file importer: validated whole before anything stays, one audited import batch. The same body
    twice is two imports (an API client re-sending is not a duplicate upload)."""
    batch = import_tasks(session, ctx, project_id, io.BytesIO(body), "api-import.json", format="json",
                         allow_duplicate=True, batch_size=API_IMPORT_BATCH)
    ids: list[int] = []
    if want_ids:
        ids = list(session.scalars(select(Task.id).where(Task.import_id == batch.id).order_by(Task.id)))
    return ImportResult(batch.task_count, batch.annotation_count, batch.prediction_count, ids)


# --- tasks -------------------------------------------------------------------------------------


class TaskRow(NamedTuple):
    """A listed task as plain values (a page of them costs a fraction of loading ORM objects); ``data``
    is the task's JSON text as stored, sent on as is."""

    id: int
    project_id: int
    created_at: datetime
    annotation_count: int
    prediction_count: int
    inner_id: int | None
    data: msgspec.Raw


_TASK_ROW = (Task.id, Task.project_id, Task.created_at, Task.annotation_count, Task.prediction_count, Task.inner_id,
             cast(Task.data, Text))
_TASK_ROWS_BY_ID = select(*_TASK_ROW).where(
    Task.id == any_(bindparam("task_ids", type_=ARRAY(BigInteger)))).order_by(Task.id)  # PostgreSQL


def _task_rows(rows: Iterable[Any]) -> list[TaskRow]:
    return [TaskRow(*row[:6], msgspec.Raw(row[6].encode())) for row in rows]


@dataclass
class TaskPage:
    tasks: list[TaskRow]
    offset: int
    total: int
    total_annotations: int
    total_predictions: int


def _visibility(ctx: TenantContext) -> int | None:
    """Whose tasks a member sees (as in the data manager): all with ``project:review``, else their own."""
    return None if ctx.has("project:review") else ctx.user_id


class _TaskOrder:
    """Per process: the task ids, in order, of the large projects whose tasks were listed lately, so
    that page K of a project is a slice instead of an ``OFFSET`` scan over up to N index entries.

    Each list is stamped with the project's ``(task_seq, tasks)``, read in the same statement as the
    ids: every insert of a task raises ``task_seq`` (inner ids are never reused) and every delete
    lowers the count, so an equal stamp, read again at each request, means the very same task set.
    Bounded (least recently used go first); PostgreSQL only (the stamp's count is the kept tally)."""

    MIN_TASKS = 20_000  # below this an OFFSET scan is cheap enough
    MAX_IDS = 4_000_000  # about 32 MB per process

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lists: OrderedDict[tuple[int, int], tuple[tuple[int, int], array[int]]] = OrderedDict()

    def page(self, session: Session, tenant_id: int, project_id: int, offset: int, limit: int
             ) -> tuple[TaskTotals, list[int] | None]:
        """The project's totals and, for a large project, the ids of the page (None: query them)."""
        seq, *counts = session.execute(_STAMP, {"project_id": project_id}).one()
        totals = TaskTotals(*(int(c) for c in counts))
        if totals.tasks < self.MIN_TASKS:
            return totals, None
        key, stamp = (tenant_id, project_id), (int(seq), totals.tasks)
        with self._lock:
            found = self._lists.get(key)
            if found is not None and found[0] == stamp:
                self._lists.move_to_end(key)
                return totals, list(found[1][offset:offset + limit])
        sums = _tally_sums()
        ids_query = (select(func.array_agg(aggregate_order_by(Task.id, Task.id)))
                     .where(Task.project_id == bindparam("project_id")).scalar_subquery())
        seq, tasks, ids = session.execute(
            select(Project.task_seq, sums.c.tasks, ids_query).where(Project.id == bindparam("project_id")),
            {"project_id": project_id}).one()
        ordered = array("q", ids or [])
        if (int(seq), int(tasks)) == stamp and len(ordered) == stamp[1] and len(ordered) <= self.MAX_IDS:
            with self._lock:
                self._lists[key] = (stamp, ordered)
                self._lists.move_to_end(key)
                while sum(len(v[1]) for v in self._lists.values()) > self.MAX_IDS:
                    self._lists.popitem(last=False)
        return totals, list(ordered[offset:offset + limit])


def _tally_sums() -> Any:
    return select(*(func.coalesce(func.sum(col), 0).label(col.key) for col in (
        TaskTally.tasks, TaskTally.labeled, TaskTally.annotations, TaskTally.predictions))
    ).where(TaskTally.project_id == bindparam("project_id")).subquery()


_STAMP = select(Project.task_seq, *_tally_sums().c).where(Project.id == bindparam("project_id"))  # built once
_task_order = _TaskOrder()


def task_page(session: Session, ctx: TenantContext, project_ids: Sequence[int], page: int, page_size: int, *,
              only_annotated: bool = False) -> TaskPage:
    """Page ``page`` (from 1) of these projects' tasks by id; a page past the end raises NotFound."""
    if page < 1 or page_size < 1:
        raise NotFound("Invalid page.")
    owner = _visibility(ctx)
    if len(project_ids) == 1:
        where = conditions(session, project_ids[0], Filters(state="labeled" if only_annotated else "all"),
                           only_own_of=owner)
    else:
        where = [Task.project_id.in_(list(project_ids))]
        if owner is not None:
            where.append(own_tasks(owner))
        if only_annotated:
            where.append(Task.annotation_count > 0)
    offset = (page - 1) * page_size
    page_ids: list[int] | None = None
    everything = owner is None and not only_annotated
    if everything and len(project_ids) == 1 and session.get_bind().dialect.name == "postgresql":
        one, page_ids = _task_order.page(session, ctx.tenant_id, project_ids[0], offset, page_size)
        total, annotations, predictions = one.tasks, one.annotations, one.predictions
    elif everything:
        # Every task of the projects: their kept totals (O(1) on PostgreSQL), not an aggregate over them.
        totals = project_totals(session, project_ids).values()
        total, annotations, predictions = (sum(t.tasks for t in totals), sum(t.annotations for t in totals),
                                           sum(t.predictions for t in totals))
    else:
        total, annotations, predictions = session.execute(
            select(func.count(), func.coalesce(func.sum(Task.annotation_count), 0),
                   func.coalesce(func.sum(Task.prediction_count), 0)).select_from(Task).where(*where)).one()
    if page > 1 and offset >= total:
        raise NotFound("Invalid page.")
    if page_ids is not None:
        tasks = _task_rows(session.execute(_TASK_ROWS_BY_ID, {"task_ids": page_ids})) if page_ids else []
    else:
        # The page's ids come from the index alone (an index-only scan skips ``offset`` entries without
        # reading their rows); only the page's own rows are read, in the same statement.
        ids = select(Task.id).where(*where).order_by(Task.id).offset(offset).limit(page_size).scalar_subquery()
        tasks = _task_rows(session.execute(select(*_TASK_ROW).where(Task.id.in_(ids)).order_by(Task.id)))
    return TaskPage(tasks, offset, int(total), int(annotations), int(predictions))


def visible_task(session: Session, ctx: TenantContext, task_id: int) -> Task:
    """A task of the tenant that this member may see, or NotFound (like a missing one)."""
    task = fetch(session, Task, task_id, what="Task")
    owner = _visibility(ctx)
    if owner is not None and not session.scalar(select(Task.id).where(Task.id == task.id, own_tasks(owner))):
        raise NotFound("Task not found")
    return task


def inner_id(session: Session, task: Task) -> int:
    """1-based position of the task in its project (Label Studio's ``inner_id``): the number stored
    when it was created (migration 0016), or for a task written without one, its count in the project."""
    if task.inner_id is not None:
        return task.inner_id
    return int(session.scalar(select(func.count()).select_from(Task)
                              .where(Task.project_id == task.project_id, Task.id <= task.id)) or 0)


_NOT_DRAFT = Annotation.status != DRAFT


def _sees_all_annotations(ctx: TenantContext) -> bool:
    return ctx.has("project:review")


def visible_annotations(ctx: TenantContext) -> Any:
    """Condition on Annotation: drafts never; other members' work only with ``project:review``."""
    if _sees_all_annotations(ctx):
        return _NOT_DRAFT
    return _NOT_DRAFT & (Annotation.completed_by_id == ctx.user_id)


def task_children(session: Session, ctx: TenantContext, tasks: Sequence[Task | TaskRow]
                  ) -> tuple[dict[int, list[Annotation]], dict[int, list[Prediction]]]:
    """The annotations this member may see and the predictions of these tasks, by task id. A task
    whose kept prediction count is 0 has none to look for (every write of a prediction moves the count
    in its own transaction)."""
    task_ids = [t.id for t in tasks]
    annotations: dict[int, list[Annotation]] = {i: [] for i in task_ids}
    predictions: dict[int, list[Prediction]] = {i: [] for i in task_ids}
    if not task_ids:
        return annotations, predictions
    ids = {"task_ids": list(task_ids)}
    found = (session.scalars(_ALL_ANNOTATIONS, ids) if _sees_all_annotations(ctx)
             else session.scalars(_OWN_ANNOTATIONS, {**ids, "user_id": ctx.user_id}))
    for a in found:
        annotations[a.task_id].append(a)
    predicted = [t.id for t in tasks if t.prediction_count]
    for p in session.scalars(_PREDICTIONS, {"task_ids": predicted}) if predicted else ():
        predictions[p.task_id].append(p)
    return annotations, predictions


# Built once, like the other hot statements: visible_annotations' two cases, the member's id bound.
_ALL_ANNOTATIONS = select(Annotation).where(
    Annotation.task_id.in_(bindparam("task_ids", expanding=True)), _NOT_DRAFT).order_by(Annotation.id)
_OWN_ANNOTATIONS = _ALL_ANNOTATIONS.where(Annotation.completed_by_id == bindparam("user_id"))
_PREDICTIONS = select(Prediction).where(
    Prediction.task_id.in_(bindparam("task_ids", expanding=True))).order_by(Prediction.id)
_USERS = select(User.id, User.email, User.name).where(User.id.in_(bindparam("user_ids", expanding=True)))


def users_by_id(session: Session, ids: Iterable[int | None]) -> dict[int, UserInfo]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    return {uid: {"id": uid, "email": email, "name": name}
            for uid, email, name in session.execute(_USERS, {"user_ids": wanted})}


def _check_data(project: Project, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise Invalid('"data" must be a JSON object, such as {"text": "..."}.', field="data")
    missing = sorted(parse_label_config(project.label_config).data_fields - set(data))
    if missing:
        raise Invalid(f"The task data lacks {', '.join(missing)}, which the label config uses "
                      f"(${', $'.join(missing)}).", field="data")
    return data


def create_task(session: Session, ctx: TenantContext, project_id: int, data: Any) -> Task:
    """One task, imported like a file of one task (validated, one audited import batch)."""
    project = fetch(session, Project, project_id, what="Project")
    _check_data(project, data)
    result = import_json(session, ctx, project.id, json.dumps([{"data": data}]).encode(), want_ids=True)
    return fetch(session, Task, result.task_ids[0], what="Task")


def update_task(session: Session, ctx: TenantContext, task: Task, data: Any) -> Task:
    project = fetch(session, Project, task.project_id, what="Project")
    before = task.data
    task.data = _check_data(project, data)
    session.flush()
    record(session, "task.updated", tenant_id=ctx.tenant_id, object_type="task", object_id=task.id,
           object_label=f"task {task.id} of project {project.id}", changes={"data": [before, task.data]})
    return task


def delete_task(session: Session, ctx: TenantContext, task: Task) -> None:
    delete_tasks(session, ctx, task.project_id, ids=[task.id])


def project_counters(session: Session, project_ids: Sequence[int]) -> dict[int, ProjectCounters]:
    out = {pid: ProjectCounters(*totals) for pid, totals in project_totals(session, project_ids).items()}
    if not project_ids:
        return out
    for pid, skipped in session.execute(
            select(Annotation.project_id, func.count()).where(Annotation.project_id.in_(list(project_ids)),
                                                              Annotation.status == SKIPPED)
            .group_by(Annotation.project_id)):
        out[pid].skipped = int(skipped)
    return out


# --- annotations -------------------------------------------------------------------------------


def _lead_time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid('"lead_time" must be a number of seconds.', field="lead_time")
    return float(value)


def with_region_ids(result: Any) -> Any:
    """Label Studio's API takes regions without an ``id`` (its web UI always sends one); Workspace's
    results always carry one (reviews, revisions and relations refer to regions by id), so a region
    posted without one gets a short random id, as the labeling page would have given it."""
    if not isinstance(result, list):
        return result
    return [{"id": secrets.token_urlsafe(8)[:10], **region} if isinstance(region, dict) and "id" not in region
            else region for region in result]


def create_annotation(session: Session, ctx: TenantContext, task: Task, body: dict[str, Any]) -> Annotation:
    """The caller's annotation of the task, through the labeling page's services: ``was_cancelled``
    is a skip; otherwise the result is validated against the config and submitted (a member keeps one
    annotation per task, so a second create updates their first, as on the labeling page)."""
    lead_time = _lead_time(body.get("lead_time"))
    if body.get("was_cancelled") is True:
        return skip_task(session, ctx, task.project_id, task.id, lead_time)
    if "result" not in body:
        raise Invalid('Send "result": a list of regions in Label Studio\'s format.', field="result")
    return submit_annotation(session, ctx, task.project_id, task.id, with_region_ids(body.get("result")), lead_time,
                             queue_lock=False)  # no "label next" follows an API call


def annotation_of(session: Session, ctx: TenantContext, annotation_id: int) -> Annotation:
    """An annotation this member may see (drafts and, without ``project:review``, others' work: 404)."""
    found = session.scalars(select(Annotation).where(Annotation.id == annotation_id, visible_annotations(ctx))).first()
    if found is None:
        raise NotFound("Annotation not found")
    return found


def update_annotation(session: Session, ctx: TenantContext, annotation: Annotation, body: dict[str, Any]) -> Annotation:
    """The author changes their annotation (through the submit service, which validates and audits
    it). Others' annotations are changed in the review stream, where fixes are reviewed."""
    if annotation.completed_by_id != ctx.user_id:
        raise Forbidden("Only its author can change an annotation through the API; reviewers fix annotations "
                        "in the review stream.")
    if annotation.status not in (SUBMITTED, SKIPPED, REJECTED):  # rejected: resubmitted (back to review)
        raise Invalid(f"This annotation was already reviewed ({annotation.status}); it can't be changed.",
                      field="result")
    result = with_region_ids(body.get("result", annotation.result))
    lead_time = _lead_time(body.get("lead_time"))
    if body.get("was_cancelled") is True:
        return skip_task(session, ctx, annotation.project_id, annotation.task_id, lead_time)
    # "version": the annotation version the caller read (optimistic concurrency: a mismatch is a 409).
    return submit_annotation(session, ctx, annotation.project_id, annotation.task_id, result, lead_time,
                             seen_version=parse_version(body.get("version")), queue_lock=False)


def delete_annotation(session: Session, ctx: TenantContext, annotation: Annotation) -> None:
    """The author, or a member who may change the project, deletes an annotation (audited by the
    model's flush hook); the task's count follows."""
    if annotation.completed_by_id != ctx.user_id and not ctx.has("project:update"):
        raise Forbidden("Only its author or a project manager can delete an annotation.")
    counted = annotation.status in COUNTED_STATUSES
    task_id = annotation.task_id
    session.delete(annotation)
    session.flush()
    if counted:
        session.execute(update(Task).where(Task.id == task_id, Task.annotation_count > 0)
                        .values(annotation_count=Task.annotation_count - 1)
                        .execution_options(synchronize_session=False))
        session.flush()


# --- predictions -------------------------------------------------------------------------------


def _expand_shorthand(config: LabelConfig, result: Any) -> Any:
    """Label Studio's shorthands for a config with one control: a bare value payload (``{"choices":
    ["A"]}``) or a bare label (``"A"``) stand for the one region that control would make."""
    if isinstance(result, list) or len(config.controls) != 1 or not config.controls[0].to_names:
        return result
    control = config.controls[0]
    kind = control.result_type
    if isinstance(result, str):
        value: Any = {"text": [result]} if kind == "textarea" else {kind: [result]}
    elif isinstance(result, dict) and "from_name" not in result:
        value = result
    else:
        return result
    return [{"from_name": control.name, "to_name": control.to_names[0], "type": kind, "value": value}]


def _prediction_fields(label_config: str, task_data: Any, body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "result" in body or not partial:
        result = body.get("result")
        if len(json.dumps(result, default=str)) > MAX_PREDICTION_BYTES:
            raise Invalid("The prediction's result is larger than 5 MB.", field="result")
        # Structure only, as for drafts: a prediction may be partial; the labeling page keeps only the
        # regions that fit the config when it offers them.
        config = parse_label_config(label_config)
        out["result"] = validate_draft(config, task_data if isinstance(task_data, dict) else {},
                                       with_region_ids(_expand_shorthand(config, result)))
    if "score" in body:
        score = body["score"]
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            raise Invalid('"score" must be a number or null.', field="score")
        out["score"] = float(score) if score is not None else None
    if "model_version" in body:
        version = body["model_version"]
        if version is None:
            version = ""
        if not isinstance(version, str) or len(version) > 120:
            raise Invalid('"model_version" must be a string of at most 120 characters.', field="model_version")
        out["model_version"] = version
    return out


def _audit_prediction(session: Session, ctx: TenantContext, verb: str, p: Prediction,
                      changes: dict[str, Any] | None = None) -> None:
    record(session, f"prediction.{verb}", tenant_id=ctx.tenant_id, object_type="prediction", object_id=p.id,
           object_label=f"prediction {p.id} of task {p.task_id}", changes=changes or {})


class PredictionTarget(NamedTuple):
    """What writing a prediction needs of its task: the ids, the task's data and its project's label
    config (the result is checked against both)."""

    task_id: int
    project_id: int
    data: Any
    label_config: str


# The hot API paths' statements are built once (construction and cache key cost more than the query).
_TASK_AND_PROJECT = select(Task, Project).join(Project, Project.id == Task.project_id).where(
    Task.id == bindparam("task_id"))

# The prediction path is Core, on the tables: no ORM entities to load, identity-map or cache-key per
# request (the ORM's bulk-DML machinery cost more than the statements). Core statements skip the ORM
# scoping hook, so each names the tenant itself, from ``bulk_tenant_id`` (raises when none is bound).
_TASK_T, _PROJECT_T, _PREDICTION_T = Task.__table__, Project.__table__, Prediction.__table__
_PREDICTION_TARGET = (
    select(_TASK_T.c.id, _TASK_T.c.project_id, _TASK_T.c.data, _PROJECT_T.c.label_config)
    .join(_PROJECT_T, _PROJECT_T.c.id == _TASK_T.c.project_id)
    .where(_TASK_T.c.id == bindparam("task_id"), _TASK_T.c.tenant_id == bindparam("tenant_id"),
           _PROJECT_T.c.tenant_id == bindparam("tenant_id")))
_PREDICTION_MADE = insert(_PREDICTION_T).values({
    name: bindparam(f"p_{name}", type_=_PREDICTION_T.c[name].type)
    for name in ("tenant_id", "project_id", "task_id", "result", "score", "model_version", "created_at")
}).returning(_PREDICTION_T.c.id).cte("made")
# The row and its task's count in one round trip (the count stays in the database: concurrent creates
# all count). The task is the tenant's (checked when it was looked up, and again here).
_PREDICTION_INSERT_AND_COUNT = (
    update(_TASK_T).where(_TASK_T.c.id == bindparam("p_task_id"), _TASK_T.c.tenant_id == bindparam("p_tenant_id"))
    .values(prediction_count=_TASK_T.c.prediction_count + 1)
    .add_cte(_PREDICTION_MADE).returning(select(_PREDICTION_MADE.c.id).scalar_subquery()))


def task_and_project(session: Session, task_id: int) -> tuple[Task, Project]:
    """A task of the tenant and its project, in one query (NotFound like a missing task). Hold on to
    both: later lookups of either in the request are answered from the session."""
    row = session.execute(_TASK_AND_PROJECT, {"task_id": task_id}).first()
    if row is None:
        raise NotFound("Task not found")
    return row[0], row[1]


def prediction_target(session: Session, task_id: int) -> PredictionTarget:
    """The tenant's task ``task_id`` as a prediction needs it (NotFound like a missing task)."""
    row = session.connection().execute(
        _PREDICTION_TARGET, {"task_id": task_id, "tenant_id": bulk_tenant_id(session)}).first()
    if row is None:
        raise NotFound("Task not found")
    return PredictionTarget(*row)


def create_prediction(session: Session, ctx: TenantContext, task: PredictionTarget, body: dict[str, Any]) -> Prediction:
    """A prediction of ``task`` (from :func:`prediction_target`), its task's count moved and audited."""
    fields = _prediction_fields(task.label_config, task.data, body, partial=False)
    p = Prediction(tenant_id=bulk_tenant_id(session), project_id=task.project_id, task_id=task.task_id,
                   result=fields["result"], score=fields.get("score"), model_version=fields.get("model_version", ""),
                   created_at=utcnow())
    if session.get_bind().dialect.name == "postgresql":
        p.id = session.connection().execute(_PREDICTION_INSERT_AND_COUNT, {
            "p_tenant_id": p.tenant_id, "p_project_id": p.project_id, "p_task_id": p.task_id, "p_result": p.result,
            "p_score": p.score, "p_model_version": p.model_version, "p_created_at": p.created_at}).scalar_one()
        make_transient_to_detached(p)  # the row exists: the session holds it like one it loaded
        session.add(p)
    else:
        session.add(p)
        session.flush()
        session.execute(update(Task).where(Task.id == p.task_id).values(prediction_count=Task.prediction_count + 1)
                        .execution_options(synchronize_session=False))
    _audit_prediction(session, ctx, "created", p, {"model_version": [None, p.model_version], "score": [None, p.score]})
    return p


def prediction_of(session: Session, prediction_id: int) -> Prediction:
    return fetch(session, Prediction, prediction_id, what="Prediction")


def update_prediction(session: Session, ctx: TenantContext, p: Prediction, body: dict[str, Any]) -> Prediction:
    project = fetch(session, Project, p.project_id, what="Project")
    task = fetch(session, Task, p.task_id, what="Task")
    fields = _prediction_fields(project.label_config, task.data, body, partial=True)
    changes = {k: [getattr(p, k) if k != "result" else None, v if k != "result" else None]
               for k, v in fields.items()}
    for key, value in fields.items():
        setattr(p, key, value)
    session.flush()
    _audit_prediction(session, ctx, "updated", p, changes)
    return p


def delete_prediction(session: Session, ctx: TenantContext, p: Prediction) -> None:
    task_id = p.task_id
    _audit_prediction(session, ctx, "deleted", p)
    session.delete(p)
    session.flush()
    session.execute(update(Task).where(Task.id == task_id, Task.prediction_count > 0)
                    .values(prediction_count=Task.prediction_count - 1).execution_options(synchronize_session=False))


def import_predictions(session: Session, ctx: TenantContext, project_id: int, items: Any) -> int:
    """``[{"task": id, "result": [...], "score"?, "model_version"?}, ...]``: all or nothing."""
    fetch(session, Project, project_id, what="Project")
    if not isinstance(items, list):
        raise Invalid("Send a JSON array of predictions.", field="predictions")
    made = 0
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("task"), int):
            raise Invalid(f"Prediction {index}: give the task id as \"task\".", field="task")
        task = prediction_target(session, item["task"])
        if task.project_id != project_id:
            raise NotFound("Task not found")
        try:
            create_prediction(session, ctx, task, item)
        except Invalid as exc:
            raise Invalid(f"Prediction {index}: {exc.message}", field=exc.field) from None
        made += 1
    return made
