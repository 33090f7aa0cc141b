"""Webhooks of a project and of the whole organization (tenant-wide: the events of every project):
create (the secret is shown once), enable/disable, delete; each webhook's delivery log with
"Redeliver".

Both scopes render the same templates. Permission: ``project:update``. On a project's pages it may
come from a grant on that project; on the organization's pages (no project in the path) it must be
held tenant-wide, that is on every project (manager and above, or a custom role holding it). A
tenant-wide webhook sends the payloads of every project, present and future, to an outside URL,
which is what a member holding ``project:update`` on every project could already arrange project by
project; a member managing only some projects through grants cannot.
"""

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


def _scope(request: Request[Any, Any, Any], project_id: int | None) -> dict[str, Any]:
    """What the templates need to know about where the webhooks live."""
    slug = ctx_of(request).tenant_slug
    if project_id is None:
        return {"project": None, "project_id": None, "base": f"/t/{slug}/webhooks", "crumb_href": f"/t/{slug}/",
                "crumb_label": ctx_of(request).tenant_name, "scope_title": "Organization webhooks",
                "list_title": "Webhooks of the organization"}
    project = svc.get_project(_db(request), project_id)
    return {"project": project, "project_id": project.id, "base": f"/t/{slug}/projects/{project.id}/webhooks",
            "crumb_href": f"/t/{slug}/projects/{project.id}", "crumb_label": project.title,
            "scope_title": f"Webhooks · {project.title}", "list_title": "Webhooks of this project",
            "org_webhooks": f"/t/{slug}/webhooks"}


def _list_page(request: Request[Any, Any, Any], project_id: int | None, *, status: int = 200,
               **extra: Any) -> Template:
    scope = _scope(request, project_id)
    context = {"webhooks": hooks.list_webhooks(_db(request), scope["project_id"]), "events": hooks.EVENTS,
               "errors": {}, "form": {"url": "", "events": []}, "created": None, "created_secret": None,
               **scope, **extra}
    return page(request, "workflow/webhooks.html", status=status, **context)


def _create(request: Request[Any, Any, Any], project_id: int | None, data: dict[str, Any]) -> Template:
    db = _db(request)
    scope = _scope(request, project_id)
    form = {"url": one(data, "url"), "events": many(data, "events")}
    try:
        hook = hooks.create_webhook(db, ctx_of(request), scope["project_id"], form["url"], form["events"])
        secret = hooks.signing_secret(db, hook)
    except ServiceError as exc:
        db.rollback()
        return _list_page(request, project_id, status=422, errors={exc.field or "url": exc.message}, form=form)
    # The secret is rendered in this response only; it is stored sealed and never shown again.
    return _list_page(request, project_id, status=201, created=hook, created_secret=secret)


def _toggle(request: Request[Any, Any, Any], project_id: int | None, webhook_id: int) -> Redirect:
    db = _db(request)
    scope = _scope(request, project_id)
    hook = hooks.get_webhook(db, scope["project_id"], webhook_id)
    hooks.set_active(db, hook, not hook.active)
    notice(request, f"Webhook #{hook.id} {'enabled' if hook.active else 'disabled'}.")
    return see_other(scope["base"])


def _delete(request: Request[Any, Any, Any], project_id: int | None, webhook_id: int) -> Redirect:
    db = _db(request)
    scope = _scope(request, project_id)
    hooks.delete_webhook(db, hooks.get_webhook(db, scope["project_id"], webhook_id))
    notice(request, f"Webhook #{webhook_id} deleted with its delivery log.")
    return see_other(scope["base"])


def _deliveries(request: Request[Any, Any, Any], project_id: int | None, webhook_id: int) -> Template:
    db = _db(request)
    scope = _scope(request, project_id)
    hook = hooks.get_webhook(db, scope["project_id"], webhook_id)
    return page(request, "workflow/webhook_deliveries.html", webhook=hook,
                deliveries=hooks.list_deliveries(db, hook.id), **scope)


def _redeliver(request: Request[Any, Any, Any], project_id: int | None, webhook_id: int, delivery_id: int) -> Redirect:
    db = _db(request)
    scope = _scope(request, project_id)
    hook = hooks.get_webhook(db, scope["project_id"], webhook_id)
    delivery = hooks.redeliver(db, ctx_of(request), hook, hooks.get_delivery(db, hook, delivery_id))
    notice(request, f"Delivery #{delivery.id} queued again.")
    return see_other(f"{scope['base']}/{webhook_id}")


# -- a project's webhooks ----------------------------------------------------------------------------

@get("/t/{slug:str}/projects/{project_id:int}/webhooks", opt=requires("project:update", nav="projects"),
     name="webhooks")
@in_thread
def webhooks_page(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int]) -> Template:
    return _list_page(request, project_id)


@post("/t/{slug:str}/projects/{project_id:int}/webhooks", opt=requires("project:update", nav="projects"),
      name="create_webhook")
@in_thread
def create_webhook(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                   data: Form) -> Template:
    return _create(request, project_id, data)


@post("/t/{slug:str}/projects/{project_id:int}/webhooks/{webhook_id:int}/toggle", opt=requires("project:update"),
      name="toggle_webhook")
@in_thread
def toggle_webhook(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                   webhook_id: FromPath[int]) -> Redirect:
    return _toggle(request, project_id, webhook_id)


@post("/t/{slug:str}/projects/{project_id:int}/webhooks/{webhook_id:int}/delete", opt=requires("project:update"),
      name="delete_webhook")
@in_thread
def delete_webhook(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                   webhook_id: FromPath[int]) -> Redirect:
    return _delete(request, project_id, webhook_id)


@get("/t/{slug:str}/projects/{project_id:int}/webhooks/{webhook_id:int}", opt=requires("project:update", nav="projects"),
     name="webhook_deliveries")
@in_thread
def webhook_deliveries(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
                       webhook_id: FromPath[int]) -> Template:
    return _deliveries(request, project_id, webhook_id)


@post("/t/{slug:str}/projects/{project_id:int}/webhooks/{webhook_id:int}/deliveries/{delivery_id:int}/redeliver",
      opt=requires("project:update"), name="redeliver_webhook")
@in_thread
def redeliver(request: Request[Any, Any, Any], slug: FromPath[str], project_id: FromPath[int],
              webhook_id: FromPath[int], delivery_id: FromPath[int]) -> Redirect:
    return _redeliver(request, project_id, webhook_id, delivery_id)


# -- the organization's (tenant-wide) webhooks ----------------------------------------------------------

@get("/t/{slug:str}/webhooks", opt=requires("project:update", nav="webhooks"), name="org_webhooks")
@in_thread
def org_webhooks_page(request: Request[Any, Any, Any], slug: FromPath[str]) -> Template:
    return _list_page(request, None)


@post("/t/{slug:str}/webhooks", opt=requires("project:update", nav="webhooks"), name="create_org_webhook")
@in_thread
def create_org_webhook(request: Request[Any, Any, Any], slug: FromPath[str], data: Form) -> Template:
    return _create(request, None, data)


@post("/t/{slug:str}/webhooks/{webhook_id:int}/toggle", opt=requires("project:update"), name="toggle_org_webhook")
@in_thread
def toggle_org_webhook(request: Request[Any, Any, Any], slug: FromPath[str], webhook_id: FromPath[int]) -> Redirect:
    return _toggle(request, None, webhook_id)


@post("/t/{slug:str}/webhooks/{webhook_id:int}/delete", opt=requires("project:update"), name="delete_org_webhook")
@in_thread
def delete_org_webhook(request: Request[Any, Any, Any], slug: FromPath[str], webhook_id: FromPath[int]) -> Redirect:
    return _delete(request, None, webhook_id)


@get("/t/{slug:str}/webhooks/{webhook_id:int}", opt=requires("project:update", nav="webhooks"),
     name="org_webhook_deliveries")
@in_thread
def org_webhook_deliveries(request: Request[Any, Any, Any], slug: FromPath[str], webhook_id: FromPath[int]) -> Template:
    return _deliveries(request, None, webhook_id)


@post("/t/{slug:str}/webhooks/{webhook_id:int}/deliveries/{delivery_id:int}/redeliver",
      opt=requires("project:update"), name="redeliver_org_webhook")
@in_thread
def redeliver_org(request: Request[Any, Any, Any], slug: FromPath[str], webhook_id: FromPath[int],
                  delivery_id: FromPath[int]) -> Redirect:
    return _redeliver(request, None, webhook_id, delivery_id)


route_handlers = [webhooks_page, create_webhook, toggle_webhook, delete_webhook, webhook_deliveries, redeliver,
                  org_webhooks_page, create_org_webhook, toggle_org_webhook, delete_org_webhook,
                  org_webhook_deliveries, redeliver_org]
