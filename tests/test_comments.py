"""Comments on tasks and annotations, @mentions and in-app notifications (both backends).

Who sees a comment: members who can read the project; with blind overlap an annotator sees the
task's threads and those on their own annotations only. A mention notifies a member only when they
can see the comment; mentioning yourself does nothing; editing notifies only newly mentioned people.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from conftest import add_member, grant_project, login, make_tenant, post_form
from workspace.audit.models import AuditEvent
from workspace.lib.timeutil import utcnow
from workspace.notifications.models import Notification
from workspace.workflow.comments import Comment
from workspace.workflow.mentions import Directory, Member, mention_tokens, render_body
from workspace.workflow.models import Annotation, Task

HX = {"HX-Request": "true"}


@pytest.fixture
def world(runtime):  # type: ignore[no-untyped-def]
    return make_tenant(runtime, "alpha")


def _project(runtime, world, *, n_tasks: int = 2, workflow: dict | None = None):  # type: ignore[no-untyped-def]
    from workspace.tenancy.context import TenantContext
    from workspace.workflow import services as svc

    with runtime.unit_of_work(world.tenant_id) as db:
        ctx = TenantContext(world.tenant_id, world.slug, world.slug, world.owner.user_id, world.owner.email, "",
                            world.owner.membership_id, "owner")
        project = svc.create_project(db, ctx, "Reviews of things")
        if workflow is not None:
            project.workflow = workflow
        ids = []
        for _ in range(n_tasks):
            task = Task(project_id=project.id, data={"text": "A fine day in London."}, created_at=utcnow())
            db.add(task)
            db.flush()
            ids.append(task.id)
        return project.id, ids


def _annotation(runtime, world, project_id: int, task_id: int, user_id: int) -> int:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        a = Annotation(project_id=project_id, task_id=task_id, status="submitted", completed_by_id=user_id,
                       result=[{"from_name": "label", "to_name": "text", "type": "choices",
                                "value": {"choices": ["Positive"]}}])
        db.add(a)
        db.flush()
        return a.id


def _base(project_id: int) -> str:
    return f"/t/alpha/projects/{project_id}/comments"


def _post(client, project_id, task_id, body, **extra):  # type: ignore[no-untyped-def]
    data = {"task": str(task_id), "body": body, **{k: str(v) for k, v in extra.items()}}
    return post_form(client, _base(project_id), data, headers=HX)


def _panel(client, project_id, task_id, annotation=None):  # type: ignore[no-untyped-def]
    suffix = f"&annotation={annotation}" if annotation else ""
    return client.get(f"{_base(project_id)}?task={task_id}{suffix}", headers=HX)


def _comments(runtime, world) -> list[Comment]:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        rows = list(db.scalars(select(Comment).order_by(Comment.id)))
        db.expunge_all()
        return rows


def _notes(runtime, world, user_id: int) -> list[Notification]:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        rows = list(db.scalars(select(Notification).where(Notification.user_id == user_id).order_by(Notification.id)))
        db.expunge_all()
        return rows


def _bell(client) -> str:  # type: ignore[no-untyped-def]
    r = client.get("/t/alpha/notifications/bell", headers=HX)
    assert r.status_code == 200
    return r.text


# --- pure parts ---------------------------------------------------------------------------------


def test_mention_syntax_and_directory():
    assert mention_tokens("hi @Bob, see @carol.d. and mail x@y.com or @dave@example.org!") == [
        "bob", "carol.d", "dave@example.org"]
    assert mention_tokens("no (@) mentions: a@b, @@, email@example.com") == []
    d = Directory([Member(1, "alice@one.example", "Alice One"), Member(2, "alice@two.example", "Alice Two"),
                   Member(3, "Bob.Smith@x.example", "Bob")])
    assert d.resolve("alice") is None  # shared local part: ambiguous, use the e-mail
    assert d.resolve("alice@two.example").user_id == 2
    assert d.resolve("bob.smith").user_id == 3
    assert d.token_for(d.members[0]) == "alice@one.example" and d.token_for(d.members[2]) == "bob.smith"


def test_render_escapes_and_links_safely():
    html = str(render_body('<script>alert(1)</script> see https://example.com/a?x=1&y="2" (https://ex.org/p). '
                           'javascript:alert(1) @bob @eve', ["bob"]))
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<a href="https://example.com/a?x=1&amp;y=" rel="nofollow noopener noreferrer" target="_blank">' in html
    assert '<a href="https://ex.org/p" rel' in html and "</a>)." in html
    assert "javascript:alert(1)" in html and 'href="javascript' not in html
    assert '<span class="mention">@bob</span>' in html and "@eve" in html and ">@eve<" not in html


# --- posting, replying, rendering ---------------------------------------------------------------


def test_post_reply_and_panel(client, make_client, runtime, world):
    pid, (tid, _other) = _project(runtime, world)
    bob = add_member(runtime, world, "bob@alpha.example", "annotator")
    grant_project(runtime, world, pid, person=bob)
    login(client, world.owner)
    r = _post(client, pid, tid, "Is this sentence positive?\nLine two.")
    assert r.status_code == 200, r.text
    assert 'data-testid="comment-count">1<' in r.text and "Is this sentence positive?\nLine two." in r.text
    root = _comments(runtime, world)[0]
    assert (root.task_id, root.parent_id, root.author_id, root.annotation_id) == (tid, None, world.owner.user_id, None)

    b = make_client()
    login(b, bob)
    panel = _panel(b, pid, tid)
    assert panel.status_code == 200 and "Is this sentence positive?" in panel.text
    r = _post(b, pid, tid, "Yes, clearly.", parent=root.id)
    assert r.status_code == 200
    reply = _comments(runtime, world)[1]
    assert reply.parent_id == root.id
    # A reply to a reply joins the thread (one level of threading).
    r = _post(client, pid, tid, "Agreed.", parent=reply.id)
    assert _comments(runtime, world)[2].parent_id == root.id
    panel = _panel(client, pid, tid).text
    assert panel.count('data-testid="comment-thread"') == 1 and panel.count("cm-comment cm-reply") == 2
    # The thread's author hears about the reply (not about their own).
    notes = _notes(runtime, world, world.owner.user_id)
    assert [n.kind for n in notes] == ["reply"] and "Yes, clearly." in notes[0].text
    # Another task's panel is empty.
    assert 'data-testid="comment-count">0<' in _panel(client, pid, _other).text
    # Without htmx: back to the labeling page at the comment.
    r = post_form(client, _base(pid), {"task": str(tid), "body": "plain form"})
    assert r.status_code == 303
    assert r.headers["location"] == f"/t/alpha/projects/{pid}/label?task={tid}#comment-{_comments(runtime, world)[-1].id}"


def test_empty_and_too_long_bodies_are_refused_with_a_message(client, runtime, world):
    pid, (tid, _) = _project(runtime, world)
    login(client, world.owner)
    r = _post(client, pid, tid, "   ")
    assert r.status_code == 422 and "Write something before posting" in r.text
    r = _post(client, pid, tid, "x" * 5001)
    assert r.status_code == 422 and "at most 5,000 characters" in r.text and "5,001" in r.text
    assert _post(client, pid, tid, "x" * 5000).status_code == 200
    assert len(_comments(runtime, world)) == 1
    # A task of another project, a missing parent: 404.
    pid2, (tid2, _) = _project(runtime, world)
    assert _post(client, pid, tid2, "wrong project").status_code == 404
    assert _post(client, pid, tid, "orphan", parent=999999).status_code == 404
    assert client.get(f"{_base(pid)}?task=abc", headers=HX).status_code == 404


def test_script_in_a_comment_is_escaped(client, runtime, world):
    pid, (tid, _) = _project(runtime, world)
    login(client, world.owner)
    body = '<script>alert("x")</script><img src=x onerror=alert(1)> https://example.com/?q=<b>'
    assert _post(client, pid, tid, body).status_code == 200
    html = _panel(client, pid, tid).text
    assert '<script>alert("x")' not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert '<a href="https://example.com/?q=" rel="nofollow noopener noreferrer"' in html
    # And in the notification text shown on the notifications page.
    bob = add_member(runtime, world, "bob@alpha.example", "manager")
    assert _post(client, pid, tid, "@bob <script>boom()</script>").status_code == 200
    login(client, bob)
    page = client.get("/t/alpha/notifications").text
    assert "<script>boom()" not in page and "&lt;script&gt;boom()&lt;/script&gt;" in page


# --- mentions and notifications -------------------------------------------------------------------


def test_mentions_notify_only_members_who_can_see_the_task(client, make_client, runtime, world):
    pid, (tid, _) = _project(runtime, world)
    bob = add_member(runtime, world, "bob@alpha.example", "annotator")
    carol = add_member(runtime, world, "carol@alpha.example", "annotator")  # not granted this project
    rita = add_member(runtime, world, "rita@alpha.example", "reviewer")  # reviewers read every project
    grant_project(runtime, world, pid, person=bob)
    login(client, world.owner)
    r = _post(client, pid, tid, "@bob @carol @rita @owner @nobody please look")
    assert r.status_code == 200
    assert '<span class="mention">@bob</span>' in r.text and '<span class="mention">@rita</span>' in r.text
    assert '<span class="mention">@carol</span>' not in r.text  # not highlighted: the task doesn't exist for her
    comment = _comments(runtime, world)[0]
    assert sorted(comment.notified_ids) == sorted([bob.user_id, rita.user_id])
    assert len(_notes(runtime, world, bob.user_id)) == 1
    assert _notes(runtime, world, carol.user_id) == []  # no access: no notification, nothing leaks
    assert _notes(runtime, world, world.owner.user_id) == []  # mentioning yourself does nothing
    note = _notes(runtime, world, bob.user_id)[0]
    assert note.kind == "mention" and note.actor_id == world.owner.user_id and note.task_id == tid
    assert note.link == f"/t/alpha/projects/{pid}/label?task={tid}#comment-{comment.id}"
    assert "mentioned you on task #" in note.text and "Reviews of things" in note.text

    b = make_client()
    login(b, bob)
    assert 'data-testid="bell-count">1<' in _bell(b)
    c = make_client()
    login(c, carol)
    assert "bell-count" not in _bell(c)
    assert "Reviews of things" not in c.get("/t/alpha/notifications").text
    # Carol cannot open the project's comments either.
    assert _panel(c, pid, tid).status_code == 404


def test_mention_by_email_when_handles_collide(client, runtime, world):
    pid, (tid, _) = _project(runtime, world)
    one = add_member(runtime, world, "sam@one.example", "manager")
    two = add_member(runtime, world, "sam@two.example", "manager")
    login(client, world.owner)
    _post(client, pid, tid, "@sam is ambiguous")
    assert _notes(runtime, world, one.user_id) == [] and _notes(runtime, world, two.user_id) == []
    _post(client, pid, tid, "hey @sam@two.example")
    assert _notes(runtime, world, one.user_id) == [] and len(_notes(runtime, world, two.user_id)) == 1
    # Autocomplete offers the e-mail form for them, and only members who can read the project.
    outsider = add_member(runtime, world, "zed@alpha.example", "annotator")
    r = client.get(f"{_base(pid)}/mentions?q=sa", headers=HX)
    assert "@sam@one.example" in r.text and "@sam@two.example" in r.text
    r = client.get(f"{_base(pid)}/mentions?q=z", headers=HX)
    assert "zed" not in r.text
    grant_project(runtime, world, pid, person=outsider)
    assert "@zed" in client.get(f"{_base(pid)}/mentions?q=z", headers=HX).text


def test_editing_notifies_only_newly_mentioned(client, runtime, world):
    pid, (tid, _) = _project(runtime, world)
    bob = add_member(runtime, world, "bob@alpha.example", "manager")
    dave = add_member(runtime, world, "dave@alpha.example", "manager")
    login(client, world.owner)
    _post(client, pid, tid, "@bob first")
    cid = _comments(runtime, world)[0].id
    r = post_form(client, f"{_base(pid)}/{cid}/edit", {"body": "@bob first, and @dave too"}, headers=HX)
    assert r.status_code == 200 and "edited" in r.text
    assert len(_notes(runtime, world, bob.user_id)) == 1
    assert len(_notes(runtime, world, dave.user_id)) == 1
    post_form(client, f"{_base(pid)}/{cid}/edit", {"body": "@bob @dave once more"}, headers=HX)
    assert len(_notes(runtime, world, bob.user_id)) == 1 and len(_notes(runtime, world, dave.user_id)) == 1
    comment = _comments(runtime, world)[0]
    assert comment.body == "@bob @dave once more" and comment.edited_at is not None


def test_notifications_page_open_read_and_read_all(client, make_client, runtime, world):
    pid, (tid, tid2) = _project(runtime, world)
    bob = add_member(runtime, world, "bob@alpha.example", "manager")
    login(client, world.owner)
    _post(client, pid, tid, "@bob one")
    _post(client, pid, tid2, "@bob two")
    _post(client, pid, tid2, "@bob three")
    b = make_client()
    login(b, bob)
    assert 'data-testid="bell-count">3<' in _bell(b)
    page = b.get("/t/alpha/notifications")
    assert page.status_code == 200 and page.text.count('data-testid="notification"') == 3
    first = _notes(runtime, world, bob.user_id)[0]
    r = post_form(b, f"/t/alpha/notifications/{first.id}/open")
    assert r.status_code == 303 and r.headers["location"] == first.link
    assert f"?task={tid}#comment-" in first.link
    assert 'data-testid="bell-count">2<' in _bell(b)
    assert b.get(first.link.split("#")[0]).status_code == 200  # lands on the task
    second = _notes(runtime, world, bob.user_id)[1]
    assert post_form(b, f"/t/alpha/notifications/{second.id}/read").status_code == 303
    assert 'data-testid="bell-count">1<' in _bell(b)
    assert b.get("/t/alpha/notifications?show=unread").text.count('data-testid="notification"') == 1
    assert post_form(b, "/t/alpha/notifications/read-all").status_code == 303
    assert "1 notification marked read." in b.get("/t/alpha/notifications").text
    assert "bell-count" not in _bell(b)
    # Someone else's notification answers 404 like a missing one.
    mine = _post(b, pid, tid, "@owner look")
    assert mine.status_code == 200
    owner_note = _notes(runtime, world, world.owner.user_id)[0]
    foreign = post_form(b, f"/t/alpha/notifications/{owner_note.id}/open")
    missing = post_form(b, "/t/alpha/notifications/987654/open")
    assert foreign.status_code == missing.status_code == 404 and foreign.text == missing.text


# --- permissions ------------------------------------------------------------------------------------


def test_edit_delete_resolve_permissions(client, make_client, runtime, world):
    pid, (tid, _) = _project(runtime, world)
    bob = add_member(runtime, world, "bob@alpha.example", "annotator")
    ann = add_member(runtime, world, "ann@alpha.example", "annotator")
    rita = add_member(runtime, world, "rita@alpha.example", "reviewer")
    audi = add_member(runtime, world, "audi@alpha.example", "auditor")
    for person in (bob, ann):
        grant_project(runtime, world, pid, person=person)
    b, a, r_, au = make_client(), make_client(), make_client(), make_client()
    login(b, bob), login(a, ann), login(r_, rita), login(au, audi)
    assert _post(b, pid, tid, "bob's note").status_code == 200
    cid = _comments(runtime, world)[0].id
    # Another annotator: reads it, may reply, may not edit, delete or resolve it.
    assert "bob&#39;s note" in _panel(a, pid, tid).text
    assert post_form(a, f"{_base(pid)}/{cid}/edit", {"body": "hijack"}, headers=HX).status_code == 403
    assert post_form(a, f"{_base(pid)}/{cid}/delete", headers=HX).status_code == 403
    assert post_form(a, f"{_base(pid)}/{cid}/resolve", headers=HX).status_code == 403
    # The panel offers no such buttons to them.
    assert "comment-delete" not in _panel(a, pid, tid).text and "comment-resolve" not in _panel(a, pid, tid).text
    # The auditor reads (project:read) but cannot post.
    assert _panel(au, pid, tid).status_code == 200
    assert _post(au, pid, tid, "auditor speaks").status_code == 403
    # A reviewer resolves and reopens any thread; a reviewer does not delete others' comments.
    assert post_form(r_, f"{_base(pid)}/{cid}/resolve", {"resolved": "1"}, headers=HX).status_code == 200
    assert _comments(runtime, world)[0].resolved is True
    assert 'data-testid="comment-resolved"' in _panel(b, pid, tid).text
    assert post_form(b, f"{_base(pid)}/{cid}/resolve", {"resolved": "0"}, headers=HX).status_code == 200  # author
    assert _comments(runtime, world)[0].resolved is False
    assert post_form(r_, f"{_base(pid)}/{cid}/delete", headers=HX).status_code == 403
    # The author edits their own; the manager (owner) deletes anyone's.
    assert post_form(b, f"{_base(pid)}/{cid}/edit", {"body": "bob's better note"}, headers=HX).status_code == 200
    _post(a, pid, tid, "ann replies", parent=cid)
    login(client, world.owner)
    assert post_form(client, f"{_base(pid)}/{cid}/delete", headers=HX).status_code == 200
    assert _comments(runtime, world) == []  # the thread went with its reply
    # Own comments may be deleted by their author.
    _post(a, pid, tid, "mine")
    own = _comments(runtime, world)[0].id
    assert post_form(a, f"{_base(pid)}/{own}/delete", headers=HX).status_code == 200


def test_blind_overlap_hides_comments_on_other_annotators_work(client, make_client, runtime, world):
    pid, (tid, _) = _project(runtime, world)  # blind overlap is the default
    bob = add_member(runtime, world, "bob@alpha.example", "annotator")
    cat = add_member(runtime, world, "cat@alpha.example", "annotator")
    for person in (bob, cat):
        grant_project(runtime, world, pid, person=person)
    bob_ann = _annotation(runtime, world, pid, tid, bob.user_id)
    cat_ann = _annotation(runtime, world, pid, tid, cat.user_id)
    login(client, world.owner)
    _post(client, pid, tid, "about the task")
    _post(client, pid, tid, "bob: fix the label @bob @cat", annotation=bob_ann)
    _post(client, pid, tid, "cat: looks wrong", annotation=cat_ann)
    on_bob, on_cat = _comments(runtime, world)[1:]
    # Cat may not see a comment on Bob's work: no notification for her.
    assert _notes(runtime, world, cat.user_id) == [] and len(_notes(runtime, world, bob.user_id)) == 1
    b = make_client()
    login(b, bob)
    panel = _panel(b, pid, tid).text
    assert "about the task" in panel and "bob: fix the label" in panel and "cat: looks wrong" not in panel
    assert f"Annotation #{cat_ann}" not in panel  # nor can he start a thread about hers
    assert _post(b, pid, tid, "sneaky", parent=on_cat.id).status_code == 404
    assert _post(b, pid, tid, "sneaky", annotation=cat_ann).status_code == 404
    assert post_form(b, f"{_base(pid)}/{on_cat.id}/edit", {"body": "x"}, headers=HX).status_code == 404
    assert _post(b, pid, tid, "my own annotation", annotation=bob_ann).status_code == 200
    # The manager sees everything, labeled by annotation.
    panel = _panel(client, pid, tid).text
    assert "cat: looks wrong" in panel and f"on annotation #{cat_ann} by Cat" in panel
    # Without blind overlap annotators see each other's work, so the comments too.
    with runtime.unit_of_work(world.tenant_id) as db:
        from workspace.workflow.models import Project

        db.scalars(select(Project).where(Project.id == pid)).one().workflow = {"blind": False}
    assert "cat: looks wrong" in _panel(b, pid, tid).text


def test_cross_tenant_comments_answer_404(client, make_client, runtime, world):
    pid, (tid, _) = _project(runtime, world)
    login(client, world.owner)
    _post(client, pid, tid, "@owner alpha's secret")
    cid = _comments(runtime, world)[0].id
    bravo = make_tenant(runtime, "bravo")
    with runtime.unit_of_work(bravo.tenant_id) as db:
        from workspace.tenancy.context import TenantContext
        from workspace.workflow import services as svc

        ctx = TenantContext(bravo.tenant_id, "bravo", "bravo", bravo.owner.user_id, bravo.owner.email, "",
                            bravo.owner.membership_id, "owner")
        bpid = svc.create_project(db, ctx, "Bravo").id
    other = make_client()
    login(other, bravo.owner)
    for url in (f"/t/bravo/projects/{pid}/comments?task={tid}", f"/t/bravo/projects/{bpid}/comments?task={tid}"):
        assert other.get(url, headers=HX).status_code == 404
    for action in ("edit", "delete", "resolve"):
        foreign = post_form(other, f"/t/bravo/projects/{bpid}/comments/{cid}/{action}", {"body": "x"}, headers=HX)
        missing = post_form(other, f"/t/bravo/projects/{bpid}/comments/987654/{action}", {"body": "x"}, headers=HX)
        assert foreign.status_code == missing.status_code == 404 and foreign.text == missing.text
    assert post_form(other, f"/t/bravo/projects/{bpid}/comments", {"task": str(tid), "body": "x"},
                     headers=HX).status_code == 404
    assert other.get("/t/alpha/notifications").status_code == 404
    assert _comments(runtime, world)[0].body == "@owner alpha's secret"


def test_every_comment_change_is_audited(client, runtime, world):
    pid, (tid, _) = _project(runtime, world)
    login(client, world.owner)
    _post(client, pid, tid, "first")
    cid = _comments(runtime, world)[0].id
    post_form(client, f"{_base(pid)}/{cid}/edit", {"body": "first, edited"}, headers=HX)
    post_form(client, f"{_base(pid)}/{cid}/resolve", {"resolved": "1"}, headers=HX)
    post_form(client, f"{_base(pid)}/{cid}/resolve", {"resolved": "0"}, headers=HX)
    post_form(client, f"{_base(pid)}/{cid}/delete", headers=HX)
    with runtime.unit_of_work(world.tenant_id) as db:
        events = list(db.scalars(select(AuditEvent).where(AuditEvent.object_type == "comment").order_by(AuditEvent.seq)))
    assert [e.action for e in events] == ["comment.created", "comment.edited", "comment.resolved", "comment.reopened",
                                          "comment.deleted"]
    assert all(e.object_id == str(cid) and e.actor_label == world.owner.email for e in events)
    assert events[0].changes["body"] == [None, "first"] and events[1].changes["body"] == ["first", "first, edited"]
    assert events[0].object_label == f"comment on task #{tid}"
