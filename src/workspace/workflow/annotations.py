"""Annotation use cases: find the next task to label, validate a result strictly against the project's
label config, and save it (submit, update, skip, draft). Services flush, never commit; the request
boundary commits.

Results use Label Studio's format: a list of regions ``{id, from_name, to_name, type, value, ...}``.
Validation is strict so that a result that leaves the labeling page is exactly what Label Studio would
have stored for the same config: every region names a control of the config, targets that control's
object, has the control's result type, and a ``value`` shaped for that type with values the config
allows. The first problem is reported with the index of its region; nothing is saved.

A member's work on a task is at most two rows of ``annotation`` (Label Studio keeps drafts beside
annotations too): their annotation, ``submitted`` (counted in ``Task.annotation_count``) or
``skipped`` (empty, not counted), and their ``draft`` (saved by the labeling page as they work, checked
only for structure: partial work is fine). Submitting turns the draft row into the annotation, or
copies it into the existing annotation (an update) and deletes it; skipping discards it. Writes on one
task take its row lock first, so a double click or two tabs never make a second row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, literal, select, update
from sqlalchemy.orm import Session, make_transient_to_detached

from workspace.audit.chain import record_created
from workspace.lib.timeutil import utcnow
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Conflict, Invalid, NotFound
from workspace.tenancy.repositories import fetch
from workspace.tenancy.scoping import bulk_tenant_id
from workspace.workflow import revisions, states
from workspace.workflow.label_config import ControlTag, LabelConfig, ObjectTag, parse_label_config
from workspace.workflow.models import (COUNTED_STATUSES, DRAFT, LABELED_PROJECTS, SKIPPED, SUBMITTED, Annotation,
                                       Prediction, Project, Task, TaskReservation)
from workspace.workflow.review_models import AnnotationRevision

__all__ = ["ResultInvalid", "MyWork", "Start", "get_task", "next_task", "my_work", "starting_point",
           "submit_annotation", "skip_task", "save_draft", "suggested_regions", "task_text", "validate_result",
           "validate_draft", "plain_text_of_html", "IMAGE_RESULT_TYPES", "MAX_RESULT_REGIONS", "MAX_TEXTAREA_CHARS",
           "MAX_POLYGON_POINTS", "MAX_DRAFT_BYTES"]

MAX_RESULT_REGIONS = 5000
MAX_DRAFT_BYTES = 1_000_000  # a draft's result as JSON text; the route refuses a larger one with 413
MAX_TEXTAREA_CHARS = 100_000
MAX_POLYGON_POINTS = 10_000
# Results placed on an image: they carry the image's pixel size (a submit requires it, a draft or a
# suggestion does not: the page reads it from the image).
IMAGE_RESULT_TYPES = frozenset({"rectanglelabels", "polygonlabels", "keypointlabels"})
# Region-level keys Label Studio writes besides id/from_name/to_name/type/value.
_EXTRA_REGION_KEYS = frozenset({"origin", "original_width", "original_height", "image_rotation", "parentID",
                                "score", "readonly", "hidden", "meta", "item_index"})
_EPSILON = 1e-6


class ResultInvalid(Invalid):
    """The submitted result does not fit the label config (answered with 422)."""

    status = 422


def get_task(session: Session, project_id: int, task_id: int) -> Task:
    """A task of the bound tenant AND of this project, or NotFound (same answer as a missing one)."""
    task = fetch(session, Task, task_id, what="Task")
    if task.project_id != project_id:
        raise NotFound("Task not found")
    return task


def next_task(session: Session, project_id: int, user_id: int | None, *, reserve: bool = True) -> Task | None:
    """The task this user labels next, by the project's workflow settings (overlap, reservations,
    assignment, skip policy, cap, order, rejected work first): :func:`workspace.workflow.queue.next_task`.
    ``reserve=False`` only looks. A task with only their draft is still theirs to finish."""
    from workspace.workflow import queue

    return queue.next_task(session, project_id, user_id, reserve=reserve)


def plain_text_of_html(markup: str) -> str:
    """The visible text of an HTML fragment: tags, scripts, styles and comments are dropped.

    Used to show ``HyperText`` without a sanitizer dependency: the page renders this text escaped,
    so no markup from task data ever reaches the browser as markup.
    """
    from html.parser import HTMLParser

    class _Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self.skip = 0

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            if tag in ("script", "style", "template", "noscript"):
                self.skip += 1
            elif tag in ("br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"):
                self.parts.append("\n")

        def handle_endtag(self, tag: str) -> None:
            if tag in ("script", "style", "template", "noscript") and self.skip:
                self.skip -= 1

        def handle_data(self, data: str) -> None:
            if not self.skip:
                self.parts.append(data)

    parser = _Text()
    parser.feed(markup)
    parser.close()
    return "".join(parts for parts in parser.parts).strip()


def task_text(obj: ObjectTag, data: dict[str, Any]) -> str | None:
    """The text a ``Text``/``HyperText`` object shows (span offsets index into it), or None."""
    if obj.field is None or obj.field not in data:
        return None
    value = data[obj.field]
    if not isinstance(value, str):
        return None
    return plain_text_of_html(value) if obj.tag == "HyperText" else value


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def _fail(index: int, message: str) -> ResultInvalid:
    return ResultInvalid(f"Region {index}: {message}", field="result")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _quoted(values: Any) -> str:
    return ", ".join(f'"{v}"' for v in values) or "(none)"


def _describe(control: ControlTag) -> str:
    return f'<{control.tag} name="{control.name}">'


def _check_labels_list(index: int, control: ControlTag, value: dict[str, Any], key: str) -> None:
    items = value.get(key)
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise _fail(index, f'value.{key} must be a non-empty list of strings')
    if control.dynamic_field:  # options come from the task data; nothing fixed to compare with
        return
    allowed = [label.result_value for label in control.labels]
    for item in items:
        if item not in allowed:
            raise _fail(index, f'"{item}" is not an option of {_describe(control)}; use one of {_quoted(allowed)}')
    if len(set(items)) != len(items):
        raise _fail(index, f"value.{key} lists the same option twice")
    if key == "choices" and control.options.get("choice", "single") != "multiple" and len(items) > 1:
        raise _fail(index, f'{_describe(control)} allows one choice, got {len(items)}')


def _check_keys(index: int, value: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(value) - allowed)
    if extra:
        raise _fail(index, f"unexpected key(s) in value: {_quoted(extra)}; allowed: {_quoted(sorted(allowed))}")


def _check_span(index: int, obj: ObjectTag, value: dict[str, Any], data: dict[str, Any]) -> None:
    start, end = value.get("start"), value.get("end")
    if obj.tag == "Audio":  # audio segments: seconds
        if not (_number(start) and _number(end)) or not 0 <= start < end:
            raise _fail(index, "value.start and value.end must be seconds with 0 <= start < end")
        return
    if not isinstance(start, int) or isinstance(start, bool) or not isinstance(end, int) or isinstance(end, bool):
        raise _fail(index, "value.start and value.end must be whole character offsets")
    text = task_text(obj, data)
    if text is None:
        raise _fail(index, f'the task has no text in the field "{obj.field}" to label')
    if not 0 <= start < end <= len(text):
        raise _fail(index, f"span {start}-{end} is outside the text (0 <= start < end <= {len(text)} required)")
    if value.get("text") != text[start:end]:
        raise _fail(index, f"value.text {value.get('text')!r} does not match the task text at {start}-{end} "
                           f"({text[start:end]!r})")


def _check_rectangle(index: int, value: dict[str, Any]) -> None:
    for key in ("x", "y", "width", "height", "rotation"):
        if not _number(value.get(key)):
            raise _fail(index, f"value.{key} must be a number")
    x, y, width, height = value["x"], value["y"], value["width"], value["height"]
    if not (0 <= x <= 100 and 0 <= y <= 100):
        raise _fail(index, f"the box corner ({x}, {y}) is outside the image; x and y are percent in 0..100")
    if width <= 0 or height <= 0:
        raise _fail(index, "the box must have a positive width and height")
    if x + width > 100 + _EPSILON or y + height > 100 + _EPSILON:
        raise _fail(index, f"the box ({x}, {y}, {width} x {height}) extends past the image; "
                           "x + width and y + height must stay within 100 percent")
    if not -360 <= value["rotation"] <= 360:
        raise _fail(index, "value.rotation must be degrees within -360..360")


def _check_polygon(index: int, value: dict[str, Any]) -> None:
    points = value.get("points")
    if not isinstance(points, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(_number(c) for c in p) for p in points):
        raise _fail(index, "value.points must be a list of [x, y] pairs of numbers")
    distinct = len({(x, y) for x, y in points})
    if distinct < 3:
        raise _fail(index, f"a polygon needs at least 3 distinct points, got {distinct}")
    if len(points) > MAX_POLYGON_POINTS:
        raise _fail(index, f"a polygon may have at most {MAX_POLYGON_POINTS} points, got {len(points)}")
    for number, (x, y) in enumerate(points, 1):
        if not (0 <= x <= 100 and 0 <= y <= 100):
            raise _fail(index, f"point {number} ({x}, {y}) is outside the image; x and y are percent in 0..100")
    if value.get("closed", True) is not True:
        raise _fail(index, "value.closed must be true: an open polygon is not a region")


def _check_keypoint(index: int, value: dict[str, Any]) -> None:
    for key in ("x", "y", "width"):
        if not _number(value.get(key)):
            raise _fail(index, f"value.{key} must be a number")
    x, y = value["x"], value["y"]
    if not (0 <= x <= 100 and 0 <= y <= 100):
        raise _fail(index, f"the keypoint ({x}, {y}) is outside the image; x and y are percent in 0..100")
    if not 0 < value["width"] <= 100:
        raise _fail(index, "value.width is the point's size in percent of the image width (more than 0, at most 100)")


def _check_image_size(index: int, region: dict[str, Any]) -> None:
    for key in ("original_width", "original_height"):
        size = region.get(key)
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise _fail(index, f"{key} must be the image's size in pixels (a positive whole number)")


def _check_value(index: int, control: ControlTag, obj: ObjectTag, value: dict[str, Any],
                 data: dict[str, Any], *, draft: bool = False) -> None:
    """``draft``: work in progress, so a blank text or a number outside min..max is fine for now."""
    kind = control.result_type
    if kind == "choices":
        _check_keys(index, value, {"choices"})
        _check_labels_list(index, control, value, "choices")
    elif kind == "labels":
        _check_keys(index, value, {"start", "end", "text", "labels"})
        _check_labels_list(index, control, value, "labels")
        _check_span(index, obj, value, data)
    elif kind == "rectanglelabels":
        _check_keys(index, value, {"x", "y", "width", "height", "rotation", "rectanglelabels"})
        _check_labels_list(index, control, value, "rectanglelabels")
        _check_rectangle(index, value)
    elif kind == "polygonlabels":
        _check_keys(index, value, {"points", "polygonlabels", "closed"})
        _check_labels_list(index, control, value, "polygonlabels")
        _check_polygon(index, value)
    elif kind == "keypointlabels":
        _check_keys(index, value, {"x", "y", "width", "keypointlabels"})
        _check_labels_list(index, control, value, "keypointlabels")
        _check_keypoint(index, value)
    elif kind == "textarea":
        _check_keys(index, value, {"text"})
        texts = value.get("text")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise _fail(index, "value.text must be a non-empty list of strings")
        if sum(len(t) for t in texts) > MAX_TEXTAREA_CHARS:
            raise _fail(index, f"the text is longer than {MAX_TEXTAREA_CHARS} characters")
        if not draft and not any(t.strip() for t in texts):
            raise _fail(index, "the text is empty")
    elif kind == "rating":
        _check_keys(index, value, {"rating"})
        top = int(control.options.get("maxRating", "5"))
        rating = value.get("rating")
        if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= top:
            raise _fail(index, f"value.rating must be a whole number from 1 to {top}")
    elif kind == "number":
        _check_keys(index, value, {"number"})
        number = value.get("number")
        if not _number(number):
            raise _fail(index, "value.number must be a number")
        low, high = control.options.get("min"), control.options.get("max")
        if not draft and (low is not None and number < float(low) or high is not None and number > float(high)):
            raise _fail(index, f"value.number {number} is outside {low if low is not None else '-inf'}.."
                               f"{high if high is not None else 'inf'}")
    else:  # pragma: no cover - every control tag of the catalogue is handled above
        raise _fail(index, f"results of type {kind!r} are not supported")


def _check_region(index: int, region: dict[str, Any], controls: dict[str, ControlTag], objects: dict[str, ObjectTag],
                  data: dict[str, Any], *, draft: bool = False) -> ControlTag:
    """The control ``region`` belongs to, once its names, type and value fit the config."""
    from_name = region.get("from_name")
    control = controls.get(from_name) if isinstance(from_name, str) else None
    if control is None:
        raise _fail(index, f"from_name {from_name!r} is not a control of the label config; "
                           f"controls: {_quoted(controls)}")
    to_name = region.get("to_name")
    if to_name not in control.to_names:
        raise _fail(index, f"to_name {to_name!r} is not the object {_describe(control)} labels; "
                           f"use {_quoted(control.to_names)}")
    if region.get("type") != control.result_type:
        raise _fail(index, f"type {region.get('type')!r} does not match {_describe(control)}; "
                           f'use "{control.result_type}"')
    value = region.get("value")
    if not isinstance(value, dict):
        raise _fail(index, "value must be a JSON object")
    _check_value(index, control, objects[to_name], value, data, draft=draft)
    return control


def _check_envelope(index: int, region: Any) -> None:
    if not isinstance(region, dict):
        raise _fail(index, "each region must be a JSON object")
    extra = sorted(set(region) - {"id", "from_name", "to_name", "type", "value"} - _EXTRA_REGION_KEYS)
    if extra:
        raise _fail(index, f"unexpected key(s): {_quoted(extra)}")
    region_id = region.get("id")
    if not isinstance(region_id, str) or not region_id.strip() or len(region_id) > 64:
        raise _fail(index, "id must be a non-empty string of at most 64 characters")


def validate_result(config: LabelConfig, data: dict[str, Any], result: Any) -> list[dict[str, Any]]:
    """``result`` if it is a valid Label Studio result for ``config`` and this task; else ResultInvalid."""
    if not isinstance(result, list):
        raise ResultInvalid("The result must be a JSON list of regions.", field="result")
    if not result:
        raise ResultInvalid("The annotation is empty: label something before submitting.", field="result")
    if len(result) > MAX_RESULT_REGIONS:
        raise ResultInvalid(f"The result has more than {MAX_RESULT_REGIONS} regions.", field="result")
    controls = {c.name: c for c in config.controls}
    objects = {o.name: o for o in config.objects}
    for index, region in enumerate(result):
        _check_envelope(index, region)
        control = _check_region(index, region, controls, objects, data)
        if control.result_type in IMAGE_RESULT_TYPES:
            _check_image_size(index, region)
    present = {region["from_name"] for region in result}
    for control in config.controls:
        if control.options.get("required", "").lower() == "true" and control.name not in present:
            message = control.options.get("requiredMessage") or f"{_describe(control)} is required"
            raise ResultInvalid(message, field="result")
    return result


def validate_draft(config: LabelConfig, data: dict[str, Any], result: Any) -> list[dict[str, Any]]:
    """``result`` if it is a structurally valid draft: a list (empty is fine) of regions whose controls,
    objects, types and labels exist in ``config``. Required controls, blank texts, numbers outside
    min..max and the image size are left to the submit."""
    if not isinstance(result, list):
        raise ResultInvalid("The draft must be a JSON list of regions.", field="result")
    if len(result) > MAX_RESULT_REGIONS:
        raise ResultInvalid(f"The draft has more than {MAX_RESULT_REGIONS} regions.", field="result")
    controls = {c.name: c for c in config.controls}
    objects = {o.name: o for o in config.objects}
    for index, region in enumerate(result):
        _check_envelope(index, region)
        _check_region(index, region, controls, objects, data, draft=True)
    return result


def _fitting(config: LabelConfig, data: dict[str, Any], result: Any, *, id_prefix: str,
             draft: bool = False, types: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """The regions of a stored result that still fit ``config`` (a renamed label, a removed control, a
    span off the text are left out), reduced to what the labeling page reads."""
    if not isinstance(result, list):
        return []
    controls = {c.name: c for c in config.controls}
    objects = {o.name: o for o in config.objects}
    regions: list[dict[str, Any]] = []
    for index, region in enumerate(result):
        if not isinstance(region, dict) or types is not None and region.get("type") not in types:
            continue
        try:
            _check_region(index, region, controls, objects, data, draft=draft)
        except ResultInvalid:
            continue
        region_id = region.get("id")
        if not isinstance(region_id, str) or not region_id.strip() or len(region_id) > 64:
            region_id = f"{id_prefix}-{index}"
        regions.append({"id": region_id, "from_name": region["from_name"], "to_name": region["to_name"],
                        "type": region["type"], "value": region["value"]})
    return regions


def suggested_regions(session: Session, config: LabelConfig, task: Task) -> list[dict[str, Any]]:
    """The regions of the task's latest prediction that fit the config, of every control type: choices,
    spans, texts, ratings, numbers, boxes, polygons, keypoints.

    The labeling page starts from them, as Label Studio does: the annotator edits, deletes or keeps
    each one, and whatever is left is submitted as their own result. Regions the config no longer
    allows (a renamed label, a removed control, a point off the image, a span that does not match the
    text) are left out, so a stale prediction never blocks a submit. The image size is not required:
    the page reads it from the image.
    """
    prediction = session.scalars(
        select(Prediction).where(Prediction.task_id == task.id)
        .order_by(Prediction.created_at.desc(), Prediction.id.desc()).limit(1)
    ).first()
    if prediction is None:
        return []
    data = task.data if isinstance(task.data, dict) else {}
    return _fitting(config, data, prediction.result, id_prefix=f"prediction-{prediction.id}")


# --------------------------------------------------------------------------------------------------
# A member's work on a task: their annotation and their draft
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MyWork:
    annotation: Annotation | None  # their latest submitted or skipped annotation of the task
    draft: Annotation | None  # their draft

    @property
    def submitted(self) -> bool:
        """They submitted it: submitted, or reviewed since (accepted, rejected); a new submit updates
        (or, once rejected, resubmits) it."""
        return self.annotation is not None and self.annotation.status in COUNTED_STATUSES

    @property
    def skipped(self) -> bool:
        return self.annotation is not None and self.annotation.status == SKIPPED


@dataclass(frozen=True)
class Start:
    """What the labeling page starts from: ``source`` is "draft", "annotation" (the member's own
    work, restored) or "prediction" (suggestions), and ``result`` the regions that fit the config."""

    work: MyWork
    source: str
    result: list[dict[str, Any]]

    @property
    def lead_time(self) -> float:
        """Seconds already spent on the restored draft (the page adds the time spent since)."""
        draft = self.work.draft
        return (draft.lead_time or 0.0) if self.source == "draft" and draft is not None else 0.0


def _touched(annotation: Annotation) -> datetime:
    return annotation.updated_at or annotation.created_at


# Statements of the submit path, built once (SQLAlchemy memoizes their cache keys on the objects).
_MY_WORK = (select(Annotation).where(Annotation.task_id == bindparam("task_id"),
                                     Annotation.completed_by_id == bindparam("user_id"))
            .order_by(Annotation.id.desc()))
_LOCK_TASK = select(Task.id).where(Task.id == bindparam("task_id")).with_for_update()
_COUNT_ANNOTATION = (update(Task).where(Task.id == bindparam("counted_task_id"))
                     .values(annotation_count=Task.annotation_count + 1)
                     .returning(Task.annotation_count, Task.agreement).execution_options(synchronize_session=False))


def my_work(session: Session, task_id: int, user_id: int | None) -> MyWork:
    """The user's latest annotation and latest draft of the task (older duplicates, from before
    drafts and updates existed, are left alone)."""
    if user_id is None:
        return MyWork(None, None)
    rows = session.scalars(_MY_WORK, {"task_id": task_id, "user_id": user_id}).all()
    return MyWork(next((a for a in rows if a.status != DRAFT), None), next((a for a in rows if a.status == DRAFT), None))


def starting_point(session: Session, config: LabelConfig, task: Task, user_id: int | None) -> Start:
    """The member's draft (if newer than their annotation), else their submitted annotation, else the
    suggestions of the task's latest prediction (also after a skip: a skip has no result)."""
    work = my_work(session, task.id, user_id)
    data = task.data if isinstance(task.data, dict) else {}
    draft, annotation = work.draft, work.annotation
    if draft is not None and (annotation is None or _touched(draft) >= _touched(annotation)):
        return Start(work, "draft", _fitting(config, data, draft.result, id_prefix=f"draft-{draft.id}", draft=True))
    if annotation is not None and work.submitted:
        return Start(work, "annotation", _fitting(config, data, annotation.result, id_prefix=f"annotation-{annotation.id}"))
    return Start(work, "prediction", suggested_regions(session, config, task))


# --------------------------------------------------------------------------------------------------
# Submitting, updating, skipping, drafts
# --------------------------------------------------------------------------------------------------


def _clean_lead_time(lead_time: float | None) -> float | None:
    return lead_time if lead_time is not None and math.isfinite(lead_time) and lead_time >= 0 else None


def _locked_work(session: Session, task: Task, user_id: int | None) -> MyWork:
    """The member's work on ``task``, read after taking the task's row lock (PostgreSQL; SQLite has a
    single writer): two requests for the same task and member run one after the other."""
    session.execute(_LOCK_TASK, {"task_id": task.id})
    return my_work(session, task.id, user_id)


def submit_annotation(session: Session, ctx: TenantContext, project_id: int, task_id: int, result: Any,
                      lead_time: float | None, *, seen_version: int | None = None,
                      queue_lock: bool = True) -> Annotation:
    """Validate ``result`` against the project's config and save it as the user's submitted annotation.

    A first submit turns the user's draft or skip of the task into the annotation (or adds one) and
    counts it; when they already submitted, it is an update: the same row gets the new result (the
    lead time adds up) and the count stays. Either way their draft is gone afterwards.

    Each submit is a lifecycle action (:mod:`workspace.workflow.states`) recorded as a revision
    (:mod:`workspace.workflow.revisions`): a rejected annotation is resubmitted (back to review), an
    accepted one is final (409). ``seen_version``: the annotation's version the page was loaded
    with; when it moved on meanwhile (a reviewer acted), the submit is refused with a 409.

    ``queue_lock=False`` when no "label next" follows in the same transaction (the REST API): the
    project's queue lock only orders a submit before the "label next" after it (see
    :func:`_queue_lock`), and taking it would make every submit of the project wait for the others.
    """
    project = fetch(session, Project, project_id, what="Project")
    task = get_task(session, project.id, task_id)
    config = parse_label_config(project.label_config)
    validate_result(config, task.data if isinstance(task.data, dict) else {}, result)
    lead_time = _clean_lead_time(lead_time)
    if queue_lock:
        _queue_lock(session, project.id)
    work = _locked_work(session, task, ctx.user_id)
    if work.submitted:
        assert work.annotation is not None
        annotation = revisions.locked_annotation(session, work.annotation.id)  # a reviewer may be acting on it
        if lead_time is not None:  # set before apply() flushes: one change, one audit event
            annotation.lead_time = round((annotation.lead_time or 0.0) + lead_time, 3)
        revisions.apply(session, annotation, states.annotator_action(annotation.status), actor_id=ctx.user_id,
                        seen_version=seen_version, result=result, doing="editing")
        if work.draft is not None:
            session.delete(work.draft)
        session.flush()
        _release(session, task.id, ctx.user_id)
        _refresh_quality(session, task.id)
        _announce(session, ctx, "annotation.updated", annotation)
        return annotation
    annotation = work.annotation or work.draft
    before = revisions.snapshot(annotation)
    states.transition(annotation.status if annotation else None, "submit", actor_id=ctx.user_id,
                      author_id=annotation.completed_by_id if annotation else ctx.user_id)
    created = annotation is None
    if created and session.get_bind().dialect.name == "postgresql":
        return _first_submit(session, ctx, project, task, result, lead_time)
    if annotation is None:
        annotation = Annotation(project_id=project.id, task_id=task.id, completed_by_id=ctx.user_id, version=1)
        session.add(annotation)
    else:
        annotation.updated_at = utcnow()
        annotation.version = (annotation.version or 1) + 1
        if work.draft is not None and work.draft is not annotation:
            session.delete(work.draft)
    annotation.result, annotation.status, annotation.lead_time = result, SUBMITTED, lead_time
    session.flush()
    revisions.record(session, annotation, "submitted", ctx.user_id, before, first=created)
    # Counted in the database, not in Python: two annotators submitting at once both count. The
    # row lock is held: what it returns is the task as of now.
    counted, agreement = session.execute(_COUNT_ANNOTATION, {"counted_task_id": task.id}).one()
    session.flush()
    _release(session, task.id, ctx.user_id)
    if counted > 1 or agreement is not None:
        _refresh_quality(session, task.id)
    # else this is the task's only counted annotation, and a new one is not ground truth: no
    # agreement and no ground-truth score to compute (the same as the refresh would store)
    _announce(session, ctx, "annotation.created", annotation)
    return annotation


def _first_submit(session: Session, ctx: TenantContext, project: Project, task: Task, result: list[dict[str, Any]],
                  lead_time: float | None) -> Annotation:
    """A member's first submit of a task (no annotation, skip or draft of theirs; the task row is
    locked), on PostgreSQL: the rows and counts the general path writes through the ORM (the
    annotation, its first revision, the task's count, the end of their reservation) in one statement,
    then the same audit event, quality refresh, webhooks and retraining check."""
    now = utcnow()
    tenant_id = bulk_tenant_id(session)
    annotation_id, counted, agreement = session.execute(_FIRST_SUBMIT, {
        "f_tenant_id": tenant_id, "f_project_id": project.id, "f_task_id": task.id, "f_result": result,
        "f_status": SUBMITTED, "f_user_id": ctx.user_id, "f_lead_time": lead_time, "f_now": now}).one()
    annotation = Annotation(id=annotation_id, tenant_id=tenant_id, project_id=project.id, task_id=task.id,
                            result=result, status=SUBMITTED, completed_by_id=ctx.user_id, lead_time=lead_time,
                            updated_at=None, version=1, ground_truth=False, gt_score=None, created_at=now)
    make_transient_to_detached(annotation)  # the row exists: the session holds it like one it loaded
    session.add(annotation)
    record_created(session, annotation)
    session.info.setdefault(LABELED_PROJECTS, set()).add(project.id)
    if counted > 1 or agreement is not None:
        _refresh_quality(session, task.id)
    _announce(session, ctx, "annotation.created", annotation)
    return annotation


def _first_submit_statement() -> Any:
    ann, rev, res = Annotation.__table__, AnnotationRevision.__table__, TaskReservation.__table__

    def p(name: str, column: Any) -> Any:
        return bindparam(f"f_{name}", type_=column.type)

    made = insert(ann).values(
        tenant_id=p("tenant_id", ann.c.tenant_id), project_id=p("project_id", ann.c.project_id),
        task_id=p("task_id", ann.c.task_id), result=p("result", ann.c.result), status=p("status", ann.c.status),
        completed_by_id=p("user_id", ann.c.completed_by_id), lead_time=p("lead_time", ann.c.lead_time),
        updated_at=None, version=1, ground_truth=False, gt_score=None, created_at=p("now", ann.c.created_at),
    ).returning(ann.c.id).cte("made")
    columns = ["tenant_id", "annotation_id", "project_id", "number", "version", "result", "status", "action",
               "actor_id", "created_at"]
    revision = insert(rev).from_select(columns, select(
        p("tenant_id", rev.c.tenant_id), made.c.id, p("project_id", rev.c.project_id), literal(1), literal(1),
        p("result", rev.c.result), p("status", rev.c.status), literal("submitted", rev.c.action.type),
        p("user_id", rev.c.actor_id), p("now", rev.c.created_at))).cte("revision")
    released = delete(res).where(res.c.task_id == p("task_id", res.c.task_id),
                                 res.c.user_id == p("user_id", res.c.user_id),
                                 res.c.tenant_id == p("tenant_id", res.c.tenant_id)).cte("released")
    # The task's count is an ORM statement: scoped to the session's tenant like every task update.
    return (update(Task).where(Task.id == p("task_id", Task.__table__.c.id))
            .values(annotation_count=Task.annotation_count + 1)
            .add_cte(made).add_cte(revision).add_cte(released)
            .returning(select(made.c.id).scalar_subquery(), Task.annotation_count, Task.agreement)
            .execution_options(synchronize_session=False))


_FIRST_SUBMIT = _first_submit_statement()


def _refresh_quality(session: Session, task_id: int) -> None:
    """The task's counted annotations changed: recompute its stored agreement and ground-truth scores."""
    from workspace.workflow import quality

    quality.refresh_tasks(session, [task_id])


def _queue_lock(session: Session, project_id: int) -> None:
    """Submit and skip release a "label next" reservation and are often followed, in the same
    transaction, by "label next" itself: they take the project's queue lock first (PostgreSQL), before
    any row lock, so every transaction takes the locks in the same order and none can deadlock."""
    from workspace.workflow import queue

    queue.lock_project(session, project_id)


def _release(session: Session, task_id: int, user_id: int | None) -> None:
    """The member's "label next" reservation of the task ends with their submit or skip."""
    from workspace.workflow import queue

    queue.release(session, task_id, user_id)


def _announce(session: Session, ctx: TenantContext, event: str, annotation: Annotation) -> None:
    """Tell the project's webhooks (sent only if the submit commits)."""
    from workspace.webhooks.services import emit

    emit(session, ctx, event, annotation.project_id, {
        "annotation_id": annotation.id, "task_id": annotation.task_id, "status": annotation.status,
        "result": annotation.result, "completed_by_id": annotation.completed_by_id, "lead_time": annotation.lead_time})


def skip_task(session: Session, ctx: TenantContext, project_id: int, task_id: int,
              lead_time: float | None = None) -> Annotation:
    """Record that the user skipped the task (an empty result, not counted; the next-task logic never
    serves it to them again) and discard their draft. A submitted annotation cannot be skipped."""
    project = fetch(session, Project, project_id, what="Project")
    task = get_task(session, project.id, task_id)
    _queue_lock(session, project.id)
    work = _locked_work(session, task, ctx.user_id)
    if work.submitted:
        raise Conflict("You already submitted this task: update your annotation instead of skipping it.")
    annotation = work.annotation or work.draft
    before = revisions.snapshot(annotation)
    if annotation is None:
        annotation = Annotation(project_id=project.id, task_id=task.id, completed_by_id=ctx.user_id, version=1)
        session.add(annotation)
    else:
        annotation.updated_at = utcnow()
        annotation.version = (annotation.version or 1) + 1
        if work.draft is not None and work.draft is not annotation:
            session.delete(work.draft)
    annotation.result, annotation.status, annotation.lead_time = [], SKIPPED, _clean_lead_time(lead_time)
    session.flush()
    revisions.record(session, annotation, "skipped", ctx.user_id, before)
    _release(session, task.id, ctx.user_id)
    return annotation


def save_draft(session: Session, ctx: TenantContext, project_id: int, task_id: int, result: Any,
               lead_time: float | None = None) -> Annotation:
    """Save the user's work in progress on the task: their one draft, added or replaced.

    Checked for structure only (:func:`validate_draft`); the route caps its size. Drafts are not
    counted and the next-task logic still serves the task: it is not done yet.
    """
    project = fetch(session, Project, project_id, what="Project")
    task = get_task(session, project.id, task_id)
    validate_draft(parse_label_config(project.label_config), task.data if isinstance(task.data, dict) else {}, result)
    work = _locked_work(session, task, ctx.user_id)
    draft = work.draft
    if draft is None:
        draft = Annotation(project_id=project.id, task_id=task.id, completed_by_id=ctx.user_id, status=DRAFT)
        session.add(draft)
    else:
        draft.updated_at = utcnow()
    draft.result, draft.lead_time = result, _clean_lead_time(lead_time)
    session.flush()
    return draft
