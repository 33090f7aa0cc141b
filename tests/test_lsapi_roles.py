"""Role × endpoint: every Label Studio API endpoint enforces the member's role and tenant.

Each built-in role gets a token in tenant "acme"; an annotator is granted the project, another is
not (for them the project does not exist: 404), and the owner of tenant "other" tries everything on
acme's objects (404, like missing ones). Allowed calls succeed; denied ones are 403 and audited.
Destructive calls act on a fresh object each time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import add_member, api_token, grant_project, make_tenant
from lsapi_client import CONFIG, RESULT
from sqlalchemy import func, select

ROLES = ("owner", "admin", "manager", "reviewer", "annotator", "outsider", "auditor", "other")
# Who holds what on the project (the outsider is an annotator without a grant; "other" is another tenant).
PERMS = {
    "tenant:read": {"owner", "admin", "manager", "reviewer", "annotator", "outsider", "auditor"},
    "project:create": {"owner", "admin", "manager"},
    "project:read": {"owner", "admin", "manager", "reviewer", "annotator", "auditor"},
    "project:annotate": {"owner", "admin", "manager", "reviewer", "annotator"},
    "project:update": {"owner", "admin", "manager"},
    "project:delete": {"owner", "admin", "manager"},
}


@dataclass
class Setup:
    client: Any
    tokens: dict[str, str]
    project: int
    task: int  # annotated by the annotator (so it is theirs)
    other_task: int
    annotation: int  # the annotator's
    prediction: int

    def call(self, role: str, method: str, url: str, body: Any = None):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Token {self.tokens[role]}"}
        if method == "GET":
            return self.client.get(url, headers=headers)
        return self.client.request(method, url, json=body, headers=headers)

    def owner(self, method: str, url: str, body: Any = None) -> Any:
        r = self.call("owner", method, url, body)
        assert r.status_code < 300, (method, url, r.status_code, r.text)
        return r.json() if r.content else None

    def new_task(self) -> int:
        return self.owner("POST", f"/api/projects/{self.project}/import?return_task_ids=true",
                          [{"text": "fresh"}])["task_ids"][0]

    def new_project(self) -> int:
        project = self.owner("POST", "/api/projects/", {"title": "Throwaway", "label_config": CONFIG})["id"]
        return project


@pytest.fixture
def setup(client, runtime) -> Setup:  # type: ignore[no-untyped-def]
    acme = make_tenant(runtime, "acme")
    other = make_tenant(runtime, "other")
    people = {"owner": acme.owner}
    for role in ("admin", "manager", "reviewer", "annotator", "auditor"):
        people[role] = add_member(runtime, acme, f"{role}@acme.example", role)
    people["outsider"] = add_member(runtime, acme, "outsider@acme.example", "annotator")
    tokens = {role: api_token(runtime, acme, person) for role, person in people.items()}
    tokens["other"] = api_token(runtime, other, other.owner)
    s = Setup(client, tokens, 0, 0, 0, 0, 0)
    s.project = s.owner("POST", "/api/projects/", {"title": "Matrix", "label_config": CONFIG})["id"]
    ids = s.owner("POST", f"/api/projects/{s.project}/import?return_task_ids=true",
                  [{"text": "one"}, {"text": "two"}])["task_ids"]
    s.task, s.other_task = ids
    grant_project(runtime, acme, s.project, "annotator", person=people["annotator"])
    r = s.call("annotator", "POST", f"/api/tasks/{s.task}/annotations/", {"result": RESULT})
    assert r.status_code == 201, r.text
    s.annotation = r.json()["id"]
    s.prediction = s.owner("POST", "/api/predictions/", {"task": s.task, "result": RESULT, "score": 0.5})["id"]
    return s


Url = Callable[[Setup, str], str]


@dataclass
class Endpoint:
    method: str
    url: Url
    permission: str
    ok: int = 200
    body: Any = None
    # Roles whose answer differs from the permission table: role -> status.
    special: dict[str, int] | None = None


def fixed(template: str) -> Url:
    return lambda s, _role: template.format(p=s.project, t=s.task, a=s.annotation, pr=s.prediction)


def fresh_annotation(s: Setup, role: str) -> str:
    """An annotation by the annotator on a fresh task (deleting it must not disturb the others)."""
    task = s.new_task()
    r = s.call("annotator", "POST", f"/api/tasks/{task}/annotations/", {"result": RESULT})
    assert r.status_code == 201, r.text
    return f"/api/annotations/{r.json()['id']}/"


def fresh_prediction(s: Setup, role: str) -> str:
    pid = s.owner("POST", "/api/predictions/", {"task": s.other_task, "result": RESULT})["id"]
    return f"/api/predictions/{pid}/"


ENDPOINTS = [
    Endpoint("GET", fixed("/api/current-user/whoami"), "tenant:read"),
    Endpoint("GET", fixed("/api/version/"), "tenant:read"),
    Endpoint("GET", fixed("/api/projects/"), "tenant:read"),
    Endpoint("POST", fixed("/api/projects/"), "project:create", 201, {"title": "New", "label_config": CONFIG},
             special={"outsider": 403, "other": 201}),
    Endpoint("GET", fixed("/api/projects/{p}/"), "project:read"),
    Endpoint("PATCH", fixed("/api/projects/{p}/"), "project:update", 200, {"description": "changed"}),
    Endpoint("DELETE", lambda s, _r: f"/api/projects/{s.new_project()}/", "project:delete", 204,
             # a fresh project is granted to nobody: the granted annotator doesn't see it either
             special={"annotator": 404}),
    Endpoint("POST", fixed("/api/projects/{p}/validate/"), "project:update", 200, {"label_config": CONFIG}),
    Endpoint("POST", fixed("/api/projects/{p}/import"), "project:update", 201, [{"text": "imported"}]),
    Endpoint("POST", fixed("/api/projects/{p}/import/predictions"), "project:update", 201, []),
    Endpoint("GET", fixed("/api/projects/{p}/export?exportType=JSON&download_all_tasks=true"), "project:update"),
    Endpoint("GET", fixed("/api/projects/{p}/export/formats"), "project:update"),
    Endpoint("DELETE", lambda s, _r: f"/api/projects/{s.new_project()}/tasks/", "project:update", 204,
             special={"annotator": 404}),
    Endpoint("GET", fixed("/api/tasks/?project={p}"), "project:read"),
    Endpoint("POST", fixed("/api/tasks/"), "project:update", 201, None),  # body set per project below
    Endpoint("GET", fixed("/api/tasks/{t}/"), "project:read",
             special={"auditor": 404}),  # the data manager's rule: without review, one's own tasks only
    Endpoint("PATCH", fixed("/api/tasks/{t}/"), "project:update", 200, {"data": {"text": "edited"}}),
    Endpoint("DELETE", lambda s, _r: f"/api/tasks/{s.new_task()}/", "project:update", 204),
    Endpoint("POST", lambda s, _r: f"/api/tasks/{s.other_task}/annotations/", "project:annotate", 201,
             {"result": RESULT}),
    Endpoint("GET", fixed("/api/tasks/{t}/annotations/"), "project:read", special={"auditor": 404}),
    Endpoint("GET", fixed("/api/annotations/{a}/"), "project:read", special={"auditor": 404}),
    Endpoint("PATCH", fixed("/api/annotations/{a}/"), "project:annotate", 200, {"result": RESULT},
             # only its author changes an annotation; reviewers and up fix it in the review stream
             special={"owner": 403, "admin": 403, "manager": 403, "reviewer": 403}),
    Endpoint("DELETE", fresh_annotation, "project:annotate", 204, special={"reviewer": 403}),
    Endpoint("POST", fixed("/api/predictions/"), "project:update", 201, None),  # body set below
    Endpoint("GET", fixed("/api/predictions/?task={t}"), "project:read", special={"auditor": 404}),
    Endpoint("GET", fixed("/api/predictions/?project={p}"), "project:read"),
    Endpoint("GET", fixed("/api/predictions/{pr}/"), "project:read"),
    Endpoint("PATCH", fixed("/api/predictions/{pr}/"), "project:update", 200, {"score": 0.9}),
    Endpoint("DELETE", fresh_prediction, "project:update", 204),
    Endpoint("POST", fixed("/api/token/"), "tenant:read", 201, {}),
    Endpoint("GET", fixed("/api/token/"), "tenant:read"),
]


def expected(endpoint: Endpoint, role: str) -> int:
    if endpoint.special and role in endpoint.special:
        return endpoint.special[role]
    if role in PERMS[endpoint.permission]:
        return endpoint.ok
    if endpoint.permission == "tenant:read":
        return endpoint.ok  # "other" acts in its own tenant
    if role in ("outsider", "other"):
        return 404  # a project outside an annotator's grants, another tenant's object: like a missing one
    return 403


def _body(endpoint: Endpoint, s: Setup) -> Any:
    if endpoint.url(s, "") == "/api/tasks/" and endpoint.method == "POST":
        return {"project": s.project, "data": {"text": "created"}}
    if endpoint.url(s, "") == "/api/predictions/" and endpoint.method == "POST":
        return {"task": s.task, "result": RESULT}
    return endpoint.body


def test_every_ls_route_is_in_the_matrix(app, setup):  # type: ignore[no-untyped-def]
    """Each LS endpoint (but the two that take no key: refresh and revoke) is exercised by the matrix."""
    import re

    from workspace.lsapi.routes import HANDLERS

    wanted = {h.name for h in HANDLERS} - {"ls_token_refresh", "ls_token_blacklist"}
    patterns = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if handler.name in wanted:
                regex = re.sub(r"\\{\w+:int\\}", r"\\d+", re.escape(route.path.rstrip("/")))
                patterns.append((re.compile(f"^{regex}$"), handler))
    hit = set()
    for endpoint in ENDPOINTS:
        path = endpoint.url(setup, "owner").split("?")[0].rstrip("/")
        for regex, handler in patterns:
            if regex.match(path) and endpoint.method in handler.http_methods:
                hit.add(handler.name)
    assert hit == wanted, sorted(wanted - hit)


def test_role_by_endpoint_matrix(setup, runtime):  # type: ignore[no-untyped-def]
    from workspace.audit.models import AuditEvent

    failures = []
    denied = 0
    for endpoint in ENDPOINTS:
        for role in ROLES:
            url = endpoint.url(setup, role)
            r = setup.call(role, endpoint.method, url, _body(endpoint, setup))
            want = expected(endpoint, role)
            if r.status_code != want:
                failures.append(f"{endpoint.method} {url} as {role}: {r.status_code} (want {want}) {r.text[:160]}")
            denied += r.status_code == 403
    assert not failures, "\n".join(failures)
    with runtime.unit_of_work() as db:
        from workspace.tenancy.scoping import unscoped

        with unscoped(db, "test: count denials in every tenant"):
            audited = db.scalar(select(func.count()).select_from(AuditEvent)
                                .where(AuditEvent.action == "permission.denied"))
    assert denied > 20 and audited == denied


def test_other_tenant_lists_show_nothing_of_acme(setup):  # type: ignore[no-untyped-def]
    assert setup.call("other", "GET", "/api/projects/").json()["results"] == []
    assert setup.call("other", "GET", "/api/tasks/").json()["tasks"] == []
    assert setup.call("other", "GET", "/api/predictions/").json() == []
    outsider = setup.call("outsider", "GET", "/api/projects/").json()
    assert outsider["count"] == 0
    annotator = setup.call("annotator", "GET", f"/api/tasks/?project={setup.project}&fields=all").json()
    assert [t["id"] for t in annotator["tasks"]] == [setup.task]  # their own tasks only


def test_anonymous_and_bad_tokens_are_401(client):  # type: ignore[no-untyped-def]
    for url in ("/api/projects/", "/api/tasks/", "/api/current-user/whoami", "/api/version/"):
        assert client.get(url).status_code == 401
        assert client.get(url, headers={"Authorization": "Token nope"}).status_code == 401
        assert client.get(url, headers={"Authorization": "Bearer eyJ.eyJ.sig"}).status_code == 401
