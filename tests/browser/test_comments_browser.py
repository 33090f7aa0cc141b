"""Comments with @mentions in a real browser: A comments on a task mentioning @bea (picked from the
autocomplete); Bea, an annotator granted the project, sees the bell's count, opens the notification,
lands on the task at the comment and replies; A then sees the reply's notification.

Screenshots go to ``test-artifacts/screenshots/comments-*.png``.
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


served = served_fixture("ws-comments-")
db = db_fixture(ServedDb)  # tasks, a member and her project grant


def test_mention_notification_and_reply(browser, served, db, console: Console) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    server, _ = served
    a_context, a = new_page(browser, console)
    b_context, b = new_page(browser, console)
    try:
        sign_in(a, server)
        project_id = create_project(a, server, "Support tickets", "text-classification")
        task_id = db.add_task(project_id, "The parcel arrived late and the box was damaged.")
        db.add_task(project_id, "Great service, thank you!")
        db.add_annotator(server.email, project_id, BEA_EMAIL, "Bea Annotator", BEA_PASSWORD)

        # A comments on the task, picking @bea from the autocomplete.
        a.goto(f"{server.url}/t/demo/projects/{project_id}/label?task={task_id}")
        panel = a.get_by_test_id("comments")
        expect(panel.get_by_test_id("comment-count")).to_have_text("0")
        box = a.get_by_test_id("comment-body-input")
        box.click()
        box.press_sequentially("Is this negative or about shipping? @be")
        suggestion = a.locator(".cm-suggest-list li[data-token]")
        expect(suggestion).to_have_count(1)
        expect(suggestion).to_contain_text("@bea")
        shot(a, "comments-autocomplete")
        box.press("Enter")
        expect(box).to_have_value("Is this negative or about shipping? @bea ")
        box.press_sequentially("please check <b>this</b>")
        a.get_by_test_id("comment-submit").click()
        expect(panel.get_by_test_id("comment-count")).to_have_text("1")
        body = panel.get_by_test_id("comment-body").first
        expect(body.locator(".mention")).to_have_text("@bea")
        expect(body).to_contain_text("please check <b>this</b>")  # shown as text, not markup
        shot(a, "comments-posted")

        # Bea signs in: the bell shows one unread notification.
        login(b, server.url, BEA_EMAIL, BEA_PASSWORD)
        expect(b.get_by_test_id("bell-count")).to_have_text("1")
        shot(b, "comments-bell")
        b.get_by_test_id("bell").click()
        b.wait_for_url(re.compile(r"/t/demo/notifications$"))
        expect(b.get_by_test_id("notification")).to_have_count(1)
        expect(b.get_by_test_id("notification")).to_contain_text("mentioned you on task")
        shot(b, "comments-notifications")

        # Opening it lands on the task, at the comment, and marks it read.
        b.get_by_test_id("notification-open").click()
        b.wait_for_url(re.compile(rf"/label\?task={task_id}#comment-\d+$"))
        expect(b.locator(".cm-comment.is-target")).to_have_count(1)
        expect(b.get_by_test_id("bell-count")).to_have_count(0)
        b.get_by_test_id("comment-reply").click()
        reply = b.get_by_test_id("reply-body")
        reply.fill("It's about shipping, so negative. @owner was it damaged in transit?")
        reply.press("Control+Enter")  # sends the reply, not the annotation
        expect(b.locator(".cm-reply")).to_have_count(1)
        expect(b.locator(".cm-reply")).to_contain_text("It's about shipping")
        expect(b.get_by_test_id("label-status")).not_to_have_text("Submitted")
        shot(b, "comments-replied")

        # A hears about the reply on the next poll or page load.
        a.goto(f"{server.url}/t/demo/notifications")
        expect(a.get_by_test_id("notification")).to_have_count(1)
        expect(a.get_by_test_id("bell-count")).to_have_text("1")
        shot(a, "comments-reply-notification")
        console.assert_clean()
    finally:
        a_context.close()
        b_context.close()
