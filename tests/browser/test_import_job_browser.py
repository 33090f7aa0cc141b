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


def test_export_from_the_data_manager_filter_and_download(browser, served, console, tmp_path):  # noqa: F811
    server, _data_dir = served
    context, page = new_page(browser, console)
    try:
        sign_in(page, server)
        project_id = create_project(page, server, "Export me", "text-classification")
        tasks = tmp_path / "tasks.json"
        tasks.write_text(json.dumps([
            {"data": {"text": "great"}, "annotations": [{"result": [{"id": "a", "from_name": "sentiment", "to_name": "text",
             "type": "choices", "value": {"choices": ["Positive"]}}]}]},
            {"data": {"text": "bad"}},
        ]))
        page.goto(f"{server.url}/t/demo/projects/{project_id}/import")
        page.set_input_files("#f-file", str(tasks))
        page.get_by_role("button", name="Import", exact=True).click()
        page.wait_for_url(re.compile(r"/import$"))

        # From the data manager with a filter: the export page carries it over.
        page.goto(f"{server.url}/t/demo/projects/{project_id}/data?state=labeled")
        page.get_by_test_id("export-matching").click()
        page.wait_for_url(re.compile(r"/exports\?state=labeled$"))
        assert "state=labeled" in page.get_by_test_id("export-filter").inner_text()
        coco = page.locator('.format-card:has(input[value="COCO"])')
        assert "disabled" in (coco.get_attribute("class") or "")  # no boxes in this project
        page.locator('.format-card:has(input[value="CSV"])').click()
        shot(page, "export-form")
        page.get_by_role("button", name="Export", exact=True).click()
        page.wait_for_url(re.compile(rf"/projects/{project_id}/exports$"))
        ready = page.locator('[data-testid^="export-"][data-status="ready"]')
        ready.wait_for(timeout=30_000)
        assert "1 task · 1 annotation" in ready.inner_text()
        shot(page, "export-ready")
        with page.expect_download() as download_info:
            ready.get_by_test_id("download").click()
        path = download_info.value.path()
        text = Path(path).read_text()
        assert text.splitlines()[0].startswith("id,") and "great" in text and "bad" not in text
        console.assert_clean()
    finally:
        context.close()
