"""The labeling page in a real browser: a ``workspace serve`` process driven by Debian's chromium.

Named entities (select a span with the mouse, pick a label), object detection (drag a box on a PNG
given as a data: URI) and audio transcription (type the text): each submitted annotation is read back
from the served instance's SQLite database and compared with Label Studio's result format.
Screenshots go to ``test-artifacts/screenshots/label-*.png``.
"""

from __future__ import annotations

import base64
import io
import re
import wave

import pytest

from _pages import ServedDb, create_project, db_fixture, served_fixture
from _pages import console  # noqa: F401  (fixture)
from test_browser_flow import (  # the same server/browser approach as the main browser flow
    Console,
    browser,  # noqa: F401  (a fixture shared with the main flow; other modules import it from here)
    new_page,
    shot,
    sign_in,
)

pytestmark = pytest.mark.browser

TEXT = "Ada Lovelace met Charles Babbage in London in 1833."


# ``workspace serve`` in embedded mode; also yields its data directory (for the SQLite file).
served = served_fixture("ws-label-")


# --- the served instance's database ----------------------------------------------------------------


class Db(ServedDb):
    def annotations(self, task_id: int) -> list[tuple[list, int]]:  # type: ignore[type-arg]
        from sqlalchemy import select

        from workspace.workflow.models import Annotation, Task

        with self.runtime.unit_of_work(self.tenant_id) as db:
            rows = [(a.result, a.lead_time) for a in db.scalars(select(Annotation).where(Annotation.task_id == task_id))]
            count = db.scalar(select(Task.annotation_count).where(Task.id == task_id))
            return [(result, count) for result, _ in rows]


db = db_fixture(Db)


def png_data_uri(width: int, height: int) -> str:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), "#dfe7f2")
    draw = ImageDraw.Draw(image)
    draw.rectangle((width * 0.3, height * 0.35, width * 0.7, height * 0.75), fill="#3b6fb6")
    draw.ellipse((width * 0.05, height * 0.05, width * 0.2, height * 0.3), fill="#f2b134")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def wav_data_uri() -> str:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes([128]) * 800)
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode()


def select_text(page, start: int, end: int) -> None:  # type: ignore[no-untyped-def]
    """Drag the mouse across characters start..end of the task text, like a person would."""
    box = page.evaluate("""([start, end]) => {
        const body = document.querySelector('[data-text-for="text"]');
        const walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT);
        let node, seen = 0, range = document.createRange(), a = null, b = null;
        while ((node = walker.nextNode())) {
          const len = node.textContent.length;
          if (!a && start < seen + len) { range.setStart(node, start - seen); a = true; }
          if (!b && end <= seen + len) { range.setEnd(node, end - seen); b = true; }
          seen += len;
        }
        const rects = range.getClientRects();
        const first = rects[0], last = rects[rects.length - 1];
        return {x1: first.left, y1: first.top + first.height / 2, x2: last.right, y2: last.top + last.height / 2};
    }""", [start, end])
    page.mouse.move(box["x1"] + 1, box["y1"])
    page.mouse.down()
    page.mouse.move((box["x1"] + box["x2"]) / 2, box["y2"], steps=4)
    page.mouse.move(box["x2"] - 1, box["y2"], steps=4)
    page.mouse.up()


def submit_and_wait(page) -> None:  # type: ignore[no-untyped-def]
    with page.expect_response(lambda r: r.url.endswith("/label") and r.request.method == "POST") as posted:
        page.get_by_test_id("label-submit").click()
    assert posted.value.status == 204, posted.value.text()
    page.get_by_test_id("label-empty").wait_for()


# --- tests ---------------------------------------------------------------------------------------


def test_named_entities_span_selection(browser, served, db, console: Console) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    server, _ = served
    context, page = new_page(browser, console)
    try:
        sign_in(page, server)
        project_id = create_project(page, server, "People and places", "named-entities")
        task_id = db.add_task(project_id, {"text": TEXT})
        page.goto(f"{server.url}/t/demo/projects/{project_id}/label")
        expect(page.get_by_test_id("text-text")).to_have_text(TEXT)
        shot(page, "label-ner-empty")

        select_text(page, 0, 12)  # "Ada Lovelace", then pick the label with the mouse
        page.get_by_role("button", name=re.compile(r"^PER")).click()
        select_text(page, 36, 42)  # "London", labelled with its hotkey
        page.keyboard.press("l")
        select_text(page, 4, 12)  # "Lovelace" again: overlapping spans are allowed
        page.get_by_role("button", name=re.compile(r"^MISC")).click()
        expect(page.locator("#lbl-regions li")).to_have_count(3)
        page.locator("#lbl-regions li").nth(2).get_by_role("button", name=re.compile("Delete region")).click()
        expect(page.locator("#lbl-regions li")).to_have_count(2)
        expect(page.locator(".lbl-hl")).to_have_count(2)
        shot(page, "label-ner-spans")
        submit_and_wait(page)
        shot(page, "label-all-done")

        (result, count), = db.annotations(task_id)
        assert count == 1
        values = [(r["from_name"], r["to_name"], r["type"], r["value"]) for r in result]
        assert values == [
            ("label", "text", "labels", {"start": 0, "end": 12, "text": "Ada Lovelace", "labels": ["PER"]}),
            ("label", "text", "labels", {"start": 36, "end": 42, "text": "London", "labels": ["LOC"]}),
        ]
        assert all(isinstance(r["id"], str) and r["id"] for r in result)
        console.assert_clean()
    finally:
        context.close()


def test_object_detection_box(browser, served, db, console: Console) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    server, _ = served
    context, page = new_page(browser, console)
    try:
        sign_in(page, server)
        project_id = create_project(page, server, "Street scenes", "object-detection")
        task_id = db.add_task(project_id, {"image": png_data_uri(480, 300)})
        page.goto(f"{server.url}/t/demo/projects/{project_id}/label")
        overlay = page.get_by_test_id("overlay-image")
        expect(overlay).to_be_visible()
        page.wait_for_function("document.querySelector('[data-testid=image-image]').naturalWidth > 0")
        b = overlay.bounding_box()
        page.mouse.move(b["x"] + b["width"] * 0.25, b["y"] + b["height"] * 0.20)
        page.mouse.down()
        page.mouse.move(b["x"] + b["width"] * 0.5, b["y"] + b["height"] * 0.4, steps=5)
        page.mouse.move(b["x"] + b["width"] * 0.75, b["y"] + b["height"] * 0.60, steps=5)
        page.mouse.up()
        expect(page.locator(".lbl-box")).to_have_count(1)
        page.get_by_role("button", name=re.compile(r"^Car")).click()
        expect(page.locator(".lbl-box-tag")).to_have_text("Car")
        shot(page, "label-image-box")
        submit_and_wait(page)

        (result, _count), = db.annotations(task_id)
        (region,) = result
        assert (region["from_name"], region["to_name"], region["type"]) == ("label", "image", "rectanglelabels")
        assert (region["original_width"], region["original_height"]) == (480, 300)
        value = region["value"]
        assert value["rectanglelabels"] == ["Car"] and value["rotation"] == 0
        for key, expected in (("x", 25), ("y", 20), ("width", 50), ("height", 40)):
            assert abs(value[key] - expected) < 1.0, (key, value)
        console.assert_clean()
    finally:
        context.close()


def test_audio_transcription(browser, served, db, console: Console) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    server, _ = served
    context, page = new_page(browser, console)
    try:
        sign_in(page, server)
        project_id = create_project(page, server, "Call recordings", "audio-transcription")
        task_id = db.add_task(project_id, {"audio": wav_data_uri()})
        page.goto(f"{server.url}/t/demo/projects/{project_id}/label")
        expect(page.get_by_test_id("audio-audio")).to_be_attached()
        page.get_by_test_id("textarea-transcription").fill("hello, this is a test call")
        shot(page, "label-audio-transcription")
        submit_and_wait(page)
        (result, _count), = db.annotations(task_id)
        (region,) = result
        assert (region["from_name"], region["to_name"], region["type"]) == ("transcription", "audio", "textarea")
        assert region["value"] == {"text": ["hello, this is a test call"]}
        console.assert_clean()
    finally:
        context.close()
