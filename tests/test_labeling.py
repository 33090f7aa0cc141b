"""The labeling page and annotation submission (both backends): the config renders server-side, results
are stored exactly in Label Studio's format, invalid results are refused with 422 and nothing is saved."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, update

from conftest import add_member, grant_project, login, make_tenant, post_form
from workspace.lib.timeutil import utcnow
from workspace.workflow.models import Annotation, Project, Task
from workspace.workflow.templates import TEMPLATES, template

PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
       "AAAABJRU5ErkJggg==")
WAV = "data:audio/wav;base64,UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA="
TEXT = "Ada Lovelace worked with Charles Babbage in London."


def _project(runtime, world, key: str, tasks: list[dict], title: str | None = None) -> tuple[int, list[int]]:  # type: ignore[no-untyped-def]
    from workspace.tenancy.context import TenantContext
    from workspace.workflow import services as svc

    with runtime.unit_of_work(world.tenant_id) as db:
        ctx = TenantContext(world.tenant_id, world.slug, world.slug, world.owner.user_id, world.owner.email, "",
                            world.owner.membership_id, "owner")
        project = svc.create_project(db, ctx, title or key, label_config=template(key).config)
        ids = []
        for data in tasks:
            task = Task(project_id=project.id, data=data, created_at=utcnow())
            db.add(task)
            db.flush()
            ids.append(task.id)
        return project.id, ids


def _submit(client, slug, project_id, task_id, result, lead_time="3.5", htmx=False):  # type: ignore[no-untyped-def]
    headers = {"HX-Request": "true"} if htmx else None
    return post_form(client, f"/t/{slug}/projects/{project_id}/label",
                     {"task": str(task_id), "result": result if isinstance(result, str) else json.dumps(result),
                      "lead_time": lead_time}, headers=headers)


def _annotations(runtime, world) -> list[Annotation]:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        rows = list(db.scalars(select(Annotation).order_by(Annotation.id)))
        db.expunge_all()
        return rows


def _count(runtime, world, task_id) -> int:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return db.scalar(select(Task.annotation_count).where(Task.id == task_id))


@pytest.fixture
def world(runtime):  # type: ignore[no-untyped-def]
    return make_tenant(runtime, "alpha")


# --- rendering -------------------------------------------------------------------------------------

DATA_FOR = {"text": {"text": TEXT}, "image": {"image": PNG}, "audio": {"audio": WAV}}
EXPECTED = {  # something each gallery config must render
    "text-classification": ['type="radio"', 'value="Positive"', 'data-hotkey="1"', 'data-text-for="text"'],
    "multi-label": ['type="checkbox"', 'value="Billing"'],
    "named-entities": ['data-type="labels"', 'data-label="PER"', 'data-color="#ef4444"', 'data-hotkey="p"'],
    "sentiment": ["How does the author feel?", 'class="lbl-star"', 'name="rating-rating" value="5"'],
    "image-classification": ["<img src=\"data:image/png", 'value="Cat"'],
    "object-detection": ['data-stage-for="image"', 'data-type="rectanglelabels"', 'data-label="Car"'],
    "polygons": ['data-type="polygonlabels"'],
    "keypoints": ['data-type="keypointlabels"'],
    "audio-classification": ['<audio controls', 'value="Speech"'],
    "audio-transcription": ['<audio controls', 'data-type="textarea"', 'rows="4"'],
}


def test_every_gallery_config_renders(client, runtime, world):
    assert set(EXPECTED) == {t.key for t in TEMPLATES}
    login(client, world.owner)
    for t in TEMPLATES:
        project_id, (task_id,) = _project(runtime, world, t.key, [DATA_FOR[t.kind]])
        page = client.get(f"/t/alpha/projects/{project_id}/label")
        assert page.status_code == 200, (t.key, page.text[:400])
        assert f"Task <span class=\"lbl-task-id\">#{task_id}</span>" in page.text
        for needle in EXPECTED[t.key]:
            assert needle in page.text, (t.key, needle)
        assert "/static/labeling.js" in page.text and "/static/labeling.css" in page.text
        assert 'style="' not in page.text and " onclick" not in page.text


def test_other_controls_render_and_validate(client, runtime, world):
    config = """<View>
  <Header value="$title"/>
  <HyperText name="html" value="$html"/>
  <Number name="n" toName="html" min="1" max="10"/>
  <TextArea name="note" toName="html" placeholder="Say why"/>
</View>"""
    from workspace.tenancy.context import TenantContext
    from workspace.workflow import services as svc

    with runtime.unit_of_work(world.tenant_id) as db:
        ctx = TenantContext(world.tenant_id, "alpha", "Alpha", world.owner.user_id, world.owner.email, "",
                            world.owner.membership_id, "owner")
        project = svc.create_project(db, ctx, "Mixed", label_config=config)
        task = Task(project_id=project.id, data={"title": "Read <b>this</b>",
                                                  "html": '<p onclick="x()">Hello <b>world</b></p><script>alert(1)</script>'},
                    created_at=utcnow())
        db.add(task)
        db.flush()
        project_id, task_id = project.id, task.id
    login(client, world.owner)
    page = client.get(f"/t/alpha/projects/{project_id}/label?task={task_id}").text
    assert "Read &lt;b&gt;this&lt;/b&gt;" in page
    assert "Hello world" in page and "alert(1)" not in page and "onclick" not in page
    assert 'type="number"' in page and 'min="1"' in page and 'placeholder="Say why"' in page
    bad = _submit(client, "alpha", project_id, task_id, [
        {"id": "a", "from_name": "n", "to_name": "html", "type": "number", "value": {"number": 11}}])
    assert bad.status_code == 422 and "Region 0: value.number 11 is outside 1..10" in bad.text
    ok = _submit(client, "alpha", project_id, task_id, [
        {"id": "a", "from_name": "n", "to_name": "html", "type": "number", "value": {"number": 7}},
        {"id": "b", "from_name": "note", "to_name": "html", "type": "textarea", "value": {"text": ["fine"]}}])
    assert ok.status_code == 303


def test_xss_in_task_data_is_escaped(client, runtime, world):
    evil = '</script><script>alert("x")</script><img src=x onerror=alert(1)>'
    project_id, (task_id,) = _project(runtime, world, "named-entities", [{"text": evil}])
    login(client, world.owner)
    page = client.get(f"/t/alpha/projects/{project_id}/label?task={task_id}").text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    # The JSON data block cannot be closed early either.
    block = page.split('id="label-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(block)["texts"]["text"] == evil


def test_foreign_media_urls_are_not_loaded(client, runtime, world):
    project_id, ids = _project(runtime, world, "image-classification",
                               [{"image": "https://evil.example/cat.png"}, {"image": "javascript:alert(1)"},
                                {"image": "/media/1/cat.png"}])
    login(client, world.owner)
    first = client.get(f"/t/alpha/projects/{project_id}/label?task={ids[0]}").text
    assert "<img" not in first.split('class="lbl-canvas"')[1] and "https://evil.example/cat.png" in first
    assert "cannot be shown here" in first
    second = client.get(f"/t/alpha/projects/{project_id}/label?task={ids[1]}").text
    assert 'src="javascript' not in second
    third = client.get(f"/t/alpha/projects/{project_id}/label?task={ids[2]}").text
    assert '<img src="/media/1/cat.png"' in third


# --- submitting valid results: stored exactly as Label Studio writes them --------------------------


def test_text_choice_is_stored_exactly(client, runtime, world):
    project_id, (t1, t2) = _project(runtime, world, "text-classification", [{"text": "good"}, {"text": "bad"}])
    login(client, world.owner)
    result = [{"id": "r1", "from_name": "sentiment", "to_name": "text", "type": "choices",
               "value": {"choices": ["Positive"]}}]
    response = _submit(client, "alpha", project_id, t1, result)
    assert response.status_code == 303
    assert response.headers["location"] == f"/t/alpha/projects/{project_id}/label?task={t2}"
    (saved,) = _annotations(runtime, world)
    assert saved.result == result and saved.status == "submitted" and saved.lead_time == 3.5
    assert saved.completed_by_id == world.owner.user_id and saved.task_id == t1 and saved.project_id == project_id
    assert _count(runtime, world, t1) == 1


def test_ner_span_is_stored_exactly(client, runtime, world):
    project_id, (task_id,) = _project(runtime, world, "named-entities", [{"text": TEXT}])
    login(client, world.owner)
    result = [{"id": "s1", "from_name": "label", "to_name": "text", "type": "labels",
               "value": {"start": 0, "end": 12, "text": "Ada Lovelace", "labels": ["PER"]}},
              {"id": "s2", "from_name": "label", "to_name": "text", "type": "labels",
               "value": {"start": 4, "end": 12, "text": "Lovelace", "labels": ["MISC"]}},  # overlapping
              {"id": "s3", "from_name": "label", "to_name": "text", "type": "labels",
               "value": {"start": 44, "end": 50, "text": "London", "labels": ["LOC"]}}]
    response = _submit(client, "alpha", project_id, task_id, result, htmx=True)
    assert response.status_code == 204
    assert response.headers["hx-redirect"] == f"/t/alpha/projects/{project_id}/label"
    (saved,) = _annotations(runtime, world)
    assert saved.result == result


def test_rectangle_is_stored_exactly(client, runtime, world):
    project_id, (task_id,) = _project(runtime, world, "object-detection", [{"image": PNG}])
    login(client, world.owner)
    result = [{"id": "b1", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
               "original_width": 640, "original_height": 480, "image_rotation": 0,
               "value": {"x": 12.5, "y": 20.0, "width": 30.25, "height": 40.0, "rotation": 0,
                         "rectanglelabels": ["Car"]}}]
    assert _submit(client, "alpha", project_id, task_id, result).status_code == 303
    (saved,) = _annotations(runtime, world)
    assert saved.result == result


def test_transcription_is_stored_exactly(client, runtime, world):
    project_id, (task_id,) = _project(runtime, world, "audio-transcription", [{"audio": WAV}])
    login(client, world.owner)
    result = [{"id": "t1", "from_name": "transcription", "to_name": "audio", "type": "textarea",
               "value": {"text": ["hello world\nsecond line"]}}]
    assert _submit(client, "alpha", project_id, task_id, result).status_code == 303
    (saved,) = _annotations(runtime, world)
    assert saved.result == result


# --- invalid results: 422, a precise message, nothing stored ---------------------------------------

SPAN = {"id": "s1", "from_name": "label", "to_name": "text", "type": "labels",
        "value": {"start": 0, "end": 3, "text": "Ada", "labels": ["PER"]}}
BOX = {"id": "b1", "from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": 10,
       "original_height": 10, "value": {"x": 10, "y": 10, "width": 20, "height": 20, "rotation": 0,
                                         "rectanglelabels": ["Car"]}}


def _with(region: dict, **value) -> dict:  # type: ignore[type-arg]
    return {**region, "value": {**region["value"], **value}}


@pytest.mark.parametrize(("key", "result", "message"), [
    ("named-entities", [_with(SPAN, labels=["PERSON"])],
     'Region 0: "PERSON" is not an option of <Labels name="label">; use one of "PER", "ORG", "LOC", "MISC"'),
    ("named-entities", [SPAN, _with(SPAN, text="Adx")],
     "Region 1: value.text 'Adx' does not match the task text at 0-3 ('Ada')"),
    ("named-entities", [_with(SPAN, start=40, end=400)], "Region 0: span 40-400 is outside the text"),
    ("named-entities", [{**SPAN, "from_name": "labelz"}],
     "Region 0: from_name 'labelz' is not a control of the label config; controls: \"label\""),
    ("named-entities", [{**SPAN, "type": "choices"}], 'Region 0: type \'choices\' does not match <Labels name="label">'),
    ("named-entities", [{**SPAN, "to_name": "image"}], "Region 0: to_name 'image' is not the object"),
    ("named-entities", [{**SPAN, "id": 5}], "Region 0: id must be a non-empty string"),
    ("named-entities", [], "The annotation is empty"),
    ("named-entities", "not json", "The result is not valid JSON"),
    ("named-entities", {"a": 1}, "The result must be a JSON list of regions."),
    ("object-detection", [_with(BOX, x=90, width=20)], "Region 0: the box (90, 10, 20 x 20) extends past the image"),
    ("object-detection", [_with(BOX, y=-1)], "Region 0: the box corner (10, -1) is outside the image"),
    ("object-detection", [{**BOX, "original_width": 0}], "Region 0: original_width must be the image's size"),
    ("object-detection", [_with(BOX, rectanglelabels=["Truck"])], '"Truck" is not an option of <RectangleLabels'),
    ("text-classification", [{"id": "c", "from_name": "sentiment", "to_name": "text", "type": "choices",
                              "value": {"choices": ["Positive", "Negative"]}}],
     'Region 0: <Choices name="sentiment"> allows one choice, got 2'),
    ("sentiment", [{"id": "r", "from_name": "rating", "to_name": "text", "type": "rating", "value": {"rating": 6}}],
     "Region 0: value.rating must be a whole number from 1 to 5"),
    ("audio-transcription", [{"id": "t", "from_name": "transcription", "to_name": "audio", "type": "textarea",
                              "value": {"text": "not a list"}}], "Region 0: value.text must be a non-empty list"),
])
def test_invalid_results_are_refused(client, runtime, world, key, result, message):
    data = {"text": TEXT, "image": PNG, "audio": WAV}
    project_id, (task_id,) = _project(runtime, world, key, [data])
    login(client, world.owner)
    response = _submit(client, "alpha", project_id, task_id, result)
    assert response.status_code == 422
    assert message in response.text.replace("&#34;", '"').replace("&#39;", "'").replace("&lt;", "<").replace(
        "&gt;", ">"), response.text[:3000]
    htmx = _submit(client, "alpha", project_id, task_id, result, htmx=True)
    assert htmx.status_code == 422 and 'data-testid="label-error"' in htmx.text and "<html" not in htmx.text
    assert _annotations(runtime, world) == []
    assert _count(runtime, world, task_id) == 0


def test_task_of_another_project_or_tenant_is_404(client, runtime, world):
    bravo = make_tenant(runtime, "bravo")
    project_a, (task_a,) = _project(runtime, world, "text-classification", [{"text": "a"}])
    other_a, (task_other,) = _project(runtime, world, "text-classification", [{"text": "b"}])
    _, (task_b,) = _project(runtime, bravo, "text-classification", [{"text": "c"}])
    login(client, world.owner)
    result = [{"id": "r1", "from_name": "sentiment", "to_name": "text", "type": "choices",
               "value": {"choices": ["Positive"]}}]
    for task_id in (task_other, task_b, 987654):
        assert _submit(client, "alpha", project_a, task_id, result).status_code == 404
        assert client.get(f"/t/alpha/projects/{project_a}/label?task={task_id}").status_code == 404
    assert client.get(f"/t/alpha/projects/{project_a}/label?task=abc").status_code == 404
    assert _submit(client, "alpha", project_a, "", result).status_code == 404
    assert _annotations(runtime, world) == []
    assert _submit(client, "alpha", project_a, task_a, result).status_code == 303


# --- counting and the next task --------------------------------------------------------------------


def test_count_increments_and_next_task_skips_my_work(client, make_client, runtime, world):
    project_id, (t1, t2, t3) = _project(runtime, world, "text-classification",
                                        [{"text": "one"}, {"text": "two"}, {"text": "three"}])
    annotator = add_member(runtime, world, "ann@alpha.example", "annotator")
    grant_project(runtime, world, project_id, person=annotator)
    with runtime.unit_of_work(world.tenant_id) as db:  # two annotations per task: t1 has a slot left for ann
        db.execute(update(Project).where(Project.id == project_id).values(workflow={"overlap": 2}))
    result = [{"id": "r1", "from_name": "sentiment", "to_name": "text", "type": "choices",
               "value": {"choices": ["Neutral"]}}]
    login(client, world.owner)
    assert f"#{t1}</span>" in client.get(f"/t/alpha/projects/{project_id}/label").text
    assert _submit(client, "alpha", project_id, t1, result).status_code == 303
    assert f"#{t2}</span>" in client.get(f"/t/alpha/projects/{project_id}/label").text

    other = make_client()
    login(other, annotator)
    page = other.get(f"/t/alpha/projects/{project_id}/label").text
    assert f"#{t1}</span>" in page, "another annotator still gets the task I labeled"
    assert _submit(other, "alpha", project_id, t1, result).status_code == 303
    assert _count(runtime, world, t1) == 2

    for task_id in (t2, t3):
        assert _submit(client, "alpha", project_id, task_id, result).status_code == 303
    done = client.get(f"/t/alpha/projects/{project_id}/label")
    assert done.status_code == 200 and 'data-testid="label-empty"' in done.text and "All done" in done.text
    assert "3 of 3 tasks labeled by you" in done.text
    # A labeled task can still be opened by id.
    assert f"#{t3}</span>" in client.get(f"/t/alpha/projects/{project_id}/label?task={t3}").text


def test_reader_without_annotate_permission_is_refused(make_client, runtime, world):
    from workspace.tenancy.authz import policy

    project_id, (task_id,) = _project(runtime, world, "text-classification", [{"text": "a"}])
    with runtime.unit_of_work(world.tenant_id) as db:
        policy.set_custom_role(db, world.tenant_id, "reader", ["tenant:read", "project:read"])
    reader = add_member(runtime, world, "reader@alpha.example", "reader")
    c = make_client()
    login(c, reader)
    assert c.get(f"/t/alpha/projects/{project_id}/label").status_code == 403


def test_empty_project_shows_empty_state(client, runtime, world):
    project_id, _ = _project(runtime, world, "named-entities", [])
    login(client, world.owner)
    page = client.get(f"/t/alpha/projects/{project_id}/label")
    assert page.status_code == 200 and "No tasks yet" in page.text
