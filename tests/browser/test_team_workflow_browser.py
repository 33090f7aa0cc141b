"""Issue 4's first acceptance point, end to end in a real browser (``workspace serve`` and Debian's chromium).

Four people, each in their own browser context and signed in through the login page:

* **Max, a manager**, sets overlap 2, manual distribution and review of every annotation, then assigns
  three of the project's five tasks to the team "Night shift" (Ann and Bob) from the data manager.
* **Ann and Bob, annotators**, each work through "Label" (the queue). They agree on two tasks and
  disagree on the third; Ann also gets task 2 wrong.
* **Rita, a reviewer**, goes through the review stream: she rejects Ann's task 2 with a comment and
  accepts the five other annotations.
* Ann's "Label" brings task 2 back first with Rita's comment; she fixes and resubmits it, and Rita
  accepts it.
* Max's dashboard then shows the acceptance rate per annotator (Ann 3 of 4 = 75 %, Bob 3 of 3 = 100 %,
  overall 6 of 7 = 86 %) and the agreement (per task 1, 1, 0: mean 67 %; Krippendorff's alpha, Fleiss'
  and Cohen's kappa equal to scikit-learn / krippendorff / statsmodels on the same answers).

Only the tenant, the members, the team (with its project grant), the project and its tasks are seeded;
everything else happens through the pages. Screenshots: ``test-artifacts/screenshots/team-*.png``.
"""

from __future__ import annotations

import re

import pytest

from _pages import ServedDb, db_fixture, login, served_fixture
from _pages import browser, console  # noqa: F401  (fixtures)
from test_browser_flow import Console, Server, new_page, shot

pytestmark = pytest.mark.browser

PASSWORD = "a long team password"
MANAGER, REVIEWER = "max@demo.example", "rita@demo.example"
ANN, BOB = "ann@demo.example", "bob@demo.example"
NAMES = {MANAGER: "Max Manager", REVIEWER: "Rita Reviewer", ANN: "Ann Archer", BOB: "Bob Baker"}
TEXTS = ("Great service, thank you!", "The box arrived crushed and the lamp inside was broken.",
         "The parcel was late, but support sorted it out.", "Refund took three weeks.", "Friendly support on the phone.")
# What each annotator answers on the three assigned tasks (in queue order); Ann's task 2 is wrong.
ANSWERS = {ANN: ("Positive", "Positive", "Neutral"), BOB: ("Positive", "Negative", "Negative")}
FIXED = "Negative"  # Ann's task 2 after the rejection
COMMENT = "The lamp arrived broken: that is <b>Negative</b>, not Positive."


served = served_fixture("ws-team-")


class Seed(ServedDb):
    """The served instance's SQLite database: the seeded members, team, project and tasks."""

    def scene(self, owner_email: str) -> tuple[int, list[int]]:
        """Max (manager), Rita (reviewer), Ann and Bob (annotators, team "Night shift" granted the
        project as annotator); the project with the text-classification template and five tasks."""
        from workspace.tenancy.services import create_team, grant_project_role, set_team_membership
        from workspace.workflow import services as svc
        from workspace.workflow.templates import template

        with self.runtime.unit_of_work(self.tenant_id) as db:
            ctx = self.owner_context(db, owner_email)
            ids = {}
            for email, role in ((MANAGER, "manager"), (REVIEWER, "reviewer"), (ANN, "annotator"), (BOB, "annotator")):
                ids[email] = self.add_member(db, email, NAMES[email], PASSWORD, role)
            config = template("text-classification")
            assert config is not None
            project = svc.create_project(db, ctx, "Customer feedback", label_config=config.config)
            tasks = [self.new_task(db, project.id, text) for text in TEXTS]
            team = create_team(db, ctx, "Night shift")
            for email in (ANN, BOB):
                set_team_membership(db, ctx, team.id, ids[email], True)
            grant_project_role(db, ctx, project.id, "annotator", team_id=team.id)
            return project.id, tasks


db = db_fixture(Seed)


def _sign_in(browser, console: Console, server: Server, email: str):  # type: ignore[no-untyped-def]
    """A fresh browser context for one person, signed in through the login page."""
    context, page = new_page(browser, console)
    login(page, server.url, email, PASSWORD)
    return context, page


def _expected_agreement() -> dict[str, str]:
    """Alpha, Fleiss' and Cohen's kappa of the final answers by independent implementations, as the
    dashboard prints them (two decimals). By hand: alpha = 1 - (2/6)/(22/30) = 0.55, Fleiss
    = (2/3 - 14/36)/(1 - 14/36) = 0.45, Cohen = (2/3 - 1/3)/(1 - 1/3) = 0.50."""
    import krippendorff
    import numpy as np
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    ann = [ANSWERS[ANN][0], FIXED, ANSWERS[ANN][2]]
    bob = list(ANSWERS[BOB])
    codes = {c: n for n, c in enumerate(("Positive", "Negative", "Neutral"))}
    matrix = np.array([[codes[c] for c in ann], [codes[c] for c in bob]], dtype=float)
    alpha = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    fleiss = fleiss_kappa(aggregate_raters(matrix.T.astype(int))[0])
    cohen = cohen_kappa_score(ann, bob)
    return {"alpha": f"{alpha:.2f}", "fleiss": f"{fleiss:.2f}", "cohen": f"{cohen:.2f}"}


def _label_queue(page, base: str, answers: tuple[str, ...], tasks: list[int], who: str) -> None:  # type: ignore[no-untyped-def]
    """From the project page, "Label" and then "Submit & next" through the assigned tasks."""
    from playwright.sync_api import expect

    page.goto(base)
    page.get_by_test_id("open-labeling").click()
    for n, (task_id, answer) in enumerate(zip(tasks, answers, strict=True)):
        expect(page.locator(".lbl-task-id")).to_have_text(f"#{task_id}")  # manual distribution: assigned only
        expect(page.get_by_test_id("label-yours")).to_contain_text("Not submitted")
        page.get_by_label(answer).check()
        if n == 0:
            expect(page.get_by_test_id("comments").get_by_test_id("comment-count")).to_have_text("0")  # loaded
            shot(page, f"team-03-{who}-labels-first-task")
        page.get_by_test_id("label-submit").click()  # "Submit & next"
    empty = page.get_by_test_id("label-empty")  # tasks 4 and 5 are assigned to nobody
    expect(empty).to_contain_text("Nothing is left in your queue")
    shot(page, f"team-04-{who}-queue-done")


def _review_item(page) -> tuple[int, int, str]:  # type: ignore[no-untyped-def]
    """The task id, annotation id and author of the annotation the review stream shows."""
    heading = page.get_by_test_id("review-item").locator("h2").inner_text()
    match = re.fullmatch(r"Task #(\d+) · annotation #(\d+)", heading.strip())
    assert match, heading
    return int(match.group(1)), int(match.group(2)), page.get_by_test_id("review-author").inner_text()


def _chart_rows(page, chart: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """An hbar chart's visible labels and values, e.g. {"ann@demo.example": "75%"}."""
    svg = page.get_by_test_id(f"chart-{chart}")
    labels = svg.locator("text.cat").all_text_contents()
    values = svg.locator("text.val").all_text_contents()
    assert len(labels) == len(values), (labels, values)
    return dict(zip(labels, values, strict=True))


def test_team_overlap_review_reject_fix_accept_and_dashboard(browser, served, db, console: Console) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    server, _ = served
    project_id, tasks = db.scene(server.email)
    assigned = tasks[:3]
    base = f"{server.url}/t/demo/projects/{project_id}"
    contexts = []
    try:
        # --- Max, the manager: workflow settings, then the assignment -----------------------------
        context, max_ = _sign_in(browser, console, server, MANAGER)
        contexts.append(context)
        max_.goto(base)
        max_.get_by_test_id("open-workflow").click()
        max_.wait_for_url(re.compile(rf"/projects/{project_id}/settings/workflow$"))
        max_.fill("#f-overlap", "2")
        max_.locator("label.wf-option", has=max_.get_by_test_id("distribution-manual")).click()
        max_.locator("label.wf-option", has=max_.get_by_test_id("review-all")).click()
        expect(max_.get_by_test_id("rejected_returns")).to_be_checked()
        max_.get_by_test_id("save-workflow").click()
        expect(max_.get_by_role("status").filter(has_text="Workflow settings saved")).to_be_visible()
        expect(max_.locator("#f-overlap")).to_have_value("2")
        expect(max_.get_by_test_id("distribution-manual")).to_be_checked()
        expect(max_.get_by_test_id("review-all")).to_be_checked()
        shot(max_, "team-01-workflow-settings")

        max_.goto(base)
        max_.get_by_test_id("open-data-manager").click()
        max_.wait_for_url(re.compile(rf"/projects/{project_id}/data"))
        for task_id in assigned:
            max_.get_by_label(f"Select task {task_id}", exact=True).check()
        max_.get_by_test_id("assign-selected").click()
        dialog = max_.get_by_test_id("assign-dialog")
        expect(dialog.get_by_role("heading")).to_have_text("Assign 3 tasks")
        max_.get_by_test_id("assign-teams").get_by_label("Night shift").check()
        shot(max_, "team-02-assign-dialog")
        max_.get_by_test_id("assign-apply").click()
        expect(max_.get_by_role("status").filter(has_text="Assigned 3 tasks to 2 people as annotator")).to_be_visible()
        cells = max_.get_by_test_id("dm-assignees")
        for row in range(3):
            expect(cells.nth(row)).to_contain_text(ANN)
            expect(cells.nth(row)).to_contain_text(BOB)
        expect(cells.nth(3)).to_have_text("—")
        shot(max_, "team-02-assigned")

        # --- Ann and Bob label their queues: same answer on task 1, different on tasks 2 and 3 -------
        context, ann = _sign_in(browser, console, server, ANN)
        contexts.append(context)
        _label_queue(ann, base, ANSWERS[ANN], assigned, "ann")
        context, bob = _sign_in(browser, console, server, BOB)
        contexts.append(context)
        _label_queue(bob, base, ANSWERS[BOB], assigned, "bob")

        # --- Rita reviews all six: rejects Ann's task 2 with a comment, accepts the rest -----------
        context, rita = _sign_in(browser, console, server, REVIEWER)
        contexts.append(context)
        rita.goto(base)
        rita.get_by_test_id("open-review").click()
        rita.wait_for_url(re.compile(r"/review$"))
        expect(rita.get_by_test_id("review-count")).to_contain_text("6 annotations waiting")
        seen: list[tuple[int, str]] = []
        rejected_id = None
        for step in range(6):
            task_id, annotation_id, author = _review_item(rita)
            seen.append((task_id, author))
            expect(rita.get_by_test_id("review-other")).to_have_count(1)  # overlap 2: the other one beside it
            if (task_id, author) == (assigned[1], NAMES[ANN]):
                expect(rita.get_by_test_id("review-regions")).to_contain_text("Positive")
                expect(rita.locator("tr.rv-differs")).to_have_count(2)  # Positive vs Negative, both marked
                rita.get_by_test_id("review-comment").fill(COMMENT)
                shot(rita, "team-05-reviewer-rejects-with-comment")
                rita.get_by_test_id("review-reject").click()
                expect(rita.locator(".flash-success")).to_contain_text(f"Annotation #{annotation_id} rejected")
                rejected_id = annotation_id
            else:
                if step == 0:
                    shot(rita, "team-05-review-stream")
                rita.get_by_test_id("review-accept").click()
                expect(rita.locator(".flash-success")).to_contain_text(f"Annotation #{annotation_id} accepted")
            expect(rita.get_by_test_id("review-count")).to_contain_text(f"{5 - step} annotation")
        assert sorted(seen) == sorted((t, NAMES[who]) for t in assigned for who in (ANN, BOB))
        assert rejected_id is not None
        expect(rita.get_by_test_id("review-empty")).to_be_visible()
        shot(rita, "team-06-review-done")

        # --- Ann: task 2 comes back first in her queue, with the comment; she fixes and resubmits --
        ann.goto(base)
        ann.get_by_test_id("open-labeling").click()
        expect(ann.locator(".lbl-task-id")).to_have_text(f"#{assigned[1]}")
        banner = ann.get_by_test_id("label-rejection")
        expect(banner).to_contain_text(f"Rejected by {NAMES[REVIEWER]}")
        expect(ann.get_by_test_id("label-rejection-comment")).to_have_text(COMMENT)  # as text, not markup
        expect(ann.get_by_label("Positive")).to_be_checked()  # her rejected answer, to fix
        expect(ann.get_by_test_id("label-submit")).to_have_text(re.compile("Resubmit"))
        expect(ann.locator(".lbl-next")).to_have_count(0)  # no "next task" link: this task is her queue
        shot(ann, "team-07-annotator-sees-rejection")
        ann.get_by_label(FIXED).check()
        ann.get_by_test_id("label-submit").click()
        expect(ann.locator(".flash-success")).to_contain_text(f"Task #{assigned[1]}: your annotation is updated")
        expect(ann.get_by_test_id("label-rejection")).to_have_count(0)
        expect(ann.get_by_test_id("label-yours")).to_contain_text("Submitted")
        shot(ann, "team-08-annotator-resubmitted")
        ann.goto(f"{base}/label")
        expect(ann.get_by_test_id("label-empty")).to_be_visible()  # nothing else in her queue

        # --- Rita: the resubmission is back in her stream; she accepts it -------------------------
        rita.goto(f"{base}/review")
        expect(rita.get_by_test_id("review-count")).to_contain_text("1 annotation waiting")
        task_id, annotation_id, author = _review_item(rita)
        assert (task_id, annotation_id, author) == (assigned[1], rejected_id, NAMES[ANN])
        expect(rita.get_by_test_id("review-regions")).to_contain_text(FIXED)
        expect(rita.locator("tr.rv-differs")).to_have_count(0)  # now Ann and Bob agree on it
        expect(rita.locator(".rv-reviews")).to_contain_text("rejected")
        expect(rita.locator(".rv-reviews blockquote")).to_have_text(COMMENT)
        shot(rita, "team-09-reviewer-sees-resubmission")
        rita.get_by_test_id("review-accept").click()
        expect(rita.locator(".flash-success")).to_contain_text(f"Annotation #{rejected_id} accepted")
        expect(rita.get_by_test_id("review-empty")).to_be_visible()

        # --- Max: the data manager and the dashboard -----------------------------------------------
        max_.goto(f"{base}/data")
        statuses = max_.get_by_test_id("dm-status")
        for row in range(3):
            expect(statuses.nth(row)).to_have_text("accepted")
        agreement = max_.get_by_test_id("dm-agreement")
        for row, value in enumerate(("100%", "100%", "0%")):
            expect(agreement.nth(row)).to_have_text(value)
        shot(max_, "team-10-data-manager")

        max_.goto(base)
        max_.get_by_test_id("open-dashboard").click()
        max_.wait_for_url(re.compile(r"/dashboard$"))
        # Acceptance: every verdict counts, so Ann's rejection stays counted after the fix.
        expect(max_.get_by_test_id("fig-acceptance")).to_have_text("86%")
        expect(max_.get_by_test_id("dash-figures").first).to_contain_text("6 of 7 review verdicts")
        assert _chart_rows(max_, "acceptance") == {ANN: "75%", BOB: "100%"}
        # Agreement per task 1 (Positive/Positive), 1 (Negative/Negative after the fix), 0 (Neutral/Negative).
        expect(max_.get_by_test_id("fig-agreement")).to_have_text("67%")
        expect(max_.get_by_test_id("dash-figures").first).to_contain_text("over 3 tasks with overlap")
        expected = _expected_agreement()
        expect(max_.get_by_test_id("fig-alpha")).to_have_text(expected["alpha"])
        kappa = max_.locator("section", has=max_.locator("#h-kappa"))
        expect(kappa.locator(".stat", has_text="Fleiss' kappa").locator(".num")).to_have_text(expected["fleiss"])
        pair = kappa.locator("tbody tr")
        expect(pair).to_have_count(1)
        expect(pair.locator("td")).to_have_text([ANN, BOB, "3", expected["cohen"]])
        expect(max_.get_by_test_id("dash-figures").first).to_contain_text("3 accepted · 2 unlabeled")
        shot(max_, "team-11-dashboard")
        console.assert_clean()
    except BaseException:
        print("\n".join(server.output[-150:]))  # the served instance's log, for the failure report
        raise
    finally:
        for context in contexts:
            context.close()
