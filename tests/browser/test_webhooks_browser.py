"""Organization webhooks in a real browser: the owner opens "Webhooks" in the side navigation, adds a
tenant-wide webhook (its secret shown once), sees it listed and opens its (empty) delivery log; a
project's webhooks page points to the organization's. Screenshots: ``test-artifacts/screenshots/webhooks-*.png``.
"""

from __future__ import annotations

import re

import pytest
from test_browser_flow import Console, new_page, server, shot, sign_in  # noqa: F401 (shared fixtures)
from test_labeling_browser import browser, create_project  # noqa: F401 (shared fixtures)

pytestmark = pytest.mark.browser


@pytest.fixture
def console() -> Console:
    return Console()


def test_organization_webhooks_page(browser, server, console):  # noqa: F811
    context, page = new_page(browser, console)
    try:
        sign_in(page, server)
        project_id = create_project(page, server, "Reviews", "text-classification")
        page.goto(server.url + "/t/demo/")
        page.get_by_test_id("nav-webhooks").click()
        page.wait_for_url(re.compile(r"/t/demo/webhooks$"))
        assert "every project" in page.get_by_test_id("org-scope").inner_text()
        page.fill("#f-url", "https://hooks.example.com/workspace")
        page.locator('input[name="events"][value="import.completed"]').check()
        page.locator('input[name="events"][value="export.ready"]').check()
        page.get_by_role("button", name="Add webhook").click()
        secret = page.get_by_test_id("secret").inner_text()
        assert secret.startswith("whsec_") and len(secret) > 40
        row = page.locator('[data-testid^="webhook-"][data-active="yes"]')
        assert "https://hooks.example.com/workspace" in row.inner_text()
        shot(page, "webhooks-organization-created")

        page.goto(server.url + "/t/demo/webhooks")
        assert secret not in page.content()  # shown once
        page.get_by_role("link", name="Deliveries").click()
        page.wait_for_url(re.compile(r"/t/demo/webhooks/\d+$"))
        assert "No deliveries yet" in page.inner_text("main")
        shot(page, "webhooks-organization-deliveries")

        page.goto(f"{server.url}/t/demo/projects/{project_id}/webhooks")
        page.get_by_role("link", name="organization webhooks").click()
        page.wait_for_url(re.compile(r"/t/demo/webhooks$"))
        console.assert_clean()
    finally:
        context.close()
