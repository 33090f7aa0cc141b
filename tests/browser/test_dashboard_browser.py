"""Dashboards in a real browser: a seeded project with three annotators over two weeks (overlap 2,
reviews, ground truth), its dashboard, the tenant overview, the data manager sorted by agreement, a
task's side-by-side agreement view with a ground-truth mark, an annotator's own numbers, and an empty
project's empty states. Screenshots go to ``test-artifacts/screenshots/dashboard-*.png``.
"""

from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest
from test_browser_flow import Console, new_page, shot, sign_in
from test_labeling_browser import browser, db, served  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
CHOICES = ["Positive", "Negative"]


@pytest.fixture
def console() -> Console:
    return Console()


def _choice(value: str) -> list[dict]:  # type: ignore[type-arg]
    return [{"id": "c1", "from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [value]}}]


def seed(db, owner_email: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Three annotators, 40 tasks (overlap 2), two weeks of work, reviews and a few ground truths."""
    from sqlalchemy import select

    from workspace.lib.timeutil import utcnow
    from workspace.tenancy.authz import policy
    from workspace.tenancy.context import TenantContext
    from workspace.tenancy.identity import hash_password
    from workspace.tenancy.models import Membership, User
    from workspace.tenancy.permissions import CATALOGUE
    from workspace.tenancy.services import grant_project_role
    from workspace.workflow import quality
    from workspace.workflow.models import Annotation, Project, Task
    from workspace.workflow.review_models import Review

    rng = random.Random(4)
    now = utcnow()
    with db.runtime.unit_of_work(db.tenant_id) as s:
        owner = s.scalars(select(User).where(User.email == owner_email)).one()
        membership = s.scalars(select(Membership).where(Membership.user_id == owner.id)).one()
        ctx = TenantContext(db.tenant_id, "demo", "Demo", owner.id, owner.email, "", membership.id, "owner",
                            permissions=frozenset(CATALOGUE))
        people = []
        for name in ("ada", "grace", "linus"):
            user = User(email=f"{name}@demo.example", name=name.title(), password_hash=hash_password(PASSWORD))
            s.add(user)
            s.flush()
            s.add(Membership(user_id=user.id, role="annotator"))
            policy.set_member_role(s, db.tenant_id, user.id, "annotator")
            people.append(user.id)
        project = Project(title="Product reviews", created_by_id=owner.id, workflow={"overlap": 2})
        s.add(project)
        empty = Project(title="Support tickets (new)", created_by_id=owner.id)
        s.add(empty)
        s.flush()
        for uid in people:
            grant_project_role(s, ctx, project.id, "annotator", user_id=uid)
        skill = {people[0]: 0.92, people[1]: 0.8, people[2]: 0.6}
        speed = {people[0]: 14, people[1]: 25, people[2]: 40}
        task_ids = []
        for n in range(40):
            truth = rng.choice(CHOICES)
            task = Task(project_id=project.id, data={"text": f"Review #{n + 1}: the product was {truth.lower()}."},
                        created_at=now - timedelta(days=15))
            s.add(task)
            s.flush()
            task_ids.append(task.id)
            if n >= 34:
                continue  # a few unlabeled tasks
            who = rng.sample(people, 1 if n >= 30 else 2)
            for uid in who:
                answer = truth if rng.random() < skill[uid] else next(c for c in CHOICES if c != truth)
                status = "submitted"
                if n < 24:
                    status = rng.choices(["accepted", "rejected"], weights=[skill[uid], 1 - skill[uid]])[0]
                a = Annotation(project_id=project.id, task_id=task.id, result=_choice(answer), status=status,
                               completed_by_id=uid, lead_time=max(3.0, rng.gauss(speed[uid], speed[uid] / 3)),
                               created_at=now - timedelta(days=rng.randint(0, 13), hours=rng.randint(0, 5)))
                s.add(a)
                task.annotation_count += 1
                s.flush()
                if status != "submitted":
                    s.add(Review(project_id=project.id, task_id=task.id, annotation_id=a.id, reviewer_id=owner.id,
                                 verdict=status, comment="" if status == "accepted" else "Read it again",
                                 annotation_version=1))
        s.flush()
        quality.refresh_project(s, ctx, project.id)
        # ground truth: the owner marks the first annotation of six overlapping tasks
        for task_id in task_ids[:6]:
            first = s.scalars(select(Annotation).where(Annotation.task_id == task_id).order_by(Annotation.id)).first()
            quality.mark_ground_truth(s, ctx, project.id, first.id)
        disputed = s.scalars(select(Task.id).where(Task.project_id == project.id, Task.agreement == 0.0)
                             .order_by(Task.id)).first()
        return {"project": project.id, "empty": empty.id, "disputed": disputed}


def test_dashboards_look_finished(browser, served, db, console: Console) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    server, _ = served
    ids = seed(db, server.email)
    context, page = new_page(browser, console)
    try:
        sign_in(page, server)
        base = f"{server.url}/t/demo/projects/{ids['project']}"

        # The project page leads to the dashboard.
        page.goto(base)
        page.get_by_test_id("open-dashboard").click()
        page.wait_for_url(re.compile(r"/dashboard$"))
        for chart in ("progress", "throughput", "lead-time", "acceptance", "agreement", "accuracy"):
            expect(page.get_by_test_id(f"chart-{chart}")).to_be_visible()
        expect(page.locator("#progress-t")).to_have_text("Tasks by state")
        expect(page.get_by_test_id("fig-alpha")).to_have_text(re.compile(r"^-?\d\.\d\d$"))
        assert page.locator("[data-testid=chart-throughput] polyline").count() == 3  # one line per annotator
        shot(page, "dashboard-project")

        # The tenant overview, from the side navigation.
        page.get_by_test_id("nav-dashboard").click()
        page.wait_for_url(re.compile(r"/t/demo/dashboard$"))
        expect(page.get_by_test_id("overview-table")).to_contain_text("Product reviews")
        shot(page, "dashboard-overview")

        # The data manager sorted by agreement: disputes first, each linked to its side-by-side view.
        page.goto(f"{base}/data?sort=agreement")
        expect(page.get_by_test_id("dm-agreement").first).to_have_text("0%")
        shot(page, "dashboard-datamanager-agreement")
        page.get_by_test_id("dm-agreement").first.locator("a").click()
        page.wait_for_url(re.compile(rf"/tasks/{ids['disputed']}/agreement$"))
        expect(page.get_by_test_id("task-agreement")).to_have_text("0%")
        page.locator("[data-testid^=mark-gt-]").first.click()
        expect(page.get_by_test_id("gt-badge")).to_have_count(1)
        shot(page, "dashboard-task-agreement")

        # An empty project: every chart says what will appear there.
        page.goto(f"{server.url}/t/demo/projects/{ids['empty']}/dashboard")
        expect(page.locator(".chart-empty")).to_have_count(6)
        shot(page, "dashboard-empty")
    finally:
        context.close()

    # An annotator sees their own numbers only.
    context, page = new_page(browser, console)
    try:
        page.goto(server.url + "/login")
        page.fill("#email", "grace@demo.example")
        page.fill("#password", PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/t/demo/$"))
        page.goto(f"{server.url}/t/demo/projects/{ids['project']}/dashboard")
        expect(page.get_by_role("heading", name="Your numbers")).to_be_visible()
        body = page.locator("main").inner_text()
        assert "ada@demo.example" not in body and "linus@demo.example" not in body
        expect(page.get_by_test_id("chart-progress")).to_have_count(0)
        shot(page, "dashboard-annotator")
    finally:
        context.close()
    console.assert_clean()
