"""Pre-annotation in a real browser: a manager adds a dictionary tagger on the project's ML page, runs
it over all tasks, watches the run finish (htmx polling), then opens the labeling page and finds the
tagger's spans pre-filled as suggestions. Screenshots: ``test-artifacts/screenshots/ml-*.png``."""

from __future__ import annotations

import re

import pytest
from _pages import create_project, db_fixture, served_fixture
from _pages import browser, console  # noqa: F401  (fixtures)
from playwright.sync_api import expect
from test_browser_flow import new_page, shot, sign_in
from test_labeling_browser import Db

pytestmark = pytest.mark.browser

TEXTS = ["Ada Lovelace met Charles Babbage in London in 1833.",
         "The Analytical Engine was never finished.",
         "Babbage lectured in Turin; Lovelace translated the notes in London."]


served = served_fixture("ws-ml-")
db = db_fixture(Db)


def test_manager_runs_a_tagger_and_sees_suggested_spans(browser, served, db, console):  # type: ignore[no-untyped-def]
    server, _data_dir = served
    context, page = new_page(browser, console)
    try:
        sign_in(page, server)
        project_id = create_project(page, server, "Historic people", "named-entities")
        task_ids = [db.add_task(project_id, {"text": t}) for t in TEXTS]

        page.get_by_test_id("open-ml").click()
        page.wait_for_url(re.compile(rf"/t/demo/projects/{project_id}/ml$"))
        expect(page.get_by_text("No ML backends yet")).to_be_visible()
        shot(page, "ml-empty")

        # A bad rule is refused (422) with its line and the labels that exist; nothing is added.
        console.allow(r"/ml: Failed to load resource: the server responded with a status of 422")
        tagger = page.get_by_test_id("add-tagger")
        tagger.locator('input[name="name"]').fill("Pioneers")
        tagger.locator('textarea[name="terms"]').fill("Lovelace => PERSON")
        tagger.get_by_role("button", name="Add tagger").click()
        error = page.get_by_test_id("ml-error")
        expect(error).to_contain_text("Terms, line 1: \u201cPERSON\u201d is not a label of this project")
        shot(page, "ml-invalid-rule")

        tagger = page.get_by_test_id("add-tagger")
        tagger.locator('textarea[name="terms"]').fill("Ada Lovelace => PER\nLovelace => PER\nBabbage => PER\n"
                                                      "Charles Babbage => PER\nLondon => LOC\nTurin => LOC")
        tagger.locator('textarea[name="patterns"]').fill(r"\b1[89]\d\d\b => MISC")
        tagger.get_by_role("button", name="Add tagger").click()
        page.wait_for_url(re.compile(rf"/t/demo/projects/{project_id}/ml$"))
        backend = page.locator('[data-testid^="ml-backend-"]')
        expect(backend).to_have_count(1)
        expect(backend).to_contain_text("Pioneers")
        expect(backend.get_by_test_id("model-version")).to_have_text("tagger-1")

        backend.get_by_test_id("run-predictions").click()
        page.wait_for_url(re.compile(rf"/t/demo/projects/{project_id}/ml$"))
        done = page.locator('[data-testid^="ml-job-"][data-status="succeeded"]')
        done.wait_for(timeout=30_000)  # the list polls until the run has finished
        expect(done.get_by_test_id("ml-job-message")).to_contain_text("Stored 2 predictions (tagger-1) for 3 tasks")
        shot(page, "ml-run-done")

        page.goto(f"{server.url}/t/demo/projects/{project_id}/label?task={task_ids[0]}")
        expect(page.get_by_test_id("label-suggested")).to_be_visible()
        regions = page.locator("#lbl-regions li")
        expect(regions).to_have_count(4)
        listed = regions.all_inner_texts()
        for text in ("Ada Lovelace", "Charles Babbage", "London", "1833"):
            assert any(text in item for item in listed), listed
        shot(page, "ml-suggested-spans")
        console.assert_clean()
    finally:
        context.close()
