"""Test fixtures: every DB-backed test runs on SQLite and on PostgreSQL (real servers, no mocks).

Service-backed tests skip with a reason when PostgreSQL or Redis is unreachable, and FAIL instead
when CI=true, so CI can't pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from workspace.config import REPO_ROOT, Settings, load_settings

PG_HOST = os.environ.get("WORKSPACE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("WORKSPACE_TEST_PG_PORT", "5432"))
PG_ADMIN_URL = os.environ.get(
    "WORKSPACE_TEST_PG_ADMIN_URL", f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/postgres"
)
REDIS_URL = os.environ.get("WORKSPACE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
SECRET = "test-secret-key-" + "x" * 40


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, ok: bool) -> None:
    if ok:
        return
    message = f"{name} is not reachable"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: service-backed tests must run)")
    pytest.skip(f"{message}; start it to run this test")


def pg_available() -> bool:
    if not _reachable(PG_HOST, PG_PORT):
        return False
    try:
        eng = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
        return True
    except Exception:
        return False


def redis_available() -> bool:
    from urllib.parse import urlparse

    parsed = urlparse(REDIS_URL)
    return _reachable(parsed.hostname or "127.0.0.1", parsed.port or 6379)


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_service("Redis", redis_available())
    return REDIS_URL


# --- databases ---------------------------------------------------------------------------------


@dataclass
class Database:
    kind: str
    url: str


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from workspace.db import make_engine
    from workspace.db.migrate import upgrade

    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def _pg_database() -> Iterator[str]:
    require_service("PostgreSQL", pg_available())
    from workspace.db import make_engine
    from workspace.db.migrate import upgrade

    name = f"ws_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def _truncate_pg(url: str) -> None:
    from workspace.db.registry import load_models

    tables = ", ".join(f'"{t.name}"' for t in load_models().metadata.sorted_tables)
    eng = create_engine(url)
    with eng.begin() as conn:
        # A connection leaked by an earlier test must not block the next one forever.
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    with eng.begin() as conn:
        conn.execute(text("SET LOCAL lock_timeout = '20s'"))
        # TRUNCATE does not fire the row triggers that keep audit rows append-only.
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        template = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "workspace.sqlite3"
        shutil.copy(template, path)
        return Database("sqlite", f"sqlite:///{path}")
    url = request.getfixturevalue("_pg_database")
    _truncate_pg(url)
    return Database("postgresql", url)


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    base = load_settings({"WORKSPACE_DATA_DIR": str(tmp_path / "data"), "WORKSPACE_SECRET_KEY": SECRET})
    return replace(base, database_url=database.url)


@pytest.fixture
def runtime(settings: Settings):  # type: ignore[no-untyped-def]
    from workspace.runtime import build_runtime

    rt = build_runtime(settings, watch_policy=False)
    yield rt
    rt.close()


@pytest.fixture
def app(settings: Settings, runtime):  # type: ignore[no-untyped-def]
    from workspace.app import create_app

    return create_app(settings, runtime=runtime)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    from litestar.testing import TestClient

    with TestClient(app, base_url="http://testserver.local") as c:
        c.follow_redirects = False
        yield c


@pytest.fixture
def make_client(app):  # type: ignore[no-untyped-def]
    """Extra independent browsers (separate cookie jars) against the same app.

    They don't run the app's lifespan (entering several lifespans of one app hangs on exit); the app
    has no start-up work that requests depend on.
    """
    from litestar.testing import TestClient

    def factory():  # type: ignore[no-untyped-def]
        c = TestClient(app, base_url="http://testserver.local")
        c.follow_redirects = False
        return c

    return factory


# --- world building ----------------------------------------------------------------------------


@dataclass
class Person:
    email: str
    password: str
    user_id: int
    membership_id: int


@dataclass
class World:
    tenant_id: int
    slug: str
    owner: Person


PASSWORD = "correct horse battery"


def make_tenant(runtime, slug: str, owner_email: str | None = None) -> World:  # type: ignore[no-untyped-def]
    from workspace.tenancy import repositories as repo
    from workspace.tenancy.services import create_tenant

    email = owner_email or f"owner@{slug}.example"
    with runtime.unit_of_work() as db:
        tenant, user, _ = create_tenant(db, slug, slug.title(), email, PASSWORD)
        membership = repo.membership_of(db, user.id)
        return World(tenant.id, slug, Person(email, PASSWORD, user.id, membership.id))


def add_member(runtime, world: World, email: str, role: str, password: str = PASSWORD) -> Person:  # type: ignore[no-untyped-def]
    """Add an existing-or-new user to the tenant with a role (through the services, audited)."""
    from workspace.tenancy import repositories as repo
    from workspace.tenancy.authz import policy
    from workspace.tenancy.identity import hash_password
    from workspace.tenancy.models import Membership, User

    with runtime.unit_of_work(world.tenant_id) as db:
        user = repo.user_by_email(db, email)
        if user is None:
            user = User(email=email, name=email.split("@")[0].title(), password_hash=hash_password(password))
            db.add(user)
            db.flush()
        membership = Membership(user_id=user.id, role=role)
        db.add(membership)
        policy.set_member_role(db, world.tenant_id, user.id, role)
        db.flush()
        return Person(email, password, user.id, membership.id)


def grant_project(runtime, world: World, project_id: int, role: str = "annotator", *,  # type: ignore[no-untyped-def]
                  person: Person | None = None, team_id: int | None = None) -> int:
    """Grant a project role to a member or a team, as the owner (through the service); the grant's id."""
    from workspace.tenancy.context import TenantContext
    from workspace.tenancy.permissions import CATALOGUE
    from workspace.tenancy.services import grant_project_role

    owner = TenantContext(world.tenant_id, world.slug, world.slug, world.owner.user_id, world.owner.email, "",
                          world.owner.membership_id, "owner", permissions=frozenset(CATALOGUE))
    with runtime.unit_of_work(world.tenant_id) as db:
        grant = grant_project_role(db, owner, project_id, role, user_id=person.user_id if person else None,
                                   team_id=team_id)
        return grant.id


def csrf_token(client) -> str:  # type: ignore[no-untyped-def]
    token = client.cookies.get("ws_csrf")
    if not token:
        client.get("/login")
        token = client.cookies.get("ws_csrf")
    return token


def login(client, person: Person | str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    email = person.email if isinstance(person, Person) else person
    pw = person.password if isinstance(person, Person) else password
    response = client.post("/login", data={"email": email, "password": pw, "_csrf_token": csrf_token(client)})
    assert response.status_code in (302, 303), response.text[:500]
    return response


def post_form(client, path: str, data: dict | None = None, **kwargs):  # type: ignore[no-untyped-def]
    payload = dict(data or {})
    payload["_csrf_token"] = csrf_token(client)
    return client.post(path, data=payload, **kwargs)


def api_token(runtime, world: World, person: Person) -> str:  # type: ignore[no-untyped-def]
    from workspace.tenancy.services import create_api_token

    with runtime.unit_of_work(world.tenant_id) as db:
        return create_api_token(db, world.tenant_id, person.user_id, "test").key


@pytest.fixture
def htmx_path() -> Path:
    return REPO_ROOT / "build" / "node_modules" / "htmx.org" / "dist" / "htmx.min.js"


@pytest.fixture
def world(runtime):  # type: ignore[no-untyped-def]
    """A tenant "acme" and its owner (a test file may define its own ``world``)."""
    return make_tenant(runtime, "acme")


@pytest.fixture
def api(client, runtime, world):  # type: ignore[no-untyped-def]
    """The Label Studio API as ``world``'s owner, with a legacy token."""
    from lsapi_client import Api

    return Api(client, api_token(runtime, world, world.owner))
