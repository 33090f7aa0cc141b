"""The official ``label-studio-sdk`` (2.1.2) drives Workspace unchanged: a live server on 127.0.0.1,
the real ``LabelStudio`` client, both token styles (legacy ``Token`` key and personal access token
exchanged for a ``Bearer`` JWT), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from conftest import World, add_member, api_token, make_tenant
from lsapi_client import CONFIG
from sqlalchemy import select

from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

def choice(label: str) -> list[dict]:
    return [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def strip_ids(result: list[dict]) -> list[dict]:
    """Regions posted without an id get one (Workspace's results always carry region ids)."""
    assert all(isinstance(r.get("id"), str) and r["id"] for r in result)
    return [{k: v for k, v in r.items() if k != "id"} for r in result]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The app served by uvicorn on a loopback port, in a thread; its base URL."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def personal_token(runtime, world: World, person) -> str:  # type: ignore[no-untyped-def]
    from workspace.tenancy.personal_tokens import create_personal_token

    with runtime.unit_of_work(world.tenant_id) as db:
        return create_personal_token(db, world.tenant_id, person.user_id, "sdk test",
                                     runtime.settings.secret_key).key


def audit_actions(runtime, world: World) -> list[str]:  # type: ignore[no-untyped-def]
    from workspace.audit.models import AuditEvent

    with runtime.unit_of_work(world.tenant_id) as db:
        return list(db.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


@pytest.mark.parametrize("style", ["legacy", "pat"])
def test_sdk_full_workflow(live, runtime, style):  # type: ignore[no-untyped-def]
    world = make_tenant(runtime, "acme")
    key = api_token(runtime, world, world.owner) if style == "legacy" else personal_token(runtime, world, world.owner)
    ls = LabelStudio(base_url=live, api_key=key)

    me = ls.users.whoami()
    assert me.email == world.owner.email and me.id == world.owner.user_id

    project = ls.projects.create(title="Reviews", description="movie reviews", label_config=CONFIG)
    assert project.id and project.title == "Reviews" and project.label_config == CONFIG
    assert ls.projects.get(id=project.id).task_number == 0
    assert [p.id for p in ls.projects.list()] == [project.id]
    assert ls.projects.get(id=project.id).get_label_interface() is not None  # parsed client-side

    # Import 1,000 tasks; ids come back in import order.
    payload = [{"text": f"review number {i}", "idx": i} for i in range(1000)]
    imported = ls.projects.import_tasks(id=project.id, request=payload, return_task_ids=True)
    assert imported.task_count == 1000
    task_ids = imported.task_ids
    assert len(task_ids) == 1000 and task_ids == sorted(task_ids)

    # Page through them all (pages of 100, then the 404 past the end ends the iteration).
    pager = ls.tasks.list(project=project.id)
    listed = list(pager)
    assert [t.id for t in listed] == task_ids
    assert [t.data["idx"] for t in listed] == list(range(1000))
    small = list(ls.tasks.list(project=project.id, page_size=300))
    assert len(small) == 1000
    with pytest.raises(ApiError) as past_end:
        ls.tasks.list(project=project.id, page=11, page_size=100).iter_pages().__next__()
    assert past_end.value.status_code == 404

    # Annotate and predict.
    first, second = task_ids[0], task_ids[1]
    annotation = ls.annotations.create(id=first, result=choice("Positive"), lead_time=2.5)
    assert annotation.completed_by == world.owner.user_id and annotation.task == first
    assert strip_ids(annotation.result) == choice("Positive")
    ls.annotations.create(id=second, result=choice("Negative"))
    with pytest.raises(ApiError) as bad:
        ls.annotations.create(id=second, result=choice("Maybe"))
    assert bad.value.status_code == 400 and "Maybe" in json.dumps(bad.value.body)
    prediction = ls.predictions.create(task=first, result=choice("Negative"), score=0.75, model_version="v1")
    assert prediction.score == 0.75 and prediction.model_version == "v1"

    task = ls.tasks.get(id=str(first))
    assert task.total_annotations == 1 and task.total_predictions == 1 and task.is_labeled
    assert task.annotations[0]["completed_by"]["email"] == world.owner.email
    assert task.predictions[0].model_version == "v1"
    assert [a.id for a in ls.annotations.list(id=first)] == [annotation.id]
    assert [p.id for p in ls.predictions.list(task=first)] == [prediction.id]
    assert strip_ids(ls.annotations.get(id=annotation.id).result) == choice("Positive")
    assert ls.predictions.get(id=prediction.id).task == first
    pager = ls.tasks.list(project=project.id)
    assert pager.response.total == 1000 and pager.response.total_annotations == 2
    assert pager.response.total_predictions == 1

    # Exports: JSON (every task), JSON_MIN and CSV, read back.
    exported = ls.projects.exports.as_json(project.id)
    assert len(exported) == 1000
    by_id = {t["id"]: t for t in exported}
    assert strip_ids(by_id[first]["annotations"][0]["result"]) == choice("Positive")
    assert by_id[first]["annotations"][0]["completed_by"] == world.owner.user_id
    assert len(by_id[first]["predictions"]) == 1
    minimal = json.loads(b"".join(ls.projects.exports.download_sync(project.id, export_type="JSON_MIN")))
    assert sorted((r["id"], r["sentiment"]) for r in minimal) == [(first, "Positive"), (second, "Negative")]
    table = ls.projects.exports.as_binary(project.id, export_type="CSV").decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(table)))
    assert len(rows) == 1000 and {r["sentiment"] for r in rows} == {"Positive", "Negative", ""}
    frame = ls.projects.exports.as_pandas(project.id)
    assert len(frame) == 1000

    # Update.
    assert ls.projects.update(id=project.id, title="Reviews (2026)").title == "Reviews (2026)"
    assert ls.tasks.update(id=str(first), data={"text": "changed", "idx": 0}).data["text"] == "changed"
    assert strip_ids(ls.annotations.update(id=annotation.id, result=choice("Negative")).result) == choice("Negative")
    assert ls.predictions.update(id=prediction.id, score=0.5).score == 0.5

    # Delete.
    ls.annotations.delete(id=annotation.id)
    assert ls.tasks.get(id=str(first)).total_annotations == 0
    ls.predictions.delete(id=prediction.id)
    ls.tasks.delete(id=str(task_ids[-1]))
    assert ls.tasks.list(project=project.id).response.total == 999
    with pytest.raises(ApiError) as gone:
        ls.tasks.get(id=str(task_ids[-1]))
    assert gone.value.status_code == 404
    ls.projects.delete(id=project.id)
    with pytest.raises(ApiError) as gone:
        ls.projects.get(id=project.id)
    assert gone.value.status_code == 404

    actions = audit_actions(runtime, world)
    for expected in ("project.created", "import.created", "annotation.created", "prediction.created",
                     "project.exported", "project.updated", "task.updated", "annotation.updated",
                     "annotation.deleted", "prediction.deleted", "task.bulk_deleted", "project.deleted"):
        assert expected in actions, (expected, sorted(set(actions)))


def test_personal_access_tokens(live, runtime, client):  # type: ignore[no-untyped-def]
    """PAT → refresh → access JWT with an exp; revoked PATs and their access tokens stop at once;
    a tampered or foreign token is 401; the SDK refuses nothing we issue."""
    import httpx

    world = make_tenant(runtime, "acme")
    pat = personal_token(runtime, world, world.owner)
    with httpx.Client(base_url=live) as http:
        refreshed = http.post("/api/token/refresh/", json={"refresh": pat})
        assert refreshed.status_code == 200, refreshed.text
        access = refreshed.json()["access"]
        import jwt as pyjwt

        claims = pyjwt.decode(access, options={"verify_signature": False})
        assert claims["token_type"] == "access" and claims["exp"] - time.time() <= 301
        bearer = {"Authorization": f"Bearer {access}"}
        assert http.get("/api/current-user/whoami", headers=bearer).status_code == 200
        assert http.get("/api/current-user/whoami", headers={"X-API-Key": access}).status_code == 200
        # The refresh token itself is not an access credential, under either scheme.
        assert http.get("/api/current-user/whoami", headers={"Authorization": f"Bearer {pat}"}).status_code == 401
        assert http.get("/api/current-user/whoami", headers={"Authorization": f"Token {pat}"}).status_code == 401
        tampered = pat[:-2] + ("AA" if not pat.endswith("AA") else "BB")
        assert http.post("/api/token/refresh/", json={"refresh": tampered}).status_code == 401
        assert http.post("/api/token/refresh/", json={}).status_code == 401
        # Created through the API by a signed-in key, listed (truncated), then revoked by its holder.
        created = http.post("/api/token/", headers=bearer)
        assert created.status_code == 201
        second = created.json()["token"]
        assert len(http.get("/api/token/", headers=bearer).json()) == 2
        assert http.post("/api/token/blacklist/", json={"refresh": pat}).status_code == 200
        assert http.get("/api/current-user/whoami", headers=bearer).status_code == 401  # revocation is immediate
        assert http.post("/api/token/refresh/", json={"refresh": pat}).status_code == 401
        assert LabelStudio(base_url=live, api_key=second).users.whoami().id == world.owner.user_id
        header_style = LabelStudio(base_url=live, api_key=second, headers={"X-API-Key": second})
        assert header_style.users.whoami().id == world.owner.user_id
    with runtime.engine.connect() as conn:
        from sqlalchemy import text

        stored = " ".join(str(v) for row in conn.execute(text("select * from api_token")) for v in row)
    assert pat not in stored and second not in stored
    assert "api_token.revoked" in audit_actions(runtime, world)


def test_other_tenant_and_roles_through_the_sdk(live, runtime):  # type: ignore[no-untyped-def]
    acme = make_tenant(runtime, "acme")
    other = make_tenant(runtime, "other")
    owner = LabelStudio(base_url=live, api_key=api_token(runtime, acme, acme.owner))
    project = owner.projects.create(title="Secret", label_config=CONFIG)
    intruder = LabelStudio(base_url=live, api_key=personal_token(runtime, other, other.owner))
    with pytest.raises(ApiError) as err:
        intruder.projects.get(id=project.id)
    assert err.value.status_code == 404
    assert list(intruder.projects.list()) == []
    annotator = add_member(runtime, acme, "ann@acme.example", "annotator")
    as_annotator = LabelStudio(base_url=live, api_key=personal_token(runtime, acme, annotator))
    with pytest.raises(ApiError) as err:
        as_annotator.projects.delete(id=project.id)
    assert err.value.status_code == 404  # not granted: the project does not exist for them
    manager = add_member(runtime, acme, "m@acme.example", "reviewer")
    as_reviewer = LabelStudio(base_url=live, api_key=api_token(runtime, acme, manager))
    with pytest.raises(ApiError) as err:
        as_reviewer.projects.delete(id=project.id)
    assert err.value.status_code == 403
    assert owner.projects.get(id=project.id).title == "Secret"


def test_legacy_client_still_works(live, runtime):  # type: ignore[no-untyped-def]
    """``label_studio_sdk.Client`` (requests, paths without trailing slashes, ``Token`` auth)."""
    from label_studio_sdk import Client

    world = make_tenant(runtime, "acme")
    client = Client(url=live, api_key=api_token(runtime, world, world.owner))
    project = client.start_project(title="Legacy", label_config=CONFIG)
    ids = project.import_tasks([{"text": "a"}, {"text": "b"}, {"text": "c"}])
    assert len(ids) == 3
    assert [t["id"] for t in project.get_tasks()] == ids
    assert client.get_project(project.id).get_params()["title"] == "Legacy"
    exported = project.export_tasks(export_type="JSON", download_all_tasks=True)
    assert [t["id"] for t in exported] == ids
    project.create_prediction(ids[0], result="Positive", score=0.9)
    assert project.get_task(ids[0])["total_predictions"] == 1
