"""Comments on tasks and on annotations, threaded one level deep, with @mentions that notify.

A **thread** is a top-level comment (``parent_id`` None) about a task, or about one annotation of
the task (``annotation_id``); replies hang off it (a reply to a reply joins the same thread). A
thread can be resolved and reopened. The body is plain text of at most 5,000 characters, shown
escaped with links and mentions made safe (:mod:`workspace.workflow.mentions`).

Who sees what. Reading needs ``project:read`` and posting ``project:annotate`` (routes declare it).
With blind overlap (the project's default) a member who does not review (no ``project:review``)
never sees another annotator's work, so neither the comments on it: they see the task's own threads
and those on their own annotations. A comment someone cannot see does not exist for them (404).

Mentions notify a member only when they can see the comment: an active member of the tenant who can
read the project (and, for a comment on an annotation under blind overlap, reviews or wrote that
annotation). Mentioning yourself does nothing; editing a comment notifies only people it did not
notify before. A reply notifies the thread's author too.

Editing is for one's own comments; deleting too, and members who manage the project
(``project:update``) may delete any. Resolving a thread is for its author and for reviewers.
Every change is audited (``Comment`` is an audited model: created, edited, resolved, reopened,
deleted). Services flush, never commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from workspace.db.base import Audited, Base, TenantOwned, Timestamped
from workspace.lib.timeutil import utcnow
from workspace.notifications import services as inbox
from workspace.notifications.models import MENTION, REPLY
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Forbidden, Invalid, NotFound
from workspace.tenancy.models import MEMBER_ACTIVE, Membership, User
from workspace.tenancy.repositories import fetch
from workspace.workflow.mentions import Directory, Member, mention_tokens, render_body
from workspace.workflow.models import DRAFT, Annotation, Project, Task
from workspace.workflow.settings import workflow_settings

__all__ = ["Comment", "Can", "Viewer", "viewer_of", "threads", "post_comment", "edit_comment", "delete_comment",
           "set_resolved", "get_comment", "member_directory", "mention_candidates", "task_link", "MAX_BODY",
           "annotation_choices"]

BigId = BigInteger().with_variant(Integer, "sqlite")
MAX_BODY = 5000
SNIPPET = 140

# (user id, permission) -> whether that member holds the permission in this comment's project.
Can = Callable[[int, str], bool]


class Comment(TenantOwned, Timestamped, Audited, Base):
    __tablename__ = "task_comment"
    __audit_type__ = "comment"
    __audit_exclude__ = frozenset({"notified_ids"})  # bookkeeping: who was notified already
    __table_args__ = (Index("ix_task_comment_task_id", "task_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), nullable=False)
    task_id: Mapped[int] = mapped_column(BigId, ForeignKey("task.id", ondelete="CASCADE"), nullable=False)
    annotation_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("annotation.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("task_comment.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text, nullable=False)
    # Mention tokens (lower-cased, without "@") of members who can see the comment: highlighted.
    mentions: Mapped[list[str]] = mapped_column(JSON, default=list, nullable=False)
    notified_ids: Mapped[list[int]] = mapped_column(JSON, default=list, nullable=False)
    edited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def audit_verb(self, verb: str, changes: dict[str, list[object]]) -> str:
        if verb == "updated" and "resolved" in changes:
            return "resolved" if self.resolved else "reopened"
        if verb == "updated" and "body" in changes:
            return "edited"
        return verb

    def audit_label(self) -> str:
        about = f"annotation #{self.annotation_id}" if self.annotation_id else f"task #{self.task_id}"
        return ("reply on " if self.parent_id else "comment on ") + about


# --- who is looking --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    user_id: int
    sees_all: bool  # sees comments on every annotation (reviews, or the project is not blind)
    can_post: bool
    can_resolve_any: bool  # reviewers resolve any thread
    can_delete_any: bool  # managers delete any comment


def viewer_of(ctx: TenantContext, project: Project) -> Viewer:
    """The member of ``ctx`` (whose permissions include this project's) looking at its comments."""
    blind = workflow_settings(project.workflow).blind
    return Viewer(user_id=ctx.user_id, sees_all=not blind or ctx.has("project:review"),
                  can_post=ctx.has("project:annotate"), can_resolve_any=ctx.has("project:review"),
                  can_delete_any=ctx.has("project:update"))


def _annotation_authors(session: Session, ids: set[int]) -> dict[int, int | None]:
    if not ids:
        return {}
    return dict(session.execute(select(Annotation.id, Annotation.completed_by_id).where(Annotation.id.in_(ids))).all())


def _visible(viewer: Viewer, comment: Comment, authors: dict[int, int | None]) -> bool:
    if comment.annotation_id is None or viewer.sees_all:
        return True
    return authors.get(comment.annotation_id) == viewer.user_id


def get_comment(session: Session, viewer: Viewer, project_id: int, comment_id: int) -> Comment:
    """A comment of this project that the viewer may see, or NotFound (same as a missing one)."""
    comment = fetch(session, Comment, comment_id, what="Comment")
    if comment.project_id != project_id:
        raise NotFound("Comment not found")
    if not _visible(viewer, comment, _annotation_authors(session, {comment.annotation_id} - {None})):  # type: ignore[arg-type]
        raise NotFound("Comment not found")
    return comment


def _task(session: Session, project_id: int, task_id: int) -> Task:
    task = fetch(session, Task, task_id, what="Task")
    if task.project_id != project_id:
        raise NotFound("Task not found")
    return task


# --- reading ----------------------------------------------------------------------------------------


@dataclass
class CommentView:
    id: int
    author: str
    author_email: str
    initial: str
    body: Any  # Markup
    created_at: datetime
    edited_at: datetime | None
    mine: bool
    can_edit: bool
    can_delete: bool
    raw: str


@dataclass
class Thread:
    root: CommentView
    annotation_id: int | None
    annotation_label: str
    resolved: bool
    resolved_by: str
    can_resolve: bool
    replies: list[CommentView] = field(default_factory=list)


def _people(session: Session, ids: set[int]) -> dict[int, User]:
    if not ids:
        return {}
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(ids)))}


def threads(session: Session, viewer: Viewer, project_id: int, task_id: int) -> list[Thread]:
    """The task's threads the viewer may see, oldest first, each with its replies oldest first."""
    _task(session, project_id, task_id)
    rows = list(session.scalars(select(Comment).where(Comment.task_id == task_id).order_by(Comment.id)))
    authors = _annotation_authors(session, {c.annotation_id for c in rows if c.annotation_id is not None})
    rows = [c for c in rows if _visible(viewer, c, authors)]
    people = _people(session, {c.author_id for c in rows if c.author_id is not None}
                     | {c.resolved_by_id for c in rows if c.resolved_by_id is not None}
                     | {a for a in authors.values() if a is not None})

    def view(c: Comment) -> CommentView:
        user = people.get(c.author_id) if c.author_id is not None else None
        name = (user.name or user.email) if user else "Former member"
        mine = c.author_id == viewer.user_id
        return CommentView(id=c.id, author=name, author_email=user.email if user else "", initial=name[:1].upper(),
                           body=render_body(c.body, c.mentions or []), created_at=c.created_at,
                           edited_at=c.edited_at, mine=mine, can_edit=mine and viewer.can_post,
                           can_delete=(mine and viewer.can_post) or viewer.can_delete_any, raw=c.body)

    out: dict[int, Thread] = {}
    for c in rows:
        if c.parent_id is None:
            label = ""
            if c.annotation_id is not None:
                by = people.get(authors.get(c.annotation_id) or 0)
                label = f"annotation #{c.annotation_id}" + (f" by {by.name or by.email}" if by else "")
            resolver = people.get(c.resolved_by_id or 0)
            out[c.id] = Thread(root=view(c), annotation_id=c.annotation_id, annotation_label=label,
                               resolved=c.resolved, resolved_by=(resolver.name or resolver.email) if resolver else "",
                               can_resolve=viewer.can_post and (c.author_id == viewer.user_id or viewer.can_resolve_any))
        elif c.parent_id in out:
            out[c.parent_id].replies.append(view(c))
    return list(out.values())


def annotation_choices(session: Session, viewer: Viewer, task_id: int) -> list[dict[str, Any]]:
    """Annotations of the task a new thread may be about: submitted work the viewer may see."""
    rows = session.execute(select(Annotation.id, Annotation.status, Annotation.completed_by_id)
                           .where(Annotation.task_id == task_id).order_by(Annotation.id)).all()
    people = _people(session, {r.completed_by_id for r in rows if r.completed_by_id is not None})
    out = []
    for ann_id, status, by in rows:
        if status == DRAFT or not (viewer.sees_all or by == viewer.user_id):
            continue
        who = "you" if by == viewer.user_id else (people[by].name or people[by].email) if by in people else "a former member"
        out.append({"id": ann_id, "label": f"Annotation #{ann_id} by {who} ({status})"})
    return out


# --- members and mentions ---------------------------------------------------------------------------


def member_directory(session: Session) -> Directory:
    """The tenant's active members (mention targets)."""
    rows = session.execute(select(User.id, User.email, User.name).join(Membership, Membership.user_id == User.id)
                           .where(Membership.status == MEMBER_ACTIVE, User.is_active.is_(True))).all()
    return Directory(Member(uid, email, name or "") for uid, email, name in rows)


def mention_candidates(session: Session, ctx: TenantContext, can: Can, query: str, limit: int = 8) -> list[dict[str, str]]:
    """Members who can read the project whose handle, e-mail or name starts with ``query`` (autocomplete)."""
    q = query.strip().lstrip("@").lower()
    directory = member_directory(session)
    out = []
    for m in sorted(directory.members, key=lambda m: m.email):
        if m.user_id == ctx.user_id:
            continue
        words = [m.handle, m.email.lower(), *(m.name or "").lower().split()]
        if q and not any(w.startswith(q) for w in words):
            continue
        if not can(m.user_id, "project:read"):
            continue
        out.append({"token": directory.token_for(m), "name": m.name or m.email, "email": m.email})
        if len(out) >= limit:
            break
    return out


def task_link(ctx: TenantContext, project_id: int, task_id: int, comment_id: int | None = None) -> str:
    """The labeling page of the task, at the comment."""
    link = f"/t/{ctx.tenant_slug}/projects/{project_id}/label?task={task_id}"
    return link + (f"#comment-{comment_id}" if comment_id else "")


def _snippet(body: str) -> str:
    flat = " ".join(body.split())
    return flat if len(flat) <= SNIPPET else flat[: SNIPPET - 1] + "…"


def _clean_body(body: str) -> str:
    body = (body or "").replace("\r\n", "\n").strip()
    if not body:
        raise Invalid("Write something before posting the comment.", field="body")
    if len(body) > MAX_BODY:
        raise Invalid(f"A comment can be at most {MAX_BODY:,} characters; this one has {len(body):,}. "
                      "Shorten it or split it into replies.", field="body")
    return body


@dataclass
class _Audience:
    """Who among the mentioned members can see a comment, and the tokens to highlight."""

    recipients: list[int]
    tokens: list[str]


def _audience(session: Session, ctx: TenantContext, comment: Comment, blind: bool, can: Can) -> _Audience:
    directory = member_directory(session)
    author_of_annotation = None
    if comment.annotation_id is not None:
        author_of_annotation = _annotation_authors(session, {comment.annotation_id}).get(comment.annotation_id)
    recipients: list[int] = []
    tokens: list[str] = []
    for token in mention_tokens(comment.body):
        member = directory.resolve(token)
        if member is None:
            continue
        sees = can(member.user_id, "project:read") and (
            comment.annotation_id is None or not blind or author_of_annotation == member.user_id
            or can(member.user_id, "project:review"))
        if not sees:
            continue  # no notification, no highlight: the comment does not exist for them
        tokens.append(token)
        if member.user_id != ctx.user_id and member.user_id not in recipients:
            recipients.append(member.user_id)
    return _Audience(recipients, tokens)


def _notify_mentions(session: Session, ctx: TenantContext, project: Project, comment: Comment,
                     audience: _Audience) -> list[int]:
    already = set(comment.notified_ids or [])
    fresh = [uid for uid in audience.recipients if uid not in already]
    who = ctx.user_name or ctx.user_email
    for uid in fresh:
        inbox.notify(session, uid, MENTION,
                     f"{who} mentioned you on task #{comment.task_id} in {project.title}: “{_snippet(comment.body)}”",
                     actor_id=ctx.user_id, link=task_link(ctx, project.id, comment.task_id, comment.id),
                     project_id=project.id, task_id=comment.task_id, comment_id=comment.id)
    if fresh:
        comment.notified_ids = sorted(already | set(fresh))
    return fresh


# --- writing ----------------------------------------------------------------------------------------


def post_comment(session: Session, ctx: TenantContext, project: Project, task_id: int, body: str, *, can: Can,
                 annotation_id: int | None = None, parent_id: int | None = None) -> Comment:
    """A new thread on the task (or on one of its annotations), or a reply to a thread."""
    viewer = viewer_of(ctx, project)
    task = _task(session, project.id, task_id)
    text = _clean_body(body)
    parent: Comment | None = None
    if parent_id is not None:
        parent = get_comment(session, viewer, project.id, parent_id)
        if parent.task_id != task.id:
            raise NotFound("Comment not found")
        if parent.parent_id is not None:  # one level: a reply to a reply joins the thread
            parent = get_comment(session, viewer, project.id, parent.parent_id)
        annotation_id = parent.annotation_id
    elif annotation_id is not None:
        target = session.scalars(select(Annotation).where(Annotation.id == annotation_id,
                                                          Annotation.task_id == task.id)).first()
        if target is None or (target.status == DRAFT and target.completed_by_id != ctx.user_id) or not (
                viewer.sees_all or target.completed_by_id == ctx.user_id):
            raise NotFound("Annotation not found")
    comment = Comment(project_id=project.id, task_id=task.id, annotation_id=annotation_id,
                      parent_id=parent.id if parent else None, author_id=ctx.user_id, body=text,
                      notified_ids=[])
    blind = workflow_settings(project.workflow).blind
    audience = _audience(session, ctx, comment, blind, can)
    comment.mentions = audience.tokens
    session.add(comment)
    session.flush()
    mentioned = _notify_mentions(session, ctx, project, comment, audience)
    if parent is not None and parent.author_id not in (None, ctx.user_id, *mentioned):
        assert parent.author_id is not None
        if _member_active(session, parent.author_id) and can(parent.author_id, "project:read"):
            who = ctx.user_name or ctx.user_email
            inbox.notify(session, parent.author_id, REPLY,
                         f"{who} replied on task #{task.id} in {project.title}: “{_snippet(text)}”",
                         actor_id=ctx.user_id, link=task_link(ctx, project.id, task.id, comment.id),
                         project_id=project.id, task_id=task.id, comment_id=comment.id)
    session.flush()
    return comment


def _member_active(session: Session, user_id: int) -> bool:
    return session.scalar(select(Membership.id).where(Membership.user_id == user_id,
                                                      Membership.status == MEMBER_ACTIVE)) is not None


def edit_comment(session: Session, ctx: TenantContext, project: Project, comment_id: int, body: str, *,
                 can: Can) -> Comment:
    """Change one's own comment; newly mentioned members are notified, earlier ones not again."""
    viewer = viewer_of(ctx, project)
    comment = get_comment(session, viewer, project.id, comment_id)
    if comment.author_id != ctx.user_id:
        raise Forbidden("You can edit only your own comments.")
    text = _clean_body(body)
    if text == comment.body:
        return comment
    comment.body = text
    comment.edited_at = utcnow()
    audience = _audience(session, ctx, comment, workflow_settings(project.workflow).blind, can)
    comment.mentions = audience.tokens
    session.flush()
    _notify_mentions(session, ctx, project, comment, audience)
    session.flush()
    return comment


def delete_comment(session: Session, ctx: TenantContext, project: Project, comment_id: int) -> Comment:
    """Delete one's own comment (managers: anyone's); a thread goes with its replies."""
    viewer = viewer_of(ctx, project)
    comment = get_comment(session, viewer, project.id, comment_id)
    if comment.author_id != ctx.user_id and not viewer.can_delete_any:
        raise Forbidden("You can delete only your own comments.")
    if comment.parent_id is None:
        for reply in session.scalars(select(Comment).where(Comment.parent_id == comment.id)):
            session.delete(reply)  # one audit event each, not a silent database cascade
        session.flush()
    session.delete(comment)
    session.flush()
    return comment


def set_resolved(session: Session, ctx: TenantContext, project: Project, comment_id: int, resolved: bool) -> Comment:
    """Resolve or reopen a thread (given any of its comments): its author or a reviewer."""
    viewer = viewer_of(ctx, project)
    comment = get_comment(session, viewer, project.id, comment_id)
    if comment.parent_id is not None:
        comment = get_comment(session, viewer, project.id, comment.parent_id)
    if comment.author_id != ctx.user_id and not viewer.can_resolve_any:
        raise Forbidden("Only the thread's author or a reviewer can resolve or reopen it.")
    if comment.resolved != resolved:
        comment.resolved = resolved
        comment.resolved_by_id = ctx.user_id if resolved else None
        comment.resolved_at = utcnow() if resolved else None
        session.flush()
    return comment
