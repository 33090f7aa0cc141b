"""A large import in a real browser: the upload becomes a background job whose progress bar moves on
the jobs page (htmx polling) until it has imported every task, which the data manager then lists.

Embedded mode: the in-process worker runs the job, and progress comes from the live board while the
import's transaction holds SQLite's write lock (the jobs page itself must keep loading meanwhile).
Screenshots: ``test-artifacts/screenshots/import-job-*.png``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_browser_flow import Console, Server, new_page, serve_embedded, shot, sign_in
from test_labeling_browser import browser, create_project, db  # noqa: F401 (shared fixtures)

pytestmark = pytest.mark.browser

TASKS = 400_000


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Server, Path]]:
    with serve_embedded("ws-import-job-", WORKSPACE_IMPORT_JOB_BYTES=str(1024 * 1024)) as running:
        yield running


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("import-job") / "reviews.jsonl"
    with path.open("w") as out:
        for i in range(1, TASKS + 1):
            out.write(json.dumps({"text": f"Review {i}: the product was fine, delivery took {i % 9 + 1} days."}) + "\n")
    return path


def test_large_import_runs_as_a_job_with_a_live_progress_bar(browser, served, db, console, big_file):  # noqa: F811
    server, _data_dir = served
    context, page = new_page(browser, console)
    try:
        sign_in(page, server)
        project_id = create_project(page, server, "Product reviews", "text-classification")
        page.goto(f"{server.url}/t/demo/projects/{project_id}/import")
        assert "imported in the background" in page.inner_text("main")
        page.set_input_files("#f-file", str(big_file))
        page.get_by_role("button", name="Import", exact=True).click()
        page.wait_for_url(re.compile(rf"/t/demo/projects/{project_id}/jobs$"))
        assert "is being imported in the background" in page.inner_text("main")

        # The bar moves while the job runs: catch it part-way, with a percentage and a task count.
        row = page.locator('[data-testid^="job-"][data-status="running"]')
        row.wait_for(timeout=30_000)
        page.wait_for_function(
            """() => { const p = document.querySelector('[data-status="running"] progress[value]');
                       return p && Number(p.value) > 0 && Number(p.value) < 100; }""", timeout=30_000)
        message = page.locator('[data-status="running"] [data-testid="job-message"]').inner_text()
        assert re.search(r"[\d,]+ tasks imported so far · \d+%", message), message
        assert page.locator('[data-status="running"] button', has_text="Cancel").count() == 1
        shot(page, "import-job-running")

        done = page.locator('[data-testid^="job-"][data-status="succeeded"]')
        done.wait_for(timeout=120_000)
        assert f"Imported {TASKS:,} tasks from reviews.jsonl" in done.inner_text()
        shot(page, "import-job-done")

        from sqlalchemy import func, select

        from workspace.workflow.models import Task

        with db.runtime.unit_of_work(db.tenant_id) as session:
            count = session.scalar(select(func.count()).select_from(Task).where(Task.project_id == project_id))
        assert count == TASKS
        page.goto(f"{server.url}/t/demo/projects/{project_id}/data")
        assert "Review 1: the product was fine" in page.inner_text("main")
        console.assert_clean()
    finally:
        context.close()
