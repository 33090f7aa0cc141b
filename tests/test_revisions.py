"""Annotation revisions (both backends): every change to a result or a status appends one, drafts
make none, the history page lists each with who/when/action/what changed and shows the annotation as
of any of them; revisions are append-only; an annotator's stale update gets the conflict message.
"""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from conftest import add_member, grant_project, login, make_tenant, post_form
from workspace.lib.timeutil import utcnow
from workspace.tenancy.context import TenantContext
from workspace.workflow import revisions
from workspace.workflow.models import Annotation, Task
from workspace.workflow.review_models import AnnotationRevision

TEXT = "Ada Lovelace met Charles Babbage in London."
CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Labels name="ner" toName="text">
    <Label value="PER"/>
    <Label value="LOC"/>
  </Labels>
  <TextArea name="note" toName="text"/>
</View>"""


def note(text: str) -> dict:  # type: ignore[type-arg]
    return {"id": "n1", "from_name": "note", "to_name": "text", "type": "textarea", "value": {"text": [text]}}


def span(region_id: str, start: int, end: int, label: str) -> dict:  # type: ignore[type-arg]
    return {"id": region_id, "from_name": "ner", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": end, "text": TEXT[start:end], "labels": [label]}}


ADA, CHARLES, LONDON = span("s1", 0, 12, "PER"), span("s2", 17, 32, "PER"), span("s3", 36, 42, "LOC")


@pytest.fixture
def setup(runtime, make_client):  # type: ignore[no-untyped-def]
    from workspace.workflow import services as svc

    world = make_tenant(runtime, "alpha")
    with runtime.unit_of_work(world.tenant_id) as db:
        ctx = TenantContext(world.tenant_id, world.slug, world.slug, world.owner.user_id, world.owner.email, "",
                            world.owner.membership_id, "owner")
        project = svc.create_project(db, ctx, "History", label_config=CONFIG)
        task = Task(project_id=project.id, data={"text": TEXT}, created_at=utcnow())
        db.add(task)
        db.flush()
        project_id, task_id = project.id, task.id
    annotator = add_member(runtime, world, "ann@alpha.example", "annotator")
    grant_project(runtime, world, project_id, person=annotator)
    client = make_client()
    login(client, annotator)
    return world, project_id, task_id, annotator, client


def _submit(client, project_id, task_id, result, version=None):  # type: ignore[no-untyped-def]
    data = {"task": str(task_id), "result": json.dumps(result), "lead_time": "1", "then": "stay"}
    if version is not None:
        data["version"] = str(version)
    return post_form(client, f"/t/alpha/projects/{project_id}/label", data)


def _mine(runtime, world, task_id) -> Annotation:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        row = db.scalars(select(Annotation).where(Annotation.task_id == task_id, Annotation.status != "draft")).one()
        db.expunge(row)
        return row


def _revisions(runtime, world, annotation_id) -> list[AnnotationRevision]:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        rows = list(db.scalars(select(AnnotationRevision).where(AnnotationRevision.annotation_id == annotation_id)
                               .order_by(AnnotationRevision.number)))
        db.expunge_all()
        return rows


def test_history_shows_each_version_of_an_annotation_edited_five_times(runtime, setup):  # type: ignore[no-untyped-def]
    """Acceptance: revision history shows each version of an annotation edited five times, and any of
    them can be viewed."""
    world, project_id, task_id, annotator, client = setup
    versions = [[ADA, note("version 1")]]
    versions.append([ADA, CHARLES, note("version 2")])  # a region added
    versions.append([ADA, CHARLES, LONDON, note("version 3")])  # another added
    versions.append([ADA, LONDON, note("version 4")])  # one removed
    versions.append([ADA, {**LONDON, "value": {**LONDON["value"], "labels": ["PER"]}}, note("version 5")])  # relabeled
    versions.append([note("version 6")])  # two removed
    for result in versions:
        assert _submit(client, project_id, task_id, result).status_code == 303
    annotation = _mine(runtime, world, task_id)
    revs = _revisions(runtime, world, annotation.id)
    assert [r.number for r in revs] == [1, 2, 3, 4, 5, 6]
    assert [r.action for r in revs] == ["submitted"] + ["updated"] * 5
    assert [r.result for r in revs] == versions
    assert [r.version for r in revs] == list(range(1, 7)) and annotation.version == 6
    assert {r.actor_id for r in revs} == {annotator.user_id}

    page = client.get(f"/t/alpha/projects/{project_id}/annotations/{annotation.id}/history")
    assert page.status_code == 200
    rows = page.text.split('data-testid="revision-row"')[1:]
    assert len(rows) == 6
    summaries = [re.search(r'<td class="small">([^<]*)</td>', row).group(1) for row in reversed(rows)]  # type: ignore[union-attr]
    assert summaries == ["2 regions", "regions: 1 added, 1 changed", "regions: 1 added, 1 changed",
                         "regions: 1 removed, 1 changed", "regions: 2 changed", "regions: 2 removed, 1 changed"]
    assert all("<td>Ann</td>" in row for row in rows)
    assert "As of revision 6" in page.text and "version 6" in page.text  # the latest by default
    for number, result in enumerate(versions, 1):
        view = client.get(f"/t/alpha/projects/{project_id}/annotations/{annotation.id}/history?revision={number}")
        assert view.status_code == 200
        shown = view.text.split('data-testid="revision-view"', 1)[1]
        assert f"As of revision {number}" in shown and f"version {number}" in shown
        assert all(f"version {other}" not in shown for other in range(1, 7) if other != number)
        assert shown.count('data-testid="region-row"') == len(result)
    assert client.get(f"/t/alpha/projects/{project_id}/annotations/{annotation.id}/history?revision=7").status_code == 404
    assert client.get(f"/t/alpha/projects/{project_id}/annotations/{annotation.id}/history?revision=x").status_code == 404


def test_drafts_make_no_revisions(runtime, setup):  # type: ignore[no-untyped-def]
    world, project_id, task_id, _annotator, client = setup
    for text in ("d1", "d2", "d3"):
        answer = post_form(client, f"/t/alpha/projects/{project_id}/label/draft",
                           {"task": str(task_id), "result": json.dumps([note(text)]), "lead_time": "1"},
                           headers={"Accept": "application/json"})
        assert answer.status_code == 200
    with runtime.unit_of_work(world.tenant_id) as db:
        assert list(db.scalars(select(AnnotationRevision))) == []
    assert _submit(client, project_id, task_id, [note("final")]).status_code == 303
    annotation = _mine(runtime, world, task_id)
    assert [(r.action, r.result) for r in _revisions(runtime, world, annotation.id)] == [("submitted", [note("final")])]


def test_skip_then_submit_are_revisions(runtime, setup):  # type: ignore[no-untyped-def]
    world, project_id, task_id, _annotator, client = setup
    assert post_form(client, f"/t/alpha/projects/{project_id}/label/skip", {"task": str(task_id)}).status_code == 303
    assert _submit(client, project_id, task_id, [ADA]).status_code == 303
    annotation = _mine(runtime, world, task_id)
    assert [(r.action, r.status) for r in _revisions(runtime, world, annotation.id)] == [
        ("skipped", "skipped"), ("submitted", "submitted")]


def test_an_annotation_without_revisions_gets_a_baseline(runtime, setup):  # type: ignore[no-untyped-def]
    """An imported annotation (bulk rows, no revision yet): its first change keeps what it was first."""
    world, project_id, task_id, annotator, client = setup
    with runtime.unit_of_work(world.tenant_id) as db:
        imported = Annotation(project_id=project_id, task_id=task_id, result=[ADA], completed_by_id=annotator.user_id,
                              status="submitted")
        db.add(imported)
        db.flush()
        annotation_id = imported.id
    assert _submit(client, project_id, task_id, [ADA, LONDON], version=1).status_code == 303
    revs = _revisions(runtime, world, annotation_id)
    assert [(r.number, r.action, r.result, r.version) for r in revs] == [
        (1, "created", [ADA], 1), (2, "updated", [ADA, LONDON], 2)]


def test_revisions_are_append_only(runtime, setup):  # type: ignore[no-untyped-def]
    world, project_id, task_id, _annotator, client = setup
    assert _submit(client, project_id, task_id, [ADA]).status_code == 303
    with pytest.raises(RuntimeError, match="append-only"):
        with runtime.unit_of_work(world.tenant_id) as db:
            db.scalars(select(AnnotationRevision)).one().result = []
            db.flush()
    with pytest.raises(RuntimeError, match="append-only"):
        with runtime.unit_of_work(world.tenant_id) as db:
            db.delete(db.scalars(select(AnnotationRevision)).one())
            db.flush()
    assert [r.result for r in _revisions(runtime, world, _mine(runtime, world, task_id).id)] == [[ADA]]


def test_history_is_for_its_annotator_and_reviewers_only(runtime, setup, make_client):  # type: ignore[no-untyped-def]
    world, project_id, task_id, _annotator, client = setup
    assert _submit(client, project_id, task_id, [ADA]).status_code == 303
    annotation = _mine(runtime, world, task_id)
    other = add_member(runtime, world, "other@alpha.example", "annotator")
    grant_project(runtime, world, project_id, person=other)
    reviewer = add_member(runtime, world, "rev@alpha.example", "reviewer")
    url = f"/t/alpha/projects/{project_id}/annotations/{annotation.id}/history"
    c_other, c_rev = make_client(), make_client()
    login(c_other, other)
    login(c_rev, reviewer)
    assert c_other.get(url).status_code == 404
    assert c_rev.get(url).status_code == 200
    assert c_rev.get(f"/t/alpha/projects/{project_id}/annotations/987654/history").status_code == 404


def test_a_stale_update_by_the_annotator_is_refused_with_the_conflict_message(runtime, setup, make_client):  # type: ignore[no-untyped-def]
    """The annotator's page was loaded before a reviewer accepted: their update is refused, saying who
    did what when; nothing is overwritten."""
    world, project_id, task_id, _annotator, client = setup
    assert _submit(client, project_id, task_id, [ADA]).status_code == 303
    page = client.get(f"/t/alpha/projects/{project_id}/label?task={task_id}").text
    seen = int(re.search(r'name="version" value="(\d+)"', page).group(1))  # type: ignore[union-attr]
    reviewer = add_member(runtime, world, "rev@alpha.example", "reviewer")
    c_rev = make_client()
    login(c_rev, reviewer)
    annotation = _mine(runtime, world, task_id)
    assert post_form(c_rev, f"/t/alpha/projects/{project_id}/review/{annotation.id}/accept",
                     {"version": str(annotation.version)}).status_code == 303
    answer = _submit(client, project_id, task_id, [ADA, LONDON], version=seen)
    assert answer.status_code == 409
    assert re.search(r"Rev accepted this annotation at \d\d:\d\d UTC while you were editing it; reload to see it",
                     answer.text)
    after = _mine(runtime, world, task_id)
    assert after.status == "accepted" and after.result == [ADA]
    # Reloaded, the page shows the accepted work without a submit button.
    reloaded = client.get(f"/t/alpha/projects/{project_id}/label?task={task_id}").text
    assert "Accepted" in reloaded and 'data-testid="label-submit"' not in reloaded


def test_diff_matches_regions_by_id():
    change = revisions.diff([ADA, CHARLES], [ADA, {**CHARLES, "value": {**CHARLES["value"], "labels": ["LOC"]}}, LONDON])
    assert (len(change.added), len(change.removed), len(change.changed)) == (1, 0, 1)
    assert change.summary() == "regions: 1 added, 1 changed"
    assert revisions.diff([ADA], [ADA]).summary() == "no change to the regions"
    assert revisions.diff(None, []).empty


def test_the_api_update_carries_the_version_and_makes_a_revision(runtime, setup, client):  # type: ignore[no-untyped-def]
    """PATCH /api/annotations/{id}/ goes through the same lifecycle: a revision per change, and a
    stale "version" is refused with the conflict message, nothing changed."""
    from conftest import api_token

    world, project_id, task_id, annotator, browser = setup
    assert _submit(browser, project_id, task_id, [ADA]).status_code == 303
    annotation = _mine(runtime, world, task_id)
    headers = {"Authorization": f"Token {api_token(runtime, world, annotator)}"}
    url = f"/api/annotations/{annotation.id}/"
    answer = client.patch(url, json={"result": [ADA, LONDON], "version": annotation.version}, headers=headers)
    if answer.status_code == 404 and "Annotation" not in answer.text:
        pytest.skip("the Label Studio API is not mounted")
    assert answer.status_code == 200, answer.text
    stale = client.patch(url, json={"result": [LONDON], "version": annotation.version}, headers=headers)
    # (The Label Studio API answers conflicts with 400, as Label Studio does: the SDK retries nothing.)
    assert stale.status_code in (400, 409) and "Ann updated this annotation at" in stale.text, stale.text
    assert "while you were editing it; reload to see it" in stale.text
    assert [r.action for r in _revisions(runtime, world, annotation.id)] == ["submitted", "updated"]
    assert _mine(runtime, world, task_id).result == [ADA, LONDON]
