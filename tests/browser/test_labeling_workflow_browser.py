"""Drafts, update, skip and suggestions on the labeling page, in a real browser (``workspace serve`` and
Debian's chromium).

1. Named entities: label a span, wait for "Draft saved", reload and find the span restored, submit,
   reopen the task and update it, skip the next task. Every step is read back from the served
   instance's database: one row per member and task, counted once, the skip never counted.
2. Text classification with a prediction: the predicted choice is preselected and marked suggested;
   submitting it stores it as the annotator's own result.

Screenshots go to ``test-artifacts/screenshots/label-flow-*.png``.
"""

from __future__ import annotations

import re

import pytest
from test_browser_flow import Console, new_page, shot, sign_in
from test_labeling_browser import TEXT, browser, create_project, db, select_text, served  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


@pytest.fixture
def console() -> Console:
    return Console()


def rows(db, task_id: int) -> list[tuple[int, str, list, int]]:  # type: ignore[no-untyped-def,type-arg]
    """(id, status, result, task.annotation_count) of every annotation of the task."""
    from sqlalchemy import select

    from workspace.workflow.models import Annotation, Task

    with db.runtime.unit_of_work(db.tenant_id) as s:
        count = s.scalar(select(Task.annotation_count).where(Task.id == task_id))
        return [(a.id, a.status, a.result, count)
                for a in s.scalars(select(Annotation).where(Annotation.task_id == task_id).order_by(Annotation.id))]


def add_prediction(db, project_id: int, task_id: int, result: list) -> None:  # type: ignore[no-untyped-def,type-arg]
    from workspace.lib.timeutil import utcnow
    from workspace.workflow.models import Prediction

    with db.runtime.unit_of_work(db.tenant_id) as s:
        s.add(Prediction(project_id=project_id, task_id=task_id, result=result, model_version="demo-v1",
                         created_at=utcnow()))


def spans(result: list) -> list[tuple[int, int, str, list]]:  # type: ignore[type-arg]
    return [(r["value"]["start"], r["value"]["end"], r["value"]["text"], r["value"]["labels"]) for r in result]


def test_draft_restore_submit_update_skip(browser, served, db, console: Console) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    server, _ = served
    context, page = new_page(browser, console)
    try:
        sign_in(page, server)
        project_id = create_project(page, server, "Drafts and updates", "named-entities")
        first = db.add_task(project_id, {"text": TEXT})
        second = db.add_task(project_id, {"text": "Grace Hopper joined the Navy in Philadelphia."})
        label_url = f"{server.url}/t/demo/projects/{project_id}/label"
        status = page.get_by_test_id("label-status")

        # 1. Label a span; a draft is saved a couple of seconds later, without submitting.
        page.goto(label_url)
        expect(page.get_by_test_id("label-submit")).to_have_text(re.compile("Submit & next"))
        select_text(page, 0, 12)
        page.get_by_role("button", name=re.compile(r"^PER")).click()
        expect(status).to_have_text(re.compile(r"^Draft saved \d\d:\d\d:\d\d$"))
        shot(page, "label-flow-draft-saved")
        ((draft_id, state, result, count),) = rows(db, first)
        assert state == "draft" and spans(result) == [(0, 12, "Ada Lovelace", ["PER"])] and count == 0

        # 2. Reload: the draft comes back.
        page.reload()
        expect(page.locator(".lbl-hl")).to_have_count(1)
        expect(page.locator("#lbl-regions li")).to_have_count(1)
        expect(status).to_contain_text("restored")
        shot(page, "label-flow-draft-restored")

        # 3. Submit (and next): the draft row becomes the annotation, counted once; the queue moves on.
        with page.expect_response(lambda r: r.url.endswith("/label") and r.request.method == "POST") as posted:
            page.keyboard.press("Control+Enter")
        assert posted.value.status == 204
        page.wait_for_url(re.compile(rf"\?task={second}$"))
        assert rows(db, first) == [(draft_id, "submitted", result, 1)]
        expect(page.get_by_test_id("label-submit-stay")).to_have_text("Submit")
        shot(page, "label-flow-next-task")

        # 4. Reopen the first task: it loads my annotation and the button says Update.
        page.goto(f"{label_url}?task={first}")
        expect(page.get_by_test_id("label-submit")).to_have_text(re.compile("Update"))
        expect(page.get_by_test_id("label-skip")).to_have_count(0)
        expect(status).to_have_text(re.compile(r"^Submitted \d\d:\d\d:\d\d$"))
        expect(page.locator(".lbl-hl")).to_have_count(1)
        select_text(page, 36, 42)  # "London"
        page.keyboard.press("l")
        expect(page.locator("#lbl-regions li")).to_have_count(2)
        page.get_by_test_id("label-submit").click()
        page.wait_for_url(re.compile(rf"\?task={first}$"))
        expect(page.get_by_role("status").filter(has_text="your annotation is updated")).to_be_visible()
        expect(page.locator(".lbl-hl")).to_have_count(2)
        shot(page, "label-flow-updated")
        ((same_id, state, result, count),) = rows(db, first)
        assert (same_id, state, count) == (draft_id, "submitted", 1)
        assert spans(result) == [(0, 12, "Ada Lovelace", ["PER"]), (36, 42, "London", ["LOC"])]

        # 5. Skip the second task: stored as skipped, not counted, never served again.
        page.goto(label_url)
        expect(page.locator(".lbl-task-id")).to_have_text(f"#{second}")
        shot(page, "label-flow-before-skip")
        page.get_by_test_id("label-skip").click()
        page.get_by_test_id("label-empty").wait_for()
        expect(page.get_by_text("1 of 2 tasks labeled by you · 1 skipped")).to_be_visible()
        shot(page, "label-flow-skipped")
        assert [(state, result, count) for _id, state, result, count in rows(db, second)] == [("skipped", [], 0)]
        console.assert_clean()
    finally:
        context.close()


def test_prediction_preselects_the_suggested_choice(browser, served, db, console: Console) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    server, _ = served
    context, page = new_page(browser, console)
    try:
        sign_in(page, server)
        project_id = create_project(page, server, "Suggested sentiment", "text-classification")
        task_id = db.add_task(project_id, {"text": "What a wonderful day at the seaside."})
        add_prediction(db, project_id, task_id, [
            {"id": "p1", "from_name": "sentiment", "to_name": "text", "type": "choices",
             "value": {"choices": ["Positive"]}},
            {"id": "p2", "from_name": "sentiment", "to_name": "text", "type": "choices",  # not in the config
             "value": {"choices": ["Ecstatic"]}}])
        page.goto(f"{server.url}/t/demo/projects/{project_id}/label")
        expect(page.get_by_label("Positive")).to_be_checked()
        expect(page.locator('.lbl-control[data-control="sentiment"]')).to_have_class(re.compile("is-suggested"))
        expect(page.get_by_test_id("label-suggested")).to_be_visible()
        shot(page, "label-flow-suggested-choice")

        page.get_by_test_id("label-submit").click()
        page.get_by_test_id("label-empty").wait_for()
        ((_id, state, result, count),) = rows(db, task_id)
        assert (state, count) == ("submitted", 1)
        assert [(r["from_name"], r["type"], r["value"]) for r in result] == [
            ("sentiment", "choices", {"choices": ["Positive"]})]
        console.assert_clean()
    finally:
        context.close()


def test_predicted_spans_are_suggestions(browser, served, db, console: Console) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    server, _ = served
    context, page = new_page(browser, console)
    try:
        sign_in(page, server)
        project_id = create_project(page, server, "Suggested entities", "named-entities")
        task_id = db.add_task(project_id, {"text": TEXT})
        add_prediction(db, project_id, task_id, [
            {"id": "p1", "from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": 0, "end": 12, "text": "Ada Lovelace", "labels": ["PER"]}},
            {"id": "p2", "from_name": "label", "to_name": "text", "type": "labels",  # the text does not match
             "value": {"start": 17, "end": 24, "text": "Charlie", "labels": ["PER"]}}])
        page.goto(f"{server.url}/t/demo/projects/{project_id}/label")
        expect(page.locator(".lbl-hl.is-suggested")).to_have_count(1)
        expect(page.locator("#lbl-regions li").filter(has_text="suggested")).to_have_count(1)
        select_text(page, 36, 42)
        page.keyboard.press("l")
        expect(page.locator(".lbl-hl")).to_have_count(2)
        shot(page, "label-flow-suggested-spans")
        page.get_by_test_id("label-submit").click()
        page.get_by_test_id("label-empty").wait_for()
        ((_id, state, result, count),) = rows(db, task_id)
        assert (state, count) == ("submitted", 1)
        assert spans(result) == [(0, 12, "Ada Lovelace", ["PER"]), (36, 42, "London", ["LOC"])]
        assert result[0]["id"] == "p1"  # the kept suggestion
        console.assert_clean()
    finally:
        context.close()
