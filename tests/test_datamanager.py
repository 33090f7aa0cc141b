"""The data manager: filters, keyset paging, escaping, bulk deletion, visibility, query counts."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from conftest import add_member, grant_project, login, make_tenant, post_form
from workspace.audit.models import AuditEvent
from workspace.workflow import datamanager as dm
from workspace.workflow.models import Annotation, Prediction, Project, Task

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def _project(runtime, world, title="Reviews"):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        p = Project(title=title, created_by_id=world.owner.user_id)
        db.add(p)
        db.flush()
        return p.id


def _tasks(runtime, world, project_id, items, *, start=T0):  # type: ignore[no-untyped-def]
    """items: list of data dicts (or (data, extra) tuples with annotators/predictions/created)."""
    ids = []
    with runtime.unit_of_work(world.tenant_id) as db:
        for n, item in enumerate(items):
            data, extra = (item if isinstance(item, tuple) else (item, {}))
            task = Task(project_id=project_id, data=data, created_at=extra.get("created", start + timedelta(hours=n)))
            db.add(task)
            db.flush()
            for user_id in extra.get("annotators", []):
                db.add(Annotation(project_id=project_id, task_id=task.id, result=[], completed_by_id=user_id))
            task.annotation_count = len(extra.get("annotators", []))
            for _ in range(extra.get("predictions", 0)):
                db.add(Prediction(project_id=project_id, task_id=task.id, result=[], created_at=T0))
            task.prediction_count = extra.get("predictions", 0)
            db.flush()
            ids.append(task.id)
    return ids


def _ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'name="ids" value="(\d+)"', html)]


def _url(world, project_id, **params):  # type: ignore[no-untyped-def]
    from urllib.parse import urlencode

    base = f"/t/{world.slug}/projects/{project_id}/data"
    return f"{base}?{urlencode(params)}" if params else base


def _next(html: str, rel: str) -> str | None:
    m = re.search(rf'rel="{rel}" href="([^"]+)"', html)
    return m.group(1).replace("&amp;", "&") if m else None


@pytest.fixture
def world(runtime):  # type: ignore[no-untyped-def]
    return make_tenant(runtime, "alpha")


def test_page_lists_tasks_with_columns_and_annotators(client, runtime, world):
    pid = _project(runtime, world)
    ann = add_member(runtime, world, "ann@alpha.example", "annotator")
    _tasks(runtime, world, pid, [({"text": "hello world", "meta": 7}, {"annotators": [ann.user_id], "predictions": 2}),
                                 {"text": "second"}])
    login(client, world.owner)
    r = client.get(_url(world, pid))
    assert r.status_code == 200
    assert "Data manager" in r.text and "hello world" in r.text and "meta: 7" in r.text
    assert "ann@alpha.example" in r.text
    assert f'href="/t/alpha/projects/{pid}"' in r.text  # back to the project
    assert "2 </div>" not in r.text  # sanity: the page rendered the count block
    assert re.search(r"<strong>2</strong> tasks", r.text)


def test_empty_state_and_filter_errors(client, runtime, world):
    pid = _project(runtime, world)
    login(client, world.owner)
    r = client.get(_url(world, pid))
    assert "No tasks yet — import data" in r.text
    r = client.get(_url(world, pid, created_from="2024-02-31", created_to="nope", annotator="x", sort="bogus"))
    assert r.status_code == 200
    assert r.text.count("Enter a date as YYYY-MM-DD.") == 2
    assert "Pick a member from the list." in r.text


def test_filters(client, runtime, world):
    pid = _project(runtime, world)
    ann = add_member(runtime, world, "ann@alpha.example", "annotator")
    other = add_member(runtime, world, "other@alpha.example", "annotator")
    ids = _tasks(runtime, world, pid, [
        ({"text": "apple pie"}, {"annotators": [ann.user_id], "created": T0}),
        ({"text": "banana split"}, {"annotators": [other.user_id], "predictions": 1, "created": T0 + timedelta(days=1)}),
        ({"text": "cherry Apple"}, {"predictions": 3, "created": T0 + timedelta(days=2)}),
        ({"text": "100% juice_box"}, {"created": T0 + timedelta(days=3)}),
        ({"text": "100 juicexbox"}, {"created": T0 + timedelta(days=4)}),
        ({"text": "café crème"}, {"created": T0 + timedelta(days=5)}),
    ])
    login(client, world.owner)

    def shown(**params):  # type: ignore[no-untyped-def]
        r = client.get(_url(world, pid, **params))
        assert r.status_code == 200, r.text[:300]
        return sorted(_ids(r.text))

    assert shown() == ids
    assert shown(state="labeled") == ids[:2]
    assert shown(state="unlabeled") == ids[2:]
    assert shown(annotator=ann.user_id) == [ids[0]]
    assert shown(annotator=other.user_id) == [ids[1]]
    assert shown(text="apple") == [ids[0], ids[2]]  # case-insensitive
    assert shown(text="0% juice_") == [ids[3]]  # % and _ are literal
    assert shown(text="%") == [ids[3]]
    assert shown(text="_") == [ids[3]]
    assert shown(text="café") == [ids[5]]
    assert shown(has_predictions="yes") == [ids[1], ids[2]]
    assert shown(has_predictions="no") == [ids[0], ids[3], ids[4], ids[5]]
    day = T0.date()
    assert shown(created_from=(day + timedelta(days=1)).isoformat(), created_to=(day + timedelta(days=2)).isoformat()) == ids[1:3]
    assert shown(created_to=day.isoformat()) == [ids[0]]
    assert shown(state="labeled", has_predictions="yes", text="banana") == [ids[1]]


@pytest.mark.parametrize("sort", list(dm.SORTS))
def test_keyset_pages_cover_every_task_once_in_both_directions(client, runtime, world, sort):
    pid = _project(runtime, world)
    ann = add_member(runtime, world, "ann@alpha.example", "annotator")
    # duplicate sort keys (same created time, same annotation counts) make ties the id must break
    items = [({"text": f"t{n}"}, {"created": T0 + timedelta(hours=n // 3), "annotators": [ann.user_id] * (n % 3)})
             for n in range(23)]
    ids = _tasks(runtime, world, pid, items)
    _tasks(runtime, world, _project(runtime, world, "Other"), [{"text": "elsewhere"}])
    if "agreement" in sort:  # that sort lists the tasks that have an agreement: give each one, with ties
        with runtime.unit_of_work(world.tenant_id) as db:
            for n, task_id in enumerate(ids):
                db.get(Task, task_id).agreement = (n % 4) / 4
    login(client, world.owner)
    seen: list[int] = []
    url = _url(world, pid, sort=sort, page_size=5)
    pages = []
    while url:
        r = client.get(url)
        assert r.status_code == 200
        got = _ids(r.text)
        assert 0 < len(got) <= 5
        pages.append(got)
        seen += got
        url = _next(r.text, "next")
    assert sorted(seen) == sorted(ids) and len(seen) == len(ids)
    assert len(pages) == 5
    # and back, from the last page, with the "before" cursors
    back: list[list[int]] = []
    url = _next(r.text, "prev")
    while url:
        r = client.get(url)
        got = _ids(r.text)
        back.insert(0, got)
        url = _next(r.text, "prev")
    assert back == pages[:-1]
    # the order is the sort's order
    with runtime.unit_of_work(world.tenant_id) as db:
        rows = {t.id: t for t in db.scalars(select(Task).where(Task.project_id == pid))}
    keyf = {"id": lambda t: (t.id,), "created": lambda t: (t.created_at, t.id),
            "annotations": lambda t: (t.annotation_count, t.id),
            "agreement": lambda t: (t.agreement, t.id)}[dm.SORTS[sort][1]]
    expected = sorted(ids, key=lambda i: keyf(rows[i]), reverse=dm.SORTS[sort][2])
    assert seen == expected


def test_cursor_is_keyset_and_sql_has_no_offset(client, runtime, world):
    pid = _project(runtime, world)
    _tasks(runtime, world, pid, [{"text": f"t{n}"} for n in range(12)])
    statements: list[str] = []

    def listen(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        statements.append((statement, params))

    login(client, world.owner)
    first = client.get(_url(world, pid, page_size=5, sort="-created"))
    nxt = _next(first.text, "next")
    assert nxt
    cursor = re.search(r"after=([^&]+)", nxt).group(1)
    made_for, key, task_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert made_for == "-created" and isinstance(task_id, int) and key
    event.listen(runtime.engine, "before_cursor_execute", listen)
    try:
        client.get(nxt)
    finally:
        event.remove(runtime.engine, "before_cursor_execute", listen)
    task_selects = [(s, p) for s, p in statements if "task.data" in s and "LIMIT" in s.upper()]
    assert task_selects
    for statement, params in task_selects:
        # SQLite's dialect always writes "LIMIT ? OFFSET ?" and binds 0; PostgreSQL writes no OFFSET.
        assert "OFFSET" not in statement.upper() or (runtime.engine.dialect.name == "sqlite" and params[-1] == 0)
        assert re.search(r"\) [<>] \(", statement), statement  # (created_at, id) < (cursor)
    # a cursor made for another sort (or garbage) is ignored: first page
    assert _ids(client.get(_url(world, pid, page_size=5, sort="id", after=cursor)).text) == _ids(
        client.get(_url(world, pid, page_size=5, sort="id")).text)
    assert client.get(_url(world, pid, after="!!!garbage")).status_code == 200


def test_values_are_escaped(client, runtime, world):
    pid = _project(runtime, world)
    _tasks(runtime, world, pid, [{"text": "<script>alert(1)</script>", "<img src=x onerror=alert(2)>": "<b>x</b>"}])
    login(client, world.owner)
    r = client.get(_url(world, pid))
    assert "<script>alert(1)" not in r.text and "<img src=x" not in r.text and "<b>x</b>" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    r = client.get(_url(world, pid, text="<script>"), headers={"HX-Request": "true"})
    assert "<script>alert(1)" not in r.text and "&lt;script&gt;" in r.text


def test_htmx_gets_only_the_table(client, runtime, world):
    pid = _project(runtime, world)
    _tasks(runtime, world, pid, [{"text": "one"}])
    login(client, world.owner)
    r = client.get(_url(world, pid, created_from="bad"), headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert 'id="dm-results"' in r.text and "<html" not in r.text and "dm-filters" not in r.text
    assert 'id="e-created_from" hx-swap-oob="true">Enter a date' in r.text


def _audit(runtime, world, action="task.bulk_deleted"):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _task_ids(runtime, world, pid):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return sorted(db.scalars(select(Task.id).where(Task.project_id == pid)))


def test_bulk_delete_selected_ids_with_confirmation(client, runtime, world):
    pid = _project(runtime, world)
    ann = add_member(runtime, world, "ann@alpha.example", "annotator")
    ids = _tasks(runtime, world, pid, [({"text": "a"}, {"annotators": [ann.user_id], "predictions": 1}),
                                       {"text": "b"}, {"text": "c"}])
    login(client, world.owner)
    path = f"/t/alpha/projects/{pid}/data/delete"
    r = post_form(client, path, {"ids": [str(ids[0]), str(ids[1])]})
    assert r.status_code == 200 and "Delete 2 tasks?" in r.text
    assert _task_ids(runtime, world, pid) == ids  # nothing yet
    r = post_form(client, path, {"ids": [str(ids[0]), str(ids[1])], "confirm": "1"})
    assert r.status_code == 303
    assert _task_ids(runtime, world, pid) == [ids[2]]
    with runtime.unit_of_work(world.tenant_id) as db:
        assert db.scalar(select(func.count()).select_from(Annotation)) == 0  # cascaded
        assert db.scalar(select(func.count()).select_from(Prediction)) == 0
    events = _audit(runtime, world)
    assert len(events) == 1
    assert events[0].changes["count"] == 2 and events[0].object_id == str(pid)
    assert "Deleted 2 tasks." in client.get(r.headers["location"]).text


def test_bulk_delete_with_a_foreign_id_deletes_nothing(client, runtime, world):
    other = make_tenant(runtime, "bravo")
    pid = _project(runtime, world)
    pid2 = _project(runtime, world, "Second")
    mine = _tasks(runtime, world, pid, [{"text": "a"}, {"text": "b"}])
    same_tenant_other_project = _tasks(runtime, world, pid2, [{"text": "c"}])
    foreign = _tasks(runtime, other, _project(runtime, other), [{"text": "theirs"}])
    login(client, world.owner)
    path = f"/t/alpha/projects/{pid}/data/delete"
    for intruder in (foreign[0], same_tenant_other_project[0], 987654):
        for confirm in ("", "1"):
            r = post_form(client, path, {"ids": [str(mine[0]), str(intruder)], "confirm": confirm})
            assert r.status_code == 404, (intruder, confirm)
    assert _task_ids(runtime, world, pid) == mine
    assert _task_ids(runtime, world, pid2) == same_tenant_other_project
    assert len(_task_ids(runtime, other, _first_project(runtime, other))) == 1
    assert _audit(runtime, world) == []
    # another tenant's project id is a 404 too
    r = post_form(client, f"/t/alpha/projects/{_first_project(runtime, other)}/data/delete",
                  {"ids": [str(foreign[0])], "confirm": "1"})
    assert r.status_code == 404
    assert len(_task_ids(runtime, other, _first_project(runtime, other))) == 1


def _first_project(runtime, world):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return db.scalar(select(Project.id).order_by(Project.id))


def test_bulk_delete_all_matching_the_filter(client, runtime, world):
    pid = _project(runtime, world)
    pid2 = _project(runtime, world, "Second")
    ids = _tasks(runtime, world, pid, [{"text": "drop me 1"}, {"text": "keep"}, {"text": "drop me 2"},
                                       ({"text": "drop me 3"}, {"predictions": 1})])
    untouched = _tasks(runtime, world, pid2, [{"text": "drop me too"}])
    login(client, world.owner)
    path = f"/t/alpha/projects/{pid}/data/delete"
    form = {"all_matching": "1", "text": "drop me", "has_predictions": "no"}
    r = post_form(client, path, form, headers={"HX-Request": "true"})
    assert r.status_code == 200 and "Delete 2 tasks?" in r.text and "<html" not in r.text
    r = post_form(client, path, {**form, "confirm": "1"})
    assert r.status_code == 303 and "text=drop+me" in r.headers["location"]
    assert _task_ids(runtime, world, pid) == [ids[1], ids[3]]
    assert _task_ids(runtime, world, pid2) == untouched
    events = _audit(runtime, world)
    assert len(events) == 1
    assert events[0].changes == {"count": 2, "filter": {"all_matching": True, "text": "drop me", "has_predictions": "no"}}


def test_annotator_sees_only_own_tasks(make_client, runtime, world):
    pid = _project(runtime, world)
    ann = add_member(runtime, world, "ann@alpha.example", "annotator")
    other = add_member(runtime, world, "other@alpha.example", "annotator")
    reviewer = add_member(runtime, world, "rev@alpha.example", "reviewer")
    ids = _tasks(runtime, world, pid, [({"text": "mine"}, {"annotators": [ann.user_id]}),
                                       ({"text": "theirs"}, {"annotators": [other.user_id]}),
                                       ({"text": "ours"}, {"annotators": [ann.user_id, other.user_id]}),
                                       {"text": "nobody's"}])
    for person in (ann, other):
        grant_project(runtime, world, pid, person=person)
    browser = make_client()
    login(browser, ann)
    r = browser.get(_url(world, pid))
    assert r.status_code == 200
    assert "mine" in r.text and "ours" in r.text and "theirs" not in r.text and "nobody" not in r.text
    assert "Delete selected" not in r.text and 'name="ids"' not in r.text  # no project:update
    assert "other@alpha.example" not in r.text  # no annotator filter listing members, nor co-annotators
    r = post_form(browser, f"/t/alpha/projects/{pid}/data/delete", {"ids": [str(ids[0])], "confirm": "1"})
    assert r.status_code == 403
    rev = make_client()
    login(rev, reviewer)
    r = rev.get(_url(world, pid))
    assert all(t in r.text for t in ("mine", "theirs", "ours", "nobody", "other@alpha.example"))


def test_project_grant_reviewer_sees_all(client, make_client, runtime, world):
    pid = _project(runtime, world)
    ann = add_member(runtime, world, "ann@alpha.example", "annotator")
    _tasks(runtime, world, pid, [{"text": "first task"}, {"text": "second task"}])
    browser = make_client()
    login(browser, ann)
    assert browser.get(_url(world, pid)).status_code == 404  # not granted: the project does not exist for them
    grant_project(runtime, world, pid, person=ann)
    text = browser.get(_url(world, pid)).text
    assert "first task" not in text and "second task" not in text  # an annotator: only their own tasks
    login(client, world.owner)
    r = post_form(client, f"/t/alpha/projects/{pid}/grants", {"subject": f"user:{ann.user_id}", "role": "reviewer"})
    assert r.status_code == 303
    text = browser.get(_url(world, pid)).text
    assert "first task" in text and "second task" in text


def test_query_count_of_a_page_is_constant(client, runtime, world):
    users = [add_member(runtime, world, f"u{n}@alpha.example", "annotator") for n in range(3)]
    projects = {}
    for size in (5, 50):
        pid = _project(runtime, world, f"P{size}")
        _tasks(runtime, world, pid, [({"text": f"t{n}"}, {"annotators": [u.user_id for u in users[: n % 4]],
                                                          "predictions": n % 2}) for n in range(size)])
        projects[size] = pid
    login(client, world.owner)
    counts = {}
    for size, pid in projects.items():
        client.get(_url(world, pid))  # warm caches (policy, templates)
        statements: list[str] = []

        def listen(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
            statements.append(statement)

        event.listen(runtime.engine, "before_cursor_execute", listen)
        try:
            r = client.get(_url(world, pid))
        finally:
            event.remove(runtime.engine, "before_cursor_execute", listen)
        assert len(_ids(r.text)) == size
        assert r.text.count("u1@alpha.example") > 1
        assert len([s for s in statements if "FROM annotation" in s]) == 1, statements  # annotators: one query
        counts[size] = len(statements)
    assert counts[5] == counts[50], counts


def test_parse_filters_and_cursor_roundtrip():
    f, errors = dm.parse_filters({"state": "labeled", "page_size": "999", "created_from": "2024-01-02", "sort": "-annotations"})
    assert not errors and f.page_size == dm.MAX_PAGE_SIZE and f.created_from == date(2024, 1, 2)
    assert f.query() == {"state": "labeled", "created_from": "2024-01-02", "sort": "-annotations", "page_size": "200"}
    c = dm.encode_cursor("-created", T0, 42)
    assert dm.decode_cursor(c, "-created") == (T0, 42)
    assert dm.decode_cursor(c, "created") is None
    assert dm.decode_cursor("x" * 300, "id") is None
