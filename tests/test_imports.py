"""Importing files into a project through the page: every format, all-or-nothing, re-import detection."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from conftest import add_member, csrf_token, grant_project, login, make_tenant, post_form
from workspace.audit.models import AuditEvent
from workspace.workflow.models import Annotation, Prediction, Task

NER = """<View><Labels name="label" toName="text"><Label value="PER"/><Label value="ORG"/></Labels>
<Text name="text" value="$text"/></View>"""


def _project(client, runtime):  # type: ignore[no-untyped-def]
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    r = post_form(client, "/t/acme/projects", {"title": "NER", "label_config": NER})
    return world, int(r.headers["location"].rsplit("/", 1)[1])


def _upload(client, project_id, name, content, **extra):  # type: ignore[no-untyped-def]
    return client.post(f"/t/acme/projects/{project_id}/import",
                       data={"_csrf_token": csrf_token(client), **extra},
                       files={"file": (name, content, "application/octet-stream")})


def _count(runtime, world, model):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return db.scalar(select(func.count()).select_from(model))


def test_import_each_format(client, runtime):
    world, pid = _project(client, runtime)
    ls_json = json.dumps([
        {"data": {"text": "Ada at IBM"}, "annotations": [{"result": [{"id": "a", "from_name": "label", "to_name": "text",
         "type": "labels", "value": {"start": 0, "end": 3, "text": "Ada", "labels": ["PER"]}}]}],
         "predictions": [{"result": [], "score": 0.5, "model_version": "v1"}]},
        {"text": "bare data"},
    ])
    files = [("tasks.json", ls_json), ("tasks.jsonl", '{"text": "one"}\n{"text": "two"}\n'),
             ("tasks.csv", 'text,source\n"multi\nline",web\nplain,mail\n'), ("tasks.tsv", "text\tn\na\t1\nb\t2\n"),
             ("lines.txt", "first line\n\nsecond line\n")]
    for name, content in files:
        r = _upload(client, pid, name, content)
        assert r.status_code == 303, (name, r.text[:400])
    assert _count(runtime, world, Task) == 10
    assert _count(runtime, world, Annotation) == 1
    assert _count(runtime, world, Prediction) == 1
    with runtime.unit_of_work(world.tenant_id) as db:
        texts = {t.data["text"] for t in db.scalars(select(Task))}
        events = [e.action for e in db.scalars(select(AuditEvent).where(AuditEvent.object_type == "import"))]
    assert {"multi\nline", "first line", "second line", "bare data"} <= texts
    assert events.count("import.completed") == 5
    page = client.get(f"/t/acme/projects/{pid}/import")
    assert "tasks.csv" in page.text and "lines.txt" in page.text


def test_missing_field_names_row_and_field_and_imports_nothing(client, runtime):
    world, pid = _project(client, runtime)
    r = _upload(client, pid, "bad.csv", "text\nok\n" + "ok\n" * 3 + "")
    assert r.status_code == 303
    before = _count(runtime, world, Task)
    r = _upload(client, pid, "bad.jsonl", '{"text": "fine"}\n{"body": "no text"}\n')
    assert r.status_code == 422
    assert "line 2" in r.text and "text" in r.text and "Nothing was imported" in r.text
    assert _count(runtime, world, Task) == before


def test_reimport_is_detected_until_confirmed(client, runtime):
    world, pid = _project(client, runtime)
    content = '{"text": "once"}\n'
    assert _upload(client, pid, "a.jsonl", content).status_code == 303
    again = _upload(client, pid, "a.jsonl", content)
    assert again.status_code == 409 and "already imported" in again.text and 'name="confirm"' in again.text
    assert _count(runtime, world, Task) == 1
    assert _upload(client, pid, "a.jsonl", content, confirm="1").status_code == 303
    assert _count(runtime, world, Task) == 2


def test_bad_files_get_clear_errors(client, runtime):
    world, pid = _project(client, runtime)
    cases = [("broken.json", '[{"text": "a"},', "malformed JSON"), ("latin1.csv", "text\ncaf\xe9\n".encode("latin-1"), "UTF-8"),
             ("empty.json", "[]", "no tasks")]
    for name, content, expected in cases:
        r = _upload(client, pid, name, content)
        assert r.status_code == 422, name
        assert expected in r.text, (name, r.text[r.text.find("import-error"):][:300])
    assert _count(runtime, world, Task) == 0
    r = client.post(f"/t/acme/projects/{pid}/import", data={"_csrf_token": csrf_token(client)})
    assert r.status_code == 422 and "Choose a file" in r.text


def test_import_needs_permission_and_csrf(client, make_client, runtime):
    world, pid = _project(client, runtime)
    r = client.post(f"/t/acme/projects/{pid}/import", files={"file": ("a.txt", "x\n", "text/plain")})
    assert r.status_code == 403
    ann = add_member(runtime, world, "ann@acme.example", "annotator")
    other = make_client()
    login(other, ann)
    assert _upload(other, pid, "a.txt", "x\n").status_code == 404  # not granted: no such project for them
    grant_project(runtime, world, pid, person=ann)
    assert _upload(other, pid, "a.txt", "x\n").status_code == 403  # granted to label, not to import
    assert _count(runtime, world, Task) == 0
