"""The review stream (both backends): the reviewer's queue, accept, reject (comment required), fix &
accept, rejected work back to its annotator with the comment, own work excluded, permissions, tenant
isolation, and optimistic concurrency — two reviewers acting at once: one wins, the other gets the
conflict message, both attempts are in the audit log.
"""

from __future__ import annotations

import json
import re
import threading

import pytest
from sqlalchemy import select

from conftest import add_member, grant_project, login, make_tenant, post_form
from workspace.audit.chain import Actor
from workspace.audit.models import AuditEvent
from workspace.lib.timeutil import utcnow
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Conflict
from workspace.workflow import reviews
from workspace.workflow.models import Annotation, Project, Task
from workspace.workflow.review_models import AnnotationRevision, Review

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
    <Choice value="Neutral"/>
  </Choices>
</View>"""


def choice(value: str, region_id: str = "c1") -> list[dict]:  # type: ignore[type-arg]
    return [{"id": region_id, "from_name": "sentiment", "to_name": "text", "type": "choices",
             "value": {"choices": [value]}}]


class Team:
    def __init__(self, runtime, world, workflow=None):  # type: ignore[no-untyped-def]
        from workspace.workflow import services as svc

        with runtime.unit_of_work(world.tenant_id) as db:
            ctx = TenantContext(world.tenant_id, world.slug, world.slug, world.owner.user_id, world.owner.email, "",
                                world.owner.membership_id, "owner")
            project = svc.create_project(db, ctx, "Reviewed", label_config=CONFIG)
            if workflow:
                db.get(Project, project.id).workflow = workflow
            tasks = []
            for text in ("good day", "bad day", "so-so day"):
                task = Task(project_id=project.id, data={"text": text}, created_at=utcnow())
                db.add(task)
                db.flush()
                tasks.append(task.id)
        self.project_id, self.tasks = project.id, tasks
        self.world = world
        self.ann1 = add_member(runtime, world, f"ann1@{world.slug}.example", "annotator")
        self.ann2 = add_member(runtime, world, f"ann2@{world.slug}.example", "annotator")
        self.rev1 = add_member(runtime, world, f"rev1@{world.slug}.example", "reviewer")
        self.rev2 = add_member(runtime, world, f"rev2@{world.slug}.example", "reviewer")
        for person in (self.ann1, self.ann2):
            grant_project(runtime, world, project.id, person=person)

    def url(self, suffix: str = "") -> str:
        return f"/t/{self.world.slug}/projects/{self.project_id}{suffix}"


@pytest.fixture
def world(runtime):  # type: ignore[no-untyped-def]
    return make_tenant(runtime, "alpha")


def _submit(client, team, task_id, result, version=None):  # type: ignore[no-untyped-def]
    data = {"task": str(task_id), "result": json.dumps(result), "lead_time": "1", "then": "stay"}
    if version is not None:
        data["version"] = str(version)
    return post_form(client, team.url("/label"), data)


def _annotation(runtime, world, task_id, user_id) -> Annotation:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        row = db.scalars(select(Annotation).where(Annotation.task_id == task_id, Annotation.completed_by_id == user_id,
                                                  Annotation.status != "draft")).one()
        db.expunge(row)
        return row


def _events(runtime, world, prefix: str = "") -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        rows = list(db.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
        db.expunge_all()
    return [e for e in rows if e.action.startswith(prefix)]


def _revisions(runtime, world, annotation_id) -> list[AnnotationRevision]:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        rows = list(db.scalars(select(AnnotationRevision).where(AnnotationRevision.annotation_id == annotation_id)
                               .order_by(AnnotationRevision.number)))
        db.expunge_all()
        return rows


def _labeled(runtime, world, make_client):  # type: ignore[no-untyped-def]
    """ann1 labels every task, ann2 the first one too (overlap on task 0)."""
    team = Team(runtime, world)
    c1, c2 = make_client(), make_client()
    login(c1, team.ann1)
    login(c2, team.ann2)
    for task_id, value in zip(team.tasks, ("Positive", "Negative", "Neutral"), strict=True):
        assert _submit(c1, team, task_id, choice(value)).status_code == 303
    assert _submit(c2, team, team.tasks[0], choice("Negative")).status_code == 303
    return team, c1, c2


def _version_on_page(page: str) -> int:
    return int(re.search(r'name="version" value="(\d+)"', page).group(1))  # type: ignore[union-attr]


# --- the queue ---------------------------------------------------------------------------------------


def test_queue_lists_submitted_work_of_others_oldest_first(runtime, world, make_client):  # type: ignore[no-untyped-def]
    team, c1, _c2 = _labeled(runtime, world, make_client)
    reviewer = make_client()
    login(reviewer, team.rev1)
    page = reviewer.get(team.url("/review"))
    assert page.status_code == 200
    assert "4 annotations waiting for your review" in page.text
    first = _annotation(runtime, world, team.tasks[0], team.ann1.user_id)
    other = _annotation(runtime, world, team.tasks[0], team.ann2.user_id)
    # The first item: ann1's annotation of task 0, with ann2's result beside it and the difference highlighted.
    assert f"annotation #{first.id}" in page.text and 'data-testid="review-other"' in page.text
    assert page.text.count("rv-differs") == 2 and "differs</span>" in page.text
    assert f'name="version" value="{first.version}"' in page.text
    # Any queued item can be opened; the project page links the stream for reviewers.
    assert f"annotation #{other.id}" in reviewer.get(team.url(f"/review?annotation={other.id}")).text
    assert 'data-testid="open-review"' in reviewer.get(team.url()).text
    # Drafts are not in the queue, and to reviewers they do not exist.
    assert post_form(c1, team.url("/label/draft"), {"task": str(team.tasks[1]), "result": "[]"},
                     headers={"Accept": "application/json"}).status_code == 200
    with runtime.unit_of_work(world.tenant_id) as db:
        draft_id = db.scalars(select(Annotation.id).where(Annotation.status == "draft")).one()
    assert reviewer.get(team.url(f"/review?annotation={draft_id}")).status_code == 404
    assert post_form(reviewer, team.url(f"/review/{draft_id}/accept"), {"version": "1"}).status_code == 404
    with runtime.unit_of_work(world.tenant_id) as db:
        queued = [a.id for a in reviews.queue(db, db.get(Project, team.project_id), team.rev1.user_id)]
    assert len(queued) == 4 and queued[0] == first.id


def test_review_settings_none_and_share(runtime, world, make_client):  # type: ignore[no-untyped-def]
    from workspace.workflow.settings import workflow_settings

    team, _c1, _c2 = _labeled(runtime, world, make_client)
    with runtime.unit_of_work(world.tenant_id) as db:
        project = db.get(Project, team.project_id)
        ids = sorted(db.scalars(select(Annotation.id).where(Annotation.project_id == project.id)))
        project.workflow = {"review": "none"}
        db.flush()
        assert reviews.queue(db, project, team.rev1.user_id) == []
        project.workflow = {"review": "share", "review_share": 50}
        db.flush()
        expected = [i for i in ids if workflow_settings(project.workflow).reviewed(i)]
        assert sorted(a.id for a in reviews.queue(db, project, team.rev1.user_id)) == expected
    reviewer = make_client()
    login(reviewer, team.rev1)
    with runtime.unit_of_work(world.tenant_id) as db:
        db.get(Project, team.project_id).workflow = {"review": "none"}
    assert "Review is off" in reviewer.get(team.url("/review")).text


def test_own_work_is_never_in_the_queue_and_cannot_be_reviewed(runtime, world, make_client):  # type: ignore[no-untyped-def]
    team = Team(runtime, world)
    reviewer = make_client()
    login(reviewer, team.rev1)
    assert _submit(reviewer, team, team.tasks[0], choice("Positive")).status_code == 303  # reviewers label too
    mine = _annotation(runtime, world, team.tasks[0], team.rev1.user_id)
    page = reviewer.get(team.url("/review"))
    assert "0 annotations waiting" in page.text and 'data-testid="review-empty"' in page.text
    assert 'data-testid="review-own"' in reviewer.get(team.url(f"/review?annotation={mine.id}")).text
    answer = post_form(reviewer, team.url(f"/review/{mine.id}/accept"), {"version": str(mine.version)})
    assert answer.status_code == 403 and "your own work" in answer.text
    assert reviewer.get(team.url(f"/review/{mine.id}/fix")).status_code == 403
    assert _annotation(runtime, world, team.tasks[0], team.rev1.user_id).status == "submitted"
    other = make_client()
    login(other, team.rev2)
    assert f"annotation #{mine.id}" in other.get(team.url("/review")).text


def test_reviewer_assignments_restrict_the_queue(runtime, world, make_client):  # type: ignore[no-untyped-def]
    from workspace.workflow import models as wm

    if not hasattr(wm, "TaskAssignment"):
        pytest.skip("task assignment is not there yet")
    team, _c1, _c2 = _labeled(runtime, world, make_client)
    with runtime.unit_of_work(world.tenant_id) as db:
        db.add(wm.TaskAssignment(project_id=team.project_id, task_id=team.tasks[1], user_id=team.rev1.user_id,
                                 role=wm.REVIEWER, created_at=utcnow()))
        db.flush()
        project = db.get(Project, team.project_id)
        assert [a.task_id for a in reviews.queue(db, project, team.rev1.user_id)] == [team.tasks[1]]
        assert reviews.queue(db, project, team.rev2.user_id) == []


# --- verdicts ----------------------------------------------------------------------------------------


def test_accept(runtime, world, make_client):  # type: ignore[no-untyped-def]
    team, _c1, _c2 = _labeled(runtime, world, make_client)
    reviewer = make_client()
    login(reviewer, team.rev1)
    target = _annotation(runtime, world, team.tasks[1], team.ann1.user_id)
    page = reviewer.get(team.url(f"/review?annotation={target.id}")).text
    answer = post_form(reviewer, team.url(f"/review/{target.id}/accept"), {"version": str(_version_on_page(page))})
    assert answer.status_code == 303 and answer.headers["location"] == team.url("/review")
    after = _annotation(runtime, world, team.tasks[1], team.ann1.user_id)
    assert after.status == "accepted" and after.version == target.version + 1 and after.result == target.result
    assert [r.action for r in _revisions(runtime, world, target.id)] == ["submitted", "accepted"]
    assert [e.action for e in _events(runtime, world, "review.")] == ["review.accepted"]
    assert "Annotation #%d accepted." % target.id in reviewer.get(team.url("/review")).text
    with runtime.unit_of_work(world.tenant_id) as db:
        review = db.scalars(select(Review)).one()
        assert (review.verdict, review.reviewer_id, review.annotation_version) == ("accepted", team.rev1.user_id, after.version)
    # The data manager shows each annotator's status.
    assert 'data-testid="dm-status">accepted</span>' in reviewer.get(team.url("/data")).text
    # Accepted is final: not in the queue, not accepted twice, not changed by its annotator.
    assert f"#{target.id}</a>" not in reviewer.get(team.url("/review")).text
    again = post_form(reviewer, team.url(f"/review/{target.id}/accept"), {"version": str(after.version)})
    assert again.status_code == 409 and "accepted by a reviewer and is final" in again.text


def test_reject_requires_a_comment_then_the_annotator_sees_it_and_resubmits(runtime, world, make_client):  # type: ignore[no-untyped-def]
    team, c1, _c2 = _labeled(runtime, world, make_client)
    reviewer = make_client()
    login(reviewer, team.rev1)
    target = _annotation(runtime, world, team.tasks[1], team.ann1.user_id)
    empty = post_form(reviewer, team.url(f"/review/{target.id}/reject"), {"version": str(target.version), "comment": "  "})
    assert empty.status_code == 422 and "Write a comment when rejecting" in empty.text
    assert _annotation(runtime, world, team.tasks[1], team.ann1.user_id).status == "submitted"
    comment = "The day was <b>bad</b>: choose Negative."
    answer = post_form(reviewer, team.url(f"/review/{target.id}/reject"), {"version": str(target.version), "comment": comment})
    assert answer.status_code == 303
    rejected = _annotation(runtime, world, team.tasks[1], team.ann1.user_id)
    assert rejected.status == "rejected"
    # The annotator opens the task: the comment is there, escaped; the button says Resubmit.
    page = c1.get(team.url(f"/label?task={team.tasks[1]}")).text
    assert 'data-testid="label-rejection"' in page and "The day was &lt;b&gt;bad&lt;/b&gt;: choose Negative." in page
    assert "Rejected by Rev1" in page and "Resubmit</button>" in page and 'data-testid="label-skip"' not in page
    assert f'name="version" value="{rejected.version}"' in page
    # Not in the reviewer's queue while rejected; back in it once resubmitted.
    assert f"#{target.id}</a>" not in reviewer.get(team.url("/review")).text
    assert _submit(c1, team, team.tasks[1], choice("Negative"), version=rejected.version).status_code == 303
    back = _annotation(runtime, world, team.tasks[1], team.ann1.user_id)
    assert back.status == "submitted" and back.result == choice("Negative") and back.id == target.id
    assert [r.action for r in _revisions(runtime, world, target.id)] == ["submitted", "rejected", "resubmitted"]
    with runtime.unit_of_work(world.tenant_id) as db:
        assert db.get(Task, team.tasks[1]).annotation_count == 1  # the same slot, counted once
    assert f"#{target.id}</a>" in reviewer.get(team.url("/review")).text
    assert 'data-testid="label-rejection"' not in c1.get(team.url(f"/label?task={team.tasks[1]}")).text
    assert [e.action for e in _events(runtime, world, "review.")] == ["review.rejected"]


def test_fix_and_accept_makes_a_revision(runtime, world, make_client):  # type: ignore[no-untyped-def]
    team, _c1, _c2 = _labeled(runtime, world, make_client)
    reviewer = make_client()
    login(reviewer, team.rev1)
    target = _annotation(runtime, world, team.tasks[2], team.ann1.user_id)
    page = reviewer.get(team.url(f"/review/{target.id}/fix"))
    assert page.status_code == 200 and 'data-testid="label-fixing"' in page.text and "Fix &amp; accept</button>" in page.text
    assert f'action="/t/alpha/projects/{team.project_id}/review/{target.id}/fix"' in page.text
    assert 'data-draft-url=""' in page.text  # no drafts while fixing someone's work
    data = json.loads(page.text.split('id="label-data">', 1)[1].split("</script>", 1)[0])
    assert data["restore"] == choice("Neutral")
    bad = post_form(reviewer, team.url(f"/review/{target.id}/fix"),
                    {"result": json.dumps(choice("Maybe")), "version": str(target.version)}, headers={"HX-Request": "true"})
    assert bad.status_code == 422 and "not an option" in bad.text
    answer = post_form(reviewer, team.url(f"/review/{target.id}/fix"),
                       {"result": json.dumps(choice("Positive")), "version": str(target.version), "task": str(team.tasks[2])},
                       headers={"HX-Request": "true"})
    assert answer.status_code == 204 and answer.headers["HX-Redirect"] == team.url("/review")
    fixed = _annotation(runtime, world, team.tasks[2], team.ann1.user_id)
    assert fixed.status == "accepted" and fixed.result == choice("Positive") and fixed.completed_by_id == team.ann1.user_id
    revs = _revisions(runtime, world, target.id)
    assert [(r.action, r.actor_id) for r in revs] == [("submitted", team.ann1.user_id), ("fixed", team.rev1.user_id)]
    assert revs[0].result == choice("Neutral") and revs[1].result == choice("Positive")
    assert [e.action for e in _events(runtime, world, "review.")] == ["review.fixed"]


def test_annotators_get_403(runtime, world, make_client):  # type: ignore[no-untyped-def]
    team, c1, _c2 = _labeled(runtime, world, make_client)
    target = _annotation(runtime, world, team.tasks[0], team.ann2.user_id)
    assert c1.get(team.url("/review")).status_code == 403
    assert post_form(c1, team.url(f"/review/{target.id}/accept"), {"version": "2"}).status_code == 403
    assert c1.get(team.url(f"/review/{target.id}/fix")).status_code == 403
    assert _annotation(runtime, world, team.tasks[0], team.ann2.user_id).status == "submitted"
    assert 'data-testid="open-review"' not in c1.get(team.url()).text


def test_another_tenants_annotation_is_404(runtime, world, make_client):  # type: ignore[no-untyped-def]
    team, _c1, _c2 = _labeled(runtime, world, make_client)
    bravo = make_tenant(runtime, "bravo")
    other_team = Team(runtime, bravo)
    c = make_client()
    login(c, other_team.ann1)
    assert _submit(c, other_team, other_team.tasks[0], choice("Positive")).status_code == 303
    foreign = _annotation(runtime, bravo, other_team.tasks[0], other_team.ann1.user_id)
    reviewer = make_client()
    login(reviewer, team.rev1)
    for path in (f"/review?annotation={foreign.id}", f"/review/{foreign.id}/fix", f"/annotations/{foreign.id}/history"):
        assert reviewer.get(team.url(path)).status_code == 404, path
    for action in ("accept", "reject"):
        answer = post_form(reviewer, team.url(f"/review/{foreign.id}/{action}"), {"version": "2", "comment": "x"})
        assert answer.status_code == 404
    assert _annotation(runtime, bravo, other_team.tasks[0], other_team.ann1.user_id).status == "submitted"


# --- concurrency -------------------------------------------------------------------------------------


def test_a_stale_verdict_gets_the_conflict_message_and_both_attempts_are_audited(runtime, world, make_client):  # type: ignore[no-untyped-def]
    team, _c1, _c2 = _labeled(runtime, world, make_client)
    target = _annotation(runtime, world, team.tasks[1], team.ann1.user_id)
    r1, r2 = make_client(), make_client()
    login(r1, team.rev1)
    login(r2, team.rev2)
    seen1 = _version_on_page(r1.get(team.url(f"/review?annotation={target.id}")).text)
    seen2 = _version_on_page(r2.get(team.url(f"/review?annotation={target.id}")).text)
    assert seen1 == seen2 == target.version
    assert post_form(r1, team.url(f"/review/{target.id}/accept"), {"version": str(seen1)}).status_code == 303
    lost = post_form(r2, team.url(f"/review/{target.id}/reject"), {"version": str(seen2), "comment": "No."})
    assert lost.status_code == 409
    assert re.search(r"Rev1 accepted this annotation at \d\d:\d\d UTC while you were reviewing it; reload to see it",
                     lost.text), lost.text[:2000]
    assert 'data-testid="review-unsaved-comment"' in lost.text and "<q>No.</q>" in lost.text  # nothing lost
    assert _annotation(runtime, world, team.tasks[1], team.ann1.user_id).status == "accepted"
    events = _events(runtime, world, "review.") + _events(runtime, world, "annotation.review_conflict")
    assert [e.action for e in events] == ["review.accepted", "annotation.review_conflict"]
    conflict = events[-1]
    assert conflict.actor_id == str(team.rev2.user_id) and conflict.object_id == str(target.id)
    assert conflict.changes["attempted"] == "reject" and conflict.changes["seen_version"] == seen2
    with runtime.unit_of_work(world.tenant_id) as db:
        assert len(list(db.scalars(select(Review)))) == 1


def test_two_reviewers_racing_exactly_one_wins(runtime, world, make_client):  # type: ignore[no-untyped-def]
    """Two sessions in two threads accept/reject the same annotation at the same moment (each with the
    version it saw), the way the routes do: exactly one succeeds; the other's transaction rolls back
    and its attempt is written to the audit log in a transaction of its own."""
    team, _c1, _c2 = _labeled(runtime, world, make_client)
    target = _annotation(runtime, world, team.tasks[0], team.ann1.user_id)
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def review(person, action):  # type: ignore[no-untyped-def]
        ctx = TenantContext(world.tenant_id, world.slug, world.slug, person.user_id, person.email, "",
                            person.membership_id, "reviewer",
                            permissions=frozenset({"project:read", "project:annotate", "project:review"}))
        actor = Actor(type="user", id=str(person.user_id), label=person.email)
        barrier.wait()
        try:
            with runtime.unit_of_work(world.tenant_id, actor) as db:
                if action == "accept":
                    reviews.accept(db, ctx, team.project_id, target.id, target.version)
                else:
                    reviews.reject(db, ctx, team.project_id, target.id, target.version, "Not right.")
            outcomes[action] = "ok"
        except Conflict as exc:
            reviews.record_conflict(runtime.unit_of_work, ctx, actor, target.id, action, exc)
            outcomes[action] = exc.message

    threads = [threading.Thread(target=review, args=(team.rev1, "accept")),
               threading.Thread(target=review, args=(team.rev2, "reject"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["accept", "reject"]
    winners = [a for a, o in outcomes.items() if o == "ok"]
    assert len(winners) == 1, outcomes
    loser = "reject" if winners == ["accept"] else "accept"
    winner_name = "Rev1" if winners == ["accept"] else "Rev2"
    assert re.fullmatch(rf"{winner_name} (accepted|rejected) this annotation at \d\d:\d\d UTC while you were reviewing "
                        r"it; reload to see it\. Nothing of yours was saved\.", outcomes[loser]), outcomes[loser]
    after = _annotation(runtime, world, team.tasks[0], team.ann1.user_id)
    assert after.status == ("accepted" if winners == ["accept"] else "rejected") and after.version == target.version + 1
    assert [r.action for r in _revisions(runtime, world, target.id)] == ["submitted", after.status]
    actions = [e.action for e in _events(runtime, world) if e.action.startswith(("review.", "annotation.review_conflict"))]
    assert sorted(actions) == sorted([f"review.{after.status}", "annotation.review_conflict"])
    conflict = _events(runtime, world, "annotation.review_conflict")[0]
    assert conflict.changes["attempted"] == loser
