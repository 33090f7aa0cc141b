"""Signed webhooks: sent as jobs after the change commits, through the guarded client, signed with the
webhook's secret; 5xx retried, 4xx and blocked addresses failed at once; every attempt logged;
"Redeliver" sends the same delivery again. A real HTTP receiver on 127.0.0.1 checks the signature."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from conftest import csrf_token, login, make_tenant, post_form
from workspace.audit.models import AuditEvent
from workspace.jobs.models import Job
from workspace.lib.outbound import OutboundPolicy
from workspace.webhooks.models import Webhook, WebhookDelivery

LOOPBACK = OutboundPolicy(allow_loopback=True, timeout=10.0, connect_timeout=3.0, read_timeout=5.0)
TASKS = [{"data": {"text": "great phone"}}, {"data": {"text": "broken"}}]


class Receiver:
    """A local HTTP server answering each path with a scripted list of statuses (the last repeats)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: dict[str, list[int]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                statuses = receiver.script.get(self.path, [200])
                status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
                payload = json.dumps({"ok": status < 300}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    r = Receiver()
    yield r
    r.close()


def _project(client) -> int:  # type: ignore[no-untyped-def]
    r = post_form(client, "/t/acme/projects", {"title": "Reviews", "template": "text-classification"})
    assert r.status_code == 303, r.text[:300]
    return int(r.headers["location"].rsplit("/", 1)[1])


def _import(client, runtime, pid: int, tasks=TASKS, name="tasks.json") -> None:  # type: ignore[no-untyped-def]
    r = client.post(f"/t/acme/projects/{pid}/import", data={"_csrf_token": csrf_token(client), "confirm": "1"},
                    files={"file": (name, json.dumps(tasks), "application/json")})
    assert r.status_code == 303, r.text[:500]
    runtime.jobs.join()


def _add_webhook(client, pid: int, url: str, events=("import.completed",)) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    r = client.post(f"/t/acme/projects/{pid}/webhooks",
                    data={"_csrf_token": csrf_token(client), "url": url, "events": list(events)})
    assert r.status_code == 201, r.text[:500]
    secret = re.search(r'data-testid="secret">(whsec_[^<]+)<', r.text).group(1)
    hook_id = int(re.search(r'data-testid="webhook-(\d+)"', r.text).group(1))
    return hook_id, secret


def _deliveries(runtime, world):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return list(db.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def _verify(request: dict, secret: str) -> dict:
    headers = {k.lower(): v for k, v in request["headers"].items()}
    signed = headers["x-workspace-timestamp"].encode() + b"." + request["body"]
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-workspace-signature"], expected)
    body = json.loads(request["body"])
    assert headers["x-workspace-event"] == body["event"]
    assert headers["x-workspace-delivery"] == str(body["id"])
    return body


def test_import_completion_sends_a_signed_delivery(client, runtime, receiver):
    runtime.outbound_policy = LOOPBACK
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    pid = _project(client)
    hook_id, secret = _add_webhook(client, pid, receiver.url("/hook"))
    page = client.get(f"/t/acme/projects/{pid}/webhooks")
    assert page.status_code == 200 and secret not in page.text  # shown once, on creation only
    with runtime.unit_of_work(world.tenant_id) as db:
        events = list(db.scalars(select(AuditEvent).where(AuditEvent.object_type == "webhook")))
        assert events and all(secret not in json.dumps(e.changes) for e in events)

    _import(client, runtime, pid)
    [request] = receiver.requests
    body = _verify(request, secret)
    assert body["event"] == "import.completed" and body["project_id"] == pid
    assert body["data"]["tasks"] == 2 and body["data"]["filename"] == "tasks.json"
    [delivery] = _deliveries(runtime, world)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("succeeded", 1, 200)
    assert delivery.webhook_id == hook_id and delivery.delivered_at is not None and '"ok"' in delivery.response_excerpt
    log = client.get(f"/t/acme/projects/{pid}/webhooks/{hook_id}")
    assert f'data-testid="delivery-{delivery.id}" data-status="succeeded"' in log.text

    # A wrong secret does not verify; a disabled webhook gets nothing.
    with pytest.raises(AssertionError):
        _verify(request, "whsec_wrong")
    assert post_form(client, f"/t/acme/projects/{pid}/webhooks/{hook_id}/toggle").status_code == 303
    _import(client, runtime, pid, [{"data": {"text": "third"}}], "more.json")
    assert len(receiver.requests) == 1 and len(_deliveries(runtime, world)) == 1


def test_export_ready_is_delivered(client, runtime, receiver):
    runtime.outbound_policy = LOOPBACK
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    pid = _project(client)
    _, secret = _add_webhook(client, pid, receiver.url("/exports"), events=("export.ready",))
    _import(client, runtime, pid)
    assert receiver.requests == []  # not subscribed to import.completed
    r = post_form(client, f"/t/acme/projects/{pid}/exports", {"format": "JSON"})
    assert r.status_code == 303
    runtime.jobs.join()
    runtime.jobs.join()
    [request] = receiver.requests
    body = _verify(request, secret)
    assert body["event"] == "export.ready" and body["data"]["counts"]["tasks"] == 2


def test_a_5xx_is_retried_until_it_succeeds(client, runtime, receiver):
    runtime.outbound_policy = LOOPBACK
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    pid = _project(client)
    receiver.script["/flaky"] = [500, 200]
    _, secret = _add_webhook(client, pid, receiver.url("/flaky"))
    _import(client, runtime, pid)
    assert [r["path"] for r in receiver.requests] == ["/flaky", "/flaky"]
    first, second = (_verify(r, secret) for r in receiver.requests)
    assert first["id"] == second["id"]  # the same delivery, so receivers can de-duplicate
    [delivery] = _deliveries(runtime, world)
    assert (delivery.status, delivery.attempts, delivery.response_status, delivery.error) == ("succeeded", 2, 200, "")
    with runtime.unit_of_work(world.tenant_id) as db:
        job = db.get(Job, delivery.job_id)
        assert job.status == "succeeded" and job.attempts == 2


def test_a_4xx_fails_without_retry_and_redeliver_sends_it_again(client, runtime, receiver):
    runtime.outbound_policy = LOOPBACK
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    pid = _project(client)
    receiver.script["/strict"] = [400, 200]
    hook_id, secret = _add_webhook(client, pid, receiver.url("/strict"))
    _import(client, runtime, pid)
    assert len(receiver.requests) == 1
    [delivery] = _deliveries(runtime, world)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("failed", 1, 400)
    assert "answered HTTP 400" in delivery.error
    with runtime.unit_of_work(world.tenant_id) as db:
        job = db.get(Job, delivery.job_id)
        assert job.status == "failed" and job.attempts == 1 and "HTTP 400" in job.message

    r = post_form(client, f"/t/acme/projects/{pid}/webhooks/{hook_id}/deliveries/{delivery.id}/redeliver")
    assert r.status_code == 303
    runtime.jobs.join()
    assert len(receiver.requests) == 2
    assert _verify(receiver.requests[1], secret)["id"] == delivery.id
    [again] = _deliveries(runtime, world)
    assert (again.status, again.attempts, again.response_status, again.error) == ("succeeded", 2, 200, "")
    assert again.job_id != delivery.job_id


def test_a_private_address_is_refused_with_the_default_policy(client, runtime):
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    pid = _project(client)
    _add_webhook(client, pid, "http://10.1.2.3:8080/hook")
    _import(client, runtime, pid)
    [delivery] = _deliveries(runtime, world)
    assert delivery.status == "failed" and delivery.attempts == 1 and delivery.response_status is None
    assert "10.1.2.3" in delivery.error and "only fetches public addresses" in delivery.error
    with runtime.unit_of_work(world.tenant_id) as db:
        job = db.get(Job, delivery.job_id)
        assert job.status == "failed" and "public addresses" in job.message


def test_bad_input_and_other_tenants(client, runtime, make_client):
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    pid = _project(client)
    r = client.post(f"/t/acme/projects/{pid}/webhooks",
                    data={"_csrf_token": csrf_token(client), "url": "ftp://example.com/x", "events": ["import.completed"]})
    assert r.status_code == 422 and 'data-testid="webhook-error"' in r.text
    r = client.post(f"/t/acme/projects/{pid}/webhooks",
                    data={"_csrf_token": csrf_token(client), "url": "https://example.com/x", "events": ["nope"]})
    assert r.status_code == 422
    hook_id, _ = _add_webhook(client, pid, "https://example.com/hook")

    other = make_tenant(runtime, "bravo")
    theirs = make_client()
    login(theirs, other.owner)
    assert theirs.get(f"/t/acme/projects/{pid}/webhooks").status_code in (403, 404)
    assert theirs.get(f"/t/bravo/projects/{pid}/webhooks/{hook_id}").status_code == 404
    with runtime.unit_of_work(other.tenant_id) as db:
        assert list(db.scalars(select(Webhook))) == []
    assert post_form(client, f"/t/acme/projects/{pid}/webhooks/{hook_id}/delete").status_code == 303
    with runtime.unit_of_work(world.tenant_id) as db:
        assert list(db.scalars(select(Webhook))) == []


def test_annotation_created_and_updated_are_delivered(client, runtime, receiver):
    runtime.outbound_policy = LOOPBACK
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    pid = _project(client)
    _import(client, runtime, pid)
    _, secret = _add_webhook(client, pid, receiver.url("/labels"), events=("annotation.created", "annotation.updated"))
    with runtime.unit_of_work(world.tenant_id) as db:
        from workspace.workflow.models import Task

        task_id = db.scalars(select(Task.id).where(Task.project_id == pid).order_by(Task.id)).first()
    result = [{"id": "r1", "from_name": "sentiment", "to_name": "text", "type": "choices",
               "value": {"choices": ["Positive"]}}]
    for choice in ("Positive", "Negative"):
        result[0]["value"] = {"choices": [choice]}
        r = post_form(client, f"/t/acme/projects/{pid}/label",
                      {"task": str(task_id), "result": json.dumps(result), "then": "stay"})
        assert r.status_code == 303, r.text[:300]
        runtime.jobs.join()
    bodies = [_verify(r, secret) for r in receiver.requests]
    assert [b["event"] for b in bodies] == ["annotation.created", "annotation.updated"]
    assert bodies[1]["data"]["result"][0]["value"] == {"choices": ["Negative"]} and bodies[1]["data"]["task_id"] == task_id
