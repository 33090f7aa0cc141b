"""Annotation revisions: the append-only history of every change to an annotation's result or status,
optimistic concurrency on annotations, and what changed between two versions.

Each lifecycle action (:mod:`workspace.workflow.states`) goes through :func:`apply`: it checks the
version the actor saw, moves the status, bumps ``Annotation.version`` and appends one
:class:`~workspace.workflow.review_models.AnnotationRevision` holding the whole result after the change.

Drafts make no revisions. The labeling page autosaves a draft every few seconds; a revision per
autosave would bury the real history under hundreds of near-identical rows, and a draft is private,
unfinished work nobody reviews. Its autosaves are already in the audit log (as digests). The history
starts when the work is submitted: the submit's revision holds exactly what the draft had become.

An annotation that changed before revisions existed (or came in with an import, which writes rows in
bulk) gets a ``created`` baseline revision with its earlier result the first time it changes, so its
history always starts from what it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workspace.lib.timeutil import utcnow
from workspace.tenancy.errors import Conflict, NotFound
from workspace.tenancy.models import User
from workspace.tenancy.repositories import fetch
from workspace.workflow import states
from workspace.workflow.models import Annotation
from workspace.workflow.review_models import AnnotationRevision

__all__ = ["VersionConflict", "Before", "snapshot", "locked_annotation", "check_version", "apply", "record",
           "history", "revision_of", "person", "diff", "Diff", "region_summary", "parse_version"]


class VersionConflict(Conflict):
    """The annotation changed since the actor loaded it (answered with 409; nothing was saved)."""

    def __init__(self, message: str, *, current_version: int, seen_version: int) -> None:
        super().__init__(message)  # no field: a conflict, not a bad value (APIs answer 409, not 400)
        self.current_version = current_version
        self.seen_version = seen_version


@dataclass(frozen=True)
class Before:
    """An annotation's state before a change (for the baseline revision)."""

    result: list[dict[str, Any]]
    status: str | None
    version: int
    actor_id: int | None
    at: datetime | None


def snapshot(annotation: Annotation | None) -> Before | None:
    if annotation is None or annotation.id is None:
        return None
    return Before(list(annotation.result or []), annotation.status, annotation.version or 1,
                  annotation.completed_by_id, annotation.updated_at or annotation.created_at)


def parse_version(raw: Any) -> int | None:
    """A version from a form or JSON field; None when absent or not a whole number."""
    if isinstance(raw, list):
        raw = raw[-1] if raw else None
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, int):
        return raw
    text = str(raw).strip()
    return int(text) if text.isdigit() else None


def locked_annotation(session: Session, annotation_id: int) -> Annotation:
    """The annotation (of the bound tenant) read fresh under a row lock (PostgreSQL; SQLite writers
    are serialized anyway): a concurrent action on it waits here until the other one commits."""
    fetch(session, Annotation, annotation_id, what="Annotation")
    annotation = session.scalars(
        select(Annotation).where(Annotation.id == annotation_id).with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if annotation is None:
        raise NotFound("Annotation not found")
    return annotation


def _hhmm(moment: datetime | None) -> str:
    if moment is None:
        return "just now"
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%H:%M UTC")


def person(session: Session, user_id: int | None) -> str:
    """A member's name (or email) for pages and messages."""
    return _who(session, user_id)


def _who(session: Session, user_id: int | None) -> str:
    if user_id is None:
        return "Someone"
    user = session.scalars(select(User).where(User.id == user_id)).first()
    return (user.name or user.email) if user is not None else "Someone"


def check_version(session: Session, annotation: Annotation, seen: int | None, *, doing: str = "working on") -> None:
    """Refuse with :class:`VersionConflict` when ``seen`` (the version the actor loaded) is not the
    annotation's current version. ``seen`` None: the caller did not say (older clients); accepted."""
    if seen is None or seen == annotation.version:
        return
    latest = session.scalars(
        select(AnnotationRevision).where(AnnotationRevision.annotation_id == annotation.id)
        .order_by(AnnotationRevision.number.desc()).limit(1)
    ).first()
    if latest is not None:
        what = {"submitted": "submitted", "updated": "updated", "resubmitted": "resubmitted", "accepted": "accepted",
                "rejected": "rejected", "fixed": "fixed and accepted", "skipped": "skipped",
                "created": "changed"}.get(latest.action, "changed")
        who, when = _who(session, latest.actor_id), _hhmm(latest.created_at)
    else:
        what, who, when = "changed", "Someone", _hhmm(annotation.updated_at)
    raise VersionConflict(f"{who} {what} this annotation at {when} while you were {doing} it; "
                          "reload to see it. Nothing of yours was saved.",
                          current_version=annotation.version, seen_version=seen)


def _next_number(session: Session, annotation_id: int) -> int:
    return (session.scalar(select(func.max(AnnotationRevision.number))
                           .where(AnnotationRevision.annotation_id == annotation_id)) or 0) + 1


def record(session: Session, annotation: Annotation, action: str, actor_id: int | None,
           before: Before | None = None, *, first: bool = False) -> AnnotationRevision:
    """Append a revision of ``annotation`` as it is now (flushes first so it has an id). ``before``:
    its state before this change; when it has no revision yet and had a result or status worth
    keeping, a ``created`` baseline revision of that state comes first. ``first``: the annotation was
    inserted by this transaction, so it has no revision yet (no need to look)."""
    session.flush()
    number = 1 if first else _next_number(session, annotation.id)
    if number == 1 and before is not None and before.status not in (None, states.DRAFT):
        session.add(AnnotationRevision(annotation_id=annotation.id, project_id=annotation.project_id, number=1,
                                       version=before.version, result=before.result, status=before.status,
                                       action="created", actor_id=before.actor_id, created_at=before.at or utcnow()))
        number = 2
    revision = AnnotationRevision(annotation_id=annotation.id, project_id=annotation.project_id, number=number,
                                  version=annotation.version, result=list(annotation.result or []),
                                  status=annotation.status, action=action, actor_id=actor_id, created_at=utcnow())
    session.add(revision)
    session.flush()
    return revision


def apply(session: Session, annotation: Annotation, action: str, *, actor_id: int | None, may_review: bool = False,
          seen_version: int | None = None, result: list[dict[str, Any]] | None = None,
          doing: str = "working on") -> AnnotationRevision:
    """Take lifecycle ``action`` on a (locked) annotation: check the version the actor saw, move the
    status (:func:`states.transition` refuses what is illegal), set the new result if given, bump the
    version and append the revision."""
    check_version(session, annotation, seen_version, doing=doing)
    before = snapshot(annotation)
    move = states.transition(annotation.status, action, actor_id=actor_id, author_id=annotation.completed_by_id,
                             may_review=may_review)
    if result is not None:
        annotation.result = result
    annotation.status = move.after
    annotation.version = (annotation.version or 1) + 1
    annotation.updated_at = utcnow()
    return record(session, annotation, move.revision_action, actor_id, before)


# --------------------------------------------------------------------------------------------------
# Reading the history
# --------------------------------------------------------------------------------------------------


def history(session: Session, annotation_id: int) -> list[AnnotationRevision]:
    return list(session.scalars(select(AnnotationRevision).where(AnnotationRevision.annotation_id == annotation_id)
                                .order_by(AnnotationRevision.number)))


def revision_of(session: Session, annotation_id: int, number: int) -> AnnotationRevision:
    revision = session.scalars(select(AnnotationRevision).where(AnnotationRevision.annotation_id == annotation_id,
                                                                AnnotationRevision.number == number)).first()
    if revision is None:
        raise NotFound("Revision not found")
    return revision


@dataclass(frozen=True)
class Diff:
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[tuple[dict[str, Any], dict[str, Any]]]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def summary(self) -> str:
        parts = [f"{len(self.added)} added" if self.added else "", f"{len(self.removed)} removed" if self.removed else "",
                 f"{len(self.changed)} changed" if self.changed else ""]
        text = ", ".join(p for p in parts if p)
        return f"regions: {text}" if text else "no change to the regions"


def _key(region: dict[str, Any], index: int) -> str:
    region_id = region.get("id")
    return f"id:{region_id}" if isinstance(region_id, str) and region_id else f"at:{index}"


def _core(region: dict[str, Any]) -> tuple[Any, ...]:
    return (region.get("from_name"), region.get("to_name"), region.get("type"), repr(sorted((region.get("value") or {}).items())))


def diff(old: list[dict[str, Any]] | None, new: list[dict[str, Any]] | None) -> Diff:
    """Regions added, removed and changed from ``old`` to ``new``, matched by region id (by position
    for regions without one)."""
    before = {_key(r, i): r for i, r in enumerate(old or []) if isinstance(r, dict)}
    after = {_key(r, i): r for i, r in enumerate(new or []) if isinstance(r, dict)}
    added = [r for k, r in after.items() if k not in before]
    removed = [r for k, r in before.items() if k not in after]
    changed = [(before[k], r) for k, r in after.items() if k in before and _core(before[k]) != _core(r)]
    return Diff(added, removed, changed)


def region_summary(region: dict[str, Any]) -> dict[str, str]:
    """A readable row for a region: its control, its label(s) or value, and where it is."""
    value = region.get("value") if isinstance(region.get("value"), dict) else {}
    kind = str(region.get("type", ""))
    labels = next((value[k] for k in ("choices", "labels", "rectanglelabels", "polygonlabels", "keypointlabels")
                   if isinstance(value.get(k), list)), None)
    if labels is not None:
        what = ", ".join(str(v) for v in labels)
    elif "text" in value and isinstance(value["text"], list):
        what = " / ".join(str(v) for v in value["text"])
    elif "rating" in value:
        what = f"{value['rating']} ★"
    elif "number" in value:
        what = str(value["number"])
    else:
        what = ""
    where = ""
    if "start" in value and "end" in value:
        where = f"{value['start']}–{value['end']}"
        if isinstance(value.get("text"), str):
            where += f" “{value['text']}”"
    elif all(k in value for k in ("x", "y", "width", "height")):
        where = f"x {_n(value['x'])}, y {_n(value['y'])}, {_n(value['width'])} × {_n(value['height'])} %"
    elif isinstance(value.get("points"), list):
        where = f"polygon of {len(value['points'])} points"
    elif all(k in value for k in ("x", "y")):
        where = f"point at {_n(value['x'])}, {_n(value['y'])} %"
    return {"id": str(region.get("id", "")), "control": str(region.get("from_name", "")), "type": kind,
            "value": what, "where": where}


def _n(number: Any) -> str:
    return f"{number:.1f}" if isinstance(number, float) else str(number)
