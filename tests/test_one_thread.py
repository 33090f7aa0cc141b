"""The hot API routes (``ONE_THREAD``): the guard's credential check, the handler and the commit run
in one worker thread. Same answers as the three-hop path: 401 without a valid key, 403 (audited) for a
role that lacks the permission, 404 for another tenant's object, and a 2xx only for a committed change."""

from __future__ import annotations

import anyio.to_thread
import pytest
from conftest import add_member, api_token, make_tenant
from lsapi_client import RESULT, Api
from sqlalchemy import func, select

from workspace.audit.models import AuditEvent
from workspace.audit.verify import verify_tenant
from workspace.tenancy.scoping import unscoped
from workspace.workflow.models import Prediction


@pytest.fixture
def hops(monkeypatch):  # type: ignore[no-untyped-def]
    """Counts the request's trips to a worker thread (the real function still runs)."""
    calls: list[str] = []
    real = anyio.to_thread.run_sync

    async def counting(func, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return calls


def _predictions(runtime, world) -> int:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return db.scalar(select(func.count()).select_from(Prediction))


def test_a_write_takes_one_thread_hop_and_commits_before_answering(api, runtime, world, hops, client):  # type: ignore[no-untyped-def]
    project = api.project()
    task = api.import_tasks(project, [{"text": "a"}])[0]
    hops.clear()
    made = api("POST", "/api/predictions/", {"task": task, "result": RESULT, "score": 0.5}, status=201)
    assert len(hops) == 1, hops
    assert _predictions(runtime, world) == 1  # committed by the time the answer arrived
    with runtime.unit_of_work(world.tenant_id) as db:
        assert db.scalar(select(AuditEvent.action).where(AuditEvent.object_type == "prediction",
                                                         AuditEvent.object_id == str(made["id"]))) == "prediction.created"
        assert verify_tenant(db, runtime.settings.secret_key, world.tenant_id).ok
    # Pages keep the guard's own hop, and commit in another when the response starts.
    hops.clear()
    client.get("/login")
    assert hops[0] == "_resolve" and hops[-1] == "_finish"


def test_bad_credentials_and_roles_answer_as_before(api, client, runtime, world):  # type: ignore[no-untyped-def]
    project = api.project()
    task = api.import_tasks(project, [{"text": "a"}])[0]
    body = {"task": task, "result": RESULT}
    assert client.post("/api/predictions/", json=body).status_code == 401
    assert client.post("/api/predictions/", json=body, headers={"Authorization": "Token nope"}).status_code == 401
    annotator = add_member(runtime, world, "ann@acme.example", "annotator")
    as_annotator = Api(client, api_token(runtime, world, annotator))
    as_annotator("DELETE", f"/api/projects/{project}/", status=404)  # outside their grants: not there
    reviewer = add_member(runtime, world, "rev@acme.example", "reviewer")
    as_reviewer = Api(client, api_token(runtime, world, reviewer))
    as_reviewer("POST", "/api/predictions/", body, status=403)
    other = make_tenant(runtime, "other")
    Api(client, api_token(runtime, other, other.owner))("POST", "/api/predictions/", body, status=404)
    assert _predictions(runtime, world) == 0
    with runtime.unit_of_work() as db, unscoped(db, "test: denials of every tenant"):
        assert db.scalar(select(func.count()).select_from(AuditEvent)
                         .where(AuditEvent.action == "permission.denied")) == 1


def test_a_refused_write_keeps_nothing(api, runtime, world):  # type: ignore[no-untyped-def]
    project = api.project()
    task = api.import_tasks(project, [{"text": "a"}])[0]
    api("POST", "/api/predictions/", {"task": task, "result": "not a list"}, status=400)
    api("POST", "/api/predictions/", {"task": task, "result": RESULT, "score": "high"}, status=400)
    assert _predictions(runtime, world) == 0
    assert api("GET", f"/api/tasks/{task}/")["total_predictions"] == 0


def test_without_credentials_nothing_but_parsing_happens_first(client, runtime, world):  # type: ignore[no-untyped-def]
    """The handler's arguments are parsed before the deferred guard runs: a malformed body is a 400
    even without credentials (it reveals nothing the OpenAPI document does not); a well-formed one is
    a 401, and neither touches the database."""
    bad = client.post("/api/predictions/", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400
    assert client.post("/api/predictions/", json={"task": 1, "result": RESULT}).status_code == 401
    assert _predictions(runtime, world) == 0
