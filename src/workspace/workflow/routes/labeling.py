"""The labeling page: one task, the project's config rendered server-side, results in Label Studio's format.

The page is built from a small view model (:func:`_nodes`) walked by a recursive Jinja macro; the
browser side (``static/labeling.js``) only adds interaction (span selection, boxes, polygons,
keypoints, hotkeys) and builds the ``result`` JSON on submit. The server validates that JSON strictly
(:mod:`workspace.workflow.annotations`). ``HyperText`` is shown as sanitized HTML (:mod:`workspace.web.html`).

The page starts from the member's own work on the task (their draft if newer, else their submitted
annotation: the button then says Update) or else from the task's latest prediction, whose regions
arrive as editable suggestions. Actions: submit and go to the next task (the queue; Ctrl+Enter),
submit and stay on the task, update, skip (``/label/skip``: the queue never serves the task again);
drafts are saved by the page a couple of seconds after each change (``/label/draft``, JSON, size-capped).

Media: the app's CSP allows images from ``'self'`` and ``data:`` only, so a media URL from task data
is put into ``<img>``/``<audio>`` only when it is a same-origin path under ``/media/`` or a ``data:``
URI of the matching kind; anything else (another host, ``javascript:``...) is shown as a notice with
the address as plain text. Note the CSP has no ``media-src``: ``default-src 'self'`` applies to
``<audio>``, so ``/media/...`` audio plays while ``data:`` audio needs ``media-src 'self' data:``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workspace.tenancy.errors import Conflict, Invalid, NotFound, TooLarge
from workspace.web.blocking import in_thread
from workspace.web.forms import one
from workspace.web.guards import requires
from workspace.web.html import sanitize_html
from workspace.web.render import ctx_of, fragment, is_htmx, notice, page, see_other
from workspace.web.uow import request_session as _db
from workspace.web.uow import runtime_of
from workspace.workflow import annotations as ann
from workspace.workflow import services as svc
from workspace.workflow.settings import workflow_settings
from workspace.workflow.label_config import CONTROL_TAGS, LabelConfig, parse_label_config
from workspace.workflow.media_import import media_url
from workspace.workflow.models import ACCEPTED, COUNTED_STATUSES, REJECTED, SKIPPED, SUBMITTED, Annotation, Project, Task
from workspace.workflow.revisions import parse_version
from workspace.lib.xmlsafe import Element

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]

_FIELD = re.compile(r"\$([A-Za-z_][A-Za-z0-9_-]*)")
_SAFE_MEDIA_PATH = re.compile(r"/media/[A-Za-z0-9_\-./%~?=&+]*")
_SAFE_DATA = {"image": re.compile(r"data:image/(png|jpe?g|gif|webp|bmp);base64,[A-Za-z0-9+/=\s]+"),
              "audio": re.compile(r"data:audio/(wav|x-wav|wave|mpeg|mp3|ogg|webm|flac|mp4|aac);base64,[A-Za-z0-9+/=\s]+")}
_PALETTE = ("#6366f1", "#ef4444", "#10b981", "#f59e0b", "#3b82f6", "#ec4899", "#14b8a6", "#8b5cf6")
_COLOR = re.compile(r"#[0-9A-Fa-f]{3,8}|[a-zA-Z]{3,20}|rgba?\([0-9., %]+\)")


def safe_media_src(url: Any, kind: str) -> str | None:
    """The URL when the page may load it under the CSP (``/media/...`` or a ``data:`` URI of ``kind``)."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if _SAFE_MEDIA_PATH.fullmatch(url) and ".." not in url and "//" not in url:
        return url
    pattern = _SAFE_DATA.get(kind)
    return url if pattern is not None and pattern.fullmatch(url) else None


def _field_value(data: dict[str, Any], value: str | None) -> Any:
    match = _FIELD.fullmatch(value or "")
    return data.get(match.group(1)) if match else value


def _stringify(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _label_items(control_element: Element, data: dict[str, Any], dynamic: str | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for i, item in enumerate(c for c in control_element.iter() if c.tag in ("Choice", "Label")):
        color = item.attrs.get("background", "")
        items.append({"value": item.attrs["value"], "result": item.attrs.get("alias") or item.attrs["value"],
                      "hotkey": (item.attrs.get("hotkey") or "")[:1], "hint": item.attrs.get("hint", ""),
                      "selected": item.attrs.get("selected", "").lower() == "true",
                      "color": color if _COLOR.fullmatch(color) else _PALETTE[i % len(_PALETTE)]})
    if dynamic and not items:  # value="$options": a list of strings or {"value": ...} in the task data
        raw = data.get(dynamic)
        for i, option in enumerate(raw if isinstance(raw, list) else []):
            value = option.get("value") if isinstance(option, dict) else option
            if isinstance(value, str):
                items.append({"value": value, "result": value, "hotkey": "", "hint": "", "selected": False,
                              "color": _PALETTE[i % len(_PALETTE)]})
    return items


def _nodes(element: Element, config: LabelConfig, data: dict[str, Any], media: Any = None) -> list[dict[str, Any]]:
    """A render model of the config tree for ``templates/workflow/partials/_label_node.html``."""
    objects = {o.name: o for o in config.objects}
    controls = {c.name: c for c in config.controls}
    out: list[dict[str, Any]] = []
    for child in element.children:
        tag, attrs = child.tag, child.attrs
        node: dict[str, Any] = {"tag": tag, "name": attrs.get("name", "")}
        if tag == "View":
            node.update(kind="view", inline=attrs.get("display") == "inline",
                        children=_nodes(child, config, data, media))
        elif tag == "Header":
            node.update(kind="header", text=_stringify(_field_value(data, attrs.get("value"))) or child.text.strip(),
                        size=attrs.get("size", "4"))
        elif tag == "Style":
            continue  # inline CSS cannot run under the CSP; the page has its own styles
        elif tag in ("Text", "HyperText"):
            obj = objects[node["name"]]
            text = ann.task_text(obj, data)
            raw = data.get(obj.field) if obj.field else None
            # HyperText shows as sanitized HTML, unless spans are labeled in it: their offsets index its plain text.
            spans = any(c.result_type == "labels" and obj.name in c.to_names for c in config.controls)
            node.update(kind="text", text=text if text is not None else _stringify(raw), field=obj.field,
                        missing=obj.field not in data, html=tag == "HyperText",
                        markup=sanitize_html(_stringify(raw)) if tag == "HyperText" and not spans else None)
        elif tag in ("Image", "Audio"):
            kind = tag.lower()
            url = _field_value(data, attrs.get("value") or attrs.get("valueList"))
            if isinstance(url, list):
                url = url[0] if url else None
            node.update(kind=kind, src=(media(url) if media else None) or safe_media_src(url, kind), url=_stringify(url), field=_FIELD.sub(r"\1",
                        attrs.get("value") or attrs.get("valueList") or ""), missing=url in (None, ""))
        elif tag in CONTROL_TAGS and node["name"] in controls:
            control = controls[node["name"]]
            opts = control.options
            node.update(kind="control", type=control.result_type, to_name=control.to_name,
                        options=_label_items(child, data, control.dynamic_field),
                        multiple=opts.get("choice") == "multiple", inline=opts.get("showInline") == "true",
                        required=opts.get("required", "").lower() == "true",
                        label=opts.get("label", ""), placeholder=opts.get("placeholder", ""),
                        rows=opts.get("rows", "3"), max_rating=int(opts.get("maxRating", "5")),
                        default=opts.get("defaultValue", ""), min=opts.get("min", ""), max=opts.get("max", ""),
                        step=opts.get("step", "any"), hotkey=(opts.get("hotkey") or "")[:1],
                        target_tag=objects[control.to_name].tag if control.to_name in objects else "")
        else:
            continue
        out.append(node)
    return out


def _iso(moment: datetime | None) -> str | None:
    """An ISO timestamp the browser reads as UTC (SQLite hands back naive UTC datetimes)."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


_STATUS_LABELS = {SUBMITTED: "Submitted", SKIPPED: "Skipped", REJECTED: "Rejected: fix and resubmit",
                  ACCEPTED: "Accepted"}


def _actions(start: ann.Start) -> dict[str, Any]:
    """The buttons of the page. The primary one answers Ctrl+Enter: "Submit & next" (the queue goes
    on), beside a plain "Submit" that stays on the task; "Update" once the member submitted the task."""
    work = start.work
    status = work.annotation.status if work.annotation is not None else ""
    if status == REJECTED:  # fixed and sent back to review
        buttons = [{"then": "stay", "label": "Resubmit", "primary": True}]
    elif status == ACCEPTED:  # final: a reviewer accepted it
        buttons = []
    elif work.submitted:
        buttons = [{"then": "stay", "label": "Update", "primary": True}]
    else:
        buttons = [{"then": "stay", "label": "Submit", "primary": False},
                   {"then": "next", "label": "Submit & next", "primary": True}]
    draft, annotation = work.draft, work.annotation
    moment: datetime | None = None
    if start.source == "draft" and draft is not None:
        state, label, moment = "draft", "Draft restored", draft.updated_at or draft.created_at
    elif annotation is not None:
        state, label = annotation.status, _STATUS_LABELS.get(annotation.status, "Submitted")
        moment = annotation.updated_at or annotation.created_at
    else:
        state, label = "", ""
    return {"buttons": buttons, "skip": not work.submitted, "submitted": work.submitted, "state": state,
            "state_label": label, "at": _iso(moment),
            "yours": {REJECTED: "Rejected", ACCEPTED: "Accepted"}.get(status) or (
                "Submitted" if work.submitted else "Skipped" if work.skipped else "Not submitted"),
            "suggested": start.source == "prediction" and bool(start.result)}


def _label_page(request: Request[Any, Any, Any], project: Project, task: Task | None, *, status: int = 200,
                error: str = "", fix: Annotation | None = None) -> Template:
    """``fix``: a reviewer's "fix & accept" of someone's annotation (workspace.workflow.routes.review):
    the page starts from that annotation's result and submits to the review's fix endpoint."""
    db = _db(request)
    user_id = ctx_of(request).user_id
    config = parse_label_config(project.label_config)
    data = task.data if task is not None and isinstance(task.data, dict) else {}
    sign = lambda value: media_url(runtime_of(request), ctx_of(request).tenant_id, value)  # "/media/<key>" -> short-lived URL
    nodes = _nodes(config.root, config, data, sign) if task is not None else []
    texts = {o.name: ann.task_text(o, data) for o in config.objects if o.tag in ("Text", "HyperText")}
    kinds = {c.result_type for c in config.controls}
    has_regions = bool(kinds & (ann.IMAGE_RESULT_TYPES | {"labels"}))  # the page lists regions
    total = db.scalar(select(func.count(Task.id)).where(Task.project_id == project.id)) or 0
    mine: dict[str, int] = {status: n for status, n in db.execute(  # tasks I submitted, skipped (drafts are not done)
        select(Annotation.status, func.count(func.distinct(Annotation.task_id)))
        .where(Annotation.project_id == project.id, Annotation.completed_by_id == user_id,
               Annotation.status.in_((*COUNTED_STATUSES, SKIPPED)))
        .group_by(Annotation.status))}
    remaining_task = ann.next_task(db, project.id, user_id, reserve=False)  # a look, no reservation
    start = ann.starting_point(db, config, task, user_id) if task is not None else None
    actions = _actions(start) if start is not None else {}
    base = f"/t/{ctx_of(request).tenant_slug}/projects/{project.id}/label"
    review: dict[str, Any] = {}  # the reviewer's rejection comment, the version the page was loaded with
    if fix is not None and task is not None:
        start = ann.Start(ann.MyWork(fix, None), "annotation",
                          ann._fitting(config, data, fix.result, id_prefix=f"annotation-{fix.id}"))
        actions = {"buttons": [{"then": "next", "label": "Fix & accept", "primary": True}], "skip": False,
                   "submitted": False, "state": "", "state_label": "", "at": None, "yours": "Reviewing",
                   "suggested": False}
        base = f"/t/{ctx_of(request).tenant_slug}/projects/{project.id}/review/{fix.id}/fix"
        review = {"fix": fix, "version": fix.version}
    elif start is not None and start.work.annotation is not None and start.work.submitted:
        from workspace.workflow.reviews import rejection_notice

        review = {"version": start.work.annotation.version, "annotation_id": start.work.annotation.id,
                  "rejection": rejection_notice(db, start.work.annotation)}
    return page(request, "workflow/label.html", status=status, project=project, task=task, nodes=nodes,
                texts=texts, kinds=kinds, has_regions=has_regions, total=total, done=sum(n for s, n in mine.items() if s in COUNTED_STATUSES),
                skipped=mine.get(SKIPPED, 0), error=error,
                has_remaining=remaining_task is not None and (task is None or remaining_task.id != task.id),
                actions=actions, base=base, review=review,
                # blind overlap: an annotator does not learn how many others annotated the task
                blind_counts=not ctx_of(request).has("project:review") and workflow_settings(project.workflow).blind,
                client={"texts": {k: v for k, v in texts.items() if v is not None},
                        "task": task.id if task else None,
                        "suggestions": start.result if start is not None and start.source == "prediction" else [],
                        "restore": start.result if start is not None and start.source != "prediction" else None,
                        "lead_time": start.lead_time if start is not None else 0,
                        "state": actions.get("state", ""), "at": actions.get("at")})


@get("/t/{slug:str}/projects/{project_id:int}/label", opt=requires("project:annotate", nav="projects"),
     name="label_task")
@in_thread
def label_task(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    db = _db(request)
    project = svc.get_project(db, project_id)
    raw = request.query_params.get("task")
    if raw:
        if not raw.isdigit():
            raise NotFound("Task not found")
        task: Task | None = ann.get_task(db, project.id, int(raw))
    else:
        task = ann.next_task(db, project.id, ctx_of(request).user_id)
    return _label_page(request, project, task)


def _form_task(db: Session, project: Project, data: dict[str, Any]) -> Task:
    raw_task = one(data, "task")
    if not raw_task.isdigit():
        raise NotFound("Task not found")
    return ann.get_task(db, project.id, int(raw_task))


def _raw_result(data: dict[str, Any]) -> str:
    raw = data.get("result", "")
    raw = raw[-1] if isinstance(raw, list) and raw else raw
    return raw if isinstance(raw, str) else ""


def _go(request: Request[Any, Any, Any], slug: str, project_id: int, task_id: int | None) -> Response[Any] | Redirect:
    """To ``task_id`` (None: the next task in the queue); htmx (the page's fetch) follows HX-Redirect."""
    target = f"/t/{slug}/projects/{project_id}/label"
    if task_id is None:
        following = ann.next_task(_db(request), project_id, ctx_of(request).user_id)
        task_id = following.id if following is not None else None
    if task_id is not None:
        target += f"?task={task_id}"
    if is_htmx(request):
        return Response(None, status_code=204, headers={"HX-Redirect": target})
    return see_other(target)


def _parse_lead_time(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return round(value, 3) if 0 <= value < 10**7 else None


@post("/t/{slug:str}/projects/{project_id:int}/label", opt=requires("project:annotate", nav="projects"),
      name="submit_annotation")
@in_thread
def submit_annotation(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                      data: Form) -> Template | Redirect | Response[Any]:
    """Submit (or update) the member's annotation, then stay on the task (``then=stay``) or go on to
    the next one (``then=next``, the default)."""
    db = _db(request)
    project = svc.get_project(db, project_id)
    task = _form_task(db, project, data)
    raw_result = _raw_result(data)
    stay = one(data, "then") == "stay"
    try:
        try:
            result = json.loads(raw_result) if raw_result.strip() else None
        except ValueError as exc:
            raise ann.ResultInvalid(f"The result is not valid JSON: {exc}.", field="result") from None
        if result is None:
            raise ann.ResultInvalid("The annotation is empty: label something before submitting.", field="result")
        updating = ann.my_work(db, task.id, ctx_of(request).user_id).submitted
        ann.submit_annotation(db, ctx_of(request), project.id, task.id, result,
                              _parse_lead_time(one(data, "lead_time")),
                              seen_version=parse_version(data.get("version")))
    except Invalid as exc:
        return _refused(request, project_id, task.id, exc)
    if stay:
        notice(request, f"Task #{task.id}: your annotation is {'updated' if updating else 'submitted'}.")
    return _go(request, slug, project.id, task.id if stay else None)


def _refused(request: Request[Any, Any, Any], project_id: int, task_id: int,
             exc: Invalid | Conflict) -> Template:
    """Nothing saved: the errors box (htmx), or the page again with the error."""
    db = _db(request)
    db.rollback()
    status = 409 if isinstance(exc, Conflict) else 422
    if is_htmx(request):
        return fragment(request, "workflow/partials/_label_errors.html", status=status, error=exc.message)
    project = svc.get_project(db, project_id)
    return _label_page(request, project, ann.get_task(db, project.id, task_id), status=status, error=exc.message)


@post("/t/{slug:str}/projects/{project_id:int}/label/skip", opt=requires("project:annotate", nav="projects"),
      name="skip_task")
@in_thread
def skip_task(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
              data: Form) -> Template | Redirect | Response[Any]:
    """Skip the task (discarding the member's draft) and go on to the next one."""
    db = _db(request)
    project = svc.get_project(db, project_id)
    task = _form_task(db, project, data)
    try:
        ann.skip_task(db, ctx_of(request), project.id, task.id, _parse_lead_time(one(data, "lead_time")))
    except Conflict as exc:
        return _refused(request, project_id, task.id, exc)
    notice(request, f"Task #{task.id} skipped. It stays out of your queue; open it by its number to label it after all.",
           "info")
    return _go(request, slug, project.id, None)


@post("/t/{slug:str}/projects/{project_id:int}/label/draft", opt=requires("project:annotate", nav="projects"),
      name="save_draft", request_max_body_size=4 * ann.MAX_DRAFT_BYTES)  # URL encoding may triple the JSON
@in_thread
def save_draft(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
               data: Form) -> Response[Any]:
    """Save the member's work in progress (JSON answer; errors as JSON too when asked with Accept)."""
    db = _db(request)
    project = svc.get_project(db, project_id)
    task = _form_task(db, project, data)
    raw_result = _raw_result(data)
    if len(raw_result.encode()) > ann.MAX_DRAFT_BYTES:
        raise TooLarge(f"The draft is larger than {ann.MAX_DRAFT_BYTES // 1_000_000} MB, so it was not saved. "
                       "Your work is still on this page: submit it to keep it.", field="result")
    try:
        result = json.loads(raw_result or "[]")
    except ValueError as exc:
        raise ann.ResultInvalid(f"The draft is not valid JSON: {exc}.", field="result") from None
    draft = ann.save_draft(db, ctx_of(request), project.id, task.id, result, _parse_lead_time(one(data, "lead_time")))
    return Response({"id": draft.id, "task": task.id, "saved_at": _iso(draft.updated_at or draft.created_at)},
                    status_code=200)


route_handlers = [label_task, submit_annotation, skip_task, save_draft]
