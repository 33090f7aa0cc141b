"""The API docs page (``/schema``) renders offline in chromium: every asset comes from the served app
itself (requests to anywhere but 127.0.0.1 are aborted, and none may be attempted), no console error
(a CSP violation is one), and the operations of both APIs are listed. Then "Try it out" with an API
key calls the API from the page. Screenshot: ``test-artifacts/screenshots/api-docs.png``.
"""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from test_browser_flow import Console, new_page, serve_embedded, shot
from test_browser_flow import browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served():  # type: ignore[no-untyped-def]
    with serve_embedded("ws-apidocs-") as running:
        yield running


def _owner_key(data_dir) -> str:  # type: ignore[no-untyped-def]
    """A new API key of the served demo tenant's owner, made in its SQLite database."""
    from sqlalchemy import select

    from workspace.config import load_settings
    from workspace.runtime import build_runtime
    from workspace.tenancy.models import Membership
    from workspace.tenancy.repositories import tenant_by_slug
    from workspace.tenancy.services import create_api_token

    runtime = build_runtime(load_settings({"WORKSPACE_DATA_DIR": str(data_dir)}), watch_policy=False)
    try:
        with runtime.unit_of_work() as db:
            tenant_id = tenant_by_slug(db, "demo").id
        with runtime.unit_of_work(tenant_id) as db:
            owner = db.scalars(select(Membership).where(Membership.role == "owner")).first()
            return create_api_token(db, tenant_id, owner.user_id, "docs page").key
    finally:
        runtime.close()


def test_api_docs_render_offline_from_the_apps_own_assets(browser, served):  # type: ignore[no-untyped-def]
    server, data_dir = served
    console = Console()
    context, page = new_page(browser, console)
    attempted_outside: list[str] = []

    def only_loopback(route) -> None:  # type: ignore[no-untyped-def]
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            route.continue_()
        else:
            attempted_outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))

    page.goto(server.url + "/schema")
    page.wait_for_selector(".swagger-ui .info .title")
    page.wait_for_selector(".opblock-tag-section")
    assert "Workspace API" in page.locator(".swagger-ui .info .title").inner_text()
    tags = page.locator(".opblock-tag").all_inner_texts()
    assert any("Label Studio" in t for t in tags), tags
    assert any("Workspace: members, teams and roles" in t for t in tags), tags
    assert any("Workspace: audit" in t for t in tags), tags
    assert page.locator(".opblock-summary-path", has_text="/api/ws/tenant").count() == 1
    assert page.locator(".opblock-summary-path", has_text="/api/projects/{project_id}").count() >= 1
    shot(page, "api-docs")

    # authorize with an API key and call an endpoint from the page
    key = _owner_key(data_dir)
    page.locator(".auth-wrapper button.authorize").click()
    token_scheme = page.locator(".modal-ux .auth-container", has_text="apiKey")
    token_scheme.locator("input").fill(f"Token {key}")
    token_scheme.locator("button.authorize").click()
    page.locator(".modal-ux button.btn-done").first.click()
    operation = page.locator(".opblock", has=page.locator(".opblock-summary-path", has_text="/api/ws/tenant"))
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    body = operation.locator(".responses-wrapper .live-responses-table .response-col_description pre").first
    body.wait_for()
    assert '"slug": "demo"' in body.inner_text()
    shot(page, "api-docs-try-it-out")

    assert attempted_outside == [], attempted_outside
    assert all(urlparse(u).hostname == "127.0.0.1" for u in requested if u.startswith("http")), requested
    console.assert_clean()
    context.close()
