"""Exports as jobs: the file lands in the media store complete or not at all, with its manifest; it is
downloaded through a short-lived URL; a Label Studio JSON export re-imports into an equal project."""

from __future__ import annotations

import csv
import hashlib
import io
import json

from sqlalchemy import func, select

from conftest import csrf_token, login, make_tenant, post_form
from workspace.jobs.models import Job
from workspace.workflow.models import Annotation, Export, Prediction, Task

TASKS = [
    {"data": {"text": "great phone"}, "annotations": [{"result": [
        {"id": "r1", "from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Positive"]}}]}],
     "predictions": [{"model_version": "m1", "score": 0.9, "result": [
         {"id": "p1", "from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Positive"]}}]}]},
    {"data": {"text": "broken on arrival"}, "annotations": [{"result": [
        {"id": "r2", "from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Negative"]}}]}]},
    {"data": {"text": "it is a phone"}},
]


def _project(client, runtime, title="Reviews", tasks=TASKS):  # type: ignore[no-untyped-def]
    r = post_form(client, "/t/acme/projects", {"title": title, "template": "text-classification"})
    assert r.status_code == 303, r.text[:300]
    pid = int(r.headers["location"].rsplit("/", 1)[1])
    if tasks:
        r = client.post(f"/t/acme/projects/{pid}/import", data={"_csrf_token": csrf_token(client), "confirm": "1"},
                        files={"file": ("tasks.json", json.dumps(tasks), "application/json")})
        assert r.status_code == 303, r.text[:500]
    return pid


def _export(client, runtime, pid, fmt="JSON", **options):  # type: ignore[no-untyped-def]
    r = post_form(client, f"/t/acme/projects/{pid}/exports", {"format": fmt, **options})
    assert r.status_code == 303, r.text[r.text.find("export-error"):][:400]
    runtime.jobs.join()


def _exports(runtime, world):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return list(db.scalars(select(Export).order_by(Export.id)))


def _download(client, pid, export_id):  # type: ignore[no-untyped-def]
    r = client.get(f"/t/acme/projects/{pid}/exports/{export_id}/download")
    assert r.status_code == 303
    url = r.headers["location"]
    assert "sig=" in url and "exp=" in url  # a short-lived signed URL, not a permanent link
    body = client.get(url)
    assert body.status_code == 200 and "attachment" in body.headers["content-disposition"]
    return body.content


def test_json_export_has_a_manifest_and_reimports_into_an_equal_project(client, runtime):
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    pid = _project(client, runtime)
    _export(client, runtime, pid, include_predictions="1")
    [export] = _exports(runtime, world)
    assert export.status == "ready", export.message
    assert export.counts == {"tasks": 3, "annotations": 2, "predictions": 1}
    content = _download(client, pid, export.id)
    assert hashlib.sha256(content).hexdigest() == export.sha256 and len(content) == export.size
    tasks = json.loads(content)
    assert [t["data"]["text"] for t in tasks] == ["great phone", "broken on arrival", "it is a phone"]
    first = tasks[0]
    assert {"id", "data", "annotations", "predictions", "created_at", "project"} <= set(first)
    assert first["annotations"][0]["result"][0]["value"] == {"choices": ["Positive"]}
    assert first["annotations"][0]["was_cancelled"] is False and first["annotations"][0]["created_at"].endswith("Z")
    assert first["predictions"][0]["model_version"] == "m1"
    with runtime.unit_of_work(world.tenant_id) as db:
        job = db.get(Job, export.job_id)
        assert job.status == "succeeded" and job.result["sha256"] == export.sha256

    # Re-import the export into a new project: the same data, annotations and predictions.
    pid2 = _project(client, runtime, "Copy", tasks=None)
    r = client.post(f"/t/acme/projects/{pid2}/import", data={"_csrf_token": csrf_token(client)},
                    files={"file": ("export.json", content, "application/json")})
    assert r.status_code == 303, r.text[:500]
    with runtime.unit_of_work(world.tenant_id) as db:
        def snapshot(project_id):  # type: ignore[no-untyped-def]
            rows = []
            for t in db.scalars(select(Task).where(Task.project_id == project_id).order_by(Task.id)):
                anns = [a.result for a in db.scalars(select(Annotation).where(Annotation.task_id == t.id))]
                preds = [(p.result, p.score, p.model_version)
                         for p in db.scalars(select(Prediction).where(Prediction.task_id == t.id))]
                rows.append((t.data, anns, preds))
            return rows
        assert snapshot(pid2) == snapshot(pid)
    page = client.get(f"/t/acme/projects/{pid}/exports")
    assert 'data-status="ready"' in page.text and export.sha256[:16] in page.text


def test_csv_and_json_min_exports_follow_options_and_filter(client, runtime):
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    pid = _project(client, runtime)
    _export(client, runtime, pid, "CSV", state="labeled")
    _export(client, runtime, pid, "JSON_MIN")
    csv_export, min_export = _exports(runtime, world)
    assert csv_export.options["filters"] == {"state": "labeled"} and csv_export.counts["tasks"] == 2
    rows = list(csv.DictReader(io.StringIO(_download(client, pid, csv_export.id).decode())))
    assert sorted(r["sentiment"] for r in rows) == ["Negative", "Positive"]
    assert sorted(r["text"] for r in rows) == ["broken on arrival", "great phone"]
    items = json.loads(_download(client, pid, min_export.id))
    assert {i["text"]: i.get("sentiment") for i in items} == {
        "great phone": "Positive", "broken on arrival": "Negative", "it is a phone": None}


def test_only_accepted_of_an_unreviewed_project_exports_tasks_without_annotations(client, runtime):
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    pid = _project(client, runtime)
    _export(client, runtime, pid, only_accepted="1")
    [export] = _exports(runtime, world)
    assert export.counts == {"tasks": 3, "annotations": 0, "predictions": 0}
    assert all(t["annotations"] == [] for t in json.loads(_download(client, pid, export.id)))


def test_empty_project_exports_a_valid_empty_file(client, runtime):
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    pid = _project(client, runtime, tasks=None)
    _export(client, runtime, pid)
    _export(client, runtime, pid, "CSV")
    json_export, csv_export = _exports(runtime, world)
    assert json.loads(_download(client, pid, json_export.id)) == []
    assert list(csv.reader(io.StringIO(_download(client, pid, csv_export.id).decode())))[1:] == []


def test_a_failing_export_leaves_no_object_and_says_why(client, runtime, monkeypatch):
    from workspace.workflow import export_formats

    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    pid = _project(client, runtime)
    original = export_formats.write_export

    def broken(key, config, tasks, out, **kw):  # type: ignore[no-untyped-def]
        out.write(b'[{"half": ')
        raise ValueError("disk on fire")

    monkeypatch.setattr(export_formats, "write_export", broken)
    _export(client, runtime, pid)
    monkeypatch.setattr(export_formats, "write_export", original)
    [export] = _exports(runtime, world)
    assert export.status == "failed" and "disk on fire" in export.message
    assert list(runtime.media.list_keys(world.tenant_id, "exports/")) == []
    r = client.get(f"/t/acme/projects/{pid}/exports/{export.id}/download")
    assert r.status_code == 409
    page = client.get(f"/t/acme/projects/{pid}/exports")
    assert 'data-status="failed"' in page.text and 'data-testid="download"' not in page.text


def test_unsupported_format_is_refused_with_the_reason(client, runtime):
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    pid = _project(client, runtime)
    r = post_form(client, f"/t/acme/projects/{pid}/exports", {"format": "COCO"})
    assert r.status_code == 422 and "does not fit this project" in r.text
    r = post_form(client, f"/t/acme/projects/{pid}/exports", {"format": "EXCEL"})
    assert r.status_code == 422 and "Unknown export format" in r.text
    assert _exports(runtime, world) == []


def test_delete_removes_the_file_and_the_listing(client, runtime):
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    pid = _project(client, runtime)
    _export(client, runtime, pid)
    [export] = _exports(runtime, world)
    assert len(list(runtime.media.list_keys(world.tenant_id, "exports/"))) == 1
    r = post_form(client, f"/t/acme/projects/{pid}/exports/{export.id}/delete")
    assert r.status_code == 303
    assert _exports(runtime, world) == [] and list(runtime.media.list_keys(world.tenant_id, "exports/")) == []
    with runtime.unit_of_work(world.tenant_id) as db:
        from workspace.audit.models import AuditEvent

        actions = [e.action for e in db.scalars(select(AuditEvent).where(AuditEvent.object_type == "export"))]
    assert actions == ["export.created", "export.running", "export.ready", "export.deleted"]
    assert client.get(f"/t/acme/projects/{pid}/exports/{export.id}/download").status_code == 404
