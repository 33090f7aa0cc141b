"""Shared pieces of the browser tests: the served instance and its database, signing in through the
login page, creating a project through the projects page, and seeding members, teams and tasks."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from test_browser_flow import Server, serve_embedded


def served_fixture(prefix: str) -> Callable[..., Iterator[tuple[Server, Path]]]:
    """A module-scoped ``served`` fixture: ``workspace serve`` in embedded mode and its data directory."""

    @pytest.fixture(scope="module")
    def served() -> Iterator[tuple[Server, Path]]:
        with serve_embedded(prefix) as running:
            yield running

    return served


def db_fixture(cls: type[ServedDb]) -> Callable[..., Iterator[Any]]:
    """A module-scoped ``db`` fixture: ``cls`` opened on the ``served`` instance's data directory."""

    @pytest.fixture(scope="module")
    def db(served) -> Iterator[Any]:  # type: ignore[no-untyped-def]
        database = cls(served[1])
        yield database
        database.runtime.close()

    return db


def login(page, base: str, email: str, password: str) -> None:  # type: ignore[no-untyped-def]
    """Sign in through the login page of the server at ``base`` and wait for the tenant's home."""
    page.goto(base + "/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/t/demo/$"))


def create_project(page, server: Server, title: str, template: str) -> int:  # type: ignore[no-untyped-def]
    page.goto(server.url + "/t/demo/projects")
    page.fill("#f-title", title)
    radio = page.locator(f'input[name="template"][value="{template}"]')
    page.locator("label", has=radio).click()  # the card is the control; the radio itself is hidden
    assert radio.is_checked()
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url(re.compile(r"/t/demo/projects/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


class ServedDb:
    """The served instance's SQLite database, in the "demo" tenant."""

    def __init__(self, data_dir: Path) -> None:
        from workspace.config import load_settings
        from workspace.runtime import build_runtime
        from workspace.tenancy.repositories import tenant_by_slug

        self.runtime = build_runtime(load_settings({"WORKSPACE_DATA_DIR": str(data_dir)}), watch_policy=False)
        with self.runtime.unit_of_work() as db:
            self.tenant_id = tenant_by_slug(db, "demo").id

    def add_task(self, project_id: int, data: dict | str) -> int:  # type: ignore[type-arg]
        """A task with ``data`` (a string is the ``text`` field)."""
        with self.runtime.unit_of_work(self.tenant_id) as db:
            return self.new_task(db, project_id, data)

    @staticmethod
    def new_task(db, project_id: int, data: dict | str) -> int:  # type: ignore[no-untyped-def, type-arg]
        """A task in the open unit of work ``db`` (a string ``data`` is the ``text`` field)."""
        from workspace.lib.timeutil import utcnow
        from workspace.workflow.models import Task

        task = Task(project_id=project_id, data={"text": data} if isinstance(data, str) else data, created_at=utcnow())
        db.add(task)
        db.flush()
        return task.id

    def owner_context(self, db, owner_email: str):  # type: ignore[no-untyped-def]
        """The owner's TenantContext with every permission, to call the services as them."""
        from workspace.tenancy import repositories as repo
        from workspace.tenancy.context import TenantContext
        from workspace.tenancy.permissions import CATALOGUE

        owner = repo.user_by_email(db, owner_email)
        return TenantContext(self.tenant_id, "demo", "Demo", owner.id, owner.email, "",
                             repo.membership_of(db, owner.id).id, "owner", permissions=frozenset(CATALOGUE))

    def add_member(self, db, email: str, name: str, password: str, role: str) -> int:  # type: ignore[no-untyped-def]
        """A user with a membership and that role in the policy; returns the user's id."""
        from workspace.tenancy.authz import policy
        from workspace.tenancy.identity import hash_password
        from workspace.tenancy.models import Membership, User

        user = User(email=email, name=name, password_hash=hash_password(password))
        db.add(user)
        db.flush()
        db.add(Membership(user_id=user.id, role=role))
        policy.set_member_role(db, self.tenant_id, user.id, role)
        return user.id

    def add_annotator(self, owner_email: str, project_id: int, email: str, name: str, password: str) -> int:
        """A new annotator member granted ``project_id`` (through the services, as the owner)."""
        from workspace.tenancy.services import grant_project_role

        with self.runtime.unit_of_work(self.tenant_id) as db:
            user_id = self.add_member(db, email, name, password, "annotator")
            grant_project_role(db, self.owner_context(db, owner_email), project_id, "annotator", user_id=user_id)
            return user_id


# The module-scoped chromium and a fresh console collector per test, for modules to import
# (``from _pages import browser, console``): a conftest.py here would shadow the suite's own conftest module.
from test_browser_flow import Console, browser  # noqa: E402,F401


@pytest.fixture
def console() -> Console:
    return Console()
