"""Webhooks: create, toggle, delete; ``emit`` an event; redeliver.

``emit`` runs inside the transaction of the change it announces: it adds one ``WebhookDelivery`` and
one ``webhook`` job per matching active webhook, and jobs are only sent after that transaction
commits, so a rolled-back change announces nothing.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from workspace.jobs.services import create_job
from workspace.lib.secrets import SealError, is_sealed, new_secret, seal, unseal
from workspace.lib.timeutil import utcnow
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Invalid, NotFound, ServiceError
from workspace.webhooks.models import EVENTS, PENDING, Webhook, WebhookDelivery

__all__ = ["create_webhook", "list_webhooks", "get_webhook", "set_active", "delete_webhook", "emit",
           "list_deliveries", "get_delivery", "redeliver", "signing_secret", "EVENTS"]

log = logging.getLogger(__name__)

JOB_KIND = "webhook"
_PURPOSE = "webhook-secret"


def _new_secret() -> str:
    return new_secret("whsec_")


def _app_key(session: Session) -> str:
    # The session factory carries the application's secret key (``Settings.secret_key``).
    return str(session.info.get("audit_key") or "")


def _context(tenant_id: int) -> str:
    return f"tenant:{tenant_id}"  # a sealed secret opens only in its own tenant's rows


def signing_secret(session: Session, hook: Webhook) -> str:
    """The webhook's secret in clear, to sign a delivery (or to show it once on creation).

    Secrets are stored sealed (AES-GCM with a key derived from the application's secret key, see
    :func:`workspace.lib.secrets.seal`). A secret stored in clear by an older version is sealed in
    place here, the first time it is used. Raises ``ServiceError`` when the stored secret does not
    open (the application's secret key changed): the webhook must be re-created.
    """
    stored = hook.secret
    if not is_sealed(stored):
        sealed = seal(_app_key(session), _PURPOSE, stored, _context(hook.tenant_id))
        if len(sealed) <= Webhook.secret.type.length:  # type: ignore[attr-defined]
            hook.secret = sealed
            session.flush()
        else:
            log.warning("webhook %s: its legacy secret is too long to seal in place; left as is", hook.id)
        return stored
    try:
        return unseal(_app_key(session), _PURPOSE, stored, _context(hook.tenant_id))
    except SealError as exc:
        raise ServiceError(f"The secret of webhook #{hook.id} cannot be decrypted (the server's secret key "
                           "changed?); delete the webhook and add it again to get a new secret.") from exc


def create_webhook(session: Session, ctx: TenantContext, project_id: int | None, url: str,
                   events: list[str]) -> Webhook:
    """A new active webhook. Its secret is stored sealed; :func:`signing_secret` opens it, and the page
    shows it to the creator once (never again)."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("Enter a full http:// or https:// URL.", field="url")
    if parts.username or parts.password:
        raise Invalid("Leave the user name and password out of the URL.", field="url")
    if len(url) > 2000:
        raise Invalid("The URL is too long (2,000 characters at most).", field="url")
    chosen = [e for e in EVENTS if e in set(events)]
    if not chosen or len(chosen) != len(set(events)):
        raise Invalid(f"Choose one or more events among {', '.join(EVENTS)}.", field="events")
    hook = Webhook(project_id=project_id, url=url, events=chosen, active=True, created_by_id=ctx.user_id,
                   secret=seal(_app_key(session), _PURPOSE, _new_secret(), _context(ctx.tenant_id)))
    session.add(hook)
    session.flush()
    return hook


def list_webhooks(session: Session, project_id: int | None) -> list[Webhook]:
    query = select(Webhook).order_by(Webhook.id)
    query = query.where(Webhook.project_id.is_(None) if project_id is None else Webhook.project_id == project_id)
    return list(session.scalars(query))


def get_webhook(session: Session, project_id: int | None, webhook_id: int) -> Webhook:
    hook = session.get(Webhook, webhook_id)
    if hook is None or hook.project_id != project_id:
        raise NotFound("Webhook not found")
    return hook


def set_active(session: Session, hook: Webhook, active: bool) -> Webhook:
    hook.active = active
    session.flush()
    return hook


def delete_webhook(session: Session, hook: Webhook) -> None:
    session.delete(hook)
    session.flush()


def _queue(session: Session, ctx: TenantContext, delivery: WebhookDelivery, hook: Webhook) -> None:
    job = create_job(session, ctx, JOB_KIND, title=f"Webhook {delivery.event} → {hook.url}"[:300],
                     project_id=delivery.project_id, params={"delivery_id": delivery.id})
    delivery.job_id = job.id
    session.flush()


# Built once: every annotation submit asks (SQLAlchemy memoizes the cache keys on the objects).
_TENANT_HOOKS = select(Webhook).where(Webhook.active.is_(True), Webhook.project_id.is_(None)).order_by(Webhook.id)
_PROJECT_HOOKS = select(Webhook).where(
    Webhook.active.is_(True),
    or_(Webhook.project_id.is_(None), Webhook.project_id == bindparam("project_id"))).order_by(Webhook.id)


def emit(session: Session, ctx: TenantContext, event: str, project_id: int | None,
         payload: dict[str, Any]) -> list[WebhookDelivery]:
    """Announce ``event`` to the project's and the tenant's active webhooks that subscribed to it."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    found = (session.scalars(_TENANT_HOOKS) if project_id is None
             else session.scalars(_PROJECT_HOOKS, {"project_id": project_id}))
    hooks = [h for h in found if event in (h.events or [])]
    deliveries = []
    for hook in hooks:
        delivery = WebhookDelivery(webhook_id=hook.id, project_id=project_id, event=event, payload=payload,
                                   status=PENDING, attempts=0, created_at=utcnow())
        session.add(delivery)
        session.flush()
        _queue(session, ctx, delivery, hook)
        deliveries.append(delivery)
    return deliveries


def list_deliveries(session: Session, webhook_id: int, limit: int = 50) -> list[WebhookDelivery]:
    return list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
                                .order_by(WebhookDelivery.id.desc()).limit(limit)))


def get_delivery(session: Session, hook: Webhook, delivery_id: int) -> WebhookDelivery:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.webhook_id != hook.id:
        raise NotFound("Delivery not found")
    return delivery


def redeliver(session: Session, ctx: TenantContext, hook: Webhook, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the same delivery (same id and payload) again, in a new job."""
    delivery.status, delivery.error = PENDING, ""
    _queue(session, ctx, delivery, hook)
    return delivery
