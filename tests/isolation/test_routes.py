"""Every route, generically: foreign ids answer 404 like missing ones, lists never leak, bulk actions
with a foreign id apply nothing, permissions are enforced, anonymous callers are turned away.

Routes are read from the app itself, so new routes join the matrix; a new kind of id in a path
makes the matrix fail until it is mapped below.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select

from conftest import add_member, api_token, csrf_token, login, make_tenant, post_form
from isolation.factories import (
    make_api_token,
    make_comment,
    make_export,
    make_invitation,
    make_job,
    make_notification,
    make_ml_backend,
    make_project,
    make_project_grant,
    make_role,
    make_team,
    make_webhook,
    make_webhook_delivery,
)
from workspace.audit.models import AuditEvent
from workspace.lib.timeutil import utcnow
from workspace.workflow.models import Annotation, Prediction, Task
from workspace.workflow.review_models import Review
from workspace.web.guards import ACCESS_KEY, PUBLIC, SIGNED_IN

ID_PARAM = re.compile(r"\{(\w+_id):int\}")
KINDS = {"comment_id", "notification_id", "membership_id", "invitation_id", "team_id", "role_id", "token_id", "project_id", "grant_id", "job_id", "export_id",
         "webhook_id", "delivery_id", "backend_id", "task_id", "annotation_id", "prediction_id", "user_id", "review_id"}


def _routes(app):  # type: ignore[no-untyped-def]
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                yield method, route.path, handler


def _objects(runtime, world, marker):  # type: ignore[no-untyped-def]
    """One object of every kind that appears in a path, in the world's tenant."""
    member = add_member(runtime, world, f"{marker}-member@example.com", "annotator")
    with runtime.unit_of_work(world.tenant_id) as db:
        grant = make_project_grant(db, marker)
        ids = {
            "membership_id": member.membership_id,
            "invitation_id": make_invitation(db, marker).id,
            "team_id": make_team(db, marker).id,
            "role_id": make_role(db, marker).id,
            "token_id": make_api_token(db, marker).id,
            "project_id": grant.project_id,
            "grant_id": grant.id,
            "job_id": make_job(db, marker, project_id=grant.project_id).id,
            "export_id": make_export(db, marker, project_id=grant.project_id).id,
        }
        webhook = make_webhook(db, marker, project_id=grant.project_id)
        ids["webhook_id"] = webhook.id
        ids["delivery_id"] = make_webhook_delivery(db, marker, webhook).id
        ids["backend_id"] = make_ml_backend(db, marker, project_id=grant.project_id).id
        ids["comment_id"] = make_comment(db, marker, project_id=grant.project_id).id
        ids["notification_id"] = make_notification(db, marker, user_id=world.owner.user_id).id
        task = Task(project_id=grant.project_id, data={"text": marker}, created_at=utcnow())
        db.add(task)
        db.flush()
        annotation = Annotation(project_id=task.project_id, task_id=task.id, result=[], status="submitted")
        db.add(annotation)
        db.flush()
        ids["task_id"], ids["annotation_id"] = task.id, annotation.id
        review = Review(project_id=task.project_id, task_id=task.id, annotation_id=annotation.id,
                        reviewer_id=world.owner.user_id, verdict="accepted", comment=marker, annotation_version=1)
        db.add(review)
        db.flush()
        ids["review_id"], ids["user_id"] = review.id, member.user_id
        prediction = Prediction(project_id=task.project_id, task_id=task.id, result=[], model_version=marker,
                                created_at=utcnow())
        db.add(prediction)
        db.flush()
        ids["prediction_id"] = prediction.id
        make_project(db, marker)
    return ids


def _fill(path: str, ids: dict[str, int], slug: str) -> str:
    path = path.replace("{slug:str}", slug).replace("{token:str}", "wsi_nope")
    return ID_PARAM.sub(lambda m: str(ids[m.group(1)]), path)


def _call(client, method, url, headers=None):  # type: ignore[no-untyped-def]
    if method == "GET":
        return client.get(url, headers=headers)
    if url.startswith("/api/"):
        return client.request(method, url, json={}, headers=headers)
    return client.request(method, url, data={"_csrf_token": csrf_token(client)}, headers=headers)


def _event_count(runtime, tenant_id):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(tenant_id) as db:
        return db.scalar(select(func.count()).select_from(AuditEvent))


def test_every_id_in_a_path_is_mapped(app):
    unknown = {m for _meth, path, _h in _routes(app) for m in ID_PARAM.findall(path)} - KINDS
    assert not unknown, f"map these path ids to an isolation factory: {unknown}"


def test_foreign_ids_answer_404_like_missing_ones(app, client, runtime):
    a = make_tenant(runtime, "alpha")
    b = make_tenant(runtime, "bravo")
    _objects(runtime, a, "alpha")
    b_ids = _objects(runtime, b, "bravo")
    missing_ids = dict.fromkeys(b_ids, 987654)
    login(client, a.owner)
    key = api_token(runtime, a, a.owner)
    before = _event_count(runtime, b.tenant_id)
    checked = 0
    for method, path, handler in _routes(app):
        if not ID_PARAM.search(path):
            continue
        headers = {"Authorization": f"Token {key}"} if path.startswith("/api/") else None
        foreign = _call(client, method, _fill(path, b_ids, a.slug), headers)
        missing = _call(client, method, _fill(path, missing_ids, a.slug), headers)
        assert foreign.status_code == 404, f"{method} {path}: {foreign.status_code}"
        assert missing.status_code == 404, f"{method} {path}: {missing.status_code}"
        assert foreign.text == missing.text, f"{method} {path} tells foreign from missing"
        checked += 1
    assert checked >= 12
    assert _event_count(runtime, b.tenant_id) == before, "a request in tenant A changed tenant B"


def test_other_tenants_slug_is_404(client, runtime):
    a = make_tenant(runtime, "alpha")
    make_tenant(runtime, "bravo")
    login(client, a.owner)
    assert client.get("/t/bravo/").status_code == 404
    assert client.get("/t/bravo/members").text == client.get("/t/nowhere/members").text


def test_lists_never_show_other_tenants_rows(app, client, runtime):
    a = make_tenant(runtime, "alpha")
    b = make_tenant(runtime, "bravo")
    _objects(runtime, a, "alpha")
    _objects(runtime, b, "zzbravo")
    login(client, a.owner)
    key = api_token(runtime, a, a.owner)
    seen = 0
    for method, path, handler in _routes(app):
        if method != "GET" or ID_PARAM.search(path) or "{token" in path:
            continue
        if handler.opt.get(ACCESS_KEY) in (PUBLIC, SIGNED_IN):
            continue
        headers = {"Authorization": f"Token {key}"} if path.startswith("/api/") else None
        response = client.get(_fill(path, {}, a.slug), headers=headers)
        assert response.status_code == 200, f"{path}: {response.status_code}"
        assert "zzbravo" not in response.text and "bravo.example" not in response.text, f"{path} leaks tenant B"
        seen += 1
    assert seen >= 8


def test_bulk_action_with_one_foreign_id_applies_nothing(client, runtime):
    a = make_tenant(runtime, "alpha")
    b = make_tenant(runtime, "bravo")
    mine = add_member(runtime, a, "mine@alpha.example", "annotator")
    theirs = add_member(runtime, b, "theirs@bravo.example", "annotator")
    with runtime.unit_of_work(a.tenant_id) as db:
        team_id = make_team(db, "alpha").id
    login(client, a.owner)
    r = post_form(client, f"/t/alpha/teams/{team_id}/members",
                  {"action": "add", "user_ids": [str(mine.user_id), str(theirs.user_id)]})
    assert r.status_code == 404
    page = client.get(f"/t/alpha/teams/{team_id}")
    assert "Nobody in this team" in page.text
    r = post_form(client, f"/t/alpha/teams/{team_id}/members", {"action": "add", "user_ids": [str(mine.user_id)]})
    assert r.status_code == 303
    assert "mine@alpha.example" in client.get(f"/t/alpha/teams/{team_id}").text.split("Add members")[0]


def test_permission_matrix_every_route(app, make_client, runtime):
    """A member whose role holds only tenant:read gets 403 on every route needing anything else."""
    from workspace.tenancy.authz import policy

    a = make_tenant(runtime, "alpha")
    ids = _objects(runtime, a, "alpha")
    with runtime.unit_of_work(a.tenant_id) as db:
        policy.set_custom_role(db, a.tenant_id, "reader", ["tenant:read"])
    reader = add_member(runtime, a, "reader@alpha.example", "reader")
    browser = make_client()
    login(browser, reader)
    anonymous = make_client()
    checked = 0
    for method, path, handler in _routes(app):
        access = handler.opt.get(ACCESS_KEY)
        if access in (PUBLIC, SIGNED_IN) or access == "tenant:read":
            continue
        url = _fill(path, ids, a.slug)
        if not path.startswith("/api/"):
            r = _call(browser, method, url)
            assert r.status_code == 403, f"{method} {path} ({access}) answered {r.status_code} to a reader"
            r = _call(anonymous, method, url)
            assert r.status_code in (303, 403), f"{method} {path} answered {r.status_code} to anonymous"
            if r.status_code == 303:
                assert r.headers["location"].startswith("/login")
        else:
            r = _call(anonymous, method, url)
            assert r.status_code == 401, f"{method} {path} answered {r.status_code} without a token"
        checked += 1
    assert checked >= 20


def test_denials_are_audited(make_client, runtime):
    a = make_tenant(runtime, "alpha")
    annotator = add_member(runtime, a, "ann@alpha.example", "annotator")
    browser = make_client()
    login(browser, annotator)
    assert browser.get("/t/alpha/members").status_code == 403
    with runtime.unit_of_work(a.tenant_id) as db:
        denied = db.scalars(select(AuditEvent).where(AuditEvent.action == "permission.denied")).all()
    assert [d.actor_label for d in denied] == ["ann@alpha.example"]
    assert denied[0].changes == {"permission": "member:read"}
