"""Labeling-core acceptance, entirely through the UI of a real ``workspace serve`` driven by chromium.

1. Named entities: create the project from its template, import a CSV (one row carries an XSS payload),
   check the data manager, select a span with the mouse, pick PER, submit, check the data manager again.
2. Object detection: upload two PNG images through the media form, draw a box by dragging, pick a label.
3. Audio transcription: upload a WAV through the media form, type the transcription.

Tasks are never inserted into the database directly; each stored annotation is read back read-only from
the served instance's SQLite file with the stdlib ``sqlite3`` module and compared with Label Studio's
result format. Screenshots go to ``test-artifacts/screenshots/accept-*.png``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import wave
from pathlib import Path

import pytest
from test_browser_flow import Console, Server, new_page, shot, sign_in
from test_labeling_browser import browser, create_project, select_text, served  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)>"
FIRST = "Grace Hopper joined the Navy in Philadelphia."
ROWS = [FIRST, f"Payload {XSS} must stay text.", "Alan Turing worked at Bletchley Park."]
IMAGES = {"wide.png": (480, 300), "tall.png": (240, 360)}


@pytest.fixture
def console() -> Console:
    return Console()


# --- helpers ---------------------------------------------------------------------------------------


def stored_annotations(data_dir: Path, project_id: int) -> list[tuple[int, list[dict]]]:  # type: ignore[type-arg]
    """(task id, result) of every annotation of a project, read-only from the served SQLite file."""
    uri = f"file:{data_dir / 'workspace.sqlite3'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        rows = conn.execute(
            "SELECT a.task_id, a.result FROM annotation a JOIN task t ON t.id = a.task_id "
            "WHERE t.project_id = ? ORDER BY a.id", (project_id,)).fetchall()
    conn.close()
    return [(task_id, json.loads(result) if isinstance(result, str) else result) for task_id, result in rows]


def open_from_project(page, server: Server, project_id: int, testid: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{server.url}/t/demo/projects/{project_id}")
    page.get_by_test_id(testid).click()
    page.wait_for_load_state("load")


def submit(page) -> None:  # type: ignore[no-untyped-def]
    with page.expect_response(lambda r: r.url.endswith("/label") and r.request.method == "POST") as posted:
        page.get_by_test_id("label-submit").click()
    response = posted.value
    assert response.status < 400, f"{response.status}: {response.text()}"
    assert response.headers.get("hx-redirect"), "the label POST must answer with HX-Redirect"
    page.wait_for_load_state("load")


def upload_media(page, files: list[Path]) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page.set_input_files("#f-media", [str(f) for f in files])
    page.get_by_role("button", name="Upload media").click()
    page.wait_for_load_state("load")
    expect(page.get_by_role("status").filter(has_text=f"Imported {len(files)} media file")).to_be_visible()


def make_png(path: Path, width: int, height: int) -> None:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), "#dfe7f2")
    draw = ImageDraw.Draw(image)
    draw.rectangle((width * 0.3, height * 0.35, width * 0.7, height * 0.75), fill="#3b6fb6")
    draw.ellipse((width * 0.05, height * 0.05, width * 0.2, height * 0.3), fill="#f2b134")
    image.save(path, "PNG")


def make_wav(path: Path) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 4000)  # half a second of silence


# --- tests -----------------------------------------------------------------------------------------


def test_named_entities_csv_import_and_span(browser, served, console: Console, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from playwright.sync_api import expect

    server, data_dir = served
    context, page = new_page(browser, console)
    alerts: list[str] = []
    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    try:
        sign_in(page, server)
        project_id = create_project(page, server, "Acceptance NER", "named-entities")
        shot(page, "accept-01-ner-project")

        csv_file = tmp_path / "people.csv"
        csv_file.write_text("text\n" + "\n".join(f'"{r}"' for r in ROWS) + "\n", encoding="utf-8")
        open_from_project(page, server, project_id, "open-import")
        assert page.url.endswith(f"/projects/{project_id}/import")
        page.set_input_files("#f-file", str(csv_file))
        page.get_by_role("button", name="Import", exact=True).click()
        page.wait_for_url(re.compile(rf"/projects/{project_id}/import$"))
        expect(page.get_by_role("status").filter(has_text="Imported 3 tasks from people.csv")).to_be_visible()
        shot(page, "accept-02-ner-imported")

        open_from_project(page, server, project_id, "open-data-manager")
        rows = page.locator("table.dm-table tbody tr")
        expect(rows).to_have_count(3)
        xss_cell = page.locator("td.dm-cell", has_text="onerror")
        expect(xss_cell).to_have_count(1)
        assert XSS in xss_cell.inner_text(), xss_cell.inner_text()
        assert page.locator("table.dm-table img").count() == 0, "the payload must not become an <img>"
        shot(page, "accept-03-ner-datamanager")

        open_from_project(page, server, project_id, "open-labeling")
        expect(page.get_by_test_id("text-text")).to_have_text(FIRST)
        select_text(page, 0, 12)  # "Grace Hopper"
        page.get_by_role("button", name=re.compile(r"^PER")).click()
        expect(page.locator("#lbl-regions li")).to_have_count(1)
        expect(page.locator(".lbl-hl")).to_have_count(1)
        shot(page, "accept-04-ner-span")
        submit(page)
        expect(page.get_by_test_id("text-text")).not_to_have_text(FIRST)  # the next task is shown
        shot(page, "accept-05-ner-next-task")

        open_from_project(page, server, project_id, "open-data-manager")
        row = page.locator("table.dm-table tbody tr", has_text="Grace Hopper")
        expect(row).to_have_count(1)
        expect(row.locator("td.num-col").first).to_have_text("1")
        expect(row.locator(".dm-annotators")).to_contain_text(server.email)
        for other in ("onerror", "Alan Turing"):
            expect(page.locator("table.dm-table tbody tr", has_text=other).locator("td.num-col").first).to_have_text("0")
        shot(page, "accept-06-ner-datamanager-annotated")

        (_task_id, result), = stored_annotations(data_dir, project_id)
        (region,) = result
        assert isinstance(region["id"], str) and region["id"]
        assert (region["from_name"], region["to_name"], region["type"]) == ("label", "text", "labels")
        assert region["value"] == {"start": 0, "end": 12, "text": FIRST[0:12], "labels": ["PER"]}
        assert not alerts, f"the XSS payload ran: {alerts}"
        console.assert_clean()
    finally:
        context.close()


def test_object_detection_media_upload_and_box(browser, served, console: Console, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from playwright.sync_api import expect

    server, data_dir = served
    context, page = new_page(browser, console)
    try:
        sign_in(page, server)
        project_id = create_project(page, server, "Acceptance boxes", "object-detection")
        files = []
        for name, (w, h) in IMAGES.items():
            make_png(tmp_path / name, w, h)
            files.append(tmp_path / name)
        open_from_project(page, server, project_id, "open-import")
        upload_media(page, files)
        shot(page, "accept-07-boxes-imported")

        open_from_project(page, server, project_id, "open-data-manager")
        expect(page.locator("table.dm-table tbody tr")).to_have_count(2)
        shot(page, "accept-08-boxes-datamanager")

        open_from_project(page, server, project_id, "open-labeling")
        img = page.get_by_test_id("image-image")
        expect(img).to_be_visible()
        src = img.get_attribute("src") or ""
        assert re.search(r"/media/.+[?&]exp=\d+.*&sig=", src), f"the image must be a signed /media URL: {src}"
        page.wait_for_function("document.querySelector('[data-testid=image-image]').naturalWidth > 0")
        natural = tuple(img.evaluate("i => [i.naturalWidth, i.naturalHeight]"))
        assert natural in IMAGES.values(), natural

        b = img.bounding_box()
        assert b and b["width"] > 50 and b["height"] > 50, b
        x1, y1, x2, y2 = 0.2, 0.3, 0.65, 0.8  # fractions of the rendered image
        page.mouse.move(b["x"] + b["width"] * x1, b["y"] + b["height"] * y1)
        page.mouse.down()
        page.mouse.move(b["x"] + b["width"] * 0.4, b["y"] + b["height"] * 0.5, steps=5)
        page.mouse.move(b["x"] + b["width"] * x2, b["y"] + b["height"] * y2, steps=5)
        page.mouse.up()
        expect(page.locator(".lbl-box")).to_have_count(1)
        page.get_by_role("button", name=re.compile(r"^Person")).click()
        expect(page.locator(".lbl-box-tag")).to_have_text("Person")
        shot(page, "accept-09-boxes-drawn")
        submit(page)
        shot(page, "accept-10-boxes-next-task")

        (_task_id, result), = stored_annotations(data_dir, project_id)
        (region,) = result
        assert isinstance(region["id"], str) and region["id"]
        assert (region["from_name"], region["to_name"], region["type"]) == ("label", "image", "rectanglelabels")
        assert (region["original_width"], region["original_height"]) == natural
        value = region["value"]
        assert value["rectanglelabels"] == ["Person"] and value["rotation"] == 0, value
        expected = {"x": x1 * 100, "y": y1 * 100, "width": (x2 - x1) * 100, "height": (y2 - y1) * 100}
        for key, want in expected.items():
            assert abs(value[key] - want) <= 1.5, (key, want, value)

        open_from_project(page, server, project_id, "open-data-manager")
        expect(page.locator(".dm-annotators .chip")).to_have_count(1)
        console.assert_clean()
    finally:
        context.close()


def test_audio_transcription_media_upload(browser, served, console: Console, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from playwright.sync_api import expect

    server, data_dir = served
    context, page = new_page(browser, console)
    try:
        sign_in(page, server)
        project_id = create_project(page, server, "Acceptance audio", "audio-transcription")
        wav = tmp_path / "hello.wav"
        make_wav(wav)
        open_from_project(page, server, project_id, "open-import")
        upload_media(page, [wav])
        shot(page, "accept-11-audio-imported")

        open_from_project(page, server, project_id, "open-labeling")
        audio = page.get_by_test_id("audio-audio")
        expect(audio).to_be_attached()
        src = audio.get_attribute("src") or ""
        assert re.search(r"/media/.+[?&]exp=\d+.*&sig=", src), f"the audio must be a signed /media URL: {src}"
        try:
            page.wait_for_function("document.querySelector('[data-testid=audio-audio]').readyState >= 1",
                                   timeout=5_000)
            metadata = True
        except Exception:  # noqa: BLE001 - headless chromium may not load audio; the signed src suffices
            metadata = False
        if metadata:
            duration = audio.evaluate("a => a.duration")
            assert 0.3 < duration < 0.7, duration
        text = "hello, this is the acceptance call"
        page.get_by_test_id("textarea-transcription").fill(text)
        shot(page, "accept-12-audio-transcription")
        submit(page)
        shot(page, "accept-13-audio-done")

        (_task_id, result), = stored_annotations(data_dir, project_id)
        (region,) = result
        assert isinstance(region["id"], str) and region["id"]
        assert (region["from_name"], region["to_name"], region["type"]) == ("transcription", "audio", "textarea")
        assert region["value"] == {"text": [text]}
        console.assert_clean()
    finally:
        context.close()
