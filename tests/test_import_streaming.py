"""API imports through the streaming writer (parts of a batch written as one ``TaskStream``), on
SQLite and PostgreSQL: the stored data round-trips exactly, inner ids stay gapless whatever the
batch's size, and an error in a later part rolls everything back, numbering included."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select, text

from conftest import api_token, make_tenant
from workspace.workflow import imports
from workspace.workflow.models import Project, Task

CONFIG = '<View><Text name="text" value="$text"/><Choices name="c" toName="text"><Choice value="A"/></Choices></View>'

# Everything COPY's text format treats specially, JSON escapes, non-ASCII, and flat scalars (the
# writer's fast path: ints, booleans, null) next to nested values and floats (the encoder's path).
TRICKY: list[dict[str, Any]] = [
    {"text": "tab\there", "idx": 0, "b": "new\nline\r\n", "ok": True, "no": False, "none": None},
    {"text": 'quote " and \\" and \' \\N \\. end\\', "idx": -12345678901234567},
    {"text": "unicode é ü ß 漢字 🎉 \u2028 \u2029 \x7f \x01 \x1f \x08 \x0c", "idx": 2},
    {"text": "nested", "obj": {"k\tey\n": ["\\\\", "\n", {"deep": "\t\\N"}]}, "n": 1.5, "list": []},
    {"texté\t": "key with a tab", "text": ""},
]


@pytest.fixture
def api(client, runtime):  # type: ignore[no-untyped-def]
    world = make_tenant(runtime, "stream")
    headers = {"Authorization": f"Token {api_token(runtime, world, world.owner)}"}
    created = client.post("/api/projects", json={"title": "Streaming", "label_config": CONFIG}, headers=headers)
    assert created.status_code == 201, created.text
    return world, headers, created.json()["id"]


def _post(client, headers, project_id: int, tasks: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    return client.post(f"/api/projects/{project_id}/import", content=json.dumps(tasks).encode(),
                       headers={**headers, "Content-Type": "application/json"})


def _stored(runtime, world) -> tuple[list[tuple[int, dict[str, Any], str]], int]:  # type: ignore[no-untyped-def]
    """(inner id, data, stored JSON text) of every task in id order, and the project's task_seq."""
    with runtime.unit_of_work(world.tenant_id) as db:
        tasks = list(db.scalars(select(Task).order_by(Task.id)))
        texts = list(db.execute(text("SELECT CAST(data AS TEXT) FROM task ORDER BY id")).scalars())
        seq = db.scalar(select(Project.task_seq))
        return [(t.inner_id, t.data, raw) for t, raw in zip(tasks, texts, strict=True)], seq


def test_tricky_data_round_trips_exactly_through_the_api(client, runtime, api):  # type: ignore[no-untyped-def]
    world, headers, project_id = api
    response = _post(client, headers, project_id, TRICKY)
    assert response.status_code == 201, response.text
    assert response.json()["task_count"] == len(TRICKY)
    stored, seq = _stored(runtime, world)
    assert [data for _, data, _ in stored] == TRICKY
    # The text SQLAlchemy's own insert would store (on PostgreSQL non-ASCII as is).
    postgres = runtime.engine.dialect.name == "postgresql"
    assert [raw for _, _, raw in stored] == [json.dumps(row, ensure_ascii=not postgres) for row in TRICKY]
    assert [inner for inner, _, _ in stored] == [1, 2, 3, 4, 5] and seq == 5


def test_parts_of_a_batch_are_numbered_gaplessly_in_file_order(client, runtime, api, monkeypatch):  # type: ignore[no-untyped-def]
    """Batches of several parts, a last batch cut short (its unused numbers given back), and an
    annotated task between plain parts: numbers 1..N in file order, and the next import goes on."""
    monkeypatch.setattr(imports, "PART_TASKS", 3)
    monkeypatch.setattr("workspace.lsapi.services.API_IMPORT_BATCH", 7)  # 3 parts of 3: batches of 9
    world, headers, project_id = api
    first = [{"text": f"t{i}", "idx": i} for i in range(20)]
    first[11] = {"data": {"text": "t11", "idx": 11},
                 "annotations": [{"result": [{"from_name": "c", "to_name": "text", "type": "choices",
                                              "value": {"choices": ["A"]}}]}]}
    response = _post(client, headers, project_id, first)
    assert response.status_code == 201, response.text
    assert (response.json()["task_count"], response.json()["annotation_count"]) == (20, 1)
    response = _post(client, headers, project_id, [{"text": "u0"}, {"text": "u1"}])
    assert response.status_code == 201, response.text
    stored, seq = _stored(runtime, world)
    assert [(inner, data["text"]) for inner, data, _ in stored] == [
        (i + 1, f"t{i}") for i in range(20)] + [(21, "u0"), (22, "u1")]
    assert seq == 22


def test_an_error_in_a_later_part_rolls_everything_back(client, runtime, api, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(imports, "PART_TASKS", 2)
    world, headers, project_id = api
    assert _post(client, headers, project_id, [{"text": "kept"}]).status_code == 201
    bad = [{"text": f"t{i}"} for i in range(9)] + [{"body": "no text"}]
    response = _post(client, headers, project_id, bad)
    assert response.status_code == 400
    assert "task at index 9" in response.text and "'text'" in response.text
    stored, seq = _stored(runtime, world)
    assert [(inner, data) for inner, data, _ in stored] == [(1, {"text": "kept"})] and seq == 1
    response = _post(client, headers, project_id, [{"text": "after"}])  # the connection is usable again
    assert response.status_code == 201, response.text
    stored, seq = _stored(runtime, world)
    assert [(inner, data["text"]) for inner, data, _ in stored] == [(1, "kept"), (2, "after")] and seq == 2
