"""The review stream in a real browser (``workspace serve`` and Debian's chromium).

Bea (an annotator granted the project) labels a task; the owner, reviewing, tries to reject without a
comment (refused, clearly), then rejects with one; Bea opens the task and reads the comment, fixes her
answer and resubmits; the owner finds it back in the queue and accepts it. The annotation's history
then lists submitted → rejected → resubmitted → accepted and shows any version.

Screenshots go to ``test-artifacts/screenshots/review-*.png``.
"""

from __future__ import annotations

import re

import pytest

from _pages import ServedDb, create_project, db_fixture, login, served_fixture
from _pages import browser, console  # noqa: F401  (fixtures)
from test_browser_flow import Console, new_page, shot, sign_in

pytestmark = pytest.mark.browser

BEA_EMAIL = "bea@demo.example"
BEA_PASSWORD = "bea's long password"


served = served_fixture("ws-review-")


class Db(ServedDb):
    """The served instance's SQLite database: tasks, a member and her grant; reads back annotations."""

    def annotation(self, task_id: int, email: str = BEA_EMAIL) -> tuple[int, str, list, int]:  # type: ignore[type-arg]
        from sqlalchemy import select

        from workspace.tenancy.models import User
        from workspace.workflow.models import Annotation

        with self.runtime.unit_of_work(self.tenant_id) as db:
            user_id = db.scalars(select(User.id).where(User.email == email)).one()
            a = db.scalars(select(Annotation).where(Annotation.task_id == task_id, Annotation.status != "draft",
                                                    Annotation.completed_by_id == user_id)).one()
            return a.id, a.status, a.result, a.version


db = db_fixture(Db)


def _choices(result: list) -> list[str]:  # type: ignore[type-arg]
    return [c for r in result for c in r["value"].get("choices", [])]


def test_reject_with_comment_fix_resubmit_accept(browser, served, db, console: Console) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    server, _ = served
    owner_context, owner = new_page(browser, console)
    bea_context, bea = new_page(browser, console)
    try:
        sign_in(owner, server)
        project_id = create_project(owner, server, "Support tickets", "text-classification")
        task_id = db.add_task(project_id, "The parcel arrived late and the box was damaged.")
        db.add_annotator(server.email, project_id, BEA_EMAIL, "Bea Annotator", BEA_PASSWORD)
        base = f"{server.url}/t/demo/projects/{project_id}"

        # Bea labels the task (wrongly).
        login(bea, server.url, BEA_EMAIL, BEA_PASSWORD)
        bea.goto(f"{base}/label?task={task_id}")
        bea.get_by_label("Positive").check()
        bea.get_by_test_id("label-submit").click()
        expect(bea.get_by_test_id("label-empty")).to_be_visible()  # "Submit & next": nothing left to label
        annotation_id, status, result, _version = db.annotation(task_id)
        assert status == "submitted" and _choices(result) == ["Positive"]

        # The owner reviews: the project page links the stream; the item shows the task and Bea's answer.
        owner.goto(base)
        owner.get_by_test_id("open-review").click()
        owner.wait_for_url(re.compile(r"/review$"))
        expect(owner.get_by_test_id("review-count")).to_contain_text("1 annotation waiting")
        expect(owner.get_by_test_id("review-author")).to_have_text("Bea Annotator")
        expect(owner.get_by_test_id("task-data")).to_contain_text("parcel arrived late")
        expect(owner.get_by_test_id("review-regions")).to_contain_text("Positive")
        shot(owner, "review-stream")

        # Reject without a comment: refused (422, expected), saying what to do; then with a comment.
        console.allow(r"/review/\d+/reject: Failed to load resource: the server responded with a status of 422")
        owner.get_by_test_id("review-reject").click()
        expect(owner.get_by_test_id("review-error")).to_contain_text("Write a comment when rejecting")
        assert db.annotation(task_id)[1] == "submitted"
        shot(owner, "review-comment-required")
        owner.get_by_test_id("review-comment").fill("A late, damaged parcel is not <b>positive</b>: choose Negative.")
        owner.get_by_test_id("review-reject").click()
        expect(owner.locator(".flash-success")).to_contain_text(f"Annotation #{annotation_id} rejected")
        expect(owner.get_by_test_id("review-empty")).to_be_visible()
        assert db.annotation(task_id)[1] == "rejected"

        # Bea opens the task: the comment is shown prominently; she fixes and resubmits.
        bea.goto(f"{base}/label?task={task_id}")
        banner = bea.get_by_test_id("label-rejection")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("Rejected by")
        expect(bea.get_by_test_id("label-rejection-comment")).to_have_text(
            "A late, damaged parcel is not <b>positive</b>: choose Negative.")  # text, not markup
        expect(bea.get_by_label("Positive")).to_be_checked()  # her rejected answer, restored to fix
        expect(bea.get_by_test_id("label-submit")).to_have_text(re.compile("Resubmit"))
        shot(bea, "review-annotator-sees-comment")
        bea.get_by_label("Negative").check()
        bea.get_by_test_id("label-submit").click()
        expect(bea.locator(".flash-success")).to_contain_text("updated")
        _id, status, result, _version = db.annotation(task_id)
        assert status == "submitted" and _choices(result) == ["Negative"]
        expect(bea.get_by_test_id("label-rejection")).to_have_count(0)

        # Back in the owner's queue; accepted.
        owner.goto(f"{base}/review")
        expect(owner.get_by_test_id("review-regions")).to_contain_text("Negative")
        expect(owner.get_by_test_id("review-item")).to_contain_text("submitted")
        shot(owner, "review-resubmitted")
        owner.get_by_test_id("review-accept").click()
        expect(owner.locator(".flash-success")).to_contain_text(f"Annotation #{annotation_id} accepted")
        assert db.annotation(task_id)[1] == "accepted"
        shot(owner, "review-accepted")

        # The history: every step, and any version can be viewed.
        owner.goto(f"{base}/annotations/{annotation_id}/history")
        rows = owner.get_by_test_id("revision-row")
        expect(rows).to_have_count(4)
        expect(owner.get_by_test_id("revisions")).to_contain_text("resubmitted")
        owner.get_by_test_id("view-revision-1").click()
        expect(owner.get_by_test_id("revision-view")).to_contain_text("As of revision 1")
        expect(owner.get_by_test_id("revision-regions")).to_contain_text("Positive")
        shot(owner, "review-history")

        # The data manager shows the status.
        owner.goto(f"{base}/data")
        expect(owner.get_by_test_id("dm-status").first).to_have_text("accepted")
        shot(owner, "review-data-manager")
        console.assert_clean()
    finally:
        owner_context.close()
        bea_context.close()


def test_overlap_side_by_side_and_fix_and_accept(browser, served, db, console: Console) -> None:  # type: ignore[no-untyped-def]
    """Two annotators on one task: the reviewer sees both results side by side, the differing regions
    highlighted, and fixes Bea's answer in the labeling page's "fix" mode, which accepts it."""
    from playwright.sync_api import expect

    server, _ = served
    owner_context, owner = new_page(browser, console)
    bea_context, bea = new_page(browser, console)
    try:
        sign_in(owner, server)
        project_id = create_project(owner, server, "Overlap", "text-classification")
        task_id = db.add_task(project_id, "Fast delivery, but the manual is missing.")
        db.add_annotator(server.email, project_id, "bea2@demo.example", "Bea Annotator", BEA_PASSWORD)
        base = f"{server.url}/t/demo/projects/{project_id}"

        login(bea, server.url, "bea2@demo.example", BEA_PASSWORD)
        bea.goto(f"{base}/label?task={task_id}")
        bea.get_by_label("Negative").check()
        bea.get_by_test_id("label-submit").click()
        expect(bea.get_by_test_id("label-empty")).to_be_visible()
        owner.goto(f"{base}/label?task={task_id}")  # the owner labels it too (not reviewable by them)
        owner.get_by_label("Neutral").check()
        owner.get_by_test_id("label-submit-stay").click()
        expect(owner.locator(".flash-success")).to_contain_text("submitted")

        owner.goto(f"{base}/review")
        expect(owner.get_by_test_id("review-count")).to_contain_text("1 annotation waiting")  # not their own
        expect(owner.get_by_test_id("review-other")).to_have_count(1)
        expect(owner.locator("tr.rv-differs")).to_have_count(2)  # Negative vs Neutral, both highlighted
        shot(owner, "review-side-by-side")

        owner.get_by_test_id("review-fix").click()
        expect(owner.get_by_test_id("label-fixing")).to_be_visible()
        expect(owner.get_by_label("Negative")).to_be_checked()  # Bea's answer, to correct
        shot(owner, "review-fix-mode")
        owner.get_by_label("Neutral").check()
        owner.get_by_test_id("label-submit").click()
        owner.wait_for_url(re.compile(r"/review$"))
        expect(owner.locator(".flash-success")).to_contain_text("fixed and accepted")
        annotation_id, status, result, _version = db.annotation(task_id, email="bea2@demo.example")
        assert status == "accepted" and _choices(result) == ["Neutral"]
        owner.goto(f"{base}/annotations/{annotation_id}/history")
        expect(owner.get_by_test_id("revisions")).to_contain_text("fixed")
        console.assert_clean()
    finally:
        owner_context.close()
        bea_context.close()
