"""The comments panel of a task: loaded by htmx into the labeling page and the review page.

``GET /t/{slug}/projects/{project_id}/comments?task=<id>[&annotation=<id>]`` answers the panel
(``templates/workflow/partials/_comments.html``); with ``annotation`` new threads are about that
annotation by default (the review page passes the annotation under review). Posting, replying,
editing, deleting and resolving answer the panel again (htmx swaps it in place), or, without htmx,
go back to the labeling page at the comment. Mention autocomplete lists members who can read the
project (``/comments/mentions?q=``).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template

from workspace.tenancy.errors import Invalid, NotFound
from workspace.web.blocking import in_thread
from workspace.web.forms import one
from workspace.web.guards import requires
from workspace.web.render import ctx_of, fragment, is_htmx, notice, see_other
from workspace.web.uow import request_session as _db
from workspace.web.uow import runtime_of
from workspace.workflow import comments as cm
from workspace.workflow import services as svc
from workspace.workflow.models import Project

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _can(request: Request[Any, Any, Any], project_id: int) -> cm.Can:
    """Whether a member holds a permission in this project (mention targets, reply notifications)."""
    authz = runtime_of(request).authz
    tenant_id = ctx_of(request).tenant_id
    return lambda user_id, permission: authz.can(user_id, tenant_id, permission, project_id)


def _id(raw: str, what: str) -> int | None:
    if raw in ("", None):
        return None
    if not raw.isdigit():
        raise NotFound(f"{what} not found")
    return int(raw)


def _panel(request: Request[Any, Any, Any], project: Project, task_id: int, *, focus: int | None = None,
           status: int = 200, errors: dict[str, str] | None = None, form: dict[str, Any] | None = None) -> Template:
    db = _db(request)
    ctx = ctx_of(request)
    viewer = cm.viewer_of(ctx, project)
    threads = cm.threads(db, viewer, project.id, task_id)
    choices = cm.annotation_choices(db, viewer, task_id) if viewer.can_post else []
    if focus is not None and focus not in {c["id"] for c in choices}:
        focus = None
    base = f"/t/{ctx.tenant_slug}/projects/{project.id}/comments"
    return fragment(request, "workflow/partials/_comments.html", status=status, project=project, task_id=task_id,
                    threads=threads, viewer=viewer, choices=choices, focus=focus, base=base,
                    reload=f"{base}?task={task_id}" + (f"&annotation={focus}" if focus else ""),
                    count=sum(1 + len(t.replies) for t in threads), errors=errors or {}, form=form or {},
                    max_body=cm.MAX_BODY)


def _body(data: Form) -> str:
    """The comment text of a form (the last one when a field is sent twice)."""
    value = data.get("body", "")
    return str(value[-1] if isinstance(value, list) else value)


def _refused(request: Request[Any, Any, Any], project_id: int, task_id: int, comment_id: int | None,
             focus: int | None, field: str, body: str, exc: Invalid) -> Template | Redirect:
    """A comment the service refused: nothing is kept; the form comes back with the message and the
    text the member typed (HTMX), or the task page says why."""
    db = _db(request)
    db.rollback()
    if not is_htmx(request):
        notice(request, exc.message, "error")
        return see_other(cm.task_link(ctx_of(request), project_id, task_id, comment_id))
    project = svc.get_project(db, project_id)
    return _panel(request, project, task_id, focus=focus, status=422, errors={field: exc.message}, form={field: body})


def _answer(request: Request[Any, Any, Any], project: Project, task_id: int, comment_id: int | None,
            focus: int | None, message: str) -> Template | Redirect:
    if is_htmx(request):
        return _panel(request, project, task_id, focus=focus)
    notice(request, message)
    return see_other(cm.task_link(ctx_of(request), project.id, task_id, comment_id))


@get("/t/{slug:str}/projects/{project_id:int}/comments", opt=requires("project:read"), name="task_comments")
@in_thread
def task_comments(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    project = svc.get_project(_db(request), project_id)
    task_id = _id(request.query_params.get("task", ""), "Task")
    if task_id is None:
        raise NotFound("Task not found")
    return _panel(request, project, task_id, focus=_id(request.query_params.get("annotation", ""), "Annotation"))


@post("/t/{slug:str}/projects/{project_id:int}/comments", opt=requires("project:annotate"), name="post_comment")
@in_thread
def post_comment(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                 data: Form) -> Template | Redirect:
    db = _db(request)
    project = svc.get_project(db, project_id)
    task_id = _id(one(data, "task"), "Task")
    if task_id is None:
        raise NotFound("Task not found")
    focus = _id(one(data, "focus"), "Annotation")
    parent_id = _id(one(data, "parent"), "Comment")
    body = _body(data)
    try:
        comment = cm.post_comment(db, ctx_of(request), project, task_id, body, can=_can(request, project.id),
                                  annotation_id=_id(one(data, "annotation"), "Annotation"), parent_id=parent_id)
    except Invalid as exc:
        return _refused(request, project_id, task_id, None, focus, f"reply-{parent_id}" if parent_id else "body",
                        body, exc)
    return _answer(request, project, task_id, comment.id, focus, "Reply posted." if parent_id else "Comment posted.")


@post("/t/{slug:str}/projects/{project_id:int}/comments/{comment_id:int}/edit", opt=requires("project:annotate"),
      name="edit_comment")
@in_thread
def edit_comment(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                 comment_id: FromPath[int], data: Form) -> Template | Redirect:
    db = _db(request)
    project = svc.get_project(db, project_id)
    focus = _id(one(data, "focus"), "Annotation")
    body = _body(data)
    comment = cm.get_comment(db, cm.viewer_of(ctx_of(request), project), project.id, comment_id)
    task_id = comment.task_id
    try:
        cm.edit_comment(db, ctx_of(request), project, comment_id, body, can=_can(request, project.id))
    except Invalid as exc:
        return _refused(request, project_id, task_id, comment_id, focus, f"edit-{comment_id}", body, exc)
    return _answer(request, project, task_id, comment_id, focus, "Comment updated.")


@post("/t/{slug:str}/projects/{project_id:int}/comments/{comment_id:int}/delete", opt=requires("project:annotate"),
      name="delete_comment")
@in_thread
def delete_comment(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                   comment_id: FromPath[int], data: Form) -> Template | Redirect:
    db = _db(request)
    project = svc.get_project(db, project_id)
    comment = cm.delete_comment(db, ctx_of(request), project, comment_id)
    return _answer(request, project, comment.task_id, None, _id(one(data, "focus"), "Annotation"), "Comment deleted.")


@post("/t/{slug:str}/projects/{project_id:int}/comments/{comment_id:int}/resolve", opt=requires("project:annotate"),
      name="resolve_comment")
@in_thread
def resolve_comment(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                    comment_id: FromPath[int], data: Form) -> Template | Redirect:
    db = _db(request)
    project = svc.get_project(db, project_id)
    resolved = one(data, "resolved", "1") != "0"
    thread = cm.set_resolved(db, ctx_of(request), project, comment_id, resolved)
    return _answer(request, project, thread.task_id, thread.id, _id(one(data, "focus"), "Annotation"),
                   "Thread resolved." if resolved else "Thread reopened.")


@get("/t/{slug:str}/projects/{project_id:int}/comments/mentions", opt=requires("project:annotate"),
     name="mention_suggestions")
@in_thread
def mention_suggestions(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    db = _db(request)
    project = svc.get_project(db, project_id)
    query = (request.query_params.get("q") or "")[:100]
    people = cm.mention_candidates(db, ctx_of(request), _can(request, project.id), query)
    return fragment(request, "workflow/partials/_mention_list.html", people=people, query=query)


route_handlers = [task_comments, post_comment, edit_comment, delete_comment, resolve_comment, mention_suggestions]
