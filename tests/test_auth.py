"""Sign-in, sessions, throttling, password changes and API tokens."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, text

from conftest import PASSWORD, add_member, api_token, csrf_token, login, make_tenant, post_form


def test_login_lands_on_tenant_home_and_rotates_session_id(client, runtime):
    world = make_tenant(runtime, "acme")
    client.get("/login")
    client.cookies.set("ws_session", "attacker-chosen-session-id", domain="testserver.local")
    response = login(client, world.owner)
    assert response.headers["location"] == "/"
    assert client.cookies.get("ws_session") not in (None, "attacker-chosen-session-id")
    home = client.get("/", follow_redirects=True)
    assert home.status_code == 200
    assert str(home.url).endswith("/t/acme/")
    assert "Acme" in home.text


def test_wrong_password_is_refused_and_audited(client, runtime):
    world = make_tenant(runtime, "acme")
    response = client.post("/login", data={"email": world.owner.email, "password": "nope",
                                           "_csrf_token": csrf_token(client)})
    assert response.status_code == 401
    assert "don&#39;t match" in response.text or "don't match" in response.text
    with runtime.engine.connect() as conn:
        actions = [a for (a,) in conn.execute(text("select action from audit_event order by seq"))]
    assert "auth.login_failed" in actions


def test_login_form_requires_csrf(client, runtime):
    world = make_tenant(runtime, "acme")
    client.get("/login")
    response = client.post("/login", data={"email": world.owner.email, "password": PASSWORD})
    assert response.status_code == 403


def test_throttle_per_account_not_fooled_by_forwarded_for(client, runtime):
    world = make_tenant(runtime, "acme")
    token = csrf_token(client)
    for i in range(5):
        r = client.post("/login", data={"email": world.owner.email, "password": f"bad{i}", "_csrf_token": token},
                        headers={"X-Forwarded-For": f"10.0.0.{i}"})
        assert r.status_code == 401
    # Even the right password is refused while throttled, whatever X-Forwarded-For says.
    r = client.post("/login", data={"email": world.owner.email, "password": PASSWORD, "_csrf_token": token},
                    headers={"X-Forwarded-For": "10.9.9.9"})
    assert r.status_code == 429
    assert "Too many failed sign-in attempts" in r.text


def test_throttle_per_client_across_accounts(client, runtime):
    make_tenant(runtime, "acme")
    token = csrf_token(client)
    for i in range(20):
        r = client.post("/login", data={"email": f"nobody{i}@x.example", "password": "bad", "_csrf_token": token})
        assert r.status_code == 401
    r = client.post("/login", data={"email": "fresh@x.example", "password": "bad", "_csrf_token": token})
    assert r.status_code == 429


def test_logout_ends_session(client, runtime):
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    assert client.get("/t/acme/").status_code == 200
    assert post_form(client, "/logout").status_code == 303
    r = client.get("/t/acme/")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_password_change_ends_other_sessions(make_client, runtime):
    world = make_tenant(runtime, "acme")
    first, second = make_client(), make_client()
    login(first, world.owner)
    login(second, world.owner)
    r = post_form(first, "/t/acme/account/password", {"current_password": PASSWORD,
                                                         "new_password": "a brand new secret",
                                                         "confirm_password": "a brand new secret"})
    assert r.status_code == 303
    assert first.get("/t/acme/").status_code == 200  # the session that changed it goes on
    r = second.get("/t/acme/")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_password_change_errors_show_next_to_field(client, runtime):
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    r = post_form(client, "/t/acme/account/password", {"current_password": "wrong", "new_password": "x" * 12,
                                                          "confirm_password": "x" * 12})
    assert r.status_code == 422
    assert 'id="e-current_password"' in r.text


def test_deactivated_member_session_stops_at_once(make_client, runtime):
    world = make_tenant(runtime, "acme")
    bob = add_member(runtime, world, "bob@acme.example", "manager")
    owner, bob_browser = make_client(), make_client()
    login(owner, world.owner)
    login(bob_browser, bob)
    assert bob_browser.get("/t/acme/").status_code == 200
    r = post_form(owner, f"/t/acme/members/{bob.membership_id}/status", {"active": "false"})
    assert r.status_code == 303
    assert bob_browser.get("/t/acme/").status_code == 404


def test_api_token_both_schemes_and_json_errors(client, runtime):
    world = make_tenant(runtime, "acme")
    key = api_token(runtime, world, world.owner)
    for scheme in ("Token", "Bearer"):
        r = client.get("/api/current-user/whoami", headers={"Authorization": f"{scheme} {key}"})
        assert r.status_code == 200, r.text
        assert r.json()["email"] == world.owner.email
    r = client.get("/api/current-user/whoami", headers={"Authorization": "Token wsk_notarealkey"})
    assert r.status_code == 401
    assert r.json() == {"detail": "Invalid token."}
    r = client.get("/api/current-user/whoami")
    assert r.status_code == 401 and "detail" in r.json()


def test_token_is_stored_hashed_and_tracks_last_use(client, runtime):
    world = make_tenant(runtime, "acme")
    key = api_token(runtime, world, world.owner)
    with runtime.engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(text("select * from api_token")) for v in row)
        assert key not in dump
        assert conn.execute(text("select last_used_at from api_token")).scalar() is None
    client.get("/api/current-user/whoami", headers={"Authorization": f"Token {key}"})
    with runtime.engine.connect() as conn:
        assert conn.execute(text("select last_used_at from api_token")).scalar() is not None


def test_revoked_and_expired_tokens_get_401(client, runtime):
    from workspace.lib.timeutil import utcnow
    from workspace.tenancy.models import ApiToken

    world = make_tenant(runtime, "acme")
    key = api_token(runtime, world, world.owner)
    headers = {"Authorization": f"Token {key}"}
    tokens = client.get("/api/ws/tokens", headers=headers).json()
    r = client.post(f"/api/ws/tokens/{tokens[0]['id']}/revoke", headers=headers)
    assert r.status_code == 201 or r.status_code == 200
    assert client.get("/api/current-user/whoami", headers=headers).status_code == 401

    key2 = api_token(runtime, world, world.owner)
    with runtime.unit_of_work(world.tenant_id) as db:
        token = db.scalars(select(ApiToken).where(ApiToken.revoked_at.is_(None))).one()
        token.expires_at = utcnow() - timedelta(seconds=1)
    assert client.get("/api/current-user/whoami", headers={"Authorization": f"Token {key2}"}).status_code == 401


def test_deactivated_members_tokens_stop(client, runtime, make_client):
    world = make_tenant(runtime, "acme")
    bob = add_member(runtime, world, "bob@acme.example", "manager")
    key = api_token(runtime, world, bob)
    assert client.get("/api/current-user/whoami", headers={"Authorization": f"Token {key}"}).status_code == 200
    owner = make_client()
    login(owner, world.owner)
    post_form(owner, f"/t/acme/members/{bob.membership_id}/status", {"active": "false"})
    assert client.get("/api/current-user/whoami", headers={"Authorization": f"Token {key}"}).status_code == 401
