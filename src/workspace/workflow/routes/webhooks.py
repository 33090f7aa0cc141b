"""A project's webhooks: create (the secret is shown once), enable/disable, delete; each webhook's
delivery log with "Redeliver"."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template

from workspace.tenancy.errors import ServiceError
from workspace.web.blocking import in_thread
from workspace.web.forms import many, one
from workspace.web.guards import requires
from workspace.web.render import ctx_of, notice, page, see_other
from workspace.web.uow import request_session as _db
from workspace.webhooks import services as hooks
from workspace.workflow import services as svc

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _context(request: Request[Any, Any, Any], project_id: int, **extra: Any) -> dict[str, Any]:
    db = _db(request)
    project = svc.get_project(db, project_id)
    return {"project": project, "webhooks": hooks.list_webhooks(db, project.id), "events": hooks.EVENTS,
            "errors": {}, "form": {"url": "", "events": []}, "created": None, **extra}


@get("/t/{slug:str}/projects/{project_id:int}/webhooks", opt=requires("project:update", nav="projects"),
     name="webhooks")
@in_thread
def webhooks_page(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    return page(request, "workflow/webhooks.html", **_context(request, project_id))


@post("/t/{slug:str}/projects/{project_id:int}/webhooks", opt=requires("project:update", nav="projects"),
      name="create_webhook")
@in_thread
def create_webhook(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                   data: Form) -> Template:
    db = _db(request)
    project = svc.get_project(db, project_id)
    form = {"url": one(data, "url"), "events": many(data, "events")}
    try:
        hook = hooks.create_webhook(db, ctx_of(request), project.id, form["url"], form["events"])
    except ServiceError as exc:
        db.rollback()
        return page(request, "workflow/webhooks.html", status=422,
                    **_context(request, project_id, errors={exc.field or "url": exc.message}, form=form))
    # The secret is rendered in this response only; it is never shown again.
    return page(request, "workflow/webhooks.html", status=201, **_context(request, project_id, created=hook))


@post("/t/{slug:str}/projects/{project_id:int}/webhooks/{webhook_id:int}/toggle", opt=requires("project:update"),
      name="toggle_webhook")
@in_thread
def toggle_webhook(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                   webhook_id: FromPath[int]) -> Redirect:
    db = _db(request)
    project = svc.get_project(db, project_id)
    hook = hooks.set_active(db, (h := hooks.get_webhook(db, project.id, webhook_id)), not h.active)
    notice(request, f"Webhook #{hook.id} {'enabled' if hook.active else 'disabled'}.")
    return see_other(f"/t/{slug}/projects/{project_id}/webhooks")


@post("/t/{slug:str}/projects/{project_id:int}/webhooks/{webhook_id:int}/delete", opt=requires("project:update"),
      name="delete_webhook")
@in_thread
def delete_webhook(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                   webhook_id: FromPath[int]) -> Redirect:
    db = _db(request)
    project = svc.get_project(db, project_id)
    hooks.delete_webhook(db, hooks.get_webhook(db, project.id, webhook_id))
    notice(request, f"Webhook #{webhook_id} deleted with its delivery log.")
    return see_other(f"/t/{slug}/projects/{project_id}/webhooks")


@get("/t/{slug:str}/projects/{project_id:int}/webhooks/{webhook_id:int}", opt=requires("project:update", nav="projects"),
     name="webhook_deliveries")
@in_thread
def webhook_deliveries(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                       webhook_id: FromPath[int]) -> Template:
    db = _db(request)
    project = svc.get_project(db, project_id)
    hook = hooks.get_webhook(db, project.id, webhook_id)
    return page(request, "workflow/webhook_deliveries.html", project=project, webhook=hook,
                deliveries=hooks.list_deliveries(db, hook.id))


@post("/t/{slug:str}/projects/{project_id:int}/webhooks/{webhook_id:int}/deliveries/{delivery_id:int}/redeliver",
      opt=requires("project:update"), name="redeliver_webhook")
@in_thread
def redeliver(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
              webhook_id: FromPath[int], delivery_id: FromPath[int]) -> Redirect:
    db = _db(request)
    project = svc.get_project(db, project_id)
    hook = hooks.get_webhook(db, project.id, webhook_id)
    delivery = hooks.redeliver(db, ctx_of(request), hook, hooks.get_delivery(db, hook, delivery_id))
    notice(request, f"Delivery #{delivery.id} queued again.")
    return see_other(f"/t/{slug}/projects/{project_id}/webhooks/{webhook_id}")


route_handlers = [webhooks_page, create_webhook, toggle_webhook, delete_webhook, webhook_deliveries, redeliver]
