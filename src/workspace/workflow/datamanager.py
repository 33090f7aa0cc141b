"""The data manager: filtered, sorted, keyset-paginated task lists of one project, and bulk deletion.

Queries only; no HTTP. Everything here filters by ``Task.project_id`` of a project the caller already
fetched (so within the bound tenant); the tenant criterion itself is added by the scoping hook.

* Filters: state (labeled / unlabeled), annotator, text (substring of the task data's JSON text, with
  ``%`` and ``_`` taken literally), has predictions, created from/to (UTC dates, both inclusive).
* Visibility: :func:`own_tasks_of` says whose tasks a member sees (``None``: all of them, for members
  holding ``project:review`` on the project, reviewers and above; else their own id), and
  :func:`own_tasks` is the one condition that defines a member's own tasks (today: the tasks they
  annotated; assignment adds "or assigned to them" there). ``only_own_of`` passes it to the queries;
  in that mode the annotator column shows only the member themself, never who else labeled a task.
* Keyset pagination: the cursor encodes the sort, the sort key and the task id; a page is
  ``WHERE (key, id) > (cursor) ORDER BY key, id LIMIT n+1`` — never OFFSET — so the cost of a page
  does not grow with its depth. Indexes ``(project_id, created_at, id)`` and
  ``(project_id, annotation_count, id)`` back the non-id sorts.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, delete, exists, func, or_, select, tuple_
from sqlalchemy.orm import Session

from workspace.audit.chain import record
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Invalid, NotFound
from workspace.tenancy.models import Membership, User
from workspace.workflow.label_config import LabelConfigError, parse_label_config
from workspace.workflow.models import DRAFT, Annotation, Project, Task, TaskAssignment

__all__ = ["Filters", "Row", "Page", "SORTS", "STATES", "parse_filters", "list_tasks", "count_matching",
           "own_tasks", "own_tasks_of",
           "data_columns", "annotator_choices", "selected_ids", "delete_tasks", "encode_cursor",
           "decode_cursor", "PAGE_SIZE", "MAX_PAGE_SIZE", "COUNT_CAP", "MAX_SELECTED_IDS"]

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
COUNT_CAP = 10_000  # counts above this are shown as "10,000+" (an exact count of a million rows is slow)
MAX_SELECTED_IDS = 1000
CELL_CHARS = 80

STATES = {"all": "All tasks", "labeled": "Labeled", "unlabeled": "Unlabeled"}
# sort name -> (label, column key, descending)
SORTS: dict[str, tuple[str, str, bool]] = {
    "id": ("ID, oldest first", "id", False),
    "-id": ("ID, newest first", "id", True),
    "created": ("Created, oldest first", "created", False),
    "-created": ("Created, newest first", "created", True),
    "annotations": ("Fewest annotations", "annotations", False),
    "-annotations": ("Most annotations", "annotations", True),
    # Sorting by agreement lists the tasks that have one (two or more annotations): disputes first.
    "agreement": ("Lowest agreement first", "agreement", False),
    "-agreement": ("Highest agreement first", "agreement", True),
}
_KEY_COLUMNS = {"id": Task.id, "created": Task.created_at, "annotations": Task.annotation_count,
                "agreement": Task.agreement}


@dataclass(frozen=True)
class Filters:
    state: str = "all"
    annotator: int | None = None
    text: str = ""
    has_predictions: str = ""  # "", "yes", "no"
    created_from: date | None = None
    created_to: date | None = None
    sort: str = "id"
    page_size: int = PAGE_SIZE

    def query(self, *, with_sort: bool = True) -> dict[str, str]:
        """The non-default fields as query-string values (for links, hidden fields and the audit)."""
        out: dict[str, str] = {}
        if self.state != "all":
            out["state"] = self.state
        if self.annotator is not None:
            out["annotator"] = str(self.annotator)
        if self.text:
            out["text"] = self.text
        if self.has_predictions:
            out["has_predictions"] = self.has_predictions
        if self.created_from:
            out["created_from"] = self.created_from.isoformat()
        if self.created_to:
            out["created_to"] = self.created_to.isoformat()
        if with_sort and self.sort != "id":
            out["sort"] = self.sort
        if with_sort and self.page_size != PAGE_SIZE:
            out["page_size"] = str(self.page_size)
        return out

    @property
    def active(self) -> bool:
        return bool(self.query(with_sort=False))


FILTER_FIELDS = ("state", "annotator", "text", "has_predictions", "created_from", "created_to", "sort", "page_size")


def _date(raw: str, name: str, errors: dict[str, str]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[name] = "Enter a date as YYYY-MM-DD."
        return None


def parse_filters(params: Mapping[str, str]) -> tuple[Filters, dict[str, str]]:
    """Filters from query-string or form values; bad values are reported per field and not applied."""
    errors: dict[str, str] = {}
    raw = {k: str(params.get(k) or "").strip() for k in FILTER_FIELDS}
    state = raw["state"] if raw["state"] in STATES else "all"
    annotator = None
    if raw["annotator"]:
        if raw["annotator"].isdigit() and len(raw["annotator"]) < 18:
            annotator = int(raw["annotator"])
        else:
            errors["annotator"] = "Pick a member from the list."
    has_predictions = raw["has_predictions"] if raw["has_predictions"] in ("yes", "no") else ""
    created_from = _date(raw["created_from"], "created_from", errors)
    created_to = _date(raw["created_to"], "created_to", errors)
    if created_from and created_to and created_from > created_to:
        errors["created_to"] = "The end date is before the start date."
        created_to = None
    sort = raw["sort"] if raw["sort"] in SORTS else "id"
    page_size = PAGE_SIZE
    if raw["page_size"]:
        try:
            page_size = max(1, min(MAX_PAGE_SIZE, int(raw["page_size"])))
        except ValueError:
            errors["page_size"] = "Enter a whole number."
    text = raw["text"][:200]
    return Filters(state, annotator, text, has_predictions, created_from, created_to, sort, page_size), errors


# --- conditions -----------------------------------------------------------------------------------


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _text_condition(session: Session, term: str) -> ColumnElement[bool]:
    """Substring of the task data's JSON text. JSON text escapes non-ASCII (``\\u00e9``) and quotes, so
    the term is matched as typed and as JSON would spell it."""
    as_text = cast(Task.data, Text)
    variants = {term, json.dumps(term)[1:-1]}
    postgres = session.get_bind().dialect.name == "postgresql"
    clauses = [as_text.ilike(_like_pattern(v), escape="\\") if postgres else as_text.like(_like_pattern(v), escape="\\")
               for v in sorted(variants)]
    return or_(*clauses) if len(clauses) > 1 else clauses[0]


def _annotated_by(user_id: int) -> ColumnElement[bool]:
    # A draft is work in progress, visible only on its author's labeling page: not an annotation here.
    return exists().where(Annotation.task_id == Task.id, Annotation.completed_by_id == user_id,
                          Annotation.status != DRAFT)


def own_tasks(user_id: int) -> ColumnElement[bool]:
    """The tasks that are a member's own: the ones they annotated or that are assigned to them.

    The one definition of "own" for the data manager (list, count, selection, deletion).
    """
    assigned = exists().where(TaskAssignment.task_id == Task.id, TaskAssignment.user_id == user_id)
    return or_(_annotated_by(user_id), assigned)


def own_tasks_of(ctx: TenantContext) -> int | None:
    """Whose tasks this member sees in a project: ``None`` for all of them (``project:review`` on the
    project: reviewers and above, or a reviewer grant), else their own user id (annotators).

    ``ctx`` is the context of a request about the project, so it holds that project's grants too.
    """
    return None if ctx.has("project:review") else ctx.user_id


def conditions(session: Session, project_id: int, f: Filters, *,
               only_own_of: int | None = None) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = [Task.project_id == project_id]
    if SORTS.get(f.sort, ("", ""))[1] == "agreement":
        out.append(Task.agreement.is_not(None))
    if only_own_of is not None:
        out.append(own_tasks(only_own_of))
    if only_own_of is not None and f.state in ("labeled", "unlabeled"):
        # A member's own view: labeled by them (others' work on a task is not theirs to see).
        mine = _annotated_by(only_own_of)
        out.append(mine if f.state == "labeled" else ~mine)
    elif f.state == "labeled":
        out.append(Task.annotation_count > 0)
    elif f.state == "unlabeled":
        out.append(Task.annotation_count == 0)
    if f.annotator is not None:
        out.append(_annotated_by(f.annotator))
    if f.text:
        out.append(_text_condition(session, f.text))
    if f.has_predictions == "yes":
        out.append(Task.prediction_count > 0)
    elif f.has_predictions == "no":
        out.append(Task.prediction_count == 0)
    if f.created_from:
        out.append(Task.created_at >= datetime(f.created_from.year, f.created_from.month, f.created_from.day, tzinfo=UTC))
    if f.created_to:
        end = f.created_to + timedelta(days=1)
        out.append(Task.created_at < datetime(end.year, end.month, end.day, tzinfo=UTC))
    return out


# --- cursors --------------------------------------------------------------------------------------


def encode_cursor(sort: str, key: Any, task_id: int) -> str:
    if isinstance(key, datetime):
        key = key.isoformat()
    raw = json.dumps([sort, key, task_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, int] | None:
    """(key, id) of a cursor made for this sort, or None for anything else (stale or tampered)."""
    if not cursor or len(cursor) > 200:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, key, task_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        return None
    if made_for != sort or not isinstance(task_id, int) or isinstance(task_id, bool):
        return None
    column = SORTS[sort][1]
    try:
        if column == "created":
            key = datetime.fromisoformat(key)
        elif column == "agreement":
            if not isinstance(key, (int, float)) or isinstance(key, bool):
                return None
            key = float(key)
        elif not isinstance(key, int) or isinstance(key, bool):
            return None
    except (TypeError, ValueError):
        return None
    return key, task_id


# --- pages ----------------------------------------------------------------------------------------


@dataclass
class Row:
    id: int
    data: dict[str, Any]
    annotation_count: int
    prediction_count: int
    created_at: datetime
    annotators: list[str] = field(default_factory=list)
    agreement: float | None = None
    statuses: dict[str, str] = field(default_factory=dict)  # annotator email -> their annotation's status


@dataclass
class Page:
    rows: list[Row]
    next_cursor: str | None
    prev_cursor: str | None
    sort: str

    @property
    def ids(self) -> list[int]:
        return [r.id for r in self.rows]


def list_tasks(session: Session, project_id: int, f: Filters, *, after: str | None = None,
               before: str | None = None, only_own_of: int | None = None) -> Page:
    """One page of tasks, with their annotators' emails (one query for the page, no N+1); with
    ``only_own_of`` the member's own tasks, showing only that member as annotator."""
    _label, column_name, desc = SORTS[f.sort]
    key_col = _KEY_COLUMNS[column_name]
    where = conditions(session, project_id, f, only_own_of=only_own_of)
    after_key = decode_cursor(after or "", f.sort) if after else None
    before_key = decode_cursor(before or "", f.sort) if before and not after_key else None
    backwards = before_key is not None
    cursor = after_key or before_key
    if cursor is not None:
        forward = not desc if not backwards else desc  # True: values greater than the cursor
        if column_name == "id":
            where.append(Task.id > cursor[1] if forward else Task.id < cursor[1])
        else:
            left, right = tuple_(key_col, Task.id), tuple_(*cursor)
            where.append(left > right if forward else left < right)
    ascending = (not desc) != backwards
    order = [key_col.asc(), Task.id.asc()] if ascending else [key_col.desc(), Task.id.desc()]
    if column_name == "id":
        order = order[1:]
    stmt = (select(Task.id, Task.data, Task.annotation_count, Task.prediction_count, Task.created_at, key_col)
            .where(*where).order_by(*order).limit(f.page_size + 1))
    fetched = session.execute(stmt).all()
    more = len(fetched) > f.page_size
    fetched = fetched[: f.page_size]
    if backwards:
        fetched.reverse()
    rows = [Row(r[0], r[1] or {}, r[2], r[3], r[4]) for r in fetched]
    keys = [(r[5], r[0]) for r in fetched]
    _attach_annotators(session, rows, only=only_own_of)
    if only_own_of is None:  # agreement compares everyone's work: not shown in an annotator's own view
        _attach_agreement(session, rows)
    if not rows:
        return Page(rows, None, None, f.sort)
    first, last = keys[0], keys[-1]
    has_next = more if not backwards else True
    has_prev = (cursor is not None) if not backwards else more
    return Page(rows,
                encode_cursor(f.sort, last[0], last[1]) if has_next else None,
                encode_cursor(f.sort, first[0], first[1]) if has_prev else None,
                f.sort)


def _attach_annotators(session: Session, rows: list[Row], *, only: int | None = None) -> None:
    if not rows:
        return
    by_id = {r.id: r for r in rows}
    stmt = (select(Annotation.task_id, User.email, Annotation.status).join(User, User.id == Annotation.completed_by_id)
            .where(Annotation.task_id.in_(list(by_id)), Annotation.status != DRAFT).distinct()
            .order_by(Annotation.task_id, User.email))
    if only is not None:
        stmt = stmt.where(Annotation.completed_by_id == only)
    for task_id, email, status in session.execute(stmt):
        row = by_id[task_id]
        if email not in row.statuses:
            row.annotators.append(email)
        row.statuses[email] = status


def _attach_agreement(session: Session, rows: list[Row]) -> None:
    if rows:
        by_id = {r.id: r for r in rows}
        for task_id, value in session.execute(select(Task.id, Task.agreement).where(Task.id.in_(list(by_id)))):
            by_id[task_id].agreement = value


def count_matching(session: Session, project_id: int, f: Filters, *, only_own_of: int | None = None,
                   cap: int | None = COUNT_CAP) -> int:
    """Tasks matching the filter; stops counting at ``cap + 1`` (pass ``cap=None`` for the exact count)."""
    inner = select(Task.id).where(*conditions(session, project_id, f, only_own_of=only_own_of))
    if cap is not None:
        inner = inner.limit(cap + 1)
    return session.scalar(select(func.count()).select_from(inner.subquery())) or 0


# --- what the table shows -------------------------------------------------------------------------


def data_columns(project: Project) -> list[str]:
    try:
        return sorted(parse_label_config(project.label_config).data_fields)
    except LabelConfigError:
        return []


def short(value: Any, limit: int = CELL_CHARS) -> str:
    """A cell's text: strings as they are, anything else as compact JSON; cut to ``limit`` characters."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def other_summary(data: Mapping[str, Any], columns: Sequence[str], limit: int = CELL_CHARS) -> str:
    extra = [f"{k}: {short(v, 30)}" for k, v in data.items() if k not in columns]
    return short("; ".join(extra), limit) if extra else ""


def annotator_choices(session: Session) -> list[tuple[int, str]]:
    """Members of the tenant, for the annotator filter."""
    stmt = select(User.id, User.email).join(Membership, Membership.user_id == User.id).order_by(User.email)
    return [(uid, email) for uid, email in session.execute(stmt)]


# --- bulk deletion --------------------------------------------------------------------------------


def selected_ids(session: Session, project_id: int, raw_ids: Sequence[str], *,
                 only_own_of: int | None = None) -> list[int]:
    """The ids, all of them tasks of this project visible to the caller — or NotFound for the lot."""
    try:
        ids = sorted({int(i) for i in raw_ids})
    except ValueError:
        raise NotFound("Task not found") from None
    if len(ids) > MAX_SELECTED_IDS:
        raise Invalid(f"Select at most {MAX_SELECTED_IDS} tasks, or use “all matching the filter”.")
    if not ids:
        return []
    where = [Task.project_id == project_id, Task.id.in_(ids)]
    if only_own_of is not None:
        where.append(own_tasks(only_own_of))
    found = set(session.scalars(select(Task.id).where(*where)))
    if found != set(ids):
        raise NotFound("Task not found")
    return ids


def delete_tasks(session: Session, ctx: TenantContext, project_id: int, *, ids: Sequence[int] | None = None,
                 filters: Filters | None = None, only_own_of: int | None = None) -> int:
    """Delete the given (already checked) ids, or every task matching ``filters``; one audit event.

    Annotations and predictions of the tasks go with them (database cascade), so the counts kept on
    the remaining tasks stay right.
    """
    if ids is not None:
        where = [Task.project_id == project_id, Task.id.in_(list(ids))]
        described: dict[str, Any] = {"ids": list(ids)}
    elif filters is not None:
        where = conditions(session, project_id, filters, only_own_of=only_own_of)
        described = {"all_matching": True, **filters.query(with_sort=False)}
    else:
        raise Invalid("Select tasks to delete.")
    result = session.execute(delete(Task).where(*where).execution_options(synchronize_session=False))
    count = int(result.rowcount or 0)  # type: ignore[attr-defined]
    record(session, "task.bulk_deleted", tenant_id=ctx.tenant_id, object_type="project", object_id=project_id,
           changes={"count": count, "filter": described})
    return count


def with_sort(f: Filters, sort: str) -> Filters:
    return replace(f, sort=sort if sort in SORTS else "id")
