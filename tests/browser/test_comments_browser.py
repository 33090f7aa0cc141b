"""Comments with @mentions in a real browser: A comments on a task mentioning @bea (picked from the
autocomplete); Bea, an annotator granted the project, sees the bell's count, opens the notification,
lands on the task at the comment and replies; A then sees the reply's notification.

Screenshots go to ``test-artifacts/screenshots/comments-*.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_browser_flow import (  # the same server/browser approach as the main browser flow
    Console,
    Server,
    browser,  # noqa: F401  (a fixture shared with the main flow)
    new_page,
    serve_embedded,
    shot,
    sign_in,
)
from test_labeling_browser import create_project

pytestmark = pytest.mark.browser

BEA_EMAIL = "bea@demo.example"
BEA_PASSWORD = "bea's long password"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Server, Path]]:
    with serve_embedded("ws-comments-") as running:
        yield running


class Db:
    """Writes to the served instance's SQLite database (tasks, a member and her project grant)."""

    def __init__(self, data_dir: Path) -> None:
        from workspace.config import load_settings
        from workspace.runtime import build_runtime
        from workspace.tenancy.repositories import tenant_by_slug

        self.runtime = build_runtime(load_settings({"WORKSPACE_DATA_DIR": str(data_dir)}), watch_policy=False)
        with self.runtime.unit_of_work() as db:
            self.tenant_id = tenant_by_slug(db, "demo").id

    def add_task(self, project_id: int, text: str) -> int:
        from workspace.lib.timeutil import utcnow
        from workspace.workflow.models import Task

        with self.runtime.unit_of_work(self.tenant_id) as db:
            task = Task(project_id=project_id, data={"text": text}, created_at=utcnow())
            db.add(task)
            db.flush()
            return task.id

    def add_annotator(self, owner_email: str, project_id: int) -> None:
        from workspace.tenancy import repositories as repo
        from workspace.tenancy.authz import policy
        from workspace.tenancy.context import TenantContext
        from workspace.tenancy.identity import hash_password
        from workspace.tenancy.models import Membership, User
        from workspace.tenancy.permissions import CATALOGUE
        from workspace.tenancy.services import grant_project_role

        with self.runtime.unit_of_work(self.tenant_id) as db:
            user = User(email=BEA_EMAIL, name="Bea Annotator", password_hash=hash_password(BEA_PASSWORD))
            db.add(user)
            db.flush()
            db.add(Membership(user_id=user.id, role="annotator"))
            policy.set_member_role(db, self.tenant_id, user.id, "annotator")
            owner = repo.user_by_email(db, owner_email)
            membership = repo.membership_of(db, owner.id)
            ctx = TenantContext(self.tenant_id, "demo", "Demo", owner.id, owner.email, "", membership.id, "owner",
                                permissions=frozenset(CATALOGUE))
            grant_project_role(db, ctx, project_id, "annotator", user_id=user.id)


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture(scope="module")
def db(served) -> Iterator[Db]:  # type: ignore[no-untyped-def]
    database = Db(served[1])
    yield database
    database.runtime.close()


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
        db.add_annotator(server.email, project_id)

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
        b.goto(server.url + "/login")
        b.fill("#email", BEA_EMAIL)
        b.fill("#password", BEA_PASSWORD)
        b.get_by_role("button", name="Sign in").click()
        b.wait_for_url(re.compile(r"/t/demo/$"))
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
