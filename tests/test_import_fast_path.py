"""The bulk import fast path (``TaskBulkWriter``, the parser thread), on SQLite and PostgreSQL.

Rows written as pre-serialized COPY text or multi-row INSERTs must read back exactly as they came in,
carry the session's tenant whatever the file says, and leave nothing behind when any row is bad.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import re
import threading

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from conftest import make_tenant
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Invalid
from workspace.tenancy.scoping import TenantScopeError
from workspace.workflow import repositories
from workspace.workflow.imports import import_tasks
from workspace.workflow.models import Annotation, ImportBatch, Prediction, Task
from workspace.workflow.repositories import TaskBulkWriter, copy_escape
from workspace.workflow.services import create_project

# Everything COPY's text format treats specially (tab, newline, CR, backslash, \N), JSON escapes,
# non-ASCII, and values that are not strings.
TRICKY = [
    {"text": "tab\there", "b": "new\nline", "c": "cr\rreturn", "d": "back\\slash \\n \\t \\\\ literal"},
    {"text": 'quote " and \\" and \'', "e": "\\N", "f": "\\.", "g": "end with backslash\\"},
    {"text": "unicode é ü ß 漢字 🎉 \u2028 \u2029 \x7f \x01 \x1f \x08 \x0c"},
    {"text": "\\", "nested": {"k\tey\n": ["\\\\", "\n", {"deep": "\t\\N"}]}, "n": 1.5, "i": -3, "t": True, "z": None},
    {"text": "", "empty": "", "list": [], "obj": {}},
    {"text": "long " + "x\t\\" * 5000},
    {"texté\t": "key with a tab", "text": "k"},
]


def _setup(runtime, slug: str = "acme"):  # type: ignore[no-untyped-def]
    world = make_tenant(runtime, slug)
    ctx = TenantContext(world.tenant_id, slug, slug.title(), world.owner.user_id, world.owner.email, "",
                        world.owner.membership_id, "owner")
    with runtime.unit_of_work(world.tenant_id) as db:
        project_id = create_project(db, ctx, "Fast path").id
    return world, ctx, project_id


def _import(runtime, world, ctx, project_id, content: str, filename: str, **kwargs):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        batch = import_tasks(db, ctx, project_id, io.BytesIO(content.encode()), filename, **kwargs)
        return batch.id, batch.task_count, batch.annotation_count, batch.prediction_count


def _tasks(runtime, world) -> list[Task]:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return list(db.scalars(select(Task).order_by(Task.id)))


def _stored_json(runtime, world) -> list[str]:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return list(db.execute(text("SELECT CAST(data AS TEXT) FROM task ORDER BY id")).scalars())


def _count(runtime, world, model) -> int:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return db.scalar(select(func.count()).select_from(model))


def test_tricky_data_round_trips_exactly_and_is_stored_as_before(runtime):
    world, ctx, pid = _setup(runtime)
    content = "".join(json.dumps(row) + "\n" for row in TRICKY)
    import_id, count, _, _ = _import(runtime, world, ctx, pid, content, "tricky.jsonl")
    assert count == len(TRICKY)
    tasks = _tasks(runtime, world)
    assert [t.data for t in tasks] == TRICKY
    columns = {(t.project_id, t.import_id, t.annotation_count, t.prediction_count) for t in tasks}
    assert columns == {(pid, import_id, 0, 0)}
    assert len({t.created_at for t in tasks}) == 1 and tasks[0].created_at is not None
    # The stored text is what SQLAlchemy's own insert wrote before (ASCII-escaped JSON on SQLite; on
    # PostgreSQL non-ASCII as is), so the data manager's text search finds the same tasks.
    postgres = runtime.engine.dialect.name == "postgresql"
    expected = [json.dumps(row, ensure_ascii=not postgres) for row in TRICKY]
    assert _stored_json(runtime, world) == expected
    if not postgres:
        with runtime.unit_of_work(world.tenant_id) as db:
            stamps = db.execute(text("SELECT created_at FROM task")).scalars().all()
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", s) for s in stamps), stamps


def test_tricky_csv_values_round_trip(runtime):
    world, ctx, pid = _setup(runtime)
    rows = [{"text": value, "other": f"{i}\t\\N\\"} for i, value in enumerate(
        ["tab\there", "multi\nline\r\nvalue", "back\\slash\\", 'quoted "x", with comma', "é 漢字 🎉", "\\."])]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["text", "other"])
    writer.writeheader()
    writer.writerows(rows)
    _import(runtime, world, ctx, pid, out.getvalue(), "tricky.csv")
    assert [t.data for t in _tasks(runtime, world)] == rows


def test_copy_escape_round_trips_through_postgresql_copy(runtime):
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    values = ["plain", "tab\t", "new\nline", "cr\r", "back\\slash", "\\N", "\\.", "mix \\\t\n\r\\n é 🎉", ""]
    with runtime.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        with raw.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE escape_check (n int, v text)")
            with cursor.copy("COPY escape_check (n, v) FROM STDIN") as copy:
                copy.write("".join(f"{n}\t{copy_escape(v)}\n" for n, v in enumerate(values)))
            cursor.execute("SELECT v FROM escape_check ORDER BY n")
            assert [row[0] for row in cursor.fetchall()] == values
        conn.rollback()


def test_a_bad_last_row_rolls_everything_back_and_names_the_row(runtime):
    world, ctx, pid = _setup(runtime)
    good = 12_000
    content = "".join(json.dumps({"text": f"task {i}"}) + "\n" for i in range(good)) + '{"body": "no text"}\n'
    progress: list[int] = []
    with pytest.raises(Invalid) as caught:
        _import(runtime, world, ctx, pid, content, "bad.jsonl", batch_size=5000,
                on_batch=lambda tasks, position: progress.append(tasks))
    message = caught.value.message
    assert f"line {good + 1}" in message and "'text'" in message and "Nothing was imported" in message
    assert progress == [5000, 10_000]  # the batches before the bad one were written, then rolled back
    assert _count(runtime, world, Task) == 0 and _count(runtime, world, ImportBatch) == 0
    assert not [t for t in threading.enumerate() if t.name == "task-import-parser"]


def test_progress_callback_sees_written_batches_and_can_abort(runtime):
    world, ctx, pid = _setup(runtime)
    content = "".join(json.dumps({"text": f"task {i}"}) + "\n" for i in range(50))
    seen: list[tuple[int, int]] = []

    def on_batch(tasks: int, position: int) -> None:
        seen.append((tasks, position))

    _import(runtime, world, ctx, pid, content, "ok.jsonl", batch_size=20, on_batch=on_batch)
    assert [tasks for tasks, _ in seen] == [20, 40, 50]
    assert seen[-1][1] == len(content.encode()) and [p for _, p in seen] == sorted(p for _, p in seen)

    class Stop(Exception):
        pass

    def stop(tasks: int, position: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        _import(runtime, world, ctx, pid, content + '{"text": "more"}\n', "abort.jsonl", batch_size=20,
                on_batch=stop)
    assert _count(runtime, world, Task) == 50 and _count(runtime, world, ImportBatch) == 1
    assert not [t for t in threading.enumerate() if t.name == "task-import-parser"]


def test_tenant_comes_from_the_session_never_from_the_file(runtime):
    acme, _, _ = _setup(runtime, "acme")
    world, ctx, pid = _setup(runtime, "globex")
    rows = [{"text": "a", "tenant_id": acme.tenant_id}, {"text": "b", "tenant_id": acme.tenant_id,
                                                          "project_id": 1, "import_id": 1}]
    _import(runtime, world, ctx, pid, "".join(json.dumps(r) + "\n" for r in rows), "tenant.jsonl")
    with runtime.engine.connect() as conn:
        stored = conn.execute(text("SELECT tenant_id, project_id FROM task ORDER BY id")).all()
    assert stored == [(world.tenant_id, pid), (world.tenant_id, pid)]
    assert [t.data for t in _tasks(runtime, world)] == rows  # the fields stay data
    assert _tasks(runtime, acme) == []


def test_bulk_writer_refuses_a_session_without_tenant(runtime):
    with Session(runtime.engine) as session, pytest.raises(TenantScopeError):
        TaskBulkWriter(session, project_id=1, import_id=1)


def test_plain_and_annotated_batches_mix_in_file_order(runtime):
    world, ctx, pid = _setup(runtime)
    choice = {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["Positive"]}}
    lines = []
    for i in range(9):
        if i in (3, 7):
            lines.append({"data": {"text": f"t{i}", "note": "tab\there é"},
                          "annotations": [{"result": [choice], "lead_time": 2.5 if i == 3 else None}],
                          "predictions": [{"result": [choice, {**choice, "value": {"choices": ["a\\b\nc"]}}],
                                           "score": 0.5 if i == 3 else 1, "model_version": "v\t1 \\ é"}]})
        else:
            lines.append({"text": f"t{i}"})
    content = "".join(json.dumps(line) + "\n" for line in lines)
    _, count, annotations, predictions = _import(runtime, world, ctx, pid, content, "mixed.jsonl", batch_size=2)
    assert (count, annotations, predictions) == (9, 2, 2)
    tasks = _tasks(runtime, world)
    assert [t.data["text"] for t in tasks] == [f"t{i}" for i in range(9)]  # ids follow the file
    assert [t.annotation_count for t in tasks] == [1 if i in (3, 7) else 0 for i in range(9)]
    assert [t.data for t in tasks if t.annotation_count] == [lines[3]["data"], lines[7]["data"]]
    with runtime.unit_of_work(world.tenant_id) as db:
        found = [(db.get(Task, a.task_id).data["text"], a.result, a.lead_time, a.status, a.completed_by_id, a.tenant_id,
                  a.project_id) for a in db.scalars(select(Annotation).order_by(Annotation.id))]
        guesses = [(db.get(Task, p.task_id).data["text"], p.result, p.score, p.model_version, p.tenant_id, p.project_id)
                   for p in db.scalars(select(Prediction).order_by(Prediction.id))]
    assert found == [(f"t{i}", [choice], lines[i]["annotations"][0]["lead_time"], "submitted", None, world.tenant_id,
                      pid) for i in (3, 7)]
    assert guesses == [(f"t{i}", lines[i]["predictions"][0]["result"], lines[i]["predictions"][0]["score"],
                        "v\t1 \\ é", world.tenant_id, pid) for i in (3, 7)]


def test_batches_larger_than_one_statement(runtime, monkeypatch):
    monkeypatch.setattr(repositories, "_SQLITE_ROWS_PER_INSERT", 3)
    world, ctx, pid = _setup(runtime)
    for fmt, content in [("jsonl", "".join(json.dumps({"text": f"j{i}"}) + "\n" for i in range(10))),
                         ("csv", "text\n" + "".join(f"c{i}\n" for i in range(10))),
                         ("json", json.dumps([{"data": {"text": f"s{i}"}} for i in range(10)]))]:
        _import(runtime, world, ctx, pid, content, f"many.{fmt}", batch_size=4)
    texts = [t.data["text"] for t in _tasks(runtime, world)]
    assert texts == [f"{p}{i}" for p in "jcs" for i in range(10)]


def test_copy_text_escapes_field_by_field_when_a_text_holds_raw_control_characters(runtime, monkeypatch):
    """json's encoder never writes a raw tab, CR or newline; should a serializer ever do so, each field
    is escaped on its own (whitespace between JSON tokens is valid JSON)."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    raw_texts = {"a": '{"text":\t"a\\\\b",\r\n"n":\n1}', "b": '{"text": "plain"}'}
    monkeypatch.setattr(repositories, "_json_text", lambda data: raw_texts[data["text"][0]])
    world, ctx, pid = _setup(runtime)
    _import(runtime, world, ctx, pid, '{"text": "a"}\n{"text": "b"}\n', "raw.jsonl")
    assert _stored_json(runtime, world) == list(raw_texts.values())
    assert [t.data for t in _tasks(runtime, world)] == [{"text": "a\\b", "n": 1}, {"text": "plain"}]


def test_parsed_batches_of_plain_tasks_hold_just_the_data():
    """The bulk path's batches: plain tasks as bare data dicts (strings only: nothing for the garbage
    collector to track), the same tasks iter_task_batches gives as records."""
    from workspace.workflow.importing import iter_parsed_batches, iter_task_batches

    lines = [{"text": f"task {i}", "n": i} for i in range(2500)]
    lines[2100] = {"data": {"text": "annotated"}, "annotations": [{"result": []}]}
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    kwargs = {"format": "jsonl", "filename": "t.jsonl", "required_fields": {"text"}, "batch_size": 1000}
    parsed = list(iter_parsed_batches(io.BytesIO(content), **kwargs))
    assert [(b.start, len(b.datas), b.records is None) for b in parsed] == [(0, 1000, True), (1000, 1000, True),
                                                                            (2000, 500, False)]
    assert not any(gc.is_tracked(data) for batch in parsed for data in batch.datas if "n" in data)
    records = [r for batch in iter_task_batches(io.BytesIO(content), **kwargs) for r in batch]
    assert records == [r for batch in parsed for r in batch.task_records()]
    assert records[2100].annotations == [{"result": []}] and records[2101].annotations == []
