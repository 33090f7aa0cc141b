"""The review stream and annotation history pages.

* ``/review``: the reviewer's queue (submitted annotations the project sends to review, never their
  own, only tasks assigned to them when the project assigns reviewers). It shows one annotation with
  its task and, for tasks labeled by several annotators, the others' results side by side with the
  regions that differ highlighted. Actions: Accept, Reject (a comment is required), Fix & accept (the
  labeling page in "fix" mode, ``/review/{annotation_id}/fix``), then the next item.
* ``/annotations/{annotation_id}/history``: every revision of an annotation (who, when, action, what
  changed) and the annotation as of any of them (``?revision=N``).

Every verdict carries the annotation version its reviewer saw; when someone acted first the answer is
409 with who did what when, and the refused attempt is written to the audit log in its own
transaction (``annotation.review_conflict``), since the request's own rolls back.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from sqlalchemy import select

from workspace.audit.chain import get_actor
from workspace.tenancy.errors import Conflict, Invalid, NotFound
from workspace.tenancy.models import User
from workspace.web.blocking import in_thread
from workspace.web.forms import one
from workspace.web.guards import requires
from workspace.web.render import ctx_of, fragment, is_htmx, notice, page, see_other
from workspace.web.uow import request_session as _db
from workspace.web.uow import runtime_of
from workspace.workflow import annotations as ann
from workspace.workflow import reviews, revisions, states
from workspace.workflow import services as svc
from workspace.workflow.label_config import parse_label_config
from workspace.workflow.media_import import media_url
from workspace.workflow.models import Annotation, Project, Task
from workspace.workflow.settings import workflow_settings

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _names(db: Any, user_ids: set[int | None]) -> dict[int, str]:
    ids = {i for i in user_ids if i is not None}
    if not ids:
        return {}
    return {u.id: (u.name or u.email) for u in db.scalars(select(User).where(User.id.in_(sorted(ids))))}


def _signature(region: dict[str, Any]) -> str:
    """What a region says, without its id: two annotators agree on a region when these are equal."""
    return json.dumps([region.get("from_name"), region.get("to_name"), region.get("type"), region.get("value")],
                      sort_keys=True, default=str)


def _rows(result: Any, compare_with: list[set[str]] | None = None) -> list[dict[str, Any]]:
    """The region table of a result; ``compare_with``: the other annotators' region signatures — a
    region none of them has is marked as a difference."""
    rows = []
    for region in result if isinstance(result, list) else []:
        if not isinstance(region, dict):
            continue
        row = revisions.region_summary(region)
        row["differs"] = bool(compare_with) and not any(_signature(region) in sigs for sigs in compare_with or [])
        rows.append(row)
    return rows


def _task_view(request: Request[Any, Any, Any], project: Project, task: Task) -> list[dict[str, Any]]:
    """What the task shows, object by object: texts as text, images as images (read-only)."""
    from workspace.workflow.routes.labeling import safe_media_src

    config = parse_label_config(project.label_config)
    data = task.data if isinstance(task.data, dict) else {}
    items: list[dict[str, Any]] = []
    for obj in config.objects:
        if obj.tag in ("Text", "HyperText"):
            items.append({"kind": "text", "name": obj.name, "text": ann.task_text(obj, data) or ""})
        elif obj.tag in ("Image", "Audio"):
            url = data.get(obj.field) if obj.field else None
            kind = obj.tag.lower()
            src = media_url(runtime_of(request), ctx_of(request).tenant_id, url) or safe_media_src(url, kind)
            items.append({"kind": kind, "name": obj.name, "src": src, "url": url if isinstance(url, str) else ""})
    return items


def _review_context(request: Request[Any, Any, Any], project: Project, annotation_id: int | None, *,
                    error: str = "", comment: str = "", error_field: str | None = None) -> dict[str, Any]:
    db = _db(request)
    ctx = ctx_of(request)
    settings = workflow_settings(project.workflow)
    waiting = reviews.queue(db, project, ctx.user_id)
    total = reviews.queue_count(db, project, ctx.user_id)
    current: Annotation | None
    if annotation_id is not None:
        current = reviews.review_target(db, project.id, annotation_id)
    else:
        current = waiting[0] if waiting else None
    item: dict[str, Any] | None = None
    if current is not None:
        task = ann.get_task(db, project.id, current.task_id)
        others = reviews.others_on_task(db, current)
        names = _names(db, {current.completed_by_id, *(o.completed_by_id for o in others)})
        mine = {_signature(r) for r in current.result or [] if isinstance(r, dict)}
        other_sigs = [{_signature(r) for r in o.result or [] if isinstance(r, dict)} for o in others]
        item = {"annotation": current, "task": task, "task_view": _task_view(request, project, task),
                "author": names.get(current.completed_by_id or -1, "a former member"),
                "rows": _rows(current.result, other_sigs if others else None),
                "own": current.completed_by_id == ctx.user_id,
                "reviewable": current.status == "submitted" and current.completed_by_id != ctx.user_id,
                "others": [{"annotation": o, "author": names.get(o.completed_by_id or -1, "a former member"),
                            "rows": _rows(o.result, [mine])} for o in others],
                "reviews": list(db.scalars(select(reviews.Review).where(reviews.Review.annotation_id == current.id)
                                           .order_by(reviews.Review.id)))}
        item["reviewers"] = _names(db, {r.reviewer_id for r in item["reviews"]})
    authors = _names(db, {a.completed_by_id for a in waiting})
    return {"project": project, "item": item, "waiting": waiting, "total": total, "authors": authors,
            "settings": settings, "error": error, "comment": comment, "error_field": error_field,
            "base": f"/t/{ctx.tenant_slug}/projects/{project.id}"}


def _annotation_param(request: Request[Any, Any, Any]) -> int | None:
    raw = request.query_params.get("annotation")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise NotFound("Annotation not found")
    return int(raw)


@get("/t/{slug:str}/projects/{project_id:int}/review", opt=requires("project:review", nav="projects"),
     name="review_stream")
@in_thread
def review_stream(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    project = svc.get_project(_db(request), project_id)
    return page(request, "workflow/review.html", **_review_context(request, project, _annotation_param(request)))


def _refused_verdict(request: Request[Any, Any, Any], project_id: int, annotation_id: int, action: str,
                     exc: Invalid | Conflict, comment: str = "") -> Template:
    """Nothing saved. A conflict (someone acted first, or the annotation moved on) is written to the
    audit log in a transaction of its own; the page shows the message."""
    db = _db(request)
    actor = get_actor(db)
    db.rollback()
    if isinstance(exc, Conflict):
        reviews.record_conflict(runtime_of(request).unit_of_work, ctx_of(request), actor, annotation_id, action, exc)
    project = svc.get_project(db, project_id)
    return page(request, "workflow/review.html", status=409 if isinstance(exc, Conflict) else 422,
                **_review_context(request, project, annotation_id, error=exc.message, comment=comment,
                                  error_field=exc.field))


def _verdict_route(request: Request[Any, Any, Any], slug: str, project_id: int, annotation_id: int,
                   data: dict[str, Any], action: str) -> Template | Redirect:
    db = _db(request)
    project = svc.get_project(db, project_id)
    reviews.review_target(db, project.id, annotation_id)  # another project's or tenant's: 404 first
    comment = one(data, "comment")
    seen = revisions.parse_version(data.get("version"))
    try:
        if action == "accept":
            reviews.accept(db, ctx_of(request), project.id, annotation_id, seen, comment)
        else:
            reviews.reject(db, ctx_of(request), project.id, annotation_id, seen, comment)
    except (Invalid, Conflict) as exc:
        return _refused_verdict(request, project_id, annotation_id, action, exc, comment)
    word = "accepted" if action == "accept" else "rejected: it goes back to its annotator with your comment"
    notice(request, f"Annotation #{annotation_id} {word}.")
    return see_other(f"/t/{slug}/projects/{project.id}/review")


@post("/t/{slug:str}/projects/{project_id:int}/review/{annotation_id:int}/accept",
      opt=requires("project:review", nav="projects"), name="review_accept")
@in_thread
def review_accept(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                  annotation_id: FromPath[int], data: Form) -> Template | Redirect:
    return _verdict_route(request, slug, project_id, annotation_id, data, "accept")


@post("/t/{slug:str}/projects/{project_id:int}/review/{annotation_id:int}/reject",
      opt=requires("project:review", nav="projects"), name="review_reject")
@in_thread
def review_reject(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                  annotation_id: FromPath[int], data: Form) -> Template | Redirect:
    return _verdict_route(request, slug, project_id, annotation_id, data, "reject")


@get("/t/{slug:str}/projects/{project_id:int}/review/{annotation_id:int}/fix",
     opt=requires("project:review", nav="projects"), name="review_fix_page")
@in_thread
def review_fix_page(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                    annotation_id: FromPath[int]) -> Template:
    """The labeling page in "fix" mode: the annotation's result, editable; submitting fixes and accepts."""
    from workspace.workflow.routes.labeling import _label_page

    db = _db(request)
    project = svc.get_project(db, project_id)
    annotation = reviews.review_target(db, project.id, annotation_id)
    ctx = ctx_of(request)  # own work (403) or no longer submitted (409): refused before any editing
    states.transition(annotation.status, "fix", actor_id=ctx.user_id, author_id=annotation.completed_by_id,
                      may_review=ctx.has("project:review"))
    return _label_page(request, project, ann.get_task(db, project.id, annotation.task_id), fix=annotation)


@post("/t/{slug:str}/projects/{project_id:int}/review/{annotation_id:int}/fix",
      opt=requires("project:review", nav="projects"), name="review_fix")
@in_thread
def review_fix(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
               annotation_id: FromPath[int], data: Form) -> Template | Redirect | Response[Any]:
    """Fix & accept (posted by the labeling page's script: errors answer as its error fragment)."""
    db = _db(request)
    project = svc.get_project(db, project_id)
    reviews.review_target(db, project.id, annotation_id)
    raw = data.get("result", "")
    raw = raw[-1] if isinstance(raw, list) and raw else raw
    try:
        try:
            result = json.loads(raw) if isinstance(raw, str) and raw.strip() else None
        except ValueError as exc:
            raise ann.ResultInvalid(f"The result is not valid JSON: {exc}.", field="result") from None
        if result is None:
            raise ann.ResultInvalid("The annotation is empty: label something before accepting it.", field="result")
        reviews.fix_and_accept(db, ctx_of(request), project.id, annotation_id,
                               revisions.parse_version(data.get("version")), result, one(data, "comment"))
    except (Invalid, Conflict) as exc:
        if not is_htmx(request):
            return _refused_verdict(request, project_id, annotation_id, "fix", exc)
        actor = get_actor(db)
        db.rollback()
        if isinstance(exc, Conflict):
            reviews.record_conflict(runtime_of(request).unit_of_work, ctx_of(request), actor, annotation_id, "fix", exc)
        return fragment(request, "workflow/partials/_label_errors.html",
                        status=409 if isinstance(exc, Conflict) else 422, error=exc.message)
    notice(request, f"Annotation #{annotation_id} fixed and accepted.")
    target = f"/t/{slug}/projects/{project.id}/review"
    if is_htmx(request):
        return Response(None, status_code=204, headers={"HX-Redirect": target})
    return see_other(target)


@get("/t/{slug:str}/projects/{project_id:int}/annotations/{annotation_id:int}/history",
     opt=requires("project:annotate", nav="projects"), name="annotation_history")
@in_thread
def annotation_history(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                       annotation_id: FromPath[int]) -> Template:
    """Every revision of the annotation, and the annotation as of one of them (``?revision=N``; the
    latest by default). Its annotator and reviewers see it; to anyone else it does not exist."""
    db = _db(request)
    ctx = ctx_of(request)
    project = svc.get_project(db, project_id)
    annotation = reviews.review_target(db, project.id, annotation_id)
    if annotation.completed_by_id != ctx.user_id and not ctx.has("project:review"):
        raise NotFound("Annotation not found")
    if annotation.status == "draft":
        raise NotFound("Annotation not found")  # a draft is private to its author and has no history
    history = revisions.history(db, annotation.id)
    names = _names(db, {r.actor_id for r in history} | {annotation.completed_by_id})
    entries = []
    previous: list[dict[str, Any]] | None = None
    for rev in history:
        change = revisions.diff(previous, rev.result)
        entries.append({"revision": rev, "actor": names.get(rev.actor_id or -1, "system"), "diff": change,
                        "summary": change.summary() if previous is not None else
                        f"{len(rev.result or [])} region{'' if len(rev.result or []) == 1 else 's'}"})
        previous = rev.result
    raw = request.query_params.get("revision")
    selected = entries[-1] if entries else None
    if raw:
        if not raw.isdigit():
            raise NotFound("Revision not found")
        selected = next((e for e in entries if e["revision"].number == int(raw)), None)
        if selected is None:
            raise NotFound("Revision not found")
    task = ann.get_task(db, project.id, annotation.task_id)
    view = None
    if selected is not None:
        rev = selected["revision"]
        view = {"entry": selected, "rows": _rows(rev.result), "latest": rev is history[-1]}
    return page(request, "workflow/annotation_history.html", project=project, annotation=annotation, task=task,
                task_view=_task_view(request, project, task), entries=entries, view=view,
                author=names.get(annotation.completed_by_id or -1, "a former member"),
                base=f"/t/{ctx.tenant_slug}/projects/{project.id}")


route_handlers = [review_stream, review_accept, review_reject, review_fix_page, review_fix, annotation_history]
