"""Who sees which project (both backends): annotators see and label only the projects granted to them,
directly or through a team, and only their own tasks in the data manager; a project outside their
grants answers 404 on every page and API like a missing one. Reviewers and above see every project
and every task; the auditor reads. Grants and revocations hold on the next request.

Project routes are read from the app, so a new page or API under ``/projects/{project_id}`` joins
the matrix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
from conftest import Person, World, add_member, api_token, csrf_token, grant_project, login, make_tenant, post_form
from workspace.lib.timeutil import utcnow
from sqlalchemy import update
from workspace.workflow.models import Annotation, Project, Task

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text"><Choice value="Positive"/><Choice value="Negative"/></Choices>
  <TextArea name="note" toName="text"/>
</View>"""
MISSING = 987654


@dataclass
class Scene:
    world: World
    ann: Person
    other: Person
    granted: int  # project "Granted project": tasks mine / theirs / free
    hidden: int  # project "Hidden project"
    mine: int
    theirs: int
    free: int


def _note(text: str) -> list[dict]:  # type: ignore[type-arg]
    return [{"id": "n1", "from_name": "note", "to_name": "text", "type": "textarea", "value": {"text": [text]}}]


def _scene(runtime) -> Scene:  # type: ignore[no-untyped-def]
    from workspace.tenancy.context import TenantContext
    from workspace.workflow import services as svc

    world = make_tenant(runtime, "alpha")
    ann = add_member(runtime, world, "ann@alpha.example", "annotator")
    other = add_member(runtime, world, "other@alpha.example", "annotator")
    owner = TenantContext(world.tenant_id, world.slug, world.slug, world.owner.user_id, world.owner.email, "",
                          world.owner.membership_id, "owner")
    with runtime.unit_of_work(world.tenant_id) as db:
        ids = {}
        for title, texts in (("Granted project", ["mine text", "theirs text", "free text"]),
                             ("Hidden project", ["hidden text"])):
            project = svc.create_project(db, owner, title, label_config=CONFIG)
            ids[title] = project.id
            for text in texts:
                task = Task(project_id=project.id, data={"text": text}, created_at=utcnow())
                db.add(task)
                db.flush()
                ids[text] = task.id
        for text, person, note in (("mine text", ann, "MY-OWN-NOTE"), ("theirs text", other, "SECRET-OTHER"),
                                   ("hidden text", other, "SECRET-HIDDEN")):
            db.add(Annotation(project_id=db.get(Task, ids[text]).project_id, task_id=ids[text], result=_note(note),
                              completed_by_id=person.user_id))
            db.get(Task, ids[text]).annotation_count = 1
    return Scene(world, ann, other, ids["Granted project"], ids["Hidden project"], ids["mine text"],
                 ids["theirs text"], ids["free text"])


def _project_routes(app):  # type: ignore[no-untyped-def]
    for route in app.routes:
        if "{project_id:int}" not in route.path:
            continue
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                yield method, route.path


def _fill(path: str, project_id: int) -> str:
    path = path.replace("{slug:str}", "alpha").replace("{project_id:int}", str(project_id))
    return re.sub(r"\{\w+_id:int\}", "1", path)


def _call(client, method, url, key=None):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Token {key}"} if url.startswith("/api/") else None
    if method == "GET":
        return client.get(url, headers=headers)
    if url.startswith("/api/"):
        return client.request(method, url, json={}, headers=headers)
    return client.request(method, url, data={"_csrf_token": csrf_token(client)}, headers=headers)


def _assert_project_absent(app, client, key, project_id) -> int:  # type: ignore[no-untyped-def]
    """Every route of the project answers 404, word for word like a missing project's."""
    checked = 0
    for method, path in _project_routes(app):
        there = _call(client, method, _fill(path, project_id), key)
        missing = _call(client, method, _fill(path, MISSING), key)
        assert there.status_code == 404, f"{method} {path}: {there.status_code}"
        assert there.text == missing.text, f"{method} {path} tells a non-granted project from a missing one"
        checked += 1
    return checked


def _titles(client) -> set[str]:  # type: ignore[no-untyped-def]
    page = client.get("/t/alpha/projects")
    assert page.status_code == 200
    return {t for t in ("Granted project", "Hidden project") if t in page.text}


def _home_count(client) -> int:  # type: ignore[no-untyped-def]
    home = client.get("/t/alpha/")
    match = re.search(r'stat-label">Projects</span><span class="num">(\d+)<', home.text)
    assert match, home.text[:2000]
    return int(match.group(1))


def _dm(client, project_id) -> str:  # type: ignore[no-untyped-def]
    page = client.get(f"/t/alpha/projects/{project_id}/data")
    assert page.status_code == 200, page.status_code
    return page.text


def _shown(html: str) -> set[str]:
    return {t for t in ("mine text", "theirs text", "free text", "hidden text") if t in html}


def _label(client, scene: Scene, task_id: int, choice: str = "Positive"):  # type: ignore[no-untyped-def]
    result = [{"id": "c1", "from_name": "sentiment", "to_name": "text", "type": "choices",
               "value": {"choices": [choice]}}]
    return post_form(client, f"/t/alpha/projects/{scene.granted}/label",
                     {"task": str(task_id), "result": json.dumps(result), "lead_time": "1"})


@pytest.fixture
def scene(runtime) -> Scene:  # type: ignore[no-untyped-def]
    return _scene(runtime)


def test_annotator_without_a_grant_sees_no_project(app, client, runtime, scene):
    login(client, scene.ann)
    key = api_token(runtime, scene.world, scene.ann)
    assert _titles(client) == set()
    assert "No projects yet" in client.get("/t/alpha/projects").text
    assert _home_count(client) == 0
    assert 'href="/t/alpha/projects"' in client.get("/t/alpha/").text  # the list itself stays reachable
    for project_id in (scene.granted, scene.hidden):
        assert _assert_project_absent(app, client, key, project_id) >= 8
    assert runtime.authz.can(scene.ann.user_id, scene.world.tenant_id, "project:read") is False
    assert runtime.authz.can(scene.ann.user_id, scene.world.tenant_id, "project:annotate", scene.granted) is False
    assert runtime.authz.can(scene.ann.user_id, scene.world.tenant_id, "tenant:read") is True


def test_user_grant_lists_the_project_lets_label_and_shows_only_own_tasks(app, client, make_client, runtime, scene):
    grant_id = grant_project(runtime, scene.world, scene.granted, person=scene.ann)
    login(client, scene.ann)
    key = api_token(runtime, scene.world, scene.ann)
    assert _titles(client) == {"Granted project"}
    assert _home_count(client) == 1
    page = client.get(f"/t/alpha/projects/{scene.granted}")
    assert page.status_code == 200 and 'data-testid="open-labeling"' in page.text
    assert 'data-testid="open-import"' not in page.text  # an annotator grant does not import

    # The labeling flow: the next task is the first one they have not labeled, another's included
    # (with overlap 2 a task another annotator labeled still has a free slot)...
    with runtime.unit_of_work(scene.world.tenant_id) as db:
        db.execute(update(Project).where(Project.id == scene.granted).values(workflow={"overlap": 2}))
    label = client.get(f"/t/alpha/projects/{scene.granted}/label")
    assert label.status_code == 200 and f'#{scene.theirs}</span>' in label.text
    assert "SECRET-OTHER" not in label.text  # ...without another annotator's annotation
    assert "SECRET-OTHER" not in client.get(f"/t/alpha/projects/{scene.granted}/label?task={scene.theirs}").text
    assert _label(client, scene, scene.free).status_code == 303
    assert f'#{scene.theirs}</span>' in client.get(f"/t/alpha/projects/{scene.granted}/label").text

    # The data manager: their own tasks only, nobody else's name.
    html = _dm(client, scene.granted)
    assert _shown(html) == {"mine text", "free text"}
    assert "other@alpha.example" not in html
    htmx = client.get(f"/t/alpha/projects/{scene.granted}/data?state=labeled", headers={"HX-Request": "true"})
    assert htmx.status_code == 200 and _shown(htmx.text) == {"mine text", "free text"}

    # Inside the granted project, what the annotator role lacks is refused (it exists for them)...
    assert client.get(f"/t/alpha/projects/{scene.granted}/import").status_code == 403
    assert post_form(client, f"/t/alpha/projects/{scene.granted}/settings", {"title": "Mine now"}).status_code == 403
    assert post_form(client, f"/t/alpha/projects/{scene.granted}/grants",
                     {"subject": f"user:{scene.other.user_id}", "role": "annotator"}).status_code == 403
    # ...and the other project still does not exist for them.
    _assert_project_absent(app, client, key, scene.hidden)

    # Revoked: gone on the very next request.
    owner = make_client()
    login(owner, scene.world.owner)
    r = post_form(owner, f"/t/alpha/projects/{scene.granted}/grants/{grant_id}/revoke")
    assert r.status_code == 303
    assert _titles(client) == set()
    _assert_project_absent(app, client, key, scene.granted)


def test_team_grant_works_like_a_user_grant(app, client, make_client, runtime, scene):
    owner = make_client()
    login(owner, scene.world.owner)
    r = post_form(owner, "/t/alpha/teams", {"name": "Labelers"})
    team_path = r.headers["location"]
    team_id = int(team_path.rsplit("/", 1)[1])
    assert post_form(owner, f"{team_path}/members", {"action": "add", "user_ids": [str(scene.ann.user_id)]}).status_code == 303
    login(client, scene.ann)
    key = api_token(runtime, scene.world, scene.ann)
    assert _titles(client) == set()  # a team without grants gives nothing
    assert post_form(owner, f"/t/alpha/projects/{scene.granted}/grants",
                     {"subject": f"team:{team_id}", "role": "annotator"}).status_code == 303

    assert _titles(client) == {"Granted project"}
    assert client.get(f"/t/alpha/projects/{scene.granted}").status_code == 200
    assert _label(client, scene, scene.free).status_code == 303
    assert _shown(_dm(client, scene.granted)) == {"mine text", "free text"}
    _assert_project_absent(app, client, key, scene.hidden)

    # Leaving the team takes the project away on the next request.
    assert post_form(owner, f"{team_path}/members",
                     {"action": "remove", "user_ids": [str(scene.ann.user_id)]}).status_code == 303
    assert _titles(client) == set()
    _assert_project_absent(app, client, key, scene.granted)


def test_a_reviewer_grant_shows_every_task_of_that_project_only(app, client, runtime, scene):
    grant_project(runtime, scene.world, scene.granted, "reviewer", person=scene.ann)
    login(client, scene.ann)
    key = api_token(runtime, scene.world, scene.ann)  # the API routes answer a token, not the session
    assert _shown(_dm(client, scene.granted)) == {"mine text", "theirs text", "free text"}
    assert _assert_project_absent(app, client, key, scene.hidden) >= 8


@pytest.mark.parametrize("role", ["reviewer", "manager", "admin"])
def test_reviewers_and_above_see_every_project_and_every_task(client, runtime, scene, role):
    person = add_member(runtime, scene.world, f"{role}@alpha.example", role)
    login(client, person)
    assert _titles(client) == {"Granted project", "Hidden project"}
    assert _home_count(client) == 2
    assert _shown(_dm(client, scene.granted)) == {"mine text", "theirs text", "free text"}
    assert _shown(_dm(client, scene.hidden)) == {"hidden text"}
    assert client.get(f"/t/alpha/projects/{scene.hidden}/label").status_code == 200
    assert client.get(f"/t/alpha/projects/{MISSING}").status_code == 404


def test_auditor_reads_every_project_and_labels_none(client, runtime, scene):
    auditor = add_member(runtime, scene.world, "audit@alpha.example", "auditor")
    login(client, auditor)
    assert _titles(client) == {"Granted project", "Hidden project"}
    assert client.get(f"/t/alpha/projects/{scene.hidden}").status_code == 200
    assert client.get(f"/t/alpha/projects/{scene.hidden}/label").status_code == 403
    assert client.get(f"/t/alpha/projects/{scene.hidden}/data").status_code == 200


def test_role_change_holds_on_the_next_request(client, make_client, runtime, scene):
    """A role change decides on the next request: promoted to reviewer, every project; back, none."""
    owner = make_client()
    login(owner, scene.world.owner)
    login(client, scene.ann)
    assert _titles(client) == set()
    assert post_form(owner, f"/t/alpha/members/{scene.ann.membership_id}/role", {"role": "reviewer"}).status_code == 303
    assert _titles(client) == {"Granted project", "Hidden project"}
    assert post_form(owner, f"/t/alpha/members/{scene.ann.membership_id}/role", {"role": "annotator"}).status_code == 303
    assert _titles(client) == set()
    assert client.get(f"/t/alpha/projects/{scene.hidden}").status_code == 404
