"""Members, invitations, roles (never above your own, last owner stays), teams, grants, explain."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from conftest import PASSWORD, add_member, api_token, login, make_tenant, post_form
from workspace.audit.models import AuditEvent
from workspace.tenancy.models import Membership


def _invite(client, slug, email, role):  # type: ignore[no-untyped-def]
    r = post_form(client, f"/t/{slug}/members/invite", {"email": email, "role": role})
    return r, (re.search(r'data-testid="invite-link"[^>]*value="[^"]*(/invite/[^"]+)"', r.text) or
               re.search(r'value="[^"]*(/invite/[^"]+)"', r.text))


def test_invite_accept_new_user_then_role_change(client, make_client, runtime):
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    r, link = _invite(client, "acme", "new@acme.example", "reviewer")
    assert r.status_code == 200 and link, r.text[:300]
    path = link.group(1)
    invitee = make_client()
    page = invitee.get(path)
    assert page.status_code == 200 and "Join Acme" in page.text
    short = post_form(invitee, path, {"name": "New Person", "password": "short"})
    assert short.status_code == 422 and "At least 10 characters" in short.text or "Use at least" in short.text
    ok = post_form(invitee, path, {"name": "New Person", "password": "a long enough pw"})
    assert ok.status_code == 303 and ok.headers["location"] == "/t/acme/"
    assert invitee.get("/t/acme/").status_code == 200
    # The link works once.
    assert invitee.get(path).status_code == 400
    with runtime.unit_of_work(world.tenant_id) as db:
        member = db.scalars(select(Membership).join(Membership.user).where(Membership.role == "reviewer")).one()
        assert member.user.email == "new@acme.example"
    r = post_form(client, f"/t/acme/members/{member.id}/role", {"role": "manager"})
    assert r.status_code == 303
    with runtime.unit_of_work(world.tenant_id) as db:
        actions = [e.action for e in db.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
    assert {"invitation.created", "user.created", "membership.created", "invitation.accepted",
            "membership.role_changed"} <= set(actions)


def test_expired_or_bogus_invitation(client, runtime):
    from workspace.lib.timeutil import utcnow
    from workspace.tenancy.models import Invitation

    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    _r, link = _invite(client, "acme", "late@acme.example", "annotator")
    with runtime.unit_of_work(world.tenant_id) as db:
        inv = db.scalars(select(Invitation)).one()
        inv.expires_at = utcnow().replace(year=2000)
    assert "expired" in client.get(link.group(1)).text
    assert client.get("/invite/wsi_bogus").status_code == 404


def test_invitation_for_existing_user_requires_that_login(make_client, runtime):
    acme = make_tenant(runtime, "acme")
    globex = make_tenant(runtime, "globex")
    owner = make_client()
    login(owner, acme.owner)
    _r, link = _invite(owner, "acme", globex.owner.email, "annotator")
    other = make_client()
    assert "Sign in as" in other.get(link.group(1)).text
    login(other, globex.owner)
    assert post_form(other, link.group(1)).status_code == 303
    # One user, two tenants: the switcher lists both.
    home = other.get("/t/acme/")
    assert "Acme" in home.text and "Globex" in home.text and "/t/globex/" in home.text


def test_nobody_grants_above_their_own(make_client, runtime):
    world = make_tenant(runtime, "acme")
    admin = add_member(runtime, world, "admin@acme.example", "admin")
    victim = add_member(runtime, world, "v@acme.example", "annotator")
    browser = make_client()
    login(browser, admin)
    r = post_form(browser, f"/t/acme/members/{victim.membership_id}/role", {"role": "owner"})
    assert r.status_code == 303
    with runtime.unit_of_work(world.tenant_id) as db:
        assert db.scalars(select(Membership).where(Membership.id == victim.membership_id)).one().role == "annotator"
    r, _ = _invite(browser, "acme", "x@acme.example", "owner")
    assert r.status_code == 422 and "permissions you don" in r.text
    # An admin can't demote the owner either.
    r = post_form(browser, f"/t/acme/members/{world.owner.membership_id}/role", {"role": "annotator"})
    with runtime.unit_of_work(world.tenant_id) as db:
        assert db.scalars(select(Membership).where(Membership.id == world.owner.membership_id)).one().role == "owner"
    # Through the API too: 403 with a JSON reason.
    key = api_token(runtime, world, admin)
    r = browser.post(f"/api/ws/members/{victim.membership_id}/role", json={"role": "owner"},
                     headers={"Authorization": f"Token {key}"})
    assert r.status_code == 403 and "permissions" in r.json()["detail"]


def test_last_owner_cannot_be_demoted_or_deactivated(client, runtime):
    world = make_tenant(runtime, "acme")
    second = add_member(runtime, world, "admin@acme.example", "admin")
    login(client, world.owner)
    key = api_token(runtime, world, world.owner)
    r = client.post(f"/api/ws/members/{world.owner.membership_id}/role", json={"role": "admin"},
                    headers={"Authorization": f"Token {key}"})
    assert r.status_code == 409 and "last owner" in r.json()["detail"]
    # With a second owner, the first may step down.
    assert client.post(f"/api/ws/members/{second.membership_id}/role", json={"role": "owner"},
                       headers={"Authorization": f"Token {key}"}).status_code == 201
    r = client.post(f"/api/ws/members/{world.owner.membership_id}/role", json={"role": "admin"},
                    headers={"Authorization": f"Token {key}"})
    assert r.status_code == 201 and r.json()["role"] == "admin"


@pytest.mark.parametrize("role", ["annotator", "reviewer"])
def test_annotators_and_reviewers_get_403_on_administration(make_client, runtime, role):
    world = make_tenant(runtime, "acme")
    person = add_member(runtime, world, f"{role}@acme.example", role)
    other = add_member(runtime, world, "other@acme.example", "annotator")
    other_key = api_token(runtime, world, other)
    browser = make_client()
    login(browser, person)
    for path in ("/t/acme/members", "/t/acme/teams", "/t/acme/roles", "/t/acme/audit", "/t/acme/explain"):
        assert browser.get(path).status_code == 403, path
    for path, data in (("/t/acme/members/invite", {"email": "z@z.example", "role": "annotator"}),
                       (f"/t/acme/members/{other.membership_id}/role", {"role": "annotator"}),
                       (f"/t/acme/members/{other.membership_id}/status", {"active": "false"}),
                       ("/t/acme/teams", {"name": "T"}),
                       ("/t/acme/roles", {"key": "qa", "name": "QA"})):
        assert post_form(browser, path, data).status_code == 403, path
    # Others' tokens: invisible and not revocable (404, as if missing).
    with runtime.unit_of_work(world.tenant_id) as db:
        from workspace.tenancy.models import ApiToken

        other_token_id = db.scalars(select(ApiToken).where(ApiToken.user_id == other.user_id)).one().id
    assert post_form(browser, f"/t/acme/tokens/{other_token_id}/revoke").status_code == 404
    assert browser.get("/api/current-user/whoami", headers={"Authorization": f"Token {other_key}"}).status_code == 200
    # Their own tokens are theirs to manage.
    assert browser.get("/t/acme/tokens").status_code == 200


def test_demoted_admin_loses_rights_on_next_request(make_client, runtime):
    world = make_tenant(runtime, "acme")
    admin = add_member(runtime, world, "admin@acme.example", "admin")
    owner, admin_browser = make_client(), make_client()
    login(owner, world.owner)
    login(admin_browser, admin)
    assert admin_browser.get("/t/acme/members").status_code == 200
    assert post_form(owner, f"/t/acme/members/{admin.membership_id}/role", {"role": "annotator"}).status_code == 303
    assert admin_browser.get("/t/acme/members").status_code == 403


def test_policy_change_reaches_a_second_process_via_database_version(settings, runtime, make_client):
    """Two runtimes (as two processes would have) share the database: no Redis needed for correctness."""
    from litestar.testing import TestClient

    from workspace.app import create_app
    from workspace.runtime import build_runtime

    world = make_tenant(runtime, "acme")
    admin = add_member(runtime, world, "admin@acme.example", "admin")
    other_runtime = build_runtime(settings, watch_policy=False)
    try:
        other = TestClient(create_app(settings, runtime=other_runtime))
        other.follow_redirects = False
        login(other, admin)
        assert other.get("/t/acme/members").status_code == 200
        owner = make_client()
        login(owner, world.owner)
        post_form(owner, f"/t/acme/members/{admin.membership_id}/role", {"role": "annotator"})
        assert other.get("/t/acme/members").status_code == 403
    finally:
        other_runtime.close()


def test_teams_and_project_grants_and_explain(client, runtime):
    world = make_tenant(runtime, "acme")
    ann = add_member(runtime, world, "ann@acme.example", "annotator")
    login(client, world.owner)
    r = post_form(client, "/t/acme/teams", {"name": "Labelers", "description": "day shift"})
    assert r.status_code == 303
    team_path = r.headers["location"]
    team_id = int(team_path.rsplit("/", 1)[1])
    assert post_form(client, f"{team_path}/members", {"action": "add", "user_ids": [str(ann.user_id)]}).status_code == 303
    r = post_form(client, "/t/acme/projects", {"title": "Intents"})
    project_id = int(r.headers["location"].rsplit("/", 1)[1])
    # Before any grant: an annotator can't review this project.
    r = client.get(f"/t/acme/explain?member={ann.membership_id}&permission=project:review&project={project_id}")
    assert "✘ No" in r.text
    assert post_form(client, f"/t/acme/projects/{project_id}/grants",
                     {"subject": f"team:{team_id}", "role": "reviewer"}).status_code == 303
    r = client.get(f"/t/acme/explain?member={ann.membership_id}&permission=project:review&project={project_id}")
    assert "✔ Yes" in r.text
    assert "team Labelers" in r.text and "role Reviewer" in r.text
    # Tenant-wide, the annotator still can't review.
    assert runtime.authz.can(ann.user_id, world.tenant_id, "project:review") is False
    assert runtime.authz.can(ann.user_id, world.tenant_id, "project:review", project_id) is True
    # The annotator role is project-scoped: no project permission tenant-wide, and explain says why...
    r = client.get(f"/t/acme/explain?member={ann.membership_id}&permission=project:annotate")
    assert "✘ No" in r.text and "Their role Annotator holds project permissions only inside the projects granted" in r.text
    assert runtime.authz.can(ann.user_id, world.tenant_id, "project:read") is False
    # ...inside the project the team's grant gives it, through the team and role Reviewer.
    r = client.get(f"/t/acme/explain?member={ann.membership_id}&permission=project:annotate&project={project_id}")
    assert "✔ Yes" in r.text and "team Labelers" in r.text
    # Tenant-level permissions of the annotator role hold tenant-wide.
    r = client.get(f"/t/acme/explain?member={ann.membership_id}&permission=tenant:read")
    assert "✔ Yes" in r.text and "role Annotator" in r.text


def test_custom_role_lifecycle(client, runtime):
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    r = post_form(client, "/t/acme/roles", {"key": "qa", "name": "QA lead",
                                            "permissions": ["audit:read", "member:read"]})
    assert r.status_code == 303
    matrix = client.get("/t/acme/roles")
    assert "QA lead" in matrix.text
    bad = post_form(client, "/t/acme/roles", {"key": "Bad Key!", "name": "x"})
    assert bad.status_code == 422 and 'id="e-key"' in bad.text
    dup = post_form(client, "/t/acme/roles", {"key": "admin", "name": "x"})
    assert dup.status_code == 422
    qa = add_member(runtime, world, "qa@acme.example", "qa")
    assert runtime.authz.can(qa.user_id, world.tenant_id, "audit:read")
    assert not runtime.authz.can(qa.user_id, world.tenant_id, "member:invite")


def test_passwords_are_argon2id(runtime):
    from workspace.tenancy.models import User

    make_tenant(runtime, "acme")
    with runtime.unit_of_work() as db:
        stored = db.scalars(select(User)).one().password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_user_content_is_escaped(client, runtime):
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    post_form(client, "/t/acme/teams", {"name": "<script>alert(1)</script>"})
    page = client.get("/t/acme/teams")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_htmx_requests_need_the_csrf_header(client, runtime):
    from conftest import csrf_token

    world = make_tenant(runtime, "acme")
    bob = add_member(runtime, world, "bob@acme.example", "annotator")
    login(client, world.owner)
    url = f"/t/acme/members/{bob.membership_id}/role"
    refused = client.post(url, data={"role": "reviewer"}, headers={"HX-Request": "true"})
    assert refused.status_code == 403
    ok = client.post(url, data={"role": "reviewer"},
                     headers={"HX-Request": "true", "x-csrftoken": csrf_token(client)})
    assert ok.status_code == 200
    assert ok.text.lstrip().startswith("<tr") and "bob@acme.example is now Reviewer" in ok.text
    bad = client.post(url, data={"role": "wizard"}, headers={"HX-Request": "true", "x-csrftoken": csrf_token(client)})
    assert bad.status_code == 422
    assert bad.text.lstrip().startswith("<tr") and "There is no role &#39;wizard&#39;" in bad.text
