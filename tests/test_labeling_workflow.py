"""Submit, update, skip and drafts on the labeling page, and predictions as suggestions for every control
type (both backends).

A member keeps one annotation per task (submitted or skipped) and one draft: an update replaces the
result of the same row and never counts twice, a skip is never served again and never counted, a
draft is restored when the task is reopened and becomes the annotation on submit. Drafts are private:
other members and the data manager never see them.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from conftest import add_member, login, make_tenant, post_form
from workspace.audit.models import AuditEvent
from workspace.lib.timeutil import utcnow
from workspace.workflow.models import Annotation, Prediction, Task

TEXT = "Ada Lovelace worked with Charles Babbage in London."
CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Labels name="ner" toName="text">
    <Label value="PER"/>
    <Label value="LOC"/>
  </Labels>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
  </Choices>
  <TextArea name="summary" toName="text"/>
  <Rating name="stars" toName="text" maxRating="5"/>
  <Number name="year" toName="text" min="1800" max="2000"/>
</View>"""

CHOICE = {"id": "c1", "from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Positive"]}}
SPAN = {"id": "s1", "from_name": "ner", "to_name": "text", "type": "labels",
        "value": {"start": 0, "end": 12, "text": "Ada Lovelace", "labels": ["PER"]}}
LONDON = {"id": "s2", "from_name": "ner", "to_name": "text", "type": "labels",
          "value": {"start": 44, "end": 50, "text": "London", "labels": ["LOC"]}}
SUMMARY = {"id": "t1", "from_name": "summary", "to_name": "text", "type": "textarea",
           "value": {"text": ["Two pioneers of computing."]}}
STARS = {"id": "r1", "from_name": "stars", "to_name": "text", "type": "rating", "value": {"rating": 4}}
YEAR = {"id": "n1", "from_name": "year", "to_name": "text", "type": "number", "value": {"number": 1843}}


@pytest.fixture
def world(runtime):  # type: ignore[no-untyped-def]
    return make_tenant(runtime, "alpha")


def _project(runtime, world, n_tasks: int = 3, predictions: dict[int, list] | None = None):  # type: ignore[no-untyped-def]
    """A project with CONFIG and ``n_tasks`` tasks; ``predictions`` maps a task index to a prediction result."""
    from workspace.tenancy.context import TenantContext
    from workspace.workflow import services as svc

    with runtime.unit_of_work(world.tenant_id) as db:
        ctx = TenantContext(world.tenant_id, world.slug, world.slug, world.owner.user_id, world.owner.email, "",
                            world.owner.membership_id, "owner")
        project = svc.create_project(db, ctx, "Workflow", label_config=CONFIG)
        ids = []
        for i in range(n_tasks):
            task = Task(project_id=project.id, data={"text": TEXT}, created_at=utcnow())
            db.add(task)
            db.flush()
            ids.append(task.id)
            if predictions and i in predictions:
                db.add(Prediction(project_id=project.id, task_id=task.id, result=predictions[i],
                                  model_version="ner-v1", created_at=utcnow()))
                db.flush()
        return project.id, ids


def _url(project_id: int, suffix: str = "") -> str:
    return f"/t/alpha/projects/{project_id}/label{suffix}"


def _submit(client, project_id, task_id, result, then=None, lead_time="2"):  # type: ignore[no-untyped-def]
    data = {"task": str(task_id), "result": json.dumps(result), "lead_time": lead_time}
    if then:
        data["then"] = then
    return post_form(client, _url(project_id), data)


def _draft(client, project_id, task_id, result, lead_time="1.5"):  # type: ignore[no-untyped-def]
    raw = result if isinstance(result, str) else json.dumps(result)
    return post_form(client, _url(project_id, "/draft"), {"task": str(task_id), "result": raw, "lead_time": lead_time},
                     headers={"Accept": "application/json"})


def _skip(client, project_id, task_id):  # type: ignore[no-untyped-def]
    return post_form(client, _url(project_id, "/skip"), {"task": str(task_id), "lead_time": "0.5"})


def _rows(runtime, world, task_id=None) -> list[Annotation]:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        stmt = select(Annotation).order_by(Annotation.id)
        if task_id is not None:
            stmt = stmt.where(Annotation.task_id == task_id)
        rows = list(db.scalars(stmt))
        db.expunge_all()
        return rows


def _count(runtime, world, task_id) -> int:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return db.scalar(select(Task.annotation_count).where(Task.id == task_id))


def _client_data(page: str) -> dict:  # type: ignore[type-arg]
    return json.loads(page.split('id="label-data">', 1)[1].split("</script>", 1)[0])


def _shown_task(page: str) -> int | None:
    marker = 'class="lbl-task-id">#'
    return int(page.split(marker, 1)[1].split("<", 1)[0]) if marker in page else None


# --- update ----------------------------------------------------------------------------------------


def test_submit_and_stay_then_update_keeps_one_annotation_and_the_count(client, runtime, world):
    project_id, (t1, t2, _t3) = _project(runtime, world)
    login(client, world.owner)
    first = client.get(_url(project_id, f"?task={t1}")).text
    assert ">Submit</button>" in first and "Submit &amp; next</button>" in first
    response = _submit(client, project_id, t1, [CHOICE, SPAN], then="stay")
    assert response.status_code == 303 and response.headers["location"] == _url(project_id, f"?task={t1}")
    (created,) = _rows(runtime, world)
    assert created.status == "submitted" and created.updated_at is None and _count(runtime, world, t1) == 1

    page = client.get(_url(project_id, f"?task={t1}")).text
    assert f"Task #{t1}: your annotation is submitted." in page  # shown as submitted, on the same task
    assert "Update</button>" in page and 'data-testid="label-skip"' not in page
    data = _client_data(page)
    assert data["restore"] == [CHOICE, SPAN] and data["suggestions"] == [] and data["state"] == "submitted"

    changed = [{**CHOICE, "value": {"choices": ["Negative"]}}, SPAN, LONDON]
    for _ in range(2):  # a double click is one more update, never a second annotation
        assert _submit(client, project_id, t1, changed, then="stay").status_code == 303
    (updated,) = _rows(runtime, world)
    assert updated.id == created.id and updated.result == changed and updated.status == "submitted"
    assert updated.updated_at is not None and updated.lead_time == 6.0  # 2 s for each of the three submits
    assert _count(runtime, world, t1) == 1
    with runtime.unit_of_work(world.tenant_id) as db:
        events = db.scalars(select(AuditEvent).where(AuditEvent.object_type == "annotation",
                                                     AuditEvent.object_id == str(created.id))
                            .order_by(AuditEvent.seq)).all()
    assert [e.action for e in events] == ["annotation.created", "annotation.updated", "annotation.updated"]
    assert events[1].changes["result"] == [[CHOICE, SPAN], changed]
    # The queue moved on: the next task is t2, and submitting there goes to t3 (submit and next).
    assert _shown_task(client.get(_url(project_id)).text) == t2


def test_update_is_validated_like_a_submit(client, runtime, world):
    project_id, (t1, *_rest) = _project(runtime, world)
    login(client, world.owner)
    assert _submit(client, project_id, t1, [CHOICE]).status_code == 303
    bad = _submit(client, project_id, t1, [{**YEAR, "value": {"number": 2500}}], then="stay")
    assert bad.status_code == 422 and "outside" in bad.text
    empty = _submit(client, project_id, t1, [], then="stay")
    assert empty.status_code == 422
    (row,) = _rows(runtime, world)
    assert row.result == [CHOICE] and _count(runtime, world, t1) == 1


def test_submit_and_next_goes_to_the_next_task(client, runtime, world):
    project_id, (t1, t2, t3) = _project(runtime, world)
    login(client, world.owner)
    queue = client.get(_url(project_id)).text
    assert _shown_task(queue) == t1 and ">Submit</button>" in queue
    assert 'data-primary data-testid="label-submit" title="Submit &amp; next (Ctrl+Enter)">' in queue
    response = _submit(client, project_id, t1, [CHOICE], then="next")
    assert response.headers["location"] == _url(project_id, f"?task={t2}")
    htmx = post_form(client, _url(project_id), {"task": str(t2), "result": json.dumps([CHOICE]), "then": "next"},
                     headers={"HX-Request": "true"})
    assert htmx.status_code == 204 and htmx.headers["HX-Redirect"] == _url(project_id, f"?task={t3}")


# --- skip ------------------------------------------------------------------------------------------


def test_skip_is_never_served_again_and_does_not_count(client, runtime, world):
    project_id, (t1, t2, t3) = _project(runtime, world)
    login(client, world.owner)
    assert 'data-testid="label-skip"' in client.get(_url(project_id)).text
    response = _skip(client, project_id, t1)
    assert response.status_code == 303 and response.headers["location"] == _url(project_id, f"?task={t2}")
    (row,) = _rows(runtime, world)
    assert (row.status, row.result, row.task_id, row.completed_by_id) == ("skipped", [], t1, world.owner.user_id)
    assert _count(runtime, world, t1) == 0
    page = client.get(_url(project_id)).text
    assert _shown_task(page) == t2 and f"Task #{t1} skipped." in page and "0 of 3 tasks labeled by you · 1 skipped" in page
    assert _submit(client, project_id, t2, [CHOICE]).status_code == 303
    assert _shown_task(client.get(_url(project_id)).text) == t3
    assert _skip(client, project_id, t3).status_code == 303
    done = client.get(_url(project_id)).text
    assert 'data-testid="label-empty"' in done and "labeled or skipped every task" in done

    # Opened by id, a skipped task can still be labeled: the same row becomes the annotation, counted once.
    reopened = client.get(_url(project_id, f"?task={t1}")).text
    assert _client_data(reopened)["state"] == "skipped" and ">Submit</button>" in reopened
    assert _submit(client, project_id, t1, [CHOICE], then="stay").status_code == 303
    rows = _rows(runtime, world, t1)
    assert [(r.id, r.status) for r in rows] == [(row.id, "submitted")] and _count(runtime, world, t1) == 1


def test_a_submitted_task_cannot_be_skipped(client, runtime, world):
    project_id, (t1, *_rest) = _project(runtime, world)
    login(client, world.owner)
    assert _submit(client, project_id, t1, [CHOICE]).status_code == 303
    refused = _skip(client, project_id, t1)
    assert refused.status_code == 409 and "update your annotation" in refused.text
    htmx = post_form(client, _url(project_id, "/skip"), {"task": str(t1)}, headers={"HX-Request": "true"})
    assert htmx.status_code == 409 and 'data-testid="label-error"' in htmx.text and "<html" not in htmx.text
    assert [r.status for r in _rows(runtime, world)] == ["submitted"] and _count(runtime, world, t1) == 1


# --- drafts ----------------------------------------------------------------------------------------


def test_draft_is_saved_restored_and_becomes_the_annotation(client, runtime, world):
    project_id, (t1, t2, _t3) = _project(runtime, world)
    login(client, world.owner)
    partial = [{**YEAR, "value": {"number": 12}}]  # outside min..max: fine for a draft, not for a submit
    saved = _draft(client, project_id, t1, partial)
    assert saved.status_code == 200, saved.text
    assert saved.json()["task"] == t1 and saved.json()["saved_at"]
    (draft,) = _rows(runtime, world)
    assert (draft.status, draft.result, draft.lead_time) == ("draft", partial, 1.5)
    assert _draft(client, project_id, t1, [SPAN, CHOICE], lead_time="4").status_code == 200
    assert _draft(client, project_id, t1, [], lead_time="5").status_code == 200  # an emptied page is a draft too
    assert _draft(client, project_id, t1, [SPAN, CHOICE], lead_time="6").status_code == 200
    (draft_again,) = _rows(runtime, world)  # at most one draft per user and task
    assert draft_again.id == draft.id and draft_again.result == [SPAN, CHOICE] and draft_again.updated_at is not None
    assert _count(runtime, world, t1) == 0

    queue = client.get(_url(project_id)).text  # a draft is not done: the queue still serves the task
    assert _shown_task(queue) == t1 and "0 of 3 tasks labeled by you" in queue
    data = _client_data(queue)
    assert data["restore"] == [SPAN, CHOICE] and data["state"] == "draft" and data["lead_time"] == 6.0
    assert "Draft restored" in queue

    assert _submit(client, project_id, t1, [SPAN, CHOICE], lead_time="7.25").status_code == 303
    (row,) = _rows(runtime, world)
    assert (row.id, row.status, row.result, row.lead_time) == (draft.id, "submitted", [SPAN, CHOICE], 7.25)
    assert _count(runtime, world, t1) == 1
    assert _shown_task(client.get(_url(project_id)).text) == t2


def test_draft_on_a_submitted_task_is_preferred_when_newer_and_folded_into_the_update(client, runtime, world):
    project_id, (t1, *_rest) = _project(runtime, world)
    login(client, world.owner)
    assert _submit(client, project_id, t1, [CHOICE]).status_code == 303
    assert _draft(client, project_id, t1, [CHOICE, LONDON]).status_code == 200
    page = client.get(_url(project_id, f"?task={t1}")).text
    data = _client_data(page)
    assert data["restore"] == [CHOICE, LONDON] and data["state"] == "draft" and "Update</button>" in page
    assert _count(runtime, world, t1) == 1
    assert _submit(client, project_id, t1, [CHOICE, LONDON], then="stay").status_code == 303
    rows = _rows(runtime, world)
    assert [(r.status, r.result) for r in rows] == [("submitted", [CHOICE, LONDON])] and _count(runtime, world, t1) == 1


def test_skip_discards_the_draft(client, runtime, world):
    project_id, (t1, *_rest) = _project(runtime, world)
    login(client, world.owner)
    assert _draft(client, project_id, t1, [SPAN]).status_code == 200
    assert _skip(client, project_id, t1).status_code == 303
    (row,) = _rows(runtime, world)
    assert (row.status, row.result) == ("skipped", [])
    assert _client_data(client.get(_url(project_id, f"?task={t1}")).text)["restore"] is None


def test_drafts_are_checked_for_structure_and_size(client, runtime, world):
    from workspace.workflow.annotations import MAX_DRAFT_BYTES

    project_id, (t1, *_rest) = _project(runtime, world)
    login(client, world.owner)
    huge = [{**SUMMARY, "value": {"text": ["x" * (MAX_DRAFT_BYTES // 2)]}}, {**SUMMARY, "id": "t2",
                                                                             "value": {"text": ["y" * (MAX_DRAFT_BYTES // 2)]}}]
    too_large = _draft(client, project_id, t1, huge)
    assert too_large.status_code == 413 and "larger than 1 MB" in too_large.json()["detail"]
    unknown_label = _draft(client, project_id, t1, [{**CHOICE, "value": {"choices": ["Maybe"]}}])
    assert unknown_label.status_code == 422 and '"Maybe" is not an option' in unknown_label.json()["detail"]
    unknown_control = _draft(client, project_id, t1, [{**CHOICE, "from_name": "nope"}])
    assert unknown_control.status_code == 422 and "not a control" in unknown_control.json()["detail"]
    assert _draft(client, project_id, t1, {"not": "a list"}).status_code == 422
    assert _draft(client, project_id, t1, "{oops").status_code == 422
    foreign_task = post_form(client, _url(project_id, "/draft"), {"task": "987654", "result": "[]"})
    assert foreign_task.status_code == 404
    assert _rows(runtime, world) == []


def test_another_members_draft_is_invisible_to_me_and_to_the_data_manager(client, make_client, runtime, world):
    project_id, (t1, *_rest) = _project(runtime, world, predictions={0: [CHOICE]})
    other = add_member(runtime, world, "rev@alpha.example", "reviewer")
    theirs = make_client()
    login(theirs, other)
    assert _draft(theirs, project_id, t1, [SPAN, LONDON]).status_code == 200
    assert _client_data(theirs.get(_url(project_id, f"?task={t1}")).text)["restore"] == [SPAN, LONDON]

    login(client, world.owner)
    mine = _client_data(client.get(_url(project_id, f"?task={t1}")).text)
    assert mine["restore"] is None and mine["state"] == "" and mine["suggestions"] == [CHOICE]
    assert _count(runtime, world, t1) == 0
    table = client.get(f"/t/alpha/projects/{project_id}/data").text
    assert table.count('<td class="dm-annotators">') == 3 and "rev@alpha.example</span>" not in table
    from workspace.workflow import datamanager as dm

    with runtime.unit_of_work(world.tenant_id) as db:
        assert dm.count_matching(db, project_id, dm.Filters(annotator=other.user_id)) == 0
        assert dm.count_matching(db, project_id, dm.Filters(state="labeled")) == 0
        assert db.scalar(select(func.count()).select_from(Annotation)) == 1  # the draft itself is stored

    # Once they submit, it is an annotation like any other.
    assert _submit(theirs, project_id, t1, [SPAN, LONDON]).status_code == 303
    with runtime.unit_of_work(world.tenant_id) as db:
        assert dm.count_matching(db, project_id, dm.Filters(annotator=other.user_id)) == 1
    assert _count(runtime, world, t1) == 1


# --- predictions as suggestions ----------------------------------------------------------------------


def test_prediction_prefills_every_control_type(client, runtime, world):
    stale = [{**CHOICE, "id": "c9", "value": {"choices": ["Maybe"]}},  # a label the config does not have
             {**SPAN, "id": "s9", "value": {**SPAN["value"], "text": "Someone else"}},  # does not match the text
             {**CHOICE, "id": "c8", "from_name": "gone"}, "junk"]
    prediction = [CHOICE, SPAN, SUMMARY, STARS, YEAR, *stale]
    project_id, (t1, t2, _t3) = _project(runtime, world, predictions={0: prediction, 1: [CHOICE]})
    login(client, world.owner)
    page = client.get(_url(project_id, f"?task={t1}")).text
    data = _client_data(page)
    assert data["suggestions"] == [CHOICE, SPAN, SUMMARY, STARS, YEAR] and data["restore"] is None
    assert 'data-testid="label-suggested"' in page

    # The annotator edits the suggestions and submits them as their own result; from then on the page
    # starts from their annotation, not from the prediction.
    assert _submit(client, project_id, t1, [CHOICE, SUMMARY, LONDON], then="stay").status_code == 303
    again = _client_data(client.get(_url(project_id, f"?task={t1}")).text)
    assert again["suggestions"] == [] and again["restore"] == [CHOICE, SUMMARY, LONDON]
    # A draft of their own also wins over the prediction.
    assert _draft(client, project_id, t2, [STARS]).status_code == 200
    drafted = _client_data(client.get(_url(project_id, f"?task={t2}")).text)
    assert drafted["suggestions"] == [] and drafted["restore"] == [STARS]


def test_restored_work_drops_what_the_config_no_longer_has(client, runtime, world):
    project_id, (t1, *_rest) = _project(runtime, world)
    login(client, world.owner)
    assert _submit(client, project_id, t1, [CHOICE, YEAR]).status_code == 303
    with runtime.unit_of_work(world.tenant_id) as db:  # e.g. an import or an older config stored more
        row = db.scalars(select(Annotation)).one()
        row.result = [CHOICE, YEAR, {**CHOICE, "id": "x", "from_name": "removed"}]
    assert _client_data(client.get(_url(project_id, f"?task={t1}")).text)["restore"] == [CHOICE, YEAR]


def test_draft_autosaves_are_audited_as_digests_and_submits_in_full(client, runtime, world):
    project_id, (t1, _t2, _t3) = _project(runtime, world)
    login(client, world.owner)
    assert _draft(client, project_id, t1, [SPAN]).status_code == 200
    assert _draft(client, project_id, t1, [SPAN, CHOICE]).status_code == 200
    assert _submit(client, project_id, t1, [SPAN, CHOICE]).status_code == 303
    with runtime.unit_of_work(world.tenant_id) as db:
        events = list(db.scalars(select(AuditEvent).where(AuditEvent.object_type == "annotation")
                                 .order_by(AuditEvent.seq)))
    assert [e.action for e in events] == ["annotation.created", "annotation.draft_saved", "annotation.updated"]
    created, saved, submitted = events
    assert created.changes["result"][1]["regions"] == 1 and len(created.changes["result"][1]["sha256"]) == 64
    old, new = saved.changes["result"]
    assert (old["regions"], new["regions"]) == (1, 2) and "Ada" not in json.dumps(saved.changes)
    assert submitted.changes["status"] == ["draft", "submitted"]
    assert "result" not in submitted.changes  # submitted as drafted: the status change is the event
