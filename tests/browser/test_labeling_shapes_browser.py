"""Polygons, keypoints, predicted regions and HyperText on the labeling page, in a real browser.

The project is created through the UI with a pasted config (PolygonLabels and KeyPointLabels on one
image); the shapes are drawn with the mouse and keyboard, and the submitted annotation is read back
from the served instance's database and compared with Label Studio's result format. Screenshots go to
``test-artifacts/screenshots/label-*.png``.
"""

from __future__ import annotations

import re

import pytest
from test_browser_flow import Console, Server, new_page, shot, sign_in
from test_labeling_browser import (  # noqa: F401 (fixtures shared with the other labeling browser tests)
    browser,
    db,
    png_data_uri,
    served,
    submit_and_wait,
)

pytestmark = pytest.mark.browser

SHAPES_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <PolygonLabels name="outline" toName="image">
    <Label value="Building" background="#f59e0b" hotkey="b"/>
    <Label value="Road" background="#6366f1"/>
  </PolygonLabels>
  <KeyPointLabels name="kp" toName="image">
    <Label value="Door" background="#10b981"/>
  </KeyPointLabels>
</View>"""

HYPERTEXT_CONFIG = """<View>
  <HyperText name="page" value="$html"/>
  <Choices name="verdict" toName="page" choice="single"><Choice value="Spam"/><Choice value="Ham"/></Choices>
</View>"""


@pytest.fixture
def console() -> Console:
    return Console()


def create_project_with_config(page, server: Server, title: str, config: str) -> int:  # type: ignore[no-untyped-def]
    page.goto(server.url + "/t/demo/projects")
    page.fill("#f-title", title)
    page.get_by_text("Or paste a Label Studio config").click()
    page.fill("#f-label_config", config)
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url(re.compile(r"/t/demo/projects/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def label_button(page, value: str):  # type: ignore[no-untyped-def]
    return page.locator(f'.lbl-label[data-label="{value}"]')


def add_prediction(db, project_id: int, task_id: int, result: list) -> None:  # type: ignore[no-untyped-def,type-arg]
    from workspace.lib.timeutil import utcnow
    from workspace.workflow.models import Prediction

    with db.runtime.unit_of_work(db.tenant_id) as session:
        session.add(Prediction(project_id=project_id, task_id=task_id, result=result, model_version="test",
                               created_at=utcnow()))


def open_image(page, server: Server, project_id: int):  # type: ignore[no-untyped-def]
    """Open the labeling page; a function (x, y) -> page coordinates of that percent point of the image."""
    from playwright.sync_api import expect

    page.goto(f"{server.url}/t/demo/projects/{project_id}/label")
    overlay = page.get_by_test_id("overlay-image")
    expect(overlay).to_be_visible()
    page.wait_for_function("document.querySelector('[data-testid=image-image]').naturalWidth > 0")
    b = overlay.bounding_box()
    return lambda x, y: (b["x"] + b["width"] * x / 100, b["y"] + b["height"] * y / 100)


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:  # type: ignore[no-untyped-def]
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=4)
    page.mouse.move(*end, steps=4)
    page.mouse.up()


def close_to(actual: list[float], expected: tuple[float, ...], tolerance: float = 1.0) -> bool:
    return len(actual) == len(expected) and all(abs(a - e) < tolerance for a, e in zip(actual, expected))


def test_draw_polygon_and_keypoint(browser, served, db, console: Console) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    server, _ = served
    context, page = new_page(browser, console)
    try:
        sign_in(page, server)
        project_id = create_project_with_config(page, server, "Facades", SHAPES_CONFIG)
        task_id = db.add_task(project_id, {"image": png_data_uri(480, 300)})
        at = open_image(page, server, project_id)
        expect(page.get_by_text("Drawing polygons is not available")).to_have_count(0)
        expect(page.get_by_test_id("regions")).to_be_attached()
        shot(page, "label-shapes-empty")

        # A polygon: pick its label (hotkey), click four points, click the first point again to close it.
        page.keyboard.press("b")
        corners = [(20, 20), (70, 25), (60, 70), (25, 65)]
        for x, y in corners:
            page.mouse.click(*at(x, y))
        expect(page.locator(".lbl-vertex.is-first")).to_have_count(1)
        expect(page.locator("#lbl-regions li")).to_contain_text("4 points, not closed")
        shot(page, "label-polygon-drawing")
        page.mouse.click(*at(20, 20))
        expect(page.locator("polygon.lbl-poly")).to_have_count(1)
        expect(page.locator(".lbl-poly-tag")).to_have_text("Building")
        # Drag its second point somewhere else.
        drag(page, at(70, 25), at(80, 30))

        # A keypoint: pick its label, click, then drag the point a little.
        label_button(page, "Door").click()
        expect(label_button(page, "Building")).to_have_attribute("aria-pressed", "false")
        page.mouse.click(*at(45, 55))
        expect(page.locator(".lbl-point")).to_have_count(1)
        drag(page, at(45, 55), at(50, 50))

        # A second polygon closed with Enter, then deleted with Del.
        label_button(page, "Road").click()
        for x, y in ((10, 80), (30, 80), (20, 95)):
            page.mouse.click(*at(x, y))
        page.keyboard.press("Enter")
        expect(page.locator("polygon.lbl-poly")).to_have_count(2)
        page.keyboard.press("Delete")
        expect(page.locator("polygon.lbl-poly")).to_have_count(1)

        # Relabel the first polygon: select it by clicking inside, pick another label.
        page.mouse.click(*at(35, 35))
        expect(page.locator("polygon.lbl-poly.is-selected")).to_have_count(1)
        label_button(page, "Road").click()
        expect(page.locator(".lbl-poly-tag")).to_have_text("Road")
        expect(page.locator("#lbl-regions li")).to_have_count(2)
        shot(page, "label-polygon-keypoint")
        submit_and_wait(page)

        (result, count), = db.annotations(task_id)
        assert count == 1
        polygon, keypoint = result
        for region in result:
            assert (region["original_width"], region["original_height"], region["image_rotation"]) == (480, 300, 0)
            assert region["to_name"] == "image" and isinstance(region["id"], str) and region["id"]
        assert (polygon["from_name"], polygon["type"]) == ("outline", "polygonlabels")
        assert set(polygon["value"]) == {"points", "polygonlabels", "closed"}
        assert polygon["value"]["polygonlabels"] == ["Road"] and polygon["value"]["closed"] is True
        expected = [(20, 20), (80, 30), (60, 70), (25, 65)]
        assert all(close_to(p, e) for p, e in zip(polygon["value"]["points"], expected, strict=True)), polygon
        assert (keypoint["from_name"], keypoint["type"]) == ("kp", "keypointlabels")
        assert set(keypoint["value"]) == {"x", "y", "width", "keypointlabels"}
        assert keypoint["value"]["keypointlabels"] == ["Door"] and keypoint["value"]["width"] == 0.6
        assert close_to([keypoint["value"]["x"], keypoint["value"]["y"]], (50, 50)), keypoint
        console.assert_clean()
    finally:
        context.close()


def test_predicted_shapes_are_editable_suggestions(browser, served, db, console: Console) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    server, _ = served
    context, page = new_page(browser, console)
    try:
        sign_in(page, server)
        project_id = create_project_with_config(page, server, "Predicted facades", SHAPES_CONFIG)
        task_id = db.add_task(project_id, {"image": png_data_uri(400, 400)})
        envelope = {"to_name": "image", "original_width": 400, "original_height": 400, "image_rotation": 0}
        add_prediction(db, project_id, task_id, [
            {"id": "pred-poly", "from_name": "outline", "type": "polygonlabels", **envelope,
             "value": {"points": [[30, 30], [70, 30], [50, 70]], "polygonlabels": ["Building"], "closed": True}},
            {"id": "pred-kp", "from_name": "kp", "type": "keypointlabels", **envelope,
             "value": {"x": 50, "y": 85, "width": 0.6, "keypointlabels": ["Door"]}},
        ])
        at = open_image(page, server, project_id)
        expect(page.locator("polygon.lbl-poly.is-suggested")).to_have_count(1)
        expect(page.locator(".lbl-point.is-suggested")).to_have_count(1)
        expect(page.locator(".lbl-region-badge")).to_have_count(2)
        shot(page, "label-suggestions")

        drag(page, at(50, 70), at(50, 80))  # move the predicted polygon's third point
        expect(page.locator("polygon.lbl-poly.is-suggested")).to_have_count(0)
        page.locator("#lbl-regions li", has_text="Door").get_by_role("button", name=re.compile("Delete region")).click()
        expect(page.locator(".lbl-point")).to_have_count(0)
        shot(page, "label-suggestions-edited")
        submit_and_wait(page)

        (result, _count), = db.annotations(task_id)
        (polygon,) = result
        assert polygon["id"] == "pred-poly" and polygon["value"]["polygonlabels"] == ["Building"]
        expected = [(30, 30), (70, 30), (50, 80)]
        assert all(close_to(p, e) for p, e in zip(polygon["value"]["points"], expected, strict=True)), polygon
        console.assert_clean()
    finally:
        context.close()


def test_hypertext_is_sanitized(browser, served, db, console: Console) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    server, _ = served
    context, page = new_page(browser, console)
    try:
        sign_in(page, server)
        project_id = create_project_with_config(page, server, "Web pages", HYPERTEXT_CONFIG)
        html = ('<h3>Offer</h3><p>Hello <b>bold</b> and <a href="https://example.com/x" onclick="window.pwned=1">a '
                'link</a>.</p><script>window.pwned = 2</script><img src=x onerror="window.pwned = 3">'
                '<a href="javascript:window.pwned=4">js link</a><p style="color:red">no inline style</p>'
                '<iframe src="https://example.com"></iframe>')
        task_id = db.add_task(project_id, {"html": html})
        page.goto(f"{server.url}/t/demo/projects/{project_id}/label")
        body = page.get_by_test_id("text-page")
        expect(body).to_contain_text("Hello bold and a link.")
        bold = body.locator("b")
        expect(bold).to_have_text("bold")
        assert int(bold.evaluate("el => getComputedStyle(el).fontWeight")) >= 600
        assert body.locator("script, img, iframe, [style], [onclick], [onerror]").count() == 0
        link = body.get_by_role("link", name="a link")
        expect(link).to_have_attribute("href", "https://example.com/x")
        expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
        expect(body.get_by_text("js link")).not_to_have_attribute("href", re.compile(".*"))
        page.get_by_text("js link").click()
        body.locator("img").count()
        assert page.evaluate("window.pwned") is None
        shot(page, "label-hypertext")

        page.get_by_text("Ham", exact=True).click()
        submit_and_wait(page)
        (result, _count), = db.annotations(task_id)
        assert [r["value"] for r in result] == [{"choices": ["Ham"]}]
        assert page.evaluate("window.pwned") is None
        console.assert_clean()
    finally:
        context.close()
