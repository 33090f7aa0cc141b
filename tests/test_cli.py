"""The ``workspace`` command line, run as a real subprocess against the test databases (no mocks).

Every command gets its settings from ``WORKSPACE_*`` variables only, like an operator's shell. The
tampering tests change audit rows behind the app's back (switching off the append-only triggers the
way a database superuser could) and check that ``workspace audit verify`` names the damaged seq.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import SECRET, Database
from sqlalchemy import create_engine, exc, text

WORKSPACE = Path(sys.executable).with_name("workspace")
CLI_TIMEOUT = 90
OWNER_PASSWORD = "correct horse battery"


# --- helpers -----------------------------------------------------------------------------------


def clean_env(**values: str) -> dict[str, str]:
    """The test process's environment without any WORKSPACE_* leaking in, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKSPACE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(values)
    return env


@pytest.fixture
def cli_env(database: Database, tmp_path: Path) -> dict[str, str]:
    return clean_env(
        WORKSPACE_DATA_DIR=str(tmp_path / "cli-data"),
        WORKSPACE_DATABASE_URL=database.url,
        WORKSPACE_SECRET_KEY=SECRET,
    )


def run(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert WORKSPACE.is_file(), f"the console script is not installed at {WORKSPACE}"
    return subprocess.run(
        [str(WORKSPACE), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=CLI_TIMEOUT,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def refused(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Non-zero exit, a one-line explanation on stderr mentioning every needle, no traceback."""
    assert result.returncode not in (0, None), f"expected a failure\nstdout:\n{result.stdout}"
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip(), "no message on stderr"
    for needle in needles:
        assert needle in result.stderr, f"{needle!r} not in {result.stderr!r}"


def create_tenant(env: dict[str, str], slug: str, email: str | None = None) -> str:
    email = email or f"o@{slug}.example"
    result = ok(run(env, "create-tenant", slug, "--name", slug.title(), "--owner-email", email,
                    "--owner-password", OWNER_PASSWORD))
    assert f"created tenant {slug}" in result.stdout
    assert email in result.stdout
    return email


def tenant_seqs(database: Database, slug: str) -> list[int]:
    engine = create_engine(database.url)
    try:
        with engine.connect() as conn:
            return [s for (s,) in conn.execute(text(
                "select e.seq from audit_event e join tenant t on t.id = e.tenant_id "
                "where t.slug = :slug order by e.seq"), {"slug": slug})]
    finally:
        engine.dispose()


def behind_the_apps_back(database: Database, statement: str, params: dict[str, object]) -> int:
    """Run an UPDATE/DELETE on audit_event with its append-only triggers switched off; returns rowcount.

    The triggers are back in place afterwards (on PostgreSQL the whole thing is one transaction).
    """
    engine = create_engine(database.url)
    try:
        with engine.begin() as conn:
            if database.kind == "postgresql":
                conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
                count = conn.execute(text(statement), params).rowcount
                conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
            else:
                triggers = conn.execute(text(
                    "select name, sql from sqlite_master where type = 'trigger' and tbl_name = 'audit_event'"
                )).all()
                assert {n for n, _ in triggers} == {"audit_event_no_update", "audit_event_no_delete"}
                for name, _sql in triggers:
                    conn.execute(text(f'DROP TRIGGER "{name}"'))
                count = conn.execute(text(statement), params).rowcount
                for _name, sql in triggers:
                    conn.execute(text(sql))
        return count
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A ``workspace serve`` subprocess whose output (stdout and stderr) goes to a log file."""

    def __init__(self, env: dict[str, str], log_path: Path, cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [str(WORKSPACE), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output())
            if match:
                return match
            if self.proc.poll() is not None:
                pytest.fail(f"workspace serve exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.1)
        pytest.fail(f"no {pattern!r} within {timeout}s:\n{self.output()}")

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"workspace serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"{self.url}/healthz not up within {timeout}s:\n{self.output()}")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code (None if it had to be killed)."""
        graceful: int | None = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                graceful = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        else:
            graceful = self.proc.returncode
        self._log.close()
        return graceful


def browser_login(client: httpx.Client, email: str, password: str) -> httpx.Response:
    page = client.get("/login")
    assert page.status_code == 200, page.text[:300]
    token = client.cookies.get("ws_csrf")
    assert token, "GET /login set no ws_csrf cookie"
    return client.post("/login", data={"email": email, "password": password, "_csrf_token": token})


# --- migrate / create-tenant -------------------------------------------------------------------


def test_migrate_is_idempotent(cli_env):
    result = ok(run(cli_env, "migrate"))
    assert "newest schema" in result.stdout
    ok(run(cli_env, "migrate"))


def test_migrate_builds_an_empty_sqlite_database(tmp_path):
    env = clean_env(WORKSPACE_DATA_DIR=str(tmp_path / "fresh"), WORKSPACE_SECRET_KEY=SECRET)
    ok(run(env, "migrate", cwd=tmp_path))
    assert (tmp_path / "fresh" / "workspace.sqlite3").is_file()
    ok(run(env, "create-tenant", "acme", "--name", "Acme", "--owner-email", "o@acme.example",
           "--owner-password", OWNER_PASSWORD, cwd=tmp_path))
    result = ok(run(env, "audit", "verify", cwd=tmp_path))
    assert re.search(r"^acme: ok \(\d+ events\)$", result.stdout, re.MULTILINE), result.stdout


def test_create_tenant(cli_env, runtime):
    from workspace.tenancy import repositories as repo
    from workspace.tenancy.identity import verify_password
    from workspace.tenancy.scoping import bind_tenant

    result = ok(run(cli_env, "create-tenant", "acme", "--name", "Acme", "--owner-email", "o@acme.example",
                    "--owner-password", OWNER_PASSWORD))
    assert result.stdout.strip() == "created tenant acme (Acme) owned by o@acme.example"
    assert "owner password" not in result.stdout  # it was given, so none is generated
    with runtime.unit_of_work() as db:
        tenant = repo.tenant_by_slug(db, "acme")
        assert tenant is not None and tenant.name == "Acme"
        bind_tenant(db, tenant.id)
        user = repo.user_by_email(db, "o@acme.example")
        assert user is not None and verify_password(user.password_hash, OWNER_PASSWORD)
        membership = repo.membership_of(db, user.id)
        assert membership is not None and membership.role == "owner" and membership.status == "active"


def test_create_tenant_generates_a_password_when_none_is_given(cli_env, client):
    result = ok(run(cli_env, "create-tenant", "beta", "--name", "Beta", "--owner-email", "o@beta.example"))
    match = re.search(r"^owner password: (\S+)$", result.stdout, re.MULTILINE)
    assert match, result.stdout
    response = client.post("/login", data={"email": "o@beta.example", "password": match.group(1),
                                           "_csrf_token": _csrf(client)})
    assert response.status_code == 303, response.text[:300]


def _csrf(client) -> str:  # type: ignore[no-untyped-def]
    client.get("/login")
    return client.cookies.get("ws_csrf")


@pytest.mark.parametrize("slug", ["Bad Slug!", "-acme", "acme-", "a" * 64, "acme_corp", ""])
def test_create_tenant_bad_slug(cli_env, slug):
    # "--" so that a slug starting with a dash reaches the command rather than argparse.
    refused(run(cli_env, "create-tenant", "--name", "X", "--owner-email", "o@x.example",
                "--owner-password", OWNER_PASSWORD, "--", slug), "slug")


def test_create_tenant_duplicate_slug(cli_env, runtime):
    from workspace.tenancy.models import Tenant

    create_tenant(cli_env, "acme")
    result = run(cli_env, "create-tenant", "acme", "--name", "Other", "--owner-email", "x@other.example",
                 "--owner-password", OWNER_PASSWORD)
    refused(result, "acme", "taken")
    # Slugs are case-insensitive: ACME is the same tenant.
    refused(run(cli_env, "create-tenant", "ACME", "--name", "Other", "--owner-email", "x@other.example",
                "--owner-password", OWNER_PASSWORD), "taken")
    with runtime.unit_of_work() as db:
        assert [t.name for t in db.query(Tenant).all()] == ["Acme"]


def test_create_tenant_bad_owner_details(cli_env):
    refused(run(cli_env, "create-tenant", "acme", "--name", "Acme", "--owner-email", "not-an-email",
                "--owner-password", OWNER_PASSWORD), "owner_email")
    refused(run(cli_env, "create-tenant", "acme", "--name", "Acme", "--owner-email", "o@acme.example",
                "--owner-password", "short"), "owner_password")
    refused(run(cli_env, "create-tenant", "acme", "--name", "   ", "--owner-email", "o@acme.example",
                "--owner-password", OWNER_PASSWORD), "name")
    # None of the refusals left a half-made tenant behind.
    ok(run(cli_env, "create-tenant", "acme", "--name", "Acme", "--owner-email", "o@acme.example",
           "--owner-password", OWNER_PASSWORD))


def test_create_tenant_for_an_existing_user_keeps_their_password(cli_env, runtime):
    from workspace.tenancy import repositories as repo
    from workspace.tenancy.identity import verify_password

    create_tenant(cli_env, "acme")
    result = ok(run(cli_env, "create-tenant", "beta", "--name", "Beta", "--owner-email", "O@Acme.example",
                    "--owner-password", "a different password"))
    assert "created tenant beta (Beta) owned by o@acme.example" in result.stdout
    assert "password was ignored" in result.stdout  # the operator is told
    with runtime.unit_of_work() as db:
        user = repo.user_by_email(db, "o@acme.example")
        assert verify_password(user.password_hash, OWNER_PASSWORD)
    # The same person now owns both tenants; tokens work in either, slugs in any case.
    ok(run(cli_env, "create-token", "--tenant", "BETA", "--email", "o@acme.example"))
    assert ok(run(cli_env, "audit", "verify", "--tenant", "Beta")).stdout.startswith("beta: ok")


def test_bad_settings_are_a_message_not_a_traceback(cli_env):
    env = dict(cli_env, WORKSPACE_SECRET_KEY="too-short")
    refused(run(env, "audit", "verify"), "WORKSPACE_SECRET_KEY")
    env = dict(cli_env, WORKSPACE_DATABASE_URL="mysql://nope")
    refused(run(env, "migrate"), "WORKSPACE_DATABASE_URL")


# --- create-token ------------------------------------------------------------------------------


def test_create_token_prints_a_working_key_on_its_last_line(cli_env, client):
    create_tenant(cli_env, "acme")
    result = ok(run(cli_env, "create-token", "--tenant", "acme", "--email", "o@acme.example"))
    lines = result.stdout.rstrip("\n").split("\n")
    key = lines[-1]
    assert key == key.strip() and " " not in key and len(key) >= 20, lines
    assert key not in "\n".join(lines[:-1]), "the key must be alone on the last line"

    response = client.get("/api/current-user/whoami", headers={"Authorization": f"Token {key}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["email"] == "o@acme.example"
    assert body["workspace"]["tenant"] == "acme"
    assert body["workspace"]["role"] == "owner"

    # A different key (one character changed) is not accepted.
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert client.get("/api/current-user/whoami", headers={"Authorization": f"Token {forged}"}).status_code == 401


def test_create_token_refuses_unknown_tenant_and_non_members(cli_env):
    create_tenant(cli_env, "acme")
    create_tenant(cli_env, "beta")
    refused(run(cli_env, "create-token", "--tenant", "nope", "--email", "o@acme.example"), "nope")
    refused(run(cli_env, "create-token", "--tenant", "acme", "--email", "who@acme.example"), "who@acme.example")
    # A user of another tenant is not a member here.
    refused(run(cli_env, "create-token", "--tenant", "acme", "--email", "o@beta.example"), "o@beta.example")


def test_create_token_refuses_a_deactivated_member(cli_env, runtime):
    from conftest import Person, World, add_member

    from workspace.tenancy import repositories as repo
    from workspace.tenancy.models import Membership

    create_tenant(cli_env, "acme")
    with runtime.unit_of_work() as db:
        tenant = repo.tenant_by_slug(db, "acme")
        assert tenant is not None
        world = World(tenant.id, "acme", Person("o@acme.example", OWNER_PASSWORD, 0, 0))
    person = add_member(runtime, world, "gone@acme.example", "annotator")
    with runtime.unit_of_work(world.tenant_id) as db:
        db.get(Membership, person.membership_id).status = "deactivated"
    refused(run(cli_env, "create-token", "--tenant", "acme", "--email", "gone@acme.example"), "not an active member")


def test_create_token_refuses_a_disabled_user(cli_env, runtime):
    from workspace.tenancy import repositories as repo

    create_tenant(cli_env, "acme")
    with runtime.unit_of_work() as db:
        repo.user_by_email(db, "o@acme.example").is_active = False
    refused(run(cli_env, "create-token", "--tenant", "acme", "--email", "o@acme.example"), "not an active member")


def test_create_token_options(cli_env, runtime):
    from sqlalchemy import select

    from workspace.tenancy import repositories as repo
    from workspace.tenancy.models import ApiToken

    create_tenant(cli_env, "acme")
    refused(run(cli_env, "create-token", "--tenant", "acme", "--email", "o@acme.example", "--expires-days", "0"),
            "expires_days")
    refused(run(cli_env, "create-token", "--tenant", "acme", "--email", "o@acme.example", "--name", "n" * 121),
            "name")
    ok(run(cli_env, "create-token", "--tenant", "acme", "--email", "o@acme.example", "--name", "ci",
           "--expires-days", "30"))
    with runtime.unit_of_work() as db:
        tenant_id = repo.tenant_by_slug(db, "acme").id
    with runtime.unit_of_work(tenant_id) as db:
        tokens = db.execute(select(ApiToken.name, ApiToken.expires_at)).all()
    assert len(tokens) == 1  # the refused ones left nothing behind
    assert tokens[0].name == "ci" and tokens[0].expires_at is not None


# --- audit verify ------------------------------------------------------------------------------


def test_audit_verify_with_no_tenants(cli_env):
    result = ok(run(cli_env, "audit", "verify"))
    assert "no tenants" in result.stdout


def test_audit_verify_untouched_chains(cli_env, database):
    create_tenant(cli_env, "acme")
    create_tenant(cli_env, "beta")
    ok(run(cli_env, "create-token", "--tenant", "acme", "--email", "o@acme.example"))
    result = ok(run(cli_env, "audit", "verify"))
    acme_events = len(tenant_seqs(database, "acme"))
    beta_events = len(tenant_seqs(database, "beta"))
    assert acme_events > beta_events > 0  # the token was audited in acme's chain
    assert f"acme: ok ({acme_events} events)" in result.stdout
    assert f"beta: ok ({beta_events} events)" in result.stdout
    assert "BROKEN" not in result.stdout
    assert ok(run(cli_env, "audit", "verify", "--tenant", "beta")).stdout.strip() == f"beta: ok ({beta_events} events)"
    refused(run(cli_env, "audit", "verify", "--tenant", "nope"), "nope")


def test_audit_verify_names_an_altered_row(cli_env, database):
    create_tenant(cli_env, "acme")
    create_tenant(cli_env, "beta")
    ok(run(cli_env, "create-token", "--tenant", "acme", "--email", "o@acme.example"))
    seqs = tenant_seqs(database, "acme")
    assert len(seqs) >= 3 and seqs == list(range(1, len(seqs) + 1))
    victim = seqs[len(seqs) // 2]
    changed = behind_the_apps_back(
        database,
        "update audit_event set actor_label = 'someone else' "
        "where seq = :seq and tenant_id = (select id from tenant where slug = 'acme')",
        {"seq": victim},
    )
    assert changed == 1

    result = run(cli_env, "audit", "verify")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(rf"^acme: BROKEN at seq {victim}\b", result.stdout, re.MULTILINE), result.stdout
    assert "altered" in result.stdout
    assert re.search(r"^beta: ok \(\d+ events\)$", result.stdout, re.MULTILINE), result.stdout  # other chains unaffected

    only_acme = run(cli_env, "audit", "verify", "--tenant", "acme")
    assert only_acme.returncode == 1 and f"BROKEN at seq {victim}" in only_acme.stdout
    assert ok(run(cli_env, "audit", "verify", "--tenant", "beta")).stdout.startswith("beta: ok")


def test_audit_verify_detects_a_rewritten_row_with_a_recomputed_hash(cli_env, database):
    """Re-hashing the altered row doesn't help: the next row's prev_hash no longer matches."""
    from workspace.audit.chain import event_hash, payload_of

    create_tenant(cli_env, "acme")
    ok(run(cli_env, "create-token", "--tenant", "acme", "--email", "o@acme.example"))
    seqs = tenant_seqs(database, "acme")
    victim = seqs[1]
    from sqlalchemy import select

    from workspace.audit.models import AuditEvent
    from workspace.tenancy.models import Tenant

    ev = AuditEvent.__table__
    engine = create_engine(database.url)
    with engine.connect() as conn:  # through the table, so values come back typed on both backends
        tenant_id = conn.execute(select(Tenant.id).where(Tenant.slug == "acme")).scalar_one()
        row = dict(conn.execute(select(ev).where(ev.c.tenant_id == tenant_id, ev.c.seq == victim)).mappings().one())
    engine.dispose()
    row["actor_label"] = "someone else"
    new_hash = event_hash(row["prev_hash"], payload_of(row))
    behind_the_apps_back(database, "update audit_event set actor_label = 'someone else', hash = :h "
                         "where seq = :s and tenant_id = (select id from tenant where slug = 'acme')",
                         {"h": new_hash, "s": victim})
    result = run(cli_env, "audit", "verify")
    assert result.returncode == 1, result.stdout
    assert f"acme: BROKEN at seq {victim + 1}" in result.stdout, result.stdout


def test_audit_verify_names_the_first_missing_seq_after_truncation(cli_env, database):
    create_tenant(cli_env, "acme")
    create_tenant(cli_env, "beta")
    ok(run(cli_env, "create-token", "--tenant", "acme", "--email", "o@acme.example"))
    ok(run(cli_env, "create-token", "--tenant", "acme", "--email", "o@acme.example"))
    seqs = tenant_seqs(database, "acme")
    first_gone = seqs[-2]
    deleted = behind_the_apps_back(
        database,
        "delete from audit_event where seq >= :seq and tenant_id = (select id from tenant where slug = 'acme')",
        {"seq": first_gone},
    )
    assert deleted == 2
    assert tenant_seqs(database, "acme") == seqs[:-2]

    result = run(cli_env, "audit", "verify")
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(rf"^acme: BROKEN at seq {first_gone}\b", result.stdout, re.MULTILINE), result.stdout
    assert "missing" in result.stdout
    assert "beta: ok" in result.stdout


def test_audit_verify_detects_a_deleted_middle_row(cli_env, database):
    create_tenant(cli_env, "acme")
    ok(run(cli_env, "create-token", "--tenant", "acme", "--email", "o@acme.example"))
    seqs = tenant_seqs(database, "acme")
    gone = seqs[1]
    behind_the_apps_back(database, "delete from audit_event where seq = :seq and tenant_id = "
                         "(select id from tenant where slug = 'acme')", {"seq": gone})
    result = run(cli_env, "audit", "verify")
    assert result.returncode == 1
    assert f"acme: BROKEN at seq {gone}" in result.stdout, result.stdout


def test_audit_verify_needs_the_servers_key(cli_env):
    """The chain head is sealed with WORKSPACE_SECRET_KEY: a different key doesn't vouch for it."""
    create_tenant(cli_env, "acme")
    ok(run(cli_env, "audit", "verify"))
    result = run(dict(cli_env, WORKSPACE_SECRET_KEY="another-secret-key-" + "y" * 40), "audit", "verify")
    assert result.returncode == 1
    assert "acme: BROKEN" in result.stdout and "seal" in result.stdout, result.stdout


def test_audit_verify_while_the_app_keeps_writing(cli_env, runtime, database):
    """Appends committed while verify walks the chain are not reported as missing events."""
    import threading

    from workspace.audit.chain import record
    from workspace.audit.verify import verify_tenant
    from workspace.tenancy import repositories as repo

    create_tenant(cli_env, "acme")
    with runtime.unit_of_work() as db:
        tenant_id = repo.tenant_by_slug(db, "acme").id
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            while not stop.is_set():
                with runtime.unit_of_work(tenant_id) as db:
                    record(db, "test.ping", tenant_id=tenant_id)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            failures.append(exc)

    threads = [threading.Thread(target=writer, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        reports = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            db = runtime.session_factory()
            try:
                reports.append(verify_tenant(db, SECRET, tenant_id))
            finally:
                db.rollback()
                db.close()
        cli_runs = [run(cli_env, "audit", "verify", "--tenant", "acme") for _ in range(3)]
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not failures, failures
    assert len(reports) > 5
    assert [r for r in reports if not r.ok] == []
    for result in cli_runs:
        assert result.returncode == 0, result.stdout + result.stderr
    assert ok(run(cli_env, "audit", "verify")).stdout.startswith("acme: ok")
    assert len(tenant_seqs(database, "acme")) > 10  # the writers did write


def test_audit_verify_does_not_wait_for_the_sqlite_write_lock(tmp_path):
    """An embedded server holding the write lock (it does for every request) doesn't stall verify."""
    import sqlite3

    env = clean_env(WORKSPACE_DATA_DIR=str(tmp_path / "data"), WORKSPACE_SECRET_KEY=SECRET)
    ok(run(env, "migrate", cwd=tmp_path))
    ok(run(env, "create-tenant", "acme", "--name", "Acme", "--owner-email", "o@acme.example",
           "--owner-password", OWNER_PASSWORD, cwd=tmp_path))
    writer = sqlite3.connect(tmp_path / "data" / "workspace.sqlite3", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        result = run(env, "audit", "verify", cwd=tmp_path)
        elapsed = time.monotonic() - started
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed < 15, f"verify waited {elapsed:.1f}s for the write lock"


def test_cli_on_a_database_without_the_schema(tmp_path):
    env = clean_env(WORKSPACE_DATA_DIR=str(tmp_path / "data"), WORKSPACE_SECRET_KEY=SECRET)
    refused(run(env, "create-tenant", "acme", "--name", "Acme", "--owner-email", "o@acme.example",
                "--owner-password", OWNER_PASSWORD, cwd=tmp_path), "workspace migrate")
    refused(run(env, "audit", "verify", cwd=tmp_path), "workspace migrate")
    refused(run(env, "create-token", "--tenant", "acme", "--email", "o@acme.example", cwd=tmp_path),
            "workspace migrate")


def test_cli_with_an_unreachable_database(tmp_path):
    env = clean_env(WORKSPACE_DATA_DIR=str(tmp_path / "data"), WORKSPACE_SECRET_KEY=SECRET,
                    WORKSPACE_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing")
    refused(run(env, "audit", "verify", cwd=tmp_path), "database error")
    refused(run(env, "migrate", cwd=tmp_path), "database error")


# --- the append-only triggers ------------------------------------------------------------------


def test_database_refuses_update_and_delete_of_audit_rows(cli_env, database):
    create_tenant(cli_env, "acme")
    before = tenant_seqs(database, "acme")
    assert before
    engine = create_engine(database.url)
    try:
        for statement in ("update audit_event set action = 'x' where seq = 1",
                          "update audit_event set hash = hash",
                          "delete from audit_event where seq = 1",
                          "delete from audit_event"):
            with pytest.raises(exc.DBAPIError) as caught, engine.begin() as conn:
                conn.execute(text(statement))
            assert "append-only" in str(caught.value), (statement, caught.value)
        # The chain head only moves forward, and can't be deleted.
        for statement in ("update audit_head set last_seq = last_seq - 1", "delete from audit_head"):
            with pytest.raises(exc.DBAPIError) as caught, engine.begin() as conn:
                conn.execute(text(statement))
            assert "only moves forward" in str(caught.value), (statement, caught.value)
        with engine.connect() as conn:
            assert conn.execute(text("select count(*) from audit_event where action = 'x'")).scalar() == 0
    finally:
        engine.dispose()
    assert tenant_seqs(database, "acme") == before
    ok(run(cli_env, "audit", "verify"))


# --- workspace serve, embedded mode ------------------------------------------------------------


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    data = tmp_path / "embedded-data"
    data.mkdir()
    return clean_env(WORKSPACE_DATA_DIR=str(data))


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    started: list[Server] = []

    def start(env: dict[str, str]) -> Server:
        server = Server(env, tmp_path / f"serve-{len(started)}.log", cwd=tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_serve_embedded_creates_a_demo_login_that_works(embedded_env, serve, tmp_path):
    data = Path(embedded_env["WORKSPACE_DATA_DIR"])
    server = serve(embedded_env)
    server.wait_for_output(r"password:\s+\S+")
    out = server.output()
    url = re.search(r"Workspace is starting at (http://\S+)", out)
    email = re.search(r"e-mail:\s+(\S+)", out)
    password = re.search(r"password:\s+(\S+)", out)
    assert url and email and password, out
    assert url.group(1) == f"{server.url}/"
    assert "embedded mode" in out
    server.wait_healthy()

    with server.client() as browser:
        wrong = browser_login(browser, email.group(1), password.group(1) + "x")
        assert wrong.status_code == 401
        response = browser_login(browser, email.group(1), password.group(1))
        assert response.status_code == 303, response.text[:500]
        assert browser.cookies.get("ws_session")
        home = browser.get("/")
        assert home.status_code == 303
        tenant_home = browser.get(home.headers["location"])
        assert tenant_home.status_code == 200
        assert "Demo Organization" in tenant_home.text

    # Embedded mode keeps everything in the data folder.
    assert (data / "workspace.sqlite3").is_file()
    assert (data / "secret_key").is_file()
    creds = data / "demo-credentials.txt"
    assert creds.read_text() == f"e-mail: {email.group(1)}\npassword: {password.group(1)}\n"
    assert creds.stat().st_mode & 0o077 == 0

    code = server.stop()
    assert code is not None, f"serve did not stop on SIGTERM within 15s:\n{server.output()}"

    # A restart on the same folder keeps the demo tenant (and its password) and does not print it again.
    again = serve(embedded_env)
    again.wait_for_output(r"Demo login: see \S+demo-credentials\.txt")
    again.wait_healthy()
    assert "password:" not in again.output()
    with again.client() as browser:
        assert browser_login(browser, email.group(1), password.group(1)).status_code == 303
    for log in (server.output(), again.output()):
        assert "Traceback" not in log, log
