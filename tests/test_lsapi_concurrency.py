"""Concurrent writes through the Label Studio–compatible API on PostgreSQL: API annotations don't queue
behind the project's "label next" lock (nothing follows them in their transaction), and concurrent API
writers of one tenant all land in one unbroken audit chain."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout

import pytest
from litestar.testing import TestClient

from sqlalchemy import select

from tests.conftest import api_token, make_tenant
from workspace.audit.models import AuditEvent
from workspace.audit.verify import verify_tenant
from workspace.workflow import queue

CONFIG = ('<View><Text name="text" value="$text"/><Choices name="c" toName="text">'
          '<Choice value="a"/><Choice value="b"/></Choices></View>')


def _choice(value: str) -> list[dict]:
    return [{"from_name": "c", "to_name": "text", "type": "choices", "value": {"choices": [value]}}]


@pytest.fixture
def project(client, runtime):  # type: ignore[no-untyped-def]
    world = make_tenant(runtime, "conc")
    headers = {"Authorization": f"Token {api_token(runtime, world, world.owner)}"}
    pid = client.post("/api/projects/", json={"title": "p", "label_config": CONFIG}, headers=headers).json()["id"]
    ids = client.post(f"/api/projects/{pid}/import?return_task_ids=true", json=[{"text": f"t{i}"} for i in range(40)],
                      headers=headers).json()["task_ids"]
    return world, headers, pid, ids


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_api_annotation_does_not_wait_for_the_label_next_lock(app, runtime, project, database):  # type: ignore[no-untyped-def]
    world, headers, pid, ids = project
    def annotate():  # type: ignore[no-untyped-def]
        with TestClient(app, base_url="http://testserver.local") as other:
            return other.post(f"/api/tasks/{ids[0]}/annotations/", json={"result": _choice("a")}, headers=headers)

    with runtime.unit_of_work(world.tenant_id) as held, ThreadPoolExecutor(1) as pool:
        queue.lock_project(held, pid)  # a "label next" of the project in progress, holding its lock
        pending = pool.submit(annotate)
        try:
            r = pending.result(timeout=10)
        except FuturesTimeout:
            held.rollback()  # let the lock go so the request can finish, then fail
            pending.result()
            pytest.fail("the API annotation waited for the project's label-next lock")
        assert r.status_code == 201, r.text
    task = TestClient(app, base_url="http://testserver.local").get(f"/api/tasks/{ids[0]}/", headers=headers).json()
    assert task["total_annotations"] == 1


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_concurrent_api_writers_keep_one_audit_chain(app, runtime, project, database):  # type: ignore[no-untyped-def]
    world, headers, pid, ids = project
    local = threading.local()

    def client() -> TestClient:
        if not hasattr(local, "c"):
            local.c = TestClient(app, base_url="http://testserver.local")
        return local.c

    def write(i: int) -> int:
        task_id = ids[i]
        if i % 2:
            return client().post("/api/predictions/", json={"task": task_id, "result": _choice("b"), "score": 0.5},
                                 headers=headers).status_code
        return client().post(f"/api/tasks/{task_id}/annotations/", json={"result": _choice("a")},
                             headers=headers).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(write, range(len(ids))))
    assert codes == [201] * len(ids)
    with runtime.unit_of_work(world.tenant_id) as db:
        report = verify_tenant(db, runtime.settings.secret_key, world.tenant_id)
        actions = Counter(db.scalars(select(AuditEvent.action)))
    assert report.ok, report
    assert (actions["annotation.created"], actions["prediction.created"]) == (20, 20)
    listing = client().get(f"/api/tasks/?project={pid}&page_size=100", headers=headers).json()
    assert (listing["total_annotations"], listing["total_predictions"]) == (20, 20)


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_large_project_pages_stay_right_as_tasks_come_and_go(client, runtime, database, monkeypatch):  # type: ignore[no-untyped-def]
    """The task list of a large project pages from a per-process id list; every change of the task set
    (import, delete, delete + import of as many) shows at once, on every page."""
    from workspace.lsapi import services

    monkeypatch.setattr(services._TaskOrder, "MIN_TASKS", 10)
    world = make_tenant(runtime, "pages")
    headers = {"Authorization": f"Token {api_token(runtime, world, world.owner)}"}
    pid = client.post("/api/projects/", json={"title": "p", "label_config": CONFIG}, headers=headers).json()["id"]

    def import_(n: int) -> list[int]:
        return client.post(f"/api/projects/{pid}/import?return_task_ids=true",
                           json=[{"text": f"t{i}"} for i in range(n)], headers=headers).json()["task_ids"]

    def listed() -> list[int]:
        ids, page = [], 1
        while True:
            r = client.get(f"/api/tasks/?project={pid}&page={page}&page_size=7", headers=headers)
            if r.status_code == 404:
                return ids
            body = r.json()
            assert body["total"] == len(alive)
            ids += [t["id"] for t in body["tasks"]]
            page += 1

    alive = import_(30)
    assert listed() == alive
    assert listed() == alive  # from the kept list this time
    alive += import_(5)
    assert listed() == alive
    gone = alive[3]
    assert client.delete(f"/api/tasks/{gone}/", headers=headers).status_code == 204
    alive.remove(gone)
    assert listed() == alive
    gone = alive[10]
    assert client.delete(f"/api/tasks/{gone}/", headers=headers).status_code == 204
    alive.remove(gone)
    alive += import_(1)  # as many tasks as before the delete: the stamp still differs
    assert listed() == sorted(alive)
