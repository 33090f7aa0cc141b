"""Dashboards, stored agreement and ground truth on a small seeded project: every figure equals the
hand-computed value; annotators see only their own numbers; other tenants see nothing."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from conftest import add_member, grant_project, login, make_tenant, post_form
from workspace.audit.models import AuditEvent
from workspace.lib.timeutil import utcnow
from workspace.tenancy.context import TenantContext
from workspace.tenancy.permissions import CATALOGUE
from workspace.workflow import dashboards as dash
from workspace.workflow import quality
from workspace.workflow.annotations import submit_annotation
from workspace.workflow.models import Annotation, Project, Task
from workspace.workflow.review_models import Review


def _choice(value: str) -> list[dict]:
    return [{"id": "c1", "from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [value]}}]


def _owner_ctx(world) -> TenantContext:  # type: ignore[no-untyped-def]
    return TenantContext(world.tenant_id, world.slug, world.slug, world.owner.user_id, world.owner.email, "",
                         world.owner.membership_id, "owner", permissions=frozenset(CATALOGUE))


@pytest.fixture
def seeded(runtime):  # type: ignore[no-untyped-def]
    """Project "Reviews", overlap 2, five tasks:

    T1: ann1 Positive (accepted, 10 s), ann2 Positive (accepted, 5 s)          -> accepted, agreement 1
    T2: ann1 Positive (submitted, 20 s), ann2 Negative (submitted, 15 s)       -> submitted, agreement 0
    T3: ann1 Negative (submitted, 60 s)                                        -> in progress
    T4: ann2 Positive (rejected, 30 s), ann3 Positive (submitted, 40 s)        -> rejected, agreement 1
    T5: nothing                                                                -> unlabeled
    Reviews: ann1 accepted T1, rejected T3; ann2 accepted T1, fixed T2, rejected T4.
    Ground truth: ann1's T1 and ann1's T2 -> ann2 scores 1 and 0 against them.
    ann1's annotations are dated yesterday, the others today.
    """
    world = make_tenant(runtime, "alpha")
    people = [add_member(runtime, world, f"ann{n}@alpha.example", "annotator") for n in (1, 2, 3)]
    now = utcnow()
    with runtime.unit_of_work(world.tenant_id) as db:
        project = Project(title="Reviews", created_by_id=world.owner.user_id, workflow={"overlap": 2})
        db.add(project)
        db.flush()
        tasks = []
        for n in range(5):
            task = Task(project_id=project.id, data={"text": f"review {n + 1}"}, created_at=now)
            db.add(task)
            db.flush()
            tasks.append(task)
        spec = [  # (task index, person index, choice, status, lead time)
            (0, 0, "Positive", "accepted", 10.0), (0, 1, "Positive", "accepted", 5.0),
            (1, 0, "Positive", "submitted", 20.0), (1, 1, "Negative", "submitted", 15.0),
            (2, 0, "Negative", "submitted", 60.0),
            (3, 1, "Positive", "rejected", 30.0), (3, 2, "Positive", "submitted", 40.0),
        ]
        made: dict[tuple[int, int], Annotation] = {}
        for t, p, choice, status, lead in spec:
            a = Annotation(project_id=project.id, task_id=tasks[t].id, result=_choice(choice), status=status,
                           completed_by_id=people[p].user_id, lead_time=lead,
                           created_at=now - timedelta(days=1) if p == 0 else now)
            db.add(a)
            tasks[t].annotation_count += 1
            db.flush()
            made[(t, p)] = a
        for (t, p), verdict in [((0, 0), "accepted"), ((2, 0), "rejected"), ((0, 1), "accepted"),
                                ((1, 1), "fixed"), ((3, 1), "rejected")]:
            a = made[(t, p)]
            db.add(Review(project_id=project.id, task_id=a.task_id, annotation_id=a.id,
                          reviewer_id=world.owner.user_id, verdict=verdict, comment="", annotation_version=1))
        db.flush()
        ctx = _owner_ctx(world)
        quality.refresh_project(db, ctx, project.id)
        quality.mark_ground_truth(db, ctx, project.id, made[(0, 0)].id)
        quality.mark_ground_truth(db, ctx, project.id, made[(1, 0)].id)
        ids = {"project": project.id, "tasks": [t.id for t in tasks],
               "annotations": {k: a.id for k, a in made.items()}}
    for person in people:
        grant_project(runtime, world, ids["project"], "annotator", person=person)
    return world, people, ids


def test_stored_agreement_and_ground_truth_scores(runtime, seeded):  # type: ignore[no-untyped-def]
    world, people, ids = seeded
    with runtime.unit_of_work(world.tenant_id) as db:
        agreement = dict(db.execute(select(Task.id, Task.agreement).where(Task.project_id == ids["project"])).all())
        assert [agreement[t] for t in ids["tasks"]] == [1.0, 0.0, None, 1.0, None]
        rows = {a.id: a for a in db.scalars(select(Annotation))}
        a = ids["annotations"]
        assert rows[a[(0, 0)]].ground_truth and rows[a[(0, 0)]].gt_score is None
        assert rows[a[(0, 1)]].gt_score == 1.0 and rows[a[(1, 1)]].gt_score == 0.0
        assert rows[a[(3, 2)]].gt_score is None  # its task has no ground truth


def test_figures_equal_hand_computed_values(runtime, seeded):  # type: ignore[no-untyped-def]
    world, (ann1, ann2, ann3), ids = seeded
    with runtime.unit_of_work(world.tenant_id) as db:
        project = db.get(Project, ids["project"])
        assert dash.progress(db, project) == {"unlabeled": 1, "in_progress": 1, "submitted": 1, "accepted": 1,
                                              "rejected": 1}
        axis, per_day = dash.throughput(db, project.id)
        assert len(axis) == dash.THROUGHPUT_DAYS and axis[-1] == utcnow().date()
        assert per_day[ann1.user_id][-2:] == [3, 0]  # yesterday, today
        assert per_day[ann2.user_id][-2:] == [0, 3] and per_day[ann3.user_id][-1] == 1
        overall, people = dash.lead_times(db, project.id)
        assert overall == 20.0  # 5 10 15 [20] 30 40 60
        assert {p.user_id: p.value for p in people} == {ann1.user_id: 20.0, ann2.user_id: 15.0, ann3.user_id: 40.0}
        accept = {p.user_id: (p.value, p.count) for p in dash.acceptance(db, project.id)}
        assert accept == {ann1.user_id: (0.5, 2), ann2.user_id: (pytest.approx(2 / 3), 3)}
        hist = dash.agreement_histogram(db, project.id)
        assert [c for _lo, _hi, c in hist.bins] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 2]
        assert hist.tasks == 3 and hist.mean == pytest.approx(2 / 3)
        assert {p.user_id: (p.value, p.count) for p in dash.gt_accuracy(db, project.id)} == {ann2.user_id: (0.5, 2)}
        [summary] = dash.choices_agreement(db, project)
        assert summary.control == "label" and summary.items == 3 and summary.raters == 3
        # ann1 vs ann2 share T1 (P,P) and T2 (P,N); alpha over units (P,P), (P,N), (P,P) -> 1 - 5*1/(6... see below)
        # coincidences: P-P 4, P-N 1, N-P 1; n_P = 5, n_N = 1, n = 6; alpha = 1 - (n-1) * 2 / (n^2 - 26) = 0
        assert summary.alpha == pytest.approx(0.0)
        rows = dash.tenant_overview(db, [project])
        assert (rows[0].tasks, rows[0].labeled, rows[0].annotations, rows[0].accepted, rows[0].rejected) == (5, 4, 7, 3, 2)
        assert rows[0].agreement == pytest.approx(2 / 3)


def test_own_numbers_only_for_one_annotator(runtime, seeded):  # type: ignore[no-untyped-def]
    world, (ann1, ann2, _ann3), ids = seeded
    with runtime.unit_of_work(world.tenant_id) as db:
        _axis, per_day = dash.throughput(db, ids["project"], user_id=ann2.user_id)
        assert set(per_day) == {ann2.user_id}
        overall, people = dash.lead_times(db, ids["project"], user_id=ann2.user_id)
        assert overall == 15.0 and [p.user_id for p in people] == [ann2.user_id]
        assert [p.user_id for p in dash.acceptance(db, ids["project"], user_id=ann1.user_id)] == [ann1.user_id]


def _number(html: str, testid: str) -> str:
    match = re.search(rf'data-testid="{testid}">([^<]*)<', html)
    assert match, testid
    return match.group(1).strip()


def test_project_dashboard_page_for_a_manager(client, runtime, seeded):  # type: ignore[no-untyped-def]
    world, _people, ids = seeded
    login(client, world.owner)
    r = client.get(f"/t/alpha/projects/{ids['project']}/dashboard")
    assert r.status_code == 200
    html = r.text
    assert _number(html, "fig-median") == "20 s"
    assert _number(html, "fig-acceptance") == "60%"  # 3 accepting verdicts of 5
    assert _number(html, "fig-agreement") == "67%"
    assert _number(html, "fig-throughput") == "7"
    for chart in ("progress", "throughput", "lead-time", "acceptance", "agreement", "accuracy"):
        assert f'data-testid="chart-{chart}"' in html
    assert "<title" in html and "Unlabeled 1" in html  # the stacked bar's description
    assert "ann1@alpha.example" in html and "ann2@alpha.example" in html
    assert "Krippendorff" in html


def test_annotator_sees_only_their_own_numbers(make_client, runtime, seeded):  # type: ignore[no-untyped-def]
    world, (ann1, _ann2, _ann3), ids = seeded
    browser = make_client()
    login(browser, ann1)
    r = browser.get(f"/t/alpha/projects/{ids['project']}/dashboard")
    assert r.status_code == 200
    html = r.text
    assert "Your numbers" in html
    assert _number(html, "fig-median") == "20 s"  # ann1: 10, [20], 60
    assert _number(html, "fig-acceptance") == "50%"
    assert _number(html, "fig-throughput") == "3"
    assert "ann2@alpha.example" not in html and "ann3@alpha.example" not in html
    assert "ann1@alpha.example" not in html.split("</header>", 1)[1]  # shown as "You" in the charts
    assert 'data-testid="chart-progress"' not in html and 'data-testid="chart-agreement"' not in html
    assert "Krippendorff" not in html
    # the overview, a task's side-by-side view and ground truth marks are not theirs
    assert browser.get("/t/alpha/dashboard").status_code == 403
    assert browser.get(f"/t/alpha/projects/{ids['project']}/tasks/{ids['tasks'][0]}/agreement").status_code == 403
    r = post_form(browser, f"/t/alpha/projects/{ids['project']}/annotations/{ids['annotations'][(3, 2)]}/ground-truth",
                  {"value": "1"})
    assert r.status_code == 403
    # the data manager's agreement column compares everyone's work: not in their own view
    assert 'data-testid="dm-agreement"' not in browser.get(f"/t/alpha/projects/{ids['project']}/data").text


def test_annotator_outside_the_project_gets_404(make_client, runtime, seeded):  # type: ignore[no-untyped-def]
    world, _people, ids = seeded
    stranger = add_member(runtime, world, "stranger@alpha.example", "annotator")
    browser = make_client()
    login(browser, stranger)
    assert browser.get(f"/t/alpha/projects/{ids['project']}/dashboard").status_code == 404


def test_other_tenant_sees_nothing(make_client, runtime, seeded):  # type: ignore[no-untyped-def]
    _world, _people, ids = seeded
    other = make_tenant(runtime, "bravo")
    browser = make_client()
    login(browser, other.owner)
    assert browser.get(f"/t/bravo/projects/{ids['project']}/dashboard").status_code == 404
    assert browser.get(f"/t/alpha/projects/{ids['project']}/dashboard").status_code == 404
    r = browser.get("/t/bravo/dashboard")
    assert r.status_code == 200 and "Reviews" not in r.text and "No projects yet" in r.text


def test_tenant_overview(client, runtime, seeded):  # type: ignore[no-untyped-def]
    world, _people, ids = seeded
    login(client, world.owner)
    r = client.get("/t/alpha/dashboard")
    assert r.status_code == 200
    assert _number(r.text, "fig-labeled") == "4"
    assert "Reviews" in r.text and f"/t/alpha/projects/{ids['project']}/dashboard" in r.text
    assert 'data-testid="nav-dashboard"' in r.text


def test_task_view_ground_truth_mark_is_audited(client, runtime, seeded):  # type: ignore[no-untyped-def]
    world, (_ann1, _ann2, ann3), ids = seeded
    login(client, world.owner)
    task4, ann3_t4 = ids["tasks"][3], ids["annotations"][(3, 2)]
    r = client.get(f"/t/alpha/projects/{ids['project']}/tasks/{task4}/agreement")
    assert r.status_code == 200 and "ann3@alpha.example" in r.text and "100%" in r.text
    r = post_form(client, f"/t/alpha/projects/{ids['project']}/annotations/{ann3_t4}/ground-truth", {"value": "1"})
    assert r.status_code == 303
    with runtime.unit_of_work(world.tenant_id) as db:
        ann2_t4 = db.get(Annotation, ids["annotations"][(3, 1)])
        assert ann2_t4.gt_score == 1.0
        events = db.scalars(select(AuditEvent).where(AuditEvent.object_type == "annotation",
                                                     AuditEvent.object_id == str(ann3_t4))).all()
        assert any(e.changes.get("ground_truth") == [False, True] for e in events)
    # an annotation of another project of the same tenant answers 404 under this project
    with runtime.unit_of_work(world.tenant_id) as db:
        other = Project(title="Other")
        db.add(other)
        db.flush()
        other_id = other.id
    r = post_form(client, f"/t/alpha/projects/{other_id}/annotations/{ann3_t4}/ground-truth", {"value": "1"})
    assert r.status_code == 404


def test_data_manager_agreement_column_and_sort(client, runtime, seeded):  # type: ignore[no-untyped-def]
    world, _people, ids = seeded
    login(client, world.owner)
    html = client.get(f"/t/alpha/projects/{ids['project']}/data?sort=agreement").text
    listed = [int(x) for x in re.findall(r'name="ids" value="(\d+)"', html)]
    t = ids["tasks"]
    assert listed == [t[1], t[0], t[3]]  # only tasks with an agreement, lowest first, then by id
    assert re.findall(r'data-testid="dm-agreement">.*?>(\d+)%<', html) == ["0", "100", "100"]
    html = client.get(f"/t/alpha/projects/{ids['project']}/data?sort=-agreement&page_size=1").text
    assert [int(x) for x in re.findall(r'name="ids" value="(\d+)"', html)] == [t[3]]
    nxt = re.search(r'rel="next" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    html = client.get(nxt).text
    assert [int(x) for x in re.findall(r'name="ids" value="(\d+)"', html)] == [t[0]]


def test_submit_refreshes_the_task_agreement(runtime):  # type: ignore[no-untyped-def]
    world = make_tenant(runtime, "alpha")
    ann = [add_member(runtime, world, f"a{n}@alpha.example", "annotator") for n in (1, 2)]
    with runtime.unit_of_work(world.tenant_id) as db:
        project = Project(title="Live", workflow={"overlap": 2})
        db.add(project)
        db.flush()
        task = Task(project_id=project.id, data={"text": "great"}, created_at=utcnow())
        db.add(task)
        db.flush()
        pid, tid = project.id, task.id
    for person in ann:
        grant_project(runtime, world, pid, "annotator", person=person)

    def ctx_of(person):  # type: ignore[no-untyped-def]
        return TenantContext(world.tenant_id, "alpha", "alpha", person.user_id, person.email, "", person.membership_id,
                             "annotator", permissions=frozenset({"project:read", "project:annotate"}))

    for person, choice in zip(ann, ("Positive", "Negative"), strict=True):
        with runtime.unit_of_work(world.tenant_id) as db:
            submit_annotation(db, ctx_of(person), pid, tid, _choice(choice), 3.0)
    with runtime.unit_of_work(world.tenant_id) as db:
        assert db.get(Task, tid).agreement == 0.0
    with runtime.unit_of_work(world.tenant_id) as db:  # the second annotator changes their mind
        submit_annotation(db, ctx_of(ann[1]), pid, tid, _choice("Positive"), 2.0)
    with runtime.unit_of_work(world.tenant_id) as db:
        assert db.get(Task, tid).agreement == 1.0


def test_empty_project_dashboard_shows_empty_states(client, runtime):  # type: ignore[no-untyped-def]
    world = make_tenant(runtime, "alpha")
    with runtime.unit_of_work(world.tenant_id) as db:
        project = Project(title="Empty")
        db.add(project)
        db.flush()
        pid = project.id
    login(client, world.owner)
    r = client.get(f"/t/alpha/projects/{pid}/dashboard")
    assert r.status_code == 200
    assert r.text.count("No data yet") >= 5
    r = post_form(client, f"/t/alpha/projects/{pid}/agreement/refresh")
    assert r.status_code == 303
