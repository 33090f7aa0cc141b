"""Production mode across processes: two ``workspace serve`` on one PostgreSQL database and one Redis.

A role change committed in one process must hold on the very next request in the other (the
per-request policy-version check, with the Redis watcher as the eager path), and a session made by
one process must be honoured by the other (sessions live in Redis). Real processes, real sockets.
"""

from __future__ import annotations

import os
import re
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import PG_ADMIN_URL, pg_available, require_service
from sqlalchemy import create_engine, text
from test_cli import OWNER_PASSWORD, Server, browser_login, clean_env, ok, run

ADMIN_PASSWORD = "admin password 123"


@dataclass
class Cluster:
    env: dict[str, str]
    a: Server
    b: Server
    db_url: str


@contextmanager
def fresh_database() -> Iterator[str]:
    """An empty PostgreSQL database (not migrated: the first ``serve`` must migrate it), dropped after."""
    require_service("PostgreSQL", pg_available())
    name = f"ws_mp_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="module")
def fresh_pg_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="module")
def cluster(fresh_pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("multiprocess")
    common = {
        "WORKSPACE_DATABASE_URL": fresh_pg_url,
        "WORKSPACE_REDIS_URL": redis_url,
        "WORKSPACE_SECRET_KEY": secrets.token_urlsafe(48),
    }
    started: list[Server] = []
    try:
        env_a = clean_env(WORKSPACE_DATA_DIR=str(root / "data-a"), **common)
        a = Server(env_a, root / "serve-a.log", cwd=root)
        started.append(a)
        a.wait_healthy()
        env_b = clean_env(WORKSPACE_DATA_DIR=str(root / "data-b"), **common)
        b = Server(env_b, root / "serve-b.log", cwd=root)
        started.append(b)
        b.wait_healthy()
        assert "production mode" in a.output() and "production mode" in b.output()
        yield Cluster(clean_env(WORKSPACE_DATA_DIR=str(root / "data-cli"), **common), a, b, fresh_pg_url)
    finally:
        for server in started:
            server.stop()


def _csrf(client: httpx.Client) -> str:
    token = client.cookies.get("ws_csrf")
    if not token:
        client.get("/login")
        token = client.cookies.get("ws_csrf")
    assert token
    return token


def _owner_token(cluster: Cluster, slug: str, email: str) -> str:
    result = ok(run(cluster.env, "create-token", "--tenant", slug, "--email", email))
    return result.stdout.rstrip("\n").split("\n")[-1]


def _members(server: Server, key: str) -> dict[str, dict]:  # type: ignore[type-arg]
    response = httpx.get(f"{server.url}/api/ws/members", headers={"Authorization": f"Token {key}"}, timeout=30)
    assert response.status_code == 200, response.text
    return {m["email"]: m for m in response.json()}


def test_first_process_migrated_and_seeded_the_empty_database(cluster):
    engine = create_engine(cluster.db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select version_num from alembic_version")).scalar()
            assert conn.execute(text("select count(*) from tenant where slug = 'demo'")).scalar() == 1
    finally:
        engine.dispose()
    assert "password:" in cluster.a.output()  # A created the demo tenant...
    assert "A demo organization was created" not in cluster.b.output()  # ...and B found it there
    # With PostgreSQL the password is only printed, never written to a file.
    assert not list(Path(cluster.env["WORKSPACE_DATA_DIR"]).parent.glob("data-*/demo-credentials.txt"))


def test_role_change_on_a_holds_on_the_next_request_on_b(cluster):
    slug = f"acme{uuid.uuid4().hex[:6]}"
    owner_email = f"owner@{slug}.example"
    admin_email = f"admin@{slug}.example"
    ok(run(cluster.env, "create-tenant", slug, "--name", "Acme", "--owner-email", owner_email,
           "--owner-password", OWNER_PASSWORD))

    with cluster.a.client() as owner_a, cluster.b.client() as admin_b:
        # The owner signs in on A and invites the admin; the admin accepts on B.
        assert browser_login(owner_a, owner_email, OWNER_PASSWORD).status_code == 303
        page = owner_a.post(f"/t/{slug}/members/invite",
                            data={"email": admin_email, "role": "admin", "_csrf_token": _csrf(owner_a)})
        assert page.status_code == 200, page.text[:500]
        link = re.search(r'/invite/([A-Za-z0-9_\-]+)"', page.text)
        assert link, page.text[:2000]
        invitation = f"/invite/{link.group(1)}"
        assert admin_b.get(invitation).status_code == 200
        accepted = admin_b.post(invitation, data={"name": "Ada Admin", "password": ADMIN_PASSWORD,
                                                  "_csrf_token": _csrf(admin_b)})
        assert accepted.status_code == 303, accepted.text[:500]
        assert accepted.headers["location"] == f"/t/{slug}/"

        # A fresh sign-in on B (the cookie session lives in Redis).
        admin_b.cookies.clear()
        assert browser_login(admin_b, admin_email, ADMIN_PASSWORD).status_code == 303
        assert admin_b.get(f"/t/{slug}/members").status_code == 200
        roles = admin_b.get(f"/t/{slug}/roles")
        assert roles.status_code == 200

        key = _owner_token(cluster, slug, owner_email)
        members = _members(cluster.b, key)
        assert members[admin_email]["role"] == "admin"
        membership_id = members[admin_email]["id"]

        # The owner demotes the admin on A...
        demoted = owner_a.post(f"/t/{slug}/members/{membership_id}/role",
                               data={"role": "annotator", "_csrf_token": _csrf(owner_a)})
        assert demoted.status_code == 303, demoted.text[:500]
        assert demoted.headers["location"] == f"/t/{slug}/members"
        assert _members(cluster.a, key)[admin_email]["role"] == "annotator"

        # ...and the admin's very next request on B is refused.
        assert admin_b.get(f"/t/{slug}/members").status_code == 403
        assert admin_b.get(f"/t/{slug}/roles").status_code == 403
        assert admin_b.get(f"/t/{slug}/").status_code == 200  # still a member, as an annotator

        # Promoting back holds on B at once too (no stale cached denial).
        promoted = owner_a.post(f"/t/{slug}/members/{membership_id}/role",
                                data={"role": "admin", "_csrf_token": _csrf(owner_a)})
        assert promoted.status_code == 303 and promoted.headers["location"] == f"/t/{slug}/members"
        assert admin_b.get(f"/t/{slug}/members").status_code == 200

        # The other direction: the owner's session (made on A) demotes on B; the admin's next
        # request on A is refused.
        with cluster.a.client() as admin_a, cluster.b.client() as owner_b:
            assert browser_login(admin_a, admin_email, ADMIN_PASSWORD).status_code == 303
            assert admin_a.get(f"/t/{slug}/members").status_code == 200
            owner_b.cookies.set("ws_session", owner_a.cookies.get("ws_session"))
            owner_b.cookies.set("ws_csrf", _csrf(owner_a))
            again = owner_b.post(f"/t/{slug}/members/{membership_id}/role",
                                 data={"role": "reviewer", "_csrf_token": _csrf(owner_a)})
            assert again.status_code == 303, again.text[:500]
            assert again.headers["location"] == f"/t/{slug}/members"  # done, not sent to sign in
            assert admin_a.get(f"/t/{slug}/members").status_code == 403
            assert admin_b.get(f"/t/{slug}/members").status_code == 403

    # Every denial and change is in the tenant's chain, and the chain verifies.
    result = ok(run(cluster.env, "audit", "verify", "--tenant", slug))
    assert result.stdout.startswith(f"{slug}: ok")
    _no_server_errors(cluster)


def test_project_grant_on_a_holds_on_the_next_request_on_b(cluster):
    """An annotator sees a project only while it is granted: grant and revoke on A, look on B."""
    slug = f"gamma{uuid.uuid4().hex[:6]}"
    owner_email = f"owner@{slug}.example"
    ann_email = f"ann@{slug}.example"
    ok(run(cluster.env, "create-tenant", slug, "--name", "Gamma", "--owner-email", owner_email,
           "--owner-password", OWNER_PASSWORD))
    with cluster.a.client() as owner_a, cluster.b.client() as ann_b:
        assert browser_login(owner_a, owner_email, OWNER_PASSWORD).status_code == 303
        created = owner_a.post(f"/t/{slug}/projects", data={"title": "Shared project", "_csrf_token": _csrf(owner_a)})
        assert created.status_code == 303, created.text[:500]
        project = created.headers["location"]
        page = owner_a.post(f"/t/{slug}/members/invite",
                            data={"email": ann_email, "role": "annotator", "_csrf_token": _csrf(owner_a)})
        link = re.search(r'/invite/([A-Za-z0-9_\-]+)"', page.text)
        assert link, page.text[:2000]
        accepted = ann_b.post(f"/invite/{link.group(1)}", data={"name": "Ann", "password": ADMIN_PASSWORD,
                                                                "_csrf_token": _csrf(ann_b)})
        assert accepted.status_code == 303, accepted.text[:500]
        assert ann_b.get(project).status_code == 404
        assert "Shared project" not in ann_b.get(f"/t/{slug}/projects").text

        user_id = _members(cluster.a, _owner_token(cluster, slug, owner_email))[ann_email]["user_id"]
        granted = owner_a.post(f"{project}/grants", data={"subject": f"user:{user_id}", "role": "annotator",
                                                          "_csrf_token": _csrf(owner_a)})
        assert granted.status_code == 303, granted.text[:500]
        assert ann_b.get(project).status_code == 200
        assert "Shared project" in ann_b.get(f"/t/{slug}/projects").text
        assert ann_b.get(f"{project}/label").status_code == 200

        grant = re.search(r'/grants/(\d+)/revoke"', owner_a.get(project).text)
        assert grant
        revoked = owner_a.post(f"{project}/grants/{grant.group(1)}/revoke", data={"_csrf_token": _csrf(owner_a)})
        assert revoked.status_code == 303
        assert ann_b.get(project).status_code == 404
        assert ann_b.get(f"{project}/label").status_code == 404
    _no_server_errors(cluster)


def _no_server_errors(cluster: Cluster) -> None:
    for server in (cluster.a, cluster.b):
        assert server.proc.poll() is None, server.output()
        assert "Traceback" not in server.output(), server.output()


def test_session_made_on_a_works_on_b(cluster):
    slug = f"beta{uuid.uuid4().hex[:6]}"
    owner_email = f"owner@{slug}.example"
    ok(run(cluster.env, "create-tenant", slug, "--name", "Beta", "--owner-email", owner_email,
           "--owner-password", OWNER_PASSWORD))
    with cluster.a.client() as on_a, cluster.b.client() as on_b:
        assert browser_login(on_a, owner_email, OWNER_PASSWORD).status_code == 303
        session_id = on_a.cookies.get("ws_session")
        assert session_id
        # B has never seen this browser; without the cookie it is sent to the login page.
        anonymous = on_b.get(f"/t/{slug}/members")
        assert anonymous.status_code in (302, 303) and "/login" in anonymous.headers["location"]
        on_b.cookies.set("ws_session", session_id)
        members = on_b.get(f"/t/{slug}/members")
        assert members.status_code == 200, members.text[:300]
        assert owner_email in members.text
        assert on_b.get("/").headers["location"] == f"/t/{slug}/"

        # Signing out on B ends the session on A as well.
        on_b.cookies.set("ws_csrf", _csrf(on_a))
        out = on_b.post("/logout", data={"_csrf_token": _csrf(on_a)})
        assert out.status_code == 303 and out.headers["location"] == "/login", out.text[:300]
        response = on_a.get(f"/t/{slug}/members")
        assert response.status_code in (302, 303) and "/login" in response.headers["location"]
    _no_server_errors(cluster)


def test_two_processes_starting_together_on_an_empty_database(redis_url, tmp_path):
    """Replicas start at the same time: one migrates and seeds, the other waits, both serve."""
    with fresh_database() as url:
        env = clean_env(WORKSPACE_DATA_DIR=str(tmp_path / "data"), WORKSPACE_DATABASE_URL=url,
                        WORKSPACE_REDIS_URL=redis_url, WORKSPACE_SECRET_KEY=secrets.token_urlsafe(48))
        servers: list[Server] = []
        try:
            for i in range(3):
                servers.append(Server(env, tmp_path / f"serve-{i}.log", cwd=tmp_path))
            for server in servers:
                server.wait_healthy()
            outputs = [server.output() for server in servers]
            assert sum("A demo organization was created" in out for out in outputs) == 1, outputs
            for out in outputs:
                assert "Traceback" not in out and "database error" not in out, out
            engine = create_engine(url)
            try:
                with engine.connect() as conn:
                    assert conn.execute(text("select count(*) from tenant")).scalar() == 1
            finally:
                engine.dispose()
        finally:
            for server in servers:
                server.stop()
