"""Workflow settings and bulk assignment in a real browser (``workspace serve`` and Debian's chromium).

The owner (a manager and more) opens the project's workflow settings, first saves a bad value (the
message shows beside the field and nothing is saved), then sets 2 annotations per task and review of
every annotation; in the data manager they select three tasks and assign them to a team of two
annotators. Each step is read back from the served instance's database: the settings, one assignment
row per task and member, and one audit event for the bulk action. Then each annotator's "Label"
opens an assigned task.

Screenshots go to ``test-artifacts/screenshots/workflow-*.png``.
"""

from __future__ import annotations

import re

import pytest

from _pages import ServedDb, create_project, db_fixture, login, served_fixture
from _pages import browser, console  # noqa: F401  (fixtures)
from test_browser_flow import Console, new_page, shot, sign_in

pytestmark = pytest.mark.browser

PASSWORD = "a long annotator password"
ANNOTATORS = ("ann@demo.example", "bob@demo.example")


served = served_fixture("ws-workflow-")


class Db(ServedDb):
    """The served instance's SQLite database: tasks, a team of annotators with a grant; reads back."""

    def add_team(self, owner_email: str, project_id: int, name: str) -> None:
        """Two annotators in a team, and the team granted the project (through the services)."""
        from workspace.tenancy.services import create_team, grant_project_role, set_team_membership

        with self.runtime.unit_of_work(self.tenant_id) as db:
            ctx = self.owner_context(db, owner_email)
            team = create_team(db, ctx, name)
            for email in ANNOTATORS:
                user_id = self.add_member(db, email, email.split("@")[0].title(), PASSWORD, "annotator")
                set_team_membership(db, ctx, team.id, user_id, True)
            grant_project_role(db, ctx, project_id, "annotator", team_id=team.id)

    def workflow(self, project_id: int) -> dict:  # type: ignore[type-arg]
        from sqlalchemy import select

        from workspace.workflow.models import Project

        with self.runtime.unit_of_work(self.tenant_id) as db:
            return dict(db.scalar(select(Project.workflow).where(Project.id == project_id)) or {})

    def assignments(self, project_id: int) -> list[tuple[int, str, str]]:
        from sqlalchemy import select

        from workspace.tenancy.models import User
        from workspace.workflow.models import TaskAssignment

        with self.runtime.unit_of_work(self.tenant_id) as db:
            return sorted(db.execute(select(TaskAssignment.task_id, User.email, TaskAssignment.role)
                                     .join(User, User.id == TaskAssignment.user_id)
                                     .where(TaskAssignment.project_id == project_id)).all())

    def audit(self, action: str) -> list[dict]:  # type: ignore[type-arg]
        from sqlalchemy import select

        from workspace.audit.models import AuditEvent

        with self.runtime.unit_of_work(self.tenant_id) as db:
            return [e.changes for e in db.scalars(select(AuditEvent).where(AuditEvent.action == action))]


db = db_fixture(Db)


def test_manager_sets_overlap_and_review_then_assigns_three_tasks_to_a_team(browser, served, db, console):  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    server, _ = served
    context, page = new_page(browser, console)
    others = []
    try:
        sign_in(page, server)
        project_id = create_project(page, server, "Support tickets", "text-classification")
        tasks = [db.add_task(project_id, text) for text in (
            "The parcel arrived late.", "Great service, thank you!", "The box was damaged.",
            "Refund took three weeks.", "Friendly support on the phone.")]
        db.add_team(server.email, project_id, "Night shift")

        # 1. The project page's Workflow button opens the settings.
        page.goto(f"{server.url}/t/demo/projects/{project_id}")
        page.get_by_test_id("open-workflow").click()
        page.wait_for_url(re.compile(rf"/projects/{project_id}/settings/workflow$"))
        expect(page.get_by_role("heading", name="Workflow settings")).to_be_visible()
        shot(page, "workflow-settings-default")

        # 2. A bad value: the message is next to the field, nothing is saved.
        console.allow(r"/settings/workflow: Failed to load resource: the server responded with a status of 422")
        page.fill("#f-overlap", "0")
        page.get_by_test_id("save-workflow").click()
        expect(page.get_by_test_id("error-overlap")).to_contain_text("Annotations per task must be from 1 to 50")
        expect(page.get_by_test_id("workflow-errors")).to_be_visible()
        shot(page, "workflow-settings-error")
        assert db.workflow(project_id) == {}

        # 3. Overlap 2 and review of every annotation.
        page.fill("#f-overlap", "2")
        page.locator("label.wf-option", has=page.get_by_test_id("review-all")).click()
        assert page.get_by_test_id("review-all").is_checked()
        page.get_by_test_id("save-workflow").click()
        expect(page.get_by_role("status").filter(has_text="Workflow settings saved")).to_be_visible()
        expect(page.locator("#f-overlap")).to_have_value("2")
        shot(page, "workflow-settings-saved")
        stored = db.workflow(project_id)
        assert stored["overlap"] == 2 and stored["review"] == "all" and stored["blind"] is True

        # 4. The data manager: select three tasks, Assign…, choose the team, apply.
        page.goto(f"{server.url}/t/demo/projects/{project_id}/data")
        for task_id in tasks[:3]:
            page.get_by_label(f"Select task {task_id}", exact=True).check()
        page.get_by_test_id("assign-selected").click()
        dialog = page.get_by_test_id("assign-dialog")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_role("heading")).to_have_text("Assign 3 tasks")
        page.get_by_test_id("assign-teams").get_by_label("Night shift").check()
        shot(page, "workflow-assign-dialog")
        page.get_by_test_id("assign-apply").click()
        expect(page.get_by_role("status").filter(has_text="Assigned 3 tasks to 2 people as annotator")).to_be_visible()
        cells = page.get_by_test_id("dm-assignees")
        for row in range(3):
            expect(cells.nth(row)).to_contain_text("ann@demo.example")
            expect(cells.nth(row)).to_contain_text("bob@demo.example")
        expect(cells.nth(3)).to_have_text("—")
        shot(page, "workflow-assigned-in-data-manager")
        assert db.assignments(project_id) == sorted(
            (t, email, "annotator") for t in tasks[:3] for email in ANNOTATORS)
        (event,) = db.audit("task.bulk_assigned")
        assert event["tasks"] == 3 and event["added"] == 6 and event["selection"] == {"ids": tasks[:3]}

        # 5. Each annotator's "Label" opens an assigned task (assigned first; overlap 2: both get it).
        for email in ANNOTATORS:
            other_context, other = new_page(browser, console)
            others.append(other_context)
            login(other, server.url, email, PASSWORD)
            other.goto(f"{server.url}/t/demo/projects/{project_id}/label")
            expect(other.locator(".lbl-task-id")).to_have_text(f"#{tasks[0]}")
            shot(other, f"workflow-label-next-{email.split('@')[0]}")
        console.assert_clean()
    finally:
        for other_context in others:
            other_context.close()
        context.close()
