"""End-to-end browser test: a real ``workspace serve`` process driven by Debian's chromium.

Covers the acceptance flow of the members feature (sign in, invite, accept in a second browser,
change the role over htmx, check the audit log and its hash chain) and visits every page once,
saving a full-page screenshot of each into ``test-artifacts/screenshots/`` for a human to review.

Every page must load without a console error (CSP violations are console errors in chromium).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
INVITEE_PASSWORD = "invitee password 42"
TIMEOUT_MS = 10_000


# --- the server ----------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    email: str
    password: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 only, never a proxy
    try:
        with opener.open(url + "/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextmanager
def serve_embedded(prefix: str = "ws-browser-", **settings: str) -> Iterator[tuple[Server, Path]]:
    """A real ``workspace serve`` in embedded mode on a free loopback port, with its data directory.

    ``settings`` are extra ``WORKSPACE_*`` environment variables (e.g. a lower import-job threshold)."""
    executable = REPO / ".venv" / "bin" / "workspace"
    if not executable.exists():
        executable = Path(sys.executable).with_name("workspace")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WORKSPACE_") or k == "WORKSPACE_HTMX_PATH"}
    # Embedded mode (SQLite, no Redis). Invitation links must point at this server without any setting.
    env.update(WORKSPACE_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1",
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", **settings)
    process = subprocess.Popen(
        [str(executable), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
    )
    lines: list[str] = []

    def drain() -> None:  # keep reading so the pipe never fills up and blocks the server
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=drain, daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while not _healthy(url):
            if process.poll() is not None:
                pytest.fail("workspace serve exited early:\n" + "\n".join(lines))
            if time.monotonic() > deadline:
                pytest.fail("workspace serve did not answer /healthz within 30 s:\n" + "\n".join(lines))
            time.sleep(0.1)
        text = "\n".join(lines)
        email = re.search(r"^\s+e-mail:\s+(\S+)\s*$", text, re.M)
        password = re.search(r"^\s+password:\s+(\S+)\s*$", text, re.M)
        if not (email and password):
            pytest.fail("the demo credentials were not printed:\n" + text)
        yield Server(url, email.group(1), password.group(1), process, lines), data_dir
    finally:
        _stop(process)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with serve_embedded() as (running, _data_dir):
        yield running


# --- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"{reason}; CI=true: browser tests must run")
        pytest.skip(reason)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if IN_CI:
            pytest.fail("python playwright is not installed; CI=true: browser tests must run")
        pytest.skip("python playwright is not installed (pip install -e .[test])")

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Console:
    """Console errors and uncaught exceptions of every page of a context."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.expected: list[re.Pattern[str]] = []
        self.failed: list[str] = []  # responses >= 400, to say which request a console error is about

    def watch(self, page) -> None:  # type: ignore[no-untyped-def]
        page.on("console", lambda msg: self._console(page, msg))
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: uncaught {exc}"))
        page.on("response", lambda r: self.failed.append(f"{r.status} {r.request.method} {r.url}")
                if r.status >= 400 else None)

    def _console(self, page, msg) -> None:  # type: ignore[no-untyped-def]
        if msg.type != "error":
            return
        text = f"{page.url}: {msg.text}"
        if any(p.search(text) for p in self.expected):
            return
        self.errors.append(text)

    def allow(self, pattern: str) -> None:
        self.expected.append(re.compile(pattern))

    def assert_clean(self) -> None:
        assert not self.errors, ("console errors:\n" + "\n".join(self.errors)
                                 + "\nresponses >= 400:\n" + "\n".join(self.failed))


@pytest.fixture
def console() -> Console:
    return Console()


def new_page(browser, console: Console):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    console.watch(page)
    return context, page


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page, server: Server) -> None:  # type: ignore[no-untyped-def]
    page.goto(server.url + "/login")
    page.fill("#email", server.email)
    page.fill("#password", server.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/t/demo/$"))


def invite(page, server: Server, email: str, role: str = "annotator") -> str:  # type: ignore[no-untyped-def]
    page.goto(server.url + "/t/demo/members")
    page.fill("#f-email", email)
    page.select_option("#f-role", role)
    page.get_by_role("button", name="Create invitation").click()
    link = page.get_by_test_id("invite-link")
    link.wait_for()
    value = link.input_value()
    assert value.startswith(server.url + "/invite/"), value
    return value


def accept(page, link: str, name: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(link)
    page.fill("#f-name", name)
    page.fill("#f-password", INVITEE_PASSWORD)
    page.get_by_role("button", name="Create account and join").click()
    page.wait_for_url(re.compile(r"/t/demo/$"))


# --- tests ---------------------------------------------------------------------------------------


def test_invite_accept_change_role_and_audit(browser, server: Server, console: Console) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    owner_ctx, page = new_page(browser, console)
    guest_ctx, guest = new_page(browser, console)
    try:
        page.goto(server.url + "/login")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        shot(page, "01-login")
        sign_in(page, server)
        expect(page.get_by_role("heading", name="Demo Organization")).to_be_visible()
        shot(page, "02-tenant-home")

        invitee = "ada@example.com"
        link = invite(page, server, invitee, "annotator")
        expect(page.get_by_role("status").filter(has_text="Invitation for ada@example.com created")).to_be_visible()
        shot(page, "03-members-invite-link")

        # The invitee opens the link in a browser of their own.
        guest.goto(link)
        expect(guest.get_by_role("heading", name="Join Demo Organization")).to_be_visible()
        shot(guest, "04-invitation-accept")
        accept(guest, link, "Ada Lovelace")
        expect(guest.get_by_text("Welcome to Demo Organization.")).to_be_visible()
        shot(guest, "05-invitee-home")

        # Back as the owner: the new member is listed; change their role in place (htmx swaps the row).
        page.goto(server.url + "/t/demo/members")
        row = page.locator(f'tr[data-email="{invitee}"]')
        expect(row.get_by_test_id("role-select")).to_have_value("annotator")
        row_id = row.get_attribute("id")
        with page.expect_response(lambda r: r.url.endswith("/role") and r.request.method == "POST") as posted:
            row.get_by_test_id("role-select").select_option("reviewer")
        assert posted.value.status == 200
        assert posted.value.request.headers.get("hx-request") == "true", "the role change must go through htmx"
        swapped = page.locator(f"#{row_id}")
        expect(swapped.get_by_role("status")).to_have_text(f"{invitee} is now Reviewer.")
        assert page.url.endswith("/t/demo/members"), "htmx swaps the row; the page does not navigate"
        shot(page, "06-members-role-changed")
        page.reload()
        expect(page.locator(f'tr[data-email="{invitee}"]').get_by_test_id("role-select")).to_have_value("reviewer")

        # The audit log shows every step, and the chain verifies.
        page.goto(server.url + "/t/demo/audit")
        actions = page.get_by_test_id("audit-row")
        expect(actions.first).to_be_visible()
        seen = set(actions.evaluate_all("rows => rows.map(r => r.dataset.action)"))
        for action in ("auth.login", "invitation.created", "membership.created", "membership.role_changed"):
            assert action in seen, f"{action} missing from the audit log (saw {sorted(seen)})"
        updated = page.locator('tr[data-action="membership.role_changed"]').first
        expect(updated).to_contain_text("annotator")
        expect(updated).to_contain_text("reviewer")
        page.get_by_test_id("verify-chain").click()
        expect(page.get_by_test_id("verify-result")).to_contain_text("Chain intact")
        assert page.url.endswith("/t/demo/audit")
        shot(page, "07-audit-log")
        console.assert_clean()
    finally:
        guest_ctx.close()
        owner_ctx.close()


def test_every_page_renders_without_console_errors(browser, server: Server, console: Console) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    owner_ctx, page = new_page(browser, console)
    guest_ctx, guest = new_page(browser, console)
    try:
        sign_in(page, server)
        invitee = "grace@example.com"
        accept(guest, invite(page, server, invitee, "annotator"), "Grace Hopper")
        guest_ctx.close()

        # Teams: create one with the form, then add the invitee on its page.
        page.goto(server.url + "/t/demo/teams")
        shot(page, "08-teams-empty")
        page.fill("#f-name", "Annotators")
        page.fill("#f-description", "Everyone who labels text and images.")
        page.get_by_role("button", name="Create team").click()
        page.wait_for_url(re.compile(r"/t/demo/teams/\d+$"))
        expect(page.get_by_role("heading", name="Annotators", exact=True)).to_be_visible()
        page.get_by_role("checkbox", name=re.compile("grace@example.com")).check()
        page.get_by_role("button", name="Add selected").click()
        expect(page.get_by_text("1 member(s) added.")).to_be_visible()
        expect(page.locator("main table")).to_contain_text(invitee)
        shot(page, "09-team-detail")
        page.goto(server.url + "/t/demo/teams")
        expect(page.get_by_role("link", name="Annotators")).to_be_visible()
        shot(page, "10-teams")

        # Roles: the matrix, plus a custom role made with the form (it becomes a column of its own).
        page.goto(server.url + "/t/demo/roles")
        expect(page.get_by_test_id("permission-matrix")).to_be_visible()
        page.fill("#f-key", "qa-lead")
        page.fill("#f-name", "QA lead")
        for perm in ("project:read", "project:review", "audit:read"):
            page.check(f'input[name="permissions"][value="{perm}"]')
        page.get_by_role("button", name="Create role").click()
        expect(page.get_by_text("Role QA lead saved.")).to_be_visible()
        expect(page.get_by_test_id("permission-matrix").locator("thead")).to_contain_text("QA lead")
        shot(page, "11-roles-matrix")

        # Explain: pick a member and a permission, press Explain.
        page.goto(server.url + "/t/demo/explain")
        page.select_option("#member", label=invitee)
        page.select_option("#permission", "member:invite")
        page.get_by_role("button", name="Explain").click()
        page.wait_for_url(re.compile(r"/t/demo/explain\?member=\d+&permission=member%3Ainvite"))
        expect(page.get_by_test_id("explain-answer")).to_contain_text("No")
        page.select_option("#member", label=server.email)
        page.get_by_role("button", name="Explain").click()
        expect(page.get_by_test_id("explain-answer")).to_contain_text("Yes")
        shot(page, "12-explain")

        page.goto(server.url + "/t/demo/tokens")
        page.fill("#f-name", "training pipeline")
        page.fill("#f-expires_days", "90")
        page.get_by_role("button", name="Create token").click()
        expect(page.get_by_test_id("new-token")).not_to_have_value("")
        shot(page, "13-tokens")

        page.goto(server.url + "/t/demo/account")
        expect(page.get_by_role("heading", name="Change password")).to_be_visible()
        shot(page, "14-account")

        page.goto(server.url + "/t/demo/projects")
        shot(page, "15-projects-empty")
        page.fill("#f-title", "Support ticket intents")
        page.fill("#f-description", "Classify incoming tickets by customer intent.")
        page.get_by_role("button", name="Create project").click()
        page.wait_for_url(re.compile(r"/t/demo/projects/\d+$"))
        expect(page.get_by_role("heading", name="Support ticket intents")).to_be_visible()
        page.select_option("#subject", label="Annotators")
        page.select_option("#role", "annotator")
        page.get_by_role("button", name="Grant").click()
        expect(page.get_by_text("Grant saved.")).to_be_visible()
        shot(page, "16-project-detail")
        page.goto(server.url + "/t/demo/projects")
        expect(page.get_by_role("link", name="Support ticket intents")).to_be_visible()
        shot(page, "17-projects")

        page.goto(server.url + "/t/demo/")
        shot(page, "18-tenant-home-busy")
        page.goto(server.url + "/t/demo/audit")
        shot(page, "19-audit-log-busy")

        # A phone-sized viewport: the layout collapses without sideways scrolling.
        page.set_viewport_size({"width": 390, "height": 844})
        for path, name in (("/t/demo/members", "21-mobile-members"), ("/t/demo/audit", "22-mobile-audit")):
            page.goto(server.url + path)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
            shot(page, name)
        page.set_viewport_size({"width": 1360, "height": 860})

        # A styled 404 page (the one expected console error is the failed document load itself).
        console.allow(r"/t/nonexistent/: Failed to load resource: the server responded with a status of 404")
        response = page.goto(server.url + "/t/nonexistent/")
        assert response is not None and response.status == 404
        expect(page.locator(".status-code")).to_have_text("404")
        expect(page.get_by_role("link", name=re.compile("home page", re.I))).to_be_visible()
        styled = page.evaluate("getComputedStyle(document.querySelector('.error-card')).borderTopLeftRadius")
        assert styled not in ("", "0px"), "the error page must use the app's stylesheet"
        shot(page, "20-error-404")

        # Signing out lands on the login page again.
        page.goto(server.url + "/t/demo/")
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r"/login$"))
        console.assert_clean()
    finally:
        owner_ctx.close()
