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


# --- organization (tenant-wide) webhooks ------------------------------------------------------------


def _add_org_webhook(client, url: str, events=("import.completed",)) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    r = client.post("/t/acme/webhooks", data={"_csrf_token": csrf_token(client), "url": url, "events": list(events)})
    assert r.status_code == 201, r.text[:500]
    secret = re.search(r'data-testid="secret">(whsec_[^<]+)<', r.text).group(1)
    hook_id = int(re.search(r'data-testid="webhook-(\d+)"', r.text).group(1))
    return hook_id, secret


def test_an_organization_webhook_hears_every_project(client, runtime, receiver):
    runtime.outbound_policy = LOOPBACK
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    first = _project(client)
    hook_id, secret = _add_org_webhook(client, receiver.url("/org"))
    page = client.get("/t/acme/webhooks")
    assert page.status_code == 200 and 'data-testid="org-scope"' in page.text and secret not in page.text
    assert f'data-testid="webhook-{hook_id}"' in page.text
    assert f'data-testid="webhook-{hook_id}"' not in client.get(f"/t/acme/projects/{first}/webhooks").text
    second = _project(client)  # created after the webhook: heard too
    _import(client, runtime, first)
    _import(client, runtime, second, [{"data": {"text": "other"}}], "other.json")
    bodies = [_verify(r, secret) for r in receiver.requests]
    assert [(b["event"], b["project_id"]) for b in bodies] == [("import.completed", first), ("import.completed", second)]
    deliveries = _deliveries(runtime, world)
    assert [d.project_id for d in deliveries] == [first, second] and all(d.status == "succeeded" for d in deliveries)
    log = client.get(f"/t/acme/webhooks/{hook_id}")
    assert log.status_code == 200 and f"project #{second}" in log.text
    # Redeliver and toggle through the organization's routes; a project's URL does not reach it.
    r = post_form(client, f"/t/acme/webhooks/{hook_id}/deliveries/{deliveries[0].id}/redeliver")
    assert r.status_code == 303 and r.headers["location"] == f"/t/acme/webhooks/{hook_id}"
    runtime.jobs.join()
    assert len(receiver.requests) == 3 and _verify(receiver.requests[2], secret)["id"] == deliveries[0].id
    assert client.get(f"/t/acme/projects/{first}/webhooks/{hook_id}").status_code == 404
    assert post_form(client, f"/t/acme/webhooks/{hook_id}/toggle").status_code == 303
    _import(client, runtime, first, [{"data": {"text": "third"}}], "third.json")
    assert len(receiver.requests) == 3
    assert post_form(client, f"/t/acme/webhooks/{hook_id}/delete").status_code == 303
    with runtime.unit_of_work(world.tenant_id) as db:
        assert list(db.scalars(select(Webhook))) == []


def test_organization_webhooks_need_project_update_on_every_project(client, runtime, make_client):
    from conftest import add_member, grant_project

    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    pid = _project(client)
    assert 'data-testid="nav-webhooks"' in client.get("/t/acme/").text
    manager = add_member(runtime, world, "manager@acme.example", "manager")
    reviewer = add_member(runtime, world, "reviewer@acme.example", "reviewer")
    grant_project(runtime, world, pid, "manager", person=reviewer)  # manages this one project only
    as_manager = make_client()
    login(as_manager, manager)
    assert as_manager.get("/t/acme/webhooks").status_code == 200
    as_reviewer = make_client()
    login(as_reviewer, reviewer)
    assert as_reviewer.get(f"/t/acme/projects/{pid}/webhooks").status_code == 200  # the project's own page
    assert as_reviewer.get("/t/acme/webhooks").status_code == 403
    r = as_reviewer.post("/t/acme/webhooks", data={"_csrf_token": csrf_token(as_reviewer),
                                                   "url": "https://example.com/x", "events": ["import.completed"]})
    assert r.status_code == 403
    assert 'data-testid="nav-webhooks"' not in as_reviewer.get("/t/acme/").text
    # Another organization's owner sees none of it.
    other = make_tenant(runtime, "bravo")
    hook_id, _ = _add_org_webhook(as_manager, "https://example.com/org")
    theirs = make_client()
    login(theirs, other.owner)
    assert theirs.get(f"/t/bravo/webhooks/{hook_id}").status_code == 404
    assert post_form(theirs, f"/t/bravo/webhooks/{hook_id}/delete").status_code == 404
    assert theirs.get("/t/acme/webhooks").status_code == 404


# --- secrets at rest ----------------------------------------------------------------------------------


def test_secrets_are_sealed_at_rest_and_legacy_clear_secrets_are_sealed_on_first_use(client, runtime, receiver):
    runtime.outbound_policy = LOOPBACK
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    pid = _project(client)
    hook_id, secret = _add_webhook(client, pid, receiver.url("/sealed"))
    with runtime.unit_of_work(world.tenant_id) as db:
        hook = db.get(Webhook, hook_id)
        assert hook.secret.startswith("sealed1:") and secret[6:] not in hook.secret and len(hook.secret) <= 100
        # An older version stored secrets in clear: such a row still signs, and is sealed when used.
        hook.secret = legacy = "whsec_" + "L" * 42 + "A"  # the shape of token_urlsafe(32)
    _import(client, runtime, pid)
    _verify(receiver.requests[0], legacy)
    with runtime.unit_of_work(world.tenant_id) as db:
        stored = db.get(Webhook, hook_id).secret
        assert stored.startswith("sealed1:") and "LLLL" not in stored

    # A sealed secret opens only in its own tenant: copied into another tenant's webhook, it fails
    # the delivery with a readable reason and sends nothing.
    other = make_tenant(runtime, "bravo", owner_email="owner@bravo.example")
    from workspace.tenancy.context import TenantContext
    from workspace.webhooks.services import create_webhook, emit

    ctx = TenantContext(other.tenant_id, "bravo", "Bravo", other.owner.user_id, other.owner.email, "",
                        other.owner.membership_id, "owner", permissions=frozenset({"project:read"}))
    with runtime.unit_of_work(other.tenant_id) as db:
        theirs = create_webhook(db, ctx, None, receiver.url("/copied"), ["import.completed"])
        theirs.secret = stored
        db.flush()
        emit(db, ctx, "import.completed", None, {"tasks": 0})
    runtime.jobs.join()
    assert [r["path"] for r in receiver.requests] == ["/sealed"]
    with runtime.unit_of_work(other.tenant_id) as db:
        [delivery] = db.scalars(select(WebhookDelivery)).all()
        assert delivery.status == "failed" and "cannot be decrypted" in delivery.error


# --- media imports --------------------------------------------------------------------------------------


def test_a_media_import_sends_import_completed(client, runtime, receiver):
    import io

    from PIL import Image

    runtime.outbound_policy = LOOPBACK
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    config = ('<View><Image name="image" value="$image"/><Choices name="label" toName="image">'
              '<Choice value="cat"/><Choice value="dog"/></Choices></View>')
    r = post_form(client, "/t/acme/projects", {"title": "Media", "label_config": config})
    assert r.status_code == 303, r.text[:300]
    pid = int(r.headers["location"].rsplit("/", 1)[1])
    _, secret = _add_webhook(client, pid, receiver.url("/media"))
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 30, 30)).save(buf, "PNG")
    files = [("media", ("a.png", buf.getvalue(), "image/png")), ("media", ("b.png", buf.getvalue(), "image/png"))]
    r = client.post(f"/t/acme/projects/{pid}/import/media", data={"_csrf_token": csrf_token(client)}, files=files)
    assert r.status_code == 303, r.text[:500]
    runtime.jobs.join()
    [request] = receiver.requests
    body = _verify(request, secret)
    assert body["event"] == "import.completed" and body["project_id"] == pid
    assert body["data"]["tasks"] == 2 and body["data"]["format"] == "media" and body["data"]["media"] == "image"
    # A refused media import (not an image) rolls back and announces nothing.
    bad = [("media", ("x.png", b"<!doctype html><html></html>", "image/png"))]
    r = client.post(f"/t/acme/projects/{pid}/import/media", data={"_csrf_token": csrf_token(client)}, files=bad)
    assert r.status_code in (400, 422), r.status_code
    runtime.jobs.join()
    assert len(receiver.requests) == 1 and len(_deliveries(runtime, world)) == 1


# --- a real `workspace worker` process --------------------------------------------------------------------


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_worker_process_delivers_a_signed_webhook(database, redis_url, tmp_path, receiver):
    """PostgreSQL + Redis: the web app commits an import, a real `workspace worker` process delivers the
    webhook job to a receiver on this machine (allowed by name through WORKSPACE_OUTBOUND_ALLOWED_HOSTS),
    and the receiver verifies the signature with the secret shown once at creation."""
    import time

    from litestar.testing import TestClient

    from workspace.app import create_app
    from worker_process import worker_process

    with worker_process(database.url, redis_url, tmp_path, WORKSPACE_OUTBOUND_ALLOWED_HOSTS="localhost") as run:
        settings, runtime, worker, log_path = run.settings, run.runtime, run.worker, run.log_path
        assert settings.outbound_allowed_hosts == ("localhost",)
        with TestClient(create_app(settings, runtime=runtime), base_url="http://testserver.local") as client:
            client.follow_redirects = False
            world = make_tenant(runtime, "acme")
            login(client, world.owner)
            pid = _project(client)
            url = f"http://localhost:{receiver.server.server_address[1]}/worker"
            hook_id, secret = _add_org_webhook(client, url)
            r = client.post(f"/t/acme/projects/{pid}/import", data={"_csrf_token": csrf_token(client), "confirm": "1"},
                            files={"file": ("tasks.json", json.dumps(TASKS), "application/json")})
            assert r.status_code == 303, r.text[:300]
            deadline = time.monotonic() + 60
            while not receiver.requests or _deliveries(runtime, world)[0].status == "pending":
                assert worker.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.2)
            [request] = receiver.requests
            body = _verify(request, secret)
            assert body["event"] == "import.completed" and body["project_id"] == pid and body["data"]["tasks"] == 2
            [delivery] = _deliveries(runtime, world)
            assert (delivery.status, delivery.webhook_id, delivery.response_status) == ("succeeded", hook_id, 200)
            with runtime.unit_of_work(world.tenant_id) as db:
                job = db.get(Job, delivery.job_id)
                assert job.status == "succeeded" and job.attempts == 1


def test_seal_opens_only_with_its_key_purpose_and_context():
    from workspace.lib.secrets import SealError, new_secret, seal, unseal

    key, secret = "k" * 40, new_secret("whsec_")
    sealed = seal(key, "webhook-secret", secret, "tenant:1")
    assert sealed.startswith("sealed1:") and len(sealed) <= 100 and secret[6:] not in sealed
    assert seal(key, "webhook-secret", secret, "tenant:1") != sealed  # a fresh nonce every time
    assert unseal(key, "webhook-secret", sealed, "tenant:1") == secret
    assert unseal(key, "p", seal(key, "p", "any text, ünïcode", "c"), "c") == "any text, ünïcode"
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    for args in (("x" * 40, "webhook-secret", sealed, "tenant:1"), (key, "other", sealed, "tenant:1"),
                 (key, "webhook-secret", sealed, "tenant:2"), (key, "webhook-secret", tampered, "tenant:1"),
                 (key, "webhook-secret", "whsec_clear", "tenant:1")):
        with pytest.raises(SealError):
            unseal(*args)
