"""The labeling page: one task, the project's config rendered server-side, results in Label Studio's format.

The page is built from a small view model (:func:`_nodes`) walked by a recursive Jinja macro; the
browser side (``static/labeling.js``) only adds interaction (span selection, boxes, polygons,
keypoints, hotkeys) and builds the ``result`` JSON on submit. The server validates that JSON strictly
(:mod:`workspace.workflow.annotations`). The image regions of the task's latest prediction arrive
as editable suggestions. ``HyperText`` is shown as sanitized HTML (:mod:`workspace.web.html`).

Media: the app's CSP allows images from ``'self'`` and ``data:`` only, so a media URL from task data
is put into ``<img>``/``<audio>`` only when it is a same-origin path under ``/media/`` or a ``data:``
URI of the matching kind; anything else (another host, ``javascript:``...) is shown as a notice with
the address as plain text. Note the CSP has no ``media-src``: ``default-src 'self'`` applies to
``<audio>``, so ``/media/...`` audio plays while ``data:`` audio needs ``media-src 'self' data:``.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from sqlalchemy import func, select

from workspace.tenancy.errors import Invalid, NotFound
from workspace.web.blocking import in_thread
from workspace.web.forms import one
from workspace.web.guards import requires
from workspace.web.html import sanitize_html
from workspace.web.render import ctx_of, fragment, is_htmx, page, see_other
from workspace.web.uow import request_session as _db
from workspace.web.uow import runtime_of
from workspace.workflow import annotations as ann
from workspace.workflow import services as svc
from workspace.workflow.label_config import CONTROL_TAGS, LabelConfig, parse_label_config
from workspace.workflow.media_import import media_url
from workspace.workflow.models import Annotation, Project, Task
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


def _label_page(request: Request[Any, Any, Any], project: Project, task: Task | None, *, status: int = 200,
                error: str = "") -> Template:
    db = _db(request)
    config = parse_label_config(project.label_config)
    data = task.data if task is not None and isinstance(task.data, dict) else {}
    sign = lambda value: media_url(runtime_of(request), ctx_of(request).tenant_id, value)  # "/media/<key>" -> short-lived URL
    nodes = _nodes(config.root, config, data, sign) if task is not None else []
    texts = {o.name: ann.task_text(o, data) for o in config.objects if o.tag in ("Text", "HyperText")}
    kinds = {c.result_type for c in config.controls}
    has_regions = bool(kinds & (ann.IMAGE_RESULT_TYPES | {"labels"}))  # the page lists regions
    total = db.scalar(select(func.count(Task.id)).where(Task.project_id == project.id)) or 0
    mine = db.scalar(select(func.count(func.distinct(Annotation.task_id)))
                     .where(Annotation.project_id == project.id, Annotation.completed_by_id == ctx_of(request).user_id)) or 0
    remaining_task = ann.next_task(db, project.id, ctx_of(request).user_id)
    return page(request, "workflow/label.html", status=status, project=project, task=task, nodes=nodes,
                texts=texts, kinds=kinds, has_regions=has_regions, total=total, done=mine, error=error,
                has_remaining=remaining_task is not None,
                client={"texts": {k: v for k, v in texts.items() if v is not None},
                        "task": task.id if task else None,
                        "suggestions": ann.suggested_regions(db, config, task) if task is not None else []})


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
    db = _db(request)
    project = svc.get_project(db, project_id)
    raw_task = one(data, "task")
    if not raw_task.isdigit():
        raise NotFound("Task not found")
    task = ann.get_task(db, project.id, int(raw_task))
    raw_result = data.get("result", "")
    raw_result = raw_result[-1] if isinstance(raw_result, list) and raw_result else raw_result
    try:
        try:
            result = json.loads(raw_result) if isinstance(raw_result, str) and raw_result.strip() else None
        except ValueError as exc:
            raise ann.ResultInvalid(f"The result is not valid JSON: {exc}.", field="result") from None
        if result is None:
            raise ann.ResultInvalid("The annotation is empty: label something before submitting.", field="result")
        ann.submit_annotation(db, ctx_of(request), project.id, task.id, result,
                              _parse_lead_time(one(data, "lead_time")))
    except Invalid as exc:
        db.rollback()
        status = 422
        if is_htmx(request):
            return fragment(request, "workflow/partials/_label_errors.html", status=status, error=exc.message)
        project = svc.get_project(db, project_id)
        return _label_page(request, project, ann.get_task(db, project.id, task.id), status=status, error=exc.message)
    target = f"/t/{slug}/projects/{project.id}/label"
    following = ann.next_task(db, project.id, ctx_of(request).user_id)
    if following is not None:
        target += f"?task={following.id}"
    if is_htmx(request):
        return Response(None, status_code=204, headers={"HX-Redirect": target})
    return see_other(target)


route_handlers = [label_task, submit_annotation]
