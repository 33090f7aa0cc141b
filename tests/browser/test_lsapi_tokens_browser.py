"""A member creates a personal access token on the API tokens page and the Label Studio SDK works with
it against the served instance; revoking it on the page stops it. Screenshot:
``test-artifacts/screenshots/tokens-personal-access-token.png``.
"""

from __future__ import annotations

import pytest
from test_browser_flow import Console, new_page, shot, sign_in
from test_labeling_browser import browser, served  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def test_personal_access_token_from_the_page_drives_the_sdk(browser, served):  # type: ignore[no-untyped-def]
    from label_studio_sdk import LabelStudio
    from label_studio_sdk.core.api_error import ApiError

    server, _data = served
    console = Console()
    context, page = new_page(browser, console)
    sign_in(page, server)
    page.goto(server.url + "/t/demo/tokens")
    page.fill("#f-name", "notebook")
    page.select_option("#f-kind", "pat")
    page.get_by_role("button", name="Create token").click()
    key = page.get_by_test_id("new-token").input_value()
    assert key.startswith("eyJ") and key.count(".") == 2
    assert page.get_by_text("personal access token").first.is_visible()
    shot(page, "tokens-personal-access-token")

    ls = LabelStudio(base_url=server.url, api_key=key)
    assert ls.users.whoami().email == server.email
    project = ls.projects.create(title="From the SDK", label_config=(
        '<View><Text name="text" value="$text"/><Choices name="c" toName="text">'
        '<Choice value="A"/><Choice value="B"/></Choices></View>'))
    ls.projects.import_tasks(id=project.id, request=[{"text": "hello"}], return_task_ids=True)
    page.goto(server.url + f"/t/demo/projects/{project.id}")
    assert "From the SDK" in page.content()

    page.goto(server.url + "/t/demo/tokens")
    row = page.locator("tr", has_text="notebook")
    row.get_by_role("button", name="Revoke").click()
    page.wait_for_load_state()
    with pytest.raises(ApiError) as refused:
        LabelStudio(base_url=server.url, api_key=key).users.whoami()
    assert refused.value.status_code == 401
    assert not console.errors, console.errors
    context.close()
