"""Polygons and keypoints on the labeling page, predictions as suggestions, and HyperText as sanitized HTML.

The validator and the sanitizer are tested directly (no database); the page and the submit route on both
backends, like tests/test_labeling.py.
"""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from conftest import login, make_tenant, post_form
from workspace.lib.timeutil import utcnow
from workspace.web.html import sanitize_html
from workspace.workflow.annotations import ResultInvalid, validate_result
from workspace.workflow.label_config import parse_label_config
from workspace.workflow.models import Annotation, Prediction, Task

SHAPES_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <PolygonLabels name="outline" toName="image">
    <Label value="Building" background="#f59e0b"/>
    <Label value="Road"/>
  </PolygonLabels>
  <KeyPointLabels name="kp" toName="image">
    <Label value="Door" background="#10b981"/>
  </KeyPointLabels>
  <RectangleLabels name="box" toName="image">
    <Label value="Car"/>
  </RectangleLabels>
</View>"""
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
       "AAAABJRU5ErkJggg==")
POLYGON = {"id": "p1", "from_name": "outline", "to_name": "image", "type": "polygonlabels",
           "original_width": 640, "original_height": 480, "image_rotation": 0,
           "value": {"points": [[10.0, 10.0], [60.5, 12.25], [35.0, 70.0]], "polygonlabels": ["Building"],
                     "closed": True}}
KEYPOINT = {"id": "k1", "from_name": "kp", "to_name": "image", "type": "keypointlabels",
            "original_width": 640, "original_height": 480, "image_rotation": 0,
            "value": {"x": 42.5, "y": 57.0, "width": 0.6, "keypointlabels": ["Door"]}}


def _value(region: dict, **value) -> dict:  # type: ignore[type-arg]
    return {**region, "value": {**region["value"], **value}}


def _without(region: dict, *keys: str, value_keys: tuple[str, ...] = ()) -> dict:  # type: ignore[type-arg]
    out = {k: v for k, v in region.items() if k not in keys}
    out["value"] = {k: v for k, v in region["value"].items() if k not in value_keys}
    return out


# --- the validator ---------------------------------------------------------------------------------


def test_label_studio_polygons_and_keypoints_are_valid() -> None:
    config = parse_label_config(SHAPES_CONFIG)
    result = [POLYGON, KEYPOINT, _without(POLYGON, value_keys=("closed",)),  # older exports have no "closed"
              _value(POLYGON, points=[[0, 0], [100, 0], [100, 100], [0, 100]]),  # the image's own corners
              _value(KEYPOINT, x=0, y=100, width=100)]
    assert validate_result(config, {"image": PNG}, result) == result


@pytest.mark.parametrize(("region", "message"), [
    (_value(POLYGON, points=[[10, 10], [101, 20], [30, 40]]),
     "Region 0: point 2 (101, 20) is outside the image; x and y are percent in 0..100"),
    (_value(POLYGON, points=[[10, 10], [20, -0.5], [30, 40]]), "Region 0: point 2 (20, -0.5) is outside the image"),
    (_value(POLYGON, points=[[10, 10], [20, 20]]), "Region 0: a polygon needs at least 3 distinct points, got 2"),
    (_value(POLYGON, points=[[10, 10], [20, 20], [10, 10]]), "a polygon needs at least 3 distinct points, got 2"),
    (_value(POLYGON, points=[]), "a polygon needs at least 3 distinct points, got 0"),
    (_value(POLYGON, points=[[10, 10], [20, 20], [30]]), "Region 0: value.points must be a list of [x, y] pairs"),
    (_value(POLYGON, points=[[10, 10], [20, 20], ["30", 40]]), "value.points must be a list of [x, y] pairs"),
    (_value(POLYGON, points=[[10, 10], [20, 20], [True, 40]]), "value.points must be a list of [x, y] pairs"),
    (_value(POLYGON, points=[[10, 10], [20, 20], [float("nan"), 40]]), "value.points must be a list of [x, y] pairs"),
    (_value(POLYGON, points="10,10 20,20 30,30"), "value.points must be a list of [x, y] pairs"),
    (_value(POLYGON, closed=False), "Region 0: value.closed must be true: an open polygon is not a region"),
    (_value(POLYGON, polygonlabels=["Tower"]),
     'Region 0: "Tower" is not an option of <PolygonLabels name="outline">; use one of "Building", "Road"'),
    (_value(POLYGON, polygonlabels=[]), "Region 0: value.polygonlabels must be a non-empty list of strings"),
    (_value(POLYGON, rotation=0), "Region 0: unexpected key(s) in value: \"rotation\""),
    (_without(POLYGON, "original_width"), "Region 0: original_width must be the image's size in pixels"),
    ({**POLYGON, "type": "keypointlabels"}, 'Region 0: type \'keypointlabels\' does not match <PolygonLabels'),
    (_value(KEYPOINT, x=100.5), "Region 0: the keypoint (100.5, 57.0) is outside the image; x and y are percent"),
    (_value(KEYPOINT, y=-1), "Region 0: the keypoint (42.5, -1) is outside the image"),
    (_value(KEYPOINT, x="42"), "Region 0: value.x must be a number"),
    (_without(KEYPOINT, value_keys=("width",)), "Region 0: value.width must be a number"),
    (_value(KEYPOINT, width=0), "Region 0: value.width is the point's size in percent of the image width"),
    (_value(KEYPOINT, keypointlabels=["Window"]),
     'Region 0: "Window" is not an option of <KeyPointLabels name="kp">; use one of "Door"'),
    (_value(KEYPOINT, keypointlabels="Door"), "value.keypointlabels must be a non-empty list of strings"),
    (_without(KEYPOINT, "original_height"), "Region 0: original_height must be the image's size in pixels"),
])
def test_bad_polygons_and_keypoints_are_refused(region: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ResultInvalid) as caught:
        validate_result(parse_label_config(SHAPES_CONFIG), {"image": PNG}, [region])
    assert message in caught.value.message
    assert caught.value.field == "result"


def test_a_bad_region_is_named_by_its_index() -> None:
    bad = _value(KEYPOINT, keypointlabels=["Window"])
    with pytest.raises(ResultInvalid, match=r"^Region 2: \"Window\""):
        validate_result(parse_label_config(SHAPES_CONFIG), {"image": PNG}, [POLYGON, KEYPOINT, bad])


# --- the HyperText sanitizer -----------------------------------------------------------------------

ALLOWED_TAGS = {"p", "br", "b", "i", "em", "strong", "u", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
                "blockquote", "code", "pre", "span", "div", "table", "thead", "tbody", "tr", "th", "td", "a"}
XSS = [
    '<script>alert(1)</script>',
    '<img src=x onerror=alert(1)>',
    '<svg onload=alert(1)><circle r=1></svg>',
    '<svg><script>alert(1)</script></svg>',
    '<iframe src="javascript:alert(1)"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<p onclick="alert(1)" onmouseover="alert(1)">x</p>',
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<style>@import "javascript:alert(1)";</style>',
    '<body onload=alert(1)>',
    '<form action="javascript:alert(1)"><input type=submit></form>',
    '<button formaction="javascript:alert(1)">x</button>',
    '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    '<object data="javascript:alert(1)"></object>',
    '<embed src="javascript:alert(1)">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="javascript:alert(1)//">',
    '<details open ontoggle=alert(1)>',
    '<video><source onerror="alert(1)"></video>',
    '<template><script>alert(1)</script></template>',
    '<scr<script>ipt>alert(1)</script>',
    '"><script>alert(1)</script>',
    '<!--<img src=x onerror=alert(1)>-->',
]


@pytest.mark.parametrize("payload", XSS)
def test_sanitizer_defuses_xss_payloads(payload: str) -> None:
    out = str(sanitize_html(payload)).lower()
    for bad in ("<script", "<img", "<svg", "<iframe", "<style", "<form", "<input", "<button", "<object", "<embed",
                "<meta", "<base", "<body", "<math", "<details", "<video", "<source", "<template", "<noscript",
                "javascript:", "vbscript:", "data:", "style=", "srcdoc", "formaction"):
        assert bad not in out, (payload, out)
    assert not re.search(r"\son[a-z]+\s*=", out), (payload, out)  # no event handler attribute survives
    assert set(re.findall(r"</?([a-z0-9]+)", out)) <= ALLOWED_TAGS, (payload, out)


def test_sanitizer_keeps_formatting() -> None:
    markup = ('<h2>Title</h2><p>Some <b>bold</b>, <i>italic</i>, <em>em</em>, <strong>strong</strong> and <u>u</u>'
              '<br>text.</p><ul><li>one</li></ul><ol><li>two</li></ol><blockquote>quote</blockquote>'
              '<pre><code>x = 1</code></pre><div><span>plain</span></div>'
              '<table><thead><tr><th colspan="2">h</th></tr></thead><tbody><tr><td rowspan="1">c</td></tr></tbody>'
              '</table>')
    assert str(sanitize_html(markup)) == markup


def test_sanitizer_restricts_links() -> None:
    rel = 'target="_blank" rel="noopener noreferrer nofollow"'
    assert str(sanitize_html('<a href="https://example.com/a?b=1" onclick="x()" target="_self" class="c">go</a>')) \
        == f'<a href="https://example.com/a?b=1" {rel}>go</a>'
    assert str(sanitize_html('<a href="mailto:a@example.com">m</a>')) == f'<a href="mailto:a@example.com" {rel}>m</a>'
    assert str(sanitize_html('<a href="http://example.com" rel="opener">h</a>')) == \
        f'<a href="http://example.com" {rel}>h</a>'
    for href in ("/t/alpha/settings", "//evil.example/x", "ftp://example.com/f", "#top"):
        assert "href" not in str(sanitize_html(f'<a href="{href}">x</a>')), href


def test_sanitizer_drops_script_content_and_keeps_other_text() -> None:
    assert str(sanitize_html("<p>a<script>alert(1)</script>b<style>p{}</style>c</p>")) == "<p>abc</p>"
    assert str(sanitize_html('<form><label>Name</label><input value="v"></form><marquee>m</marquee>')) == "Namem"
    assert str(sanitize_html("1 < 2 & 3 > 2")) == "1 &lt; 2 &amp; 3 &gt; 2"
    assert str(sanitize_html(None)) == ""


# --- the page and the route, on both backends ------------------------------------------------------


@pytest.fixture
def world(runtime):  # type: ignore[no-untyped-def]
    return make_tenant(runtime, "alpha")


def _project(runtime, world, config: str, data: dict, predictions: list[list] = ()) -> tuple[int, int]:  # type: ignore[no-untyped-def,type-arg]
    from workspace.tenancy.context import TenantContext
    from workspace.workflow import services as svc

    with runtime.unit_of_work(world.tenant_id) as db:
        ctx = TenantContext(world.tenant_id, world.slug, world.slug, world.owner.user_id, world.owner.email, "",
                            world.owner.membership_id, "owner")
        project = svc.create_project(db, ctx, "Shapes", label_config=config)
        task = Task(project_id=project.id, data=data, created_at=utcnow())
        db.add(task)
        db.flush()
        for result in predictions:
            db.add(Prediction(project_id=project.id, task_id=task.id, result=result, model_version="v1",
                              created_at=utcnow()))
        db.flush()
        return project.id, task.id


def _submit(client, project_id: int, task_id: int, result):  # type: ignore[no-untyped-def]
    return post_form(client, f"/t/alpha/projects/{project_id}/label",
                     {"task": str(task_id), "result": json.dumps(result), "lead_time": "2"})


def _client_data(page: str) -> dict:  # type: ignore[type-arg]
    return json.loads(page.split('id="label-data">', 1)[1].split("</script>", 1)[0])


def test_polygon_and_keypoint_are_stored_exactly(client, runtime, world):
    project_id, task_id = _project(runtime, world, SHAPES_CONFIG, {"image": PNG})
    login(client, world.owner)
    page = client.get(f"/t/alpha/projects/{project_id}/label").text
    assert 'data-type="polygonlabels"' in page and 'data-type="keypointlabels"' in page
    assert "not available" not in page and "press <kbd>Enter</kbd> to close it" in page
    assert 'id="lbl-regions"' in page
    response = _submit(client, project_id, task_id, [POLYGON, KEYPOINT])
    assert response.status_code == 303, response.text[:2000]
    with runtime.unit_of_work(world.tenant_id) as db:
        (saved,) = db.scalars(select(Annotation)).all()
        assert saved.result == [POLYGON, KEYPOINT]


def test_bad_polygon_is_refused_with_its_reason(client, runtime, world):
    project_id, task_id = _project(runtime, world, SHAPES_CONFIG, {"image": PNG})
    login(client, world.owner)
    response = _submit(client, project_id, task_id, [KEYPOINT, _value(POLYGON, points=[[1, 1], [2, 2], [3, 300]])])
    assert response.status_code == 422
    assert "Region 1: point 3 (3, 300) is outside the image" in response.text
    with runtime.unit_of_work(world.tenant_id) as db:
        assert db.scalars(select(Annotation)).all() == []


def test_latest_prediction_arrives_as_suggestions(client, runtime, world):
    box = {"id": "b", "from_name": "box", "to_name": "image", "type": "rectanglelabels",
           "value": {"x": 5, "y": 5, "width": 10, "height": 10, "rotation": 0, "rectanglelabels": ["Car"]}}
    stale = _value(POLYGON, polygonlabels=["Tower"])  # a label the config no longer has
    off_image = _value(KEYPOINT, x=140)
    no_id = {k: v for k, v in KEYPOINT.items() if k != "id"}
    choice = {"id": "c", "from_name": "outline", "to_name": "image", "type": "choices", "value": {"choices": ["x"]}}
    older = [box]
    latest = [POLYGON, stale, KEYPOINT, off_image, no_id, box, choice, "junk"]
    project_id, task_id = _project(runtime, world, SHAPES_CONFIG, {"image": PNG}, [older, latest])
    login(client, world.owner)
    data = _client_data(client.get(f"/t/alpha/projects/{project_id}/label").text)
    envelope = ("id", "from_name", "to_name", "type", "value")
    assert data["suggestions"][:2] == [{k: POLYGON[k] for k in envelope}, {k: KEYPOINT[k] for k in envelope}]
    assert data["suggestions"][2]["id"].startswith("prediction-") and data["suggestions"][2]["value"] == KEYPOINT["value"]
    assert data["suggestions"][3] == box
    assert len(data["suggestions"]) == 4


def test_no_prediction_no_suggestions(client, runtime, world):
    project_id, _ = _project(runtime, world, SHAPES_CONFIG, {"image": PNG})
    login(client, world.owner)
    assert _client_data(client.get(f"/t/alpha/projects/{project_id}/label").text)["suggestions"] == []


HYPERTEXT_CONFIG = """<View>
  <HyperText name="page" value="$html"/>
  <Choices name="verdict" toName="page"><Choice value="Spam"/><Choice value="Ham"/></Choices>
</View>"""


def test_hypertext_is_shown_as_sanitized_html(client, runtime, world):
    html = ('<p>Hello <b>bold</b> <a href="https://example.com">link</a></p>'
            '<script>alert("s")</script><img src=x onerror=alert(1)><a href="javascript:alert(2)">js</a>')
    project_id, _ = _project(runtime, world, HYPERTEXT_CONFIG, {"html": html})
    login(client, world.owner)
    page = client.get(f"/t/alpha/projects/{project_id}/label").text
    body = page.split('data-testid="text-page">', 1)[1].split("</div>", 1)[0]
    assert body == ('<p>Hello <b>bold</b> <a href="https://example.com" target="_blank" '
                    'rel="noopener noreferrer nofollow">link</a></p>'
                    '<a target="_blank" rel="noopener noreferrer nofollow">js</a>')
    assert "onerror" not in page and "alert(" not in page and "javascript:" not in page
    assert "shown as plain text" not in page


def test_hypertext_with_span_labels_stays_plain_text(client, runtime, world):
    config = """<View>
  <HyperText name="page" value="$html"/>
  <Labels name="ner" toName="page"><Label value="PER"/></Labels>
</View>"""
    project_id, task_id = _project(runtime, world, config, {"html": "<p>Ada <b>Lovelace</b></p>"})
    login(client, world.owner)
    page = client.get(f"/t/alpha/projects/{project_id}/label").text
    assert 'data-text-for="page"' in page and "Ada Lovelace" in page and "<b>Lovelace</b>" not in page
    assert "Shown as plain text, so that spans can be selected in it." in page
    result = [{"id": "s", "from_name": "ner", "to_name": "page", "type": "labels",
               "value": {"start": 4, "end": 12, "text": "Lovelace", "labels": ["PER"]}}]
    assert _submit(client, project_id, task_id, result).status_code == 303
