"""Sending one webhook delivery (the ``webhook`` job kind's handler).

The request is a POST of the JSON body through the guarded client (no private, loopback or metadata
address on any redirect hop), with

* ``X-Workspace-Event``: the event name, ``X-Workspace-Delivery``: the delivery id (the same on a
  retry or a redelivery, so receivers can de-duplicate), ``X-Workspace-Timestamp``: Unix seconds;
* ``X-Workspace-Signature: sha256=<hex>``: HMAC-SHA256 with the webhook's secret over
  ``"{timestamp}.{body}"`` (receivers should also refuse old timestamps).

Outcomes: 2xx succeeded; 5xx, a timeout or a connection error is transient, so the job is retried
with backoff (the runner's ``MAX_ATTEMPTS``), after which the delivery fails; any other answer
(4xx, 3xx left over), a blocked or invalid URL, fails at once without retry.

Transactions: the handler commits its own session twice. First, before the request, so no
transaction (on SQLite: the database's write lock) is held while waiting on a receiver; then after
recording the attempt, so the delivery log keeps every attempt even when the job then raises (a
retry or a failure rolls back only what the handler did after that commit: nothing). The HTTP POST
is not transactional anyway; the receiver de-duplicates by ``X-Workspace-Delivery``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from sqlalchemy.orm import Session

from workspace.jobs.models import Job
from workspace.jobs.runner import MAX_ATTEMPTS, JobContext
from workspace.lib.outbound import (
    BadURL,
    BlockedAddress,
    GuardedClient,
    OutboundConnectError,
    OutboundError,
    OutboundPolicy,
    OutboundTimeout,
)
from workspace.lib.timeutil import utcnow
from workspace.tenancy.errors import NotFound, ServiceError
from workspace.webhooks.models import FAILED, PENDING, SUCCEEDED, Webhook, WebhookDelivery
from workspace.webhooks.services import signing_secret

__all__ = ["run_delivery", "sign", "DEFAULT_POLICY", "EXCERPT_CHARS"]

EXCERPT_CHARS = 1000
DEFAULT_POLICY = OutboundPolicy(timeout=15.0, connect_timeout=5.0, read_timeout=10.0, max_redirects=3,
                                user_agent="Workspace-Webhooks/1")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _policy(job: JobContext) -> OutboundPolicy:
    # Tests (and an operator who must reach a private receiver) set ``runtime.outbound_policy``.
    return job.runtime.outbound_policy or DEFAULT_POLICY


def _body(delivery: WebhookDelivery, tenant_id: int) -> bytes:
    envelope = {"id": delivery.id, "event": delivery.event, "tenant_id": tenant_id,
                "project_id": delivery.project_id, "created_at": delivery.created_at.isoformat(),
                "data": delivery.payload}
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True, default=str).encode("utf-8")


def _post(client: GuardedClient, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    with client.stream("POST", url, content=body, headers=headers) as answer:
        status, seen = answer.status_code, b""
        for chunk in answer.iter_bytes():
            seen += chunk
            if len(seen) >= EXCERPT_CHARS * 4:
                break
    return status, seen.decode("utf-8", errors="replace")[:EXCERPT_CHARS]


def run_delivery(session: Session, job: JobContext) -> tuple[dict[str, Any], str]:
    delivery = session.get(WebhookDelivery, int(job.params["delivery_id"]))
    if delivery is None:
        raise NotFound("The delivery no longer exists (its webhook was deleted).")
    hook = session.get(Webhook, delivery.webhook_id)
    if hook is None:
        raise NotFound("The webhook was deleted.")
    job_row = session.get(Job, job.job_id)
    attempt = job_row.attempts if job_row is not None else 1
    url, event = hook.url, delivery.event
    if not hook.active:
        delivery.status, delivery.error = FAILED, "The webhook is disabled; nothing was sent."
        session.commit()
        raise ServiceError(delivery.error)
    try:
        secret = signing_secret(session, hook)
    except ServiceError as exc:  # the sealed secret does not open: no retry can help
        delivery.status, delivery.error = FAILED, exc.message
        session.commit()
        raise
    body = _body(delivery, job.tenant_id)
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Workspace-Event": event,
               "X-Workspace-Delivery": str(delivery.id), "X-Workspace-Timestamp": timestamp,
               "X-Workspace-Signature": sign(secret, timestamp, body)}
    delivery.status = PENDING
    session.commit()  # hold no transaction while waiting for the receiver

    status: int | None = None
    excerpt, error, transient = "", "", False
    try:
        status, excerpt = _post(GuardedClient(_policy(job)), url, body, headers)
    except (BlockedAddress, BadURL) as exc:
        error = f"Not sent: {exc}"
    except (OutboundTimeout, OutboundConnectError) as exc:
        error, transient = str(exc), True
    except OutboundError as exc:
        error = str(exc)
    if status is not None and not 200 <= status < 300:
        transient = status >= 500 or status == 429
        error = f"{url} answered HTTP {status}"

    delivery.attempts += 1
    delivery.response_status, delivery.response_excerpt, delivery.error = status, excerpt, error
    if not error:
        delivery.status, delivery.delivered_at = SUCCEEDED, utcnow()
        session.commit()
        return ({"delivery_id": delivery.id, "status": status},
                f"Delivered {event} to {url} (HTTP {status}).")
    if transient and attempt < MAX_ATTEMPTS:
        session.commit()
        raise ConnectionError(f"{error} (attempt {attempt} of {MAX_ATTEMPTS}; will retry)")
    delivery.status = FAILED
    if transient:
        delivery.error = error = f"{error}; gave up after {attempt} attempts"
    session.commit()
    raise ServiceError(f"Webhook delivery failed: {error}")
