"""Bulk assignment from the data manager (by selection and by filter, to members and teams, as annotator
or reviewer, and unassignment), its audit (one event per action), who may do it, tenant isolation, the
assignees column, and the workflow settings page and JSON API (both backends, through HTTP).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from conftest import add_member, api_token, grant_project, login, make_tenant, post_form
from workspace.audit.models import AuditEvent
from workspace.lib.timeutil import utcnow
from workspace.tenancy.context import TenantContext
from workspace.tenancy.permissions import CATALOGUE
from workspace.tenancy.services import create_team, set_team_membership
from workspace.workflow.models import Project, Task, TaskAssignment


@pytest.fixture
def world(runtime):  # type: ignore[no-untyped-def]
    return make_tenant(runtime, "alpha")


def _project(runtime, world, texts, title="Assign"):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        project = Project(title=title, created_by_id=world.owner.user_id)
        db.add(project)
        db.flush()
        tasks = [Task(project_id=project.id, data={"text": t}, created_at=utcnow()) for t in texts]
        db.add_all(tasks)
        db.flush()
        return project.id, [t.id for t in tasks]


def _owner(world) -> TenantContext:  # type: ignore[no-untyped-def]
    return TenantContext(world.tenant_id, world.slug, world.slug, world.owner.user_id, world.owner.email, "",
                         world.owner.membership_id, "owner", permissions=frozenset(CATALOGUE))


def _team(runtime, world, name, people):  # type: ignore[no-untyped-def]
    """A team with members, through the tenancy services (they keep the authorization policy in step)."""
    with runtime.unit_of_work(world.tenant_id) as db:
        team = create_team(db, _owner(world), name)
        for person in people:
            set_team_membership(db, _owner(world), team.id, person.user_id, True)
        return team.id


def _rows(runtime, world, pid):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return sorted((a.task_id, a.user_id, a.role, a.team_id) for a in db.scalars(
            select(TaskAssignment).where(TaskAssignment.project_id == pid)))


def _events(runtime, world, action):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return [e.changes for e in db.scalars(select(AuditEvent).where(AuditEvent.action == action))]


@pytest.fixture
def setup(runtime, world):  # type: ignore[no-untyped-def]
    a1 = add_member(runtime, world, "a1@alpha.example", "annotator")
    a2 = add_member(runtime, world, "a2@alpha.example", "annotator")
    rev = add_member(runtime, world, "rev@alpha.example", "reviewer")
    pid, ids = _project(runtime, world, ["apple one", "banana", "apple two", "cherry", "apple three"])
    team = _team(runtime, world, "Labelers", [a1, a2])
    grant_project(runtime, world, pid, "annotator", team_id=team)
    return {"a1": a1, "a2": a2, "rev": rev, "pid": pid, "ids": ids, "team": team}


def test_assign_selected_tasks_to_a_team_expands_to_members_with_one_audit_event(client, runtime, world, setup):
    pid, ids, team = setup["pid"], setup["ids"], setup["team"]
    login(client, world.owner)
    path = f"/t/alpha/projects/{pid}/data/assign"
    chosen = [str(i) for i in ids[:3]]
    dialog = post_form(client, path, {"ids": chosen}, headers={"HX-Request": "true"})
    assert dialog.status_code == 200 and "Assign 3 tasks" in dialog.text and "Labelers</span> <span class=\"muted small\">2 members" in dialog.text
    assert "<html" not in dialog.text  # the dialog fragment only
    r = post_form(client, path, {"ids": chosen, "teams": [str(team)], "role": "annotator", "action": "assign",
                                 "confirm": "1"})
    assert r.status_code == 303
    a1, a2 = setup["a1"].user_id, setup["a2"].user_id
    assert _rows(runtime, world, pid) == sorted((t, u, "annotator", team) for t in ids[:3] for u in (a1, a2))
    (event,) = _events(runtime, world, "task.bulk_assigned")
    assert event["tasks"] == 3 and event["added"] == 6 and event["assignees"] == 2
    assert event["teams"] == [team] and event["users"] == sorted([a1, a2]) and event["role"] == "annotator"
    # again: nothing new, still one event per action
    post_form(client, path, {"ids": chosen, "teams": [str(team)], "role": "annotator", "confirm": "1"})
    events = _events(runtime, world, "task.bulk_assigned")
    assert len(events) == 2 and events[1]["added"] == 0
    # the data manager shows the assignees
    html = client.get(f"/t/alpha/projects/{pid}/data").text
    assert 'data-testid="dm-assignees"' in html and "a1@alpha.example" in html and "a2@alpha.example" in html
    assert 'data-testid="assign-selected"' in html


def test_assign_all_matching_the_filter_to_a_member_as_reviewer_then_unassign(client, runtime, world, setup):
    pid, ids, rev = setup["pid"], setup["ids"], setup["rev"]
    login(client, world.owner)
    path = f"/t/alpha/projects/{pid}/data/assign"
    dialog = post_form(client, path, {"all_matching": "1", "text": "apple"})
    assert dialog.status_code == 200 and "Assign 3 tasks" in dialog.text and "text = apple" in dialog.text
    r = post_form(client, path, {"all_matching": "1", "text": "apple", "users": [str(rev.user_id)],
                                 "role": "reviewer", "confirm": "1"})
    assert r.status_code == 303 and r.headers["location"].endswith("/data?text=apple")
    apples = [ids[0], ids[2], ids[4]]
    assert _rows(runtime, world, pid) == sorted((t, rev.user_id, "reviewer", None) for t in apples)
    (event,) = _events(runtime, world, "task.bulk_assigned")
    assert event["selection"] == {"all_matching": True, "text": "apple"} and event["added"] == 3
    # unassign one of them by selection
    r = post_form(client, path, {"ids": [str(ids[2])], "users": [str(rev.user_id)], "role": "reviewer",
                                 "action": "unassign", "confirm": "1"})
    assert r.status_code == 303
    assert _rows(runtime, world, pid) == sorted((t, rev.user_id, "reviewer", None) for t in (ids[0], ids[4]))
    (removed,) = _events(runtime, world, "task.bulk_unassigned")
    assert removed["removed"] == 1 and removed["tasks"] == 1


def test_unassign_a_team_removes_its_members(client, runtime, world, setup):
    pid, ids, team = setup["pid"], setup["ids"], setup["team"]
    login(client, world.owner)
    path = f"/t/alpha/projects/{pid}/data/assign"
    post_form(client, path, {"all_matching": "1", "teams": [str(team)], "confirm": "1"})
    assert len(_rows(runtime, world, pid)) == 10
    post_form(client, path, {"all_matching": "1", "text": "apple", "teams": [str(team)], "action": "unassign",
                             "confirm": "1"})
    assert sorted({t for t, *_ in _rows(runtime, world, pid)}) == [ids[1], ids[3]]


def test_bad_choices_get_a_clear_message_and_change_nothing(client, runtime, world, setup):
    pid, ids = setup["pid"], setup["ids"]
    stranger = add_member(runtime, world, "nogrant@alpha.example", "annotator")
    login(client, world.owner)
    path = f"/t/alpha/projects/{pid}/data/assign"
    r = post_form(client, path, {"ids": [str(ids[0])], "confirm": "1"})
    assert r.status_code == 422 and "Choose at least one member or team" in r.text
    r = post_form(client, path, {"ids": [str(ids[0])], "users": [str(stranger.user_id)], "confirm": "1"})
    assert r.status_code == 422 and "nogrant@alpha.example cannot open this project" in r.text
    r = post_form(client, path, {"ids": [str(ids[0])], "users": [str(setup["a1"].user_id)], "role": "owner",
                                 "confirm": "1"})
    assert r.status_code == 422 and "Assign as one of" in r.text
    assert _rows(runtime, world, pid) == []
    assert _events(runtime, world, "task.bulk_assigned") == []


def test_annotator_cannot_assign_and_sees_only_own_assignments(client, make_client, runtime, world, setup):
    pid, ids, a1, a2 = setup["pid"], setup["ids"], setup["a1"], setup["a2"]
    login(client, world.owner)
    path = f"/t/alpha/projects/{pid}/data/assign"
    post_form(client, path, {"ids": [str(ids[1])], "users": [str(a1.user_id), str(a2.user_id)], "confirm": "1"})
    annotator = make_client()
    login(annotator, a1)
    r = post_form(annotator, path, {"ids": [str(ids[0])], "users": [str(a1.user_id)], "confirm": "1"})
    assert r.status_code == 403
    assert len(_rows(runtime, world, pid)) == 2
    html = annotator.get(f"/t/alpha/projects/{pid}/data").text
    assert "banana" in html and "apple one" not in html  # their assigned task is theirs to see
    assert "a1@alpha.example" in html and "a2@alpha.example" not in html  # not who else has it
    assert 'data-testid="assign-selected"' not in html
    # with blind overlap (the default) an annotator does not see how many annotated a task
    assert ">Annotations" not in html


def test_tenant_isolation(client, runtime, world, setup):
    pid, ids = setup["pid"], setup["ids"]
    other = make_tenant(runtime, "beta")
    other_pid, other_ids = _project(runtime, other, ["theirs"])
    outsider = add_member(runtime, other, "out@beta.example", "manager")
    other_team = _team(runtime, other, "Their team", [outsider])
    login(client, world.owner)
    # another tenant's task id in the selection: 404, nothing assigned
    r = post_form(client, f"/t/alpha/projects/{pid}/data/assign",
                  {"ids": [str(ids[0]), str(other_ids[0])], "users": [str(setup["a1"].user_id)], "confirm": "1"})
    assert r.status_code == 404
    # another tenant's team or member
    r = post_form(client, f"/t/alpha/projects/{pid}/data/assign",
                  {"ids": [str(ids[0])], "teams": [str(other_team)], "confirm": "1"})
    assert r.status_code == 404
    r = post_form(client, f"/t/alpha/projects/{pid}/data/assign",
                  {"ids": [str(ids[0])], "users": [str(outsider.user_id)], "confirm": "1"})
    assert r.status_code == 422 and "Only active members" in r.text
    # another tenant's project
    r = post_form(client, f"/t/alpha/projects/{other_pid}/data/assign", {"ids": [str(other_ids[0])]})
    assert r.status_code == 404
    assert _rows(runtime, world, pid) == [] and _rows(runtime, other, other_pid) == []


def test_workflow_settings_page_validates_each_field_and_saves_audited(client, runtime, world, setup):
    pid = setup["pid"]
    login(client, world.owner)
    path = f"/t/alpha/projects/{pid}/settings/workflow"
    page = client.get(path)
    assert page.status_code == 200 and "Annotations per task" in page.text and 'name="reservation_minutes"' in page.text
    bad = post_form(client, path, {"overlap": "0", "review_share": "abc", "distribution": "auto", "order": "id"})
    assert bad.status_code == 422
    assert 'data-testid="error-overlap"' in bad.text and "Annotations per task must be from 1 to 50" in bad.text
    assert 'data-testid="error-review_share"' in bad.text and "whole number" in bad.text
    assert 'value="abc"' in bad.text  # what was typed stays in the field
    form = {"overlap": "2", "overlap_share": "100", "distribution": "manual", "reservation_minutes": "45",
            "skipped": "back", "blind": ["0", "1"], "review": "all", "review_share": "100",
            "rejected_returns": "0", "order": "random", "annotator_cap": ""}
    r = post_form(client, path, form)
    assert r.status_code == 303
    with runtime.unit_of_work(world.tenant_id) as db:
        stored = db.scalar(select(Project.workflow).where(Project.id == pid))
        changes = [e.changes for e in db.scalars(select(AuditEvent).where(
            AuditEvent.action == "project.updated", AuditEvent.object_id == str(pid)))]
    assert stored == {"overlap": 2, "overlap_share": 100, "distribution": "manual", "reservation_minutes": 45,
                      "skipped": "back", "blind": True, "review": "all", "review_share": 100,
                      "rejected_returns": False, "order": "random", "annotator_cap": None}
    assert any("workflow" in c for c in changes)
    assert client.get(f"/t/alpha/projects/{pid}").text.count('data-testid="open-workflow"') == 1


def test_workflow_settings_permissions_and_api(client, make_client, runtime, world, setup):
    pid, a1 = setup["pid"], setup["a1"]
    annotator = make_client()
    login(annotator, a1)
    assert annotator.get(f"/t/alpha/projects/{pid}/settings/workflow").status_code == 403
    assert post_form(annotator, f"/t/alpha/projects/{pid}/settings/workflow", {"overlap": "3"}).status_code == 403
    owner_key = api_token(runtime, world, world.owner)
    headers = {"Authorization": f"Token {owner_key}"}
    r = client.get(f"/api/projects/{pid}/workflow/", headers=headers)
    assert r.status_code == 200 and r.json()["overlap"] == 1 and r.json()["blind"] is True
    r = client.patch(f"/api/projects/{pid}/workflow/", json={"overlap": 3, "review": "share", "review_share": 20},
                     headers=headers)
    assert r.status_code == 200 and r.json()["overlap"] == 3 and r.json()["review_share"] == 20
    r = client.patch(f"/api/projects/{pid}/workflow/", json={"overlap": 99, "colour": "blue"}, headers=headers)
    assert r.status_code == 400 and set(r.json()["errors"]) == {"overlap", "colour"}
    ann_headers = {"Authorization": f"Token {api_token(runtime, world, a1)}"}
    assert client.patch(f"/api/projects/{pid}/workflow/", json={"overlap": 2}, headers=ann_headers).status_code == 403
    other = make_tenant(runtime, "beta")
    other_key = api_token(runtime, other, other.owner)
    assert client.get(f"/api/projects/{pid}/workflow/", headers={"Authorization": f"Token {other_key}"}).status_code == 404
    with runtime.unit_of_work(world.tenant_id) as db:
        assert db.scalar(select(Project.workflow).where(Project.id == pid))["overlap"] == 3
