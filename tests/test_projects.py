"""Project services: label configs validated, label removal refused while annotations use them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from conftest import add_member, login, make_tenant, post_form
from workspace.lib.timeutil import utcnow
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Conflict, NotFound
from workspace.workflow import services as svc
from workspace.workflow.models import Annotation, Task

NER = """<View>
  <Labels name="label" toName="text">
    <Label value="PER"/>
    <Label value="ORG"/>
    <Label value="LOC"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>"""


def _ctx(world) -> TenantContext:  # type: ignore[no-untyped-def]
    return TenantContext(world.tenant_id, world.slug, world.slug, world.owner.user_id, world.owner.email, "",
                         world.owner.membership_id, "owner")


def test_create_project_validates_the_config(runtime):
    world = make_tenant(runtime, "acme")
    with runtime.unit_of_work(world.tenant_id) as db:
        project = svc.create_project(db, _ctx(world), "Intents")
        assert "<Choices" in project.label_config
    with pytest.raises(svc.ConfigInvalid) as info:
        with runtime.unit_of_work(world.tenant_id) as db:
            svc.create_project(db, _ctx(world), "Broken", label_config="<View><Text name='t' value='$t'/>"
                               "<Choices name='c' toName='nowhere'><Choice value='a'/></Choices></View>")
    assert info.value.field == "label_config"
    assert any("nowhere" in p.message for p in info.value.problems)
    assert all(p.line >= 1 and p.column >= 1 for p in info.value.problems)


def _annotate(runtime, world, project_id, labels):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        task = Task(project_id=project_id, data={"text": "Ada works at IBM"}, created_at=utcnow())
        db.add(task)
        db.flush()
        db.add(Annotation(project_id=project_id, task_id=task.id, result=[
            {"id": f"r{i}", "from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": 0, "end": 3, "text": "Ada", "labels": [label]}} for i, label in enumerate(labels)]))


def test_removing_a_label_in_use_is_refused_with_the_list(runtime):
    world = make_tenant(runtime, "acme")
    with runtime.unit_of_work(world.tenant_id) as db:
        project_id = svc.create_project(db, _ctx(world), "NER", label_config=NER).id
    _annotate(runtime, world, project_id, ["PER", "ORG"])
    without_org_and_loc = NER.replace('    <Label value="ORG"/>\n', "").replace('    <Label value="LOC"/>\n', "")
    with pytest.raises(Conflict) as info:
        with runtime.unit_of_work(world.tenant_id) as db:
            svc.update_project(db, _ctx(world), project_id, label_config=without_org_and_loc)
    assert "label: ORG" in info.value.message and "LOC" not in info.value.message
    # Removing only the unused label is fine.
    with runtime.unit_of_work(world.tenant_id) as db:
        svc.update_project(db, _ctx(world), project_id, label_config=NER.replace('    <Label value="LOC"/>\n', ""))
        assert "LOC" not in svc.get_project(db, project_id).label_config


def test_delete_project_takes_tasks_annotations_and_grants(runtime):
    from workspace.tenancy.services import grant_project_role

    world = make_tenant(runtime, "acme")
    ann = add_member(runtime, world, "ann@acme.example", "annotator")
    with runtime.unit_of_work(world.tenant_id) as db:
        ctx = _ctx(world).__class__(**{**_ctx(world).__dict__, "permissions": frozenset({"project:update",
                                       "project:read", "project:annotate", "project:review", "tenant:read",
                                       "token:own"})})
        project_id = svc.create_project(db, ctx, "Doomed").id
        grant_project_role(db, ctx, project_id, "reviewer", user_id=ann.user_id)
    assert runtime.authz.can(ann.user_id, world.tenant_id, "project:review", project_id)
    _annotate(runtime, world, project_id, ["PER"])
    with runtime.unit_of_work(world.tenant_id) as db:
        svc.delete_project(db, _ctx(world), project_id)
    with runtime.unit_of_work(world.tenant_id) as db:
        assert db.scalar(select(func.count()).select_from(Task)) == 0
        assert db.scalar(select(func.count()).select_from(Annotation)) == 0
        with pytest.raises(NotFound):
            svc.get_project(db, project_id)
    assert not runtime.authz.can(ann.user_id, world.tenant_id, "project:review", project_id)


def test_project_page_reports_config_problems_next_to_the_field(client, runtime):
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    r = post_form(client, "/t/acme/projects", {"title": "X", "label_config": "<View><Bogus/></View>"})
    assert r.status_code == 422
    assert "Bogus" in r.text and "line 1" in r.text


@pytest.mark.parametrize("key", [t.key for t in __import__("workspace.workflow.templates", fromlist=["x"]).TEMPLATES])
def test_every_gallery_template_is_a_valid_config(key):
    from workspace.workflow.label_config import validate_label_config
    from workspace.workflow.templates import template

    assert validate_label_config(template(key).config) == []


def test_create_from_template_then_edit_settings_and_delete(client, runtime):
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    r = post_form(client, "/t/acme/projects", {"title": "People", "template": "named-entities"})
    assert r.status_code == 303
    path = r.headers["location"]
    project_id = int(path.rsplit("/", 1)[1])
    page = client.get(path)
    assert "&lt;Labels name=&#34;label&#34;" in page.text or "&lt;Labels name=\"label\"" in page.text
    check = post_form(client, f"{path}/config-check", {"label_config": "<View><Text name='t' value='$t'/></View>"},
                      headers={"HX-Request": "true"})
    assert check.status_code == 200 and "problem" in check.text and "<html" not in check.text
    good = post_form(client, f"{path}/config-check", {"label_config": NER}, headers={"HX-Request": "true"})
    assert "Valid." in good.text and "$text" in good.text
    r = post_form(client, f"{path}/settings", {"title": "People & places", "description": "", "instructions": "Be **careful**",
                                             "label_config": NER})
    assert r.status_code == 303
    bad = post_form(client, f"{path}/delete", {"confirm": "wrong"})
    assert bad.status_code == 422 and "Type the project" in bad.text
    assert post_form(client, f"{path}/delete", {"confirm": "People & places"}).status_code == 303
    assert client.get(path).status_code == 404
    with runtime.unit_of_work(world.tenant_id) as db:
        from workspace.audit.models import AuditEvent

        actions = [e.action for e in db.scalars(select(AuditEvent).where(AuditEvent.object_type == "project"))]
    assert actions == ["project.created", "project.updated", "project.deleted"]
    assert project_id > 0


def test_instructions_are_markdown_rendered_safely(client, runtime):
    world = make_tenant(runtime, "acme")
    login(client, world.owner)
    r = post_form(client, "/t/acme/projects", {"title": "Docs", "template": "text-classification"})
    path = r.headers["location"]
    project_id = int(path.rsplit("/", 1)[1])
    with runtime.unit_of_work(world.tenant_id) as db:
        db.add(Task(project_id=project_id, data={"text": "hello"}, created_at=utcnow()))
        project = svc.get_project(db, project_id)
        project.instructions = ("Be **careful**.\n\n<script>alert(1)</script>\n\n"
                                "[click](javascript:alert(2)) [docs](https://example.com/guide)")
    page = client.get(f"{path}/label")
    assert page.status_code == 200
    assert "<strong>careful</strong>" in page.text
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text
    assert 'href="javascript:' not in page.text
    assert 'href="https://example.com/guide"' in page.text
