"""One factory per tenant-owned model, so the isolation matrix covers every model.

A new TenantOwned model without a factory here makes the matrix fail (test_every_model_has_a_factory).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.orm import Session

from workspace.audit.chain import record, write_pending
from workspace.audit.models import AuditEvent
from workspace.lib.secrets import digest
from workspace.lib.timeutil import utcnow
from workspace.tenancy.models import ApiToken, Invitation, Membership, ProjectGrant, Role, Team, TeamMember, User
from workspace.tenancy.scoping import current_tenant_id
from workspace.jobs.models import Job
from workspace.ml.models import MLBackend
from workspace.webhooks.models import Webhook, WebhookDelivery
from workspace.notifications.models import Notification
from workspace.workflow.comments import Comment
from workspace.workflow.models import Annotation, Export, ImportBatch, Prediction, Project, Task
from workspace.workflow.models import TaskAssignment, TaskReservation, TaskTally
from workspace.workflow.review_models import AnnotationRevision, Review


def _tag(marker: str) -> str:
    return f"{marker}-{uuid.uuid4().hex[:8]}"


def _user(db: Session, marker: str) -> User:
    user = User(email=f"{_tag(marker)}@example.com", name=_tag(marker), password_hash=None)
    db.add(user)
    db.flush()
    return user


def make_membership(db: Session, marker: str) -> Membership:
    m = Membership(user_id=_user(db, marker).id, role="annotator")
    db.add(m)
    db.flush()
    return m


def make_team(db: Session, marker: str) -> Team:
    t = Team(name=_tag(marker), description=marker)
    db.add(t)
    db.flush()
    return t


def make_team_member(db: Session, marker: str) -> TeamMember:
    tm = TeamMember(team_id=make_team(db, marker).id, user_id=make_membership(db, marker).user_id)
    db.add(tm)
    db.flush()
    return tm


def make_role(db: Session, marker: str) -> Role:
    r = Role(key=_tag("r" + marker).lower(), name=_tag(marker), permissions=["tenant:read"])
    db.add(r)
    db.flush()
    return r


def make_project(db: Session, marker: str) -> Project:
    p = Project(title=_tag(marker), description=marker)
    db.add(p)
    db.flush()
    return p


def make_project_grant(db: Session, marker: str) -> ProjectGrant:
    g = ProjectGrant(project_id=make_project(db, marker).id, user_id=make_membership(db, marker).user_id,
                     role="annotator")
    db.add(g)
    db.flush()
    return g


def make_invitation(db: Session, marker: str) -> Invitation:
    i = Invitation(email=f"{_tag(marker)}@example.com", role="annotator", token_hash=digest(_tag(marker)),
                   expires_at=utcnow() + timedelta(days=1))
    db.add(i)
    db.flush()
    return i


def make_api_token(db: Session, marker: str) -> ApiToken:
    t = ApiToken(user_id=make_membership(db, marker).user_id, name=_tag(marker), prefix="wsk_xxxx",
                 token_hash=digest(_tag(marker)))
    db.add(t)
    db.flush()
    return t


def make_task(db: Session, marker: str) -> Task:
    t = Task(project_id=make_project(db, marker).id, data={"text": _tag(marker)}, created_at=utcnow())
    db.add(t)
    db.flush()
    return t


def make_task_tally(db: Session, marker: str) -> TaskTally:
    """A delta row as PostgreSQL's triggers write them (inserted directly, so SQLite has one too)."""
    t = TaskTally(project_id=make_project(db, marker).id, tasks=1, labeled=0, annotations=0, predictions=0)
    db.add(t)
    db.flush()
    return t


def make_annotation(db: Session, marker: str) -> Annotation:
    task = make_task(db, marker)
    a = Annotation(project_id=task.project_id, task_id=task.id, result=[{"marker": _tag(marker)}])
    db.add(a)
    db.flush()
    return a


def make_prediction(db: Session, marker: str) -> Prediction:
    task = make_task(db, marker)
    p = Prediction(project_id=task.project_id, task_id=task.id, result=[], model_version=_tag(marker),
                   created_at=utcnow())
    db.add(p)
    db.flush()
    return p


def make_task_assignment(db: Session, marker: str) -> TaskAssignment:
    task = make_task(db, marker)
    a = TaskAssignment(project_id=task.project_id, task_id=task.id, user_id=_user(db, marker).id, role="annotator",
                       created_at=utcnow())
    db.add(a)
    db.flush()
    return a


def make_task_reservation(db: Session, marker: str) -> TaskReservation:
    task = make_task(db, marker)
    r = TaskReservation(project_id=task.project_id, task_id=task.id, user_id=_user(db, marker).id,
                        expires_at=utcnow() + timedelta(minutes=30))
    db.add(r)
    db.flush()
    return r


def make_import_batch(db: Session, marker: str) -> ImportBatch:
    b = ImportBatch(project_id=make_project(db, marker).id, filename=f"{_tag(marker)}.csv", format="csv",
                    fingerprint=digest(_tag(marker)))
    db.add(b)
    db.flush()
    return b


def make_job(db: Session, marker: str, project_id: int | None = None) -> Job:
    j = Job(kind="import", title=_tag(marker), project_id=project_id or make_project(db, marker).id,
            params={"marker": marker})
    db.add(j)
    db.flush()
    return j


def make_export(db: Session, marker: str, project_id: int | None = None) -> Export:
    e = Export(project_id=project_id or make_project(db, marker).id, format="JSON", status="ready",
               filename=f"{_tag(marker)}.json", object_key=f"exports/{_tag(marker)}.json")
    db.add(e)
    db.flush()
    return e


def make_webhook(db: Session, marker: str, project_id: int | None = None) -> Webhook:
    w = Webhook(project_id=project_id or make_project(db, marker).id, url=f"https://{_tag(marker)}.example/hook",
                events=["import.completed"], secret=_tag(marker))
    db.add(w)
    db.flush()
    return w


def make_webhook_delivery(db: Session, marker: str, webhook: Webhook | None = None) -> WebhookDelivery:
    w = webhook or make_webhook(db, marker)
    d = WebhookDelivery(webhook_id=w.id, project_id=w.project_id, event="import.completed",
                        payload={"marker": _tag(marker)}, status="failed", created_at=utcnow())
    db.add(d)
    db.flush()
    return d


def make_ml_backend(db: Session, marker: str, project_id: int | None = None) -> MLBackend:
    b = MLBackend(project_id=project_id or make_project(db, marker).id, kind="builtin_tagger", name=_tag(marker),
                  settings={"terms": f"{_tag(marker)} => Label", "patterns": ""}, model_version="tagger-1")
    db.add(b)
    db.flush()
    return b


def make_comment(db: Session, marker: str, project_id: int | None = None) -> Comment:
    if project_id is None:
        task = make_task(db, marker)
    else:
        task = Task(project_id=project_id, data={"text": _tag(marker)}, created_at=utcnow())
        db.add(task)
        db.flush()
    c = Comment(project_id=task.project_id, task_id=task.id, author_id=make_membership(db, marker).user_id,
                body=f"note {_tag(marker)}", mentions=[], notified_ids=[])
    db.add(c)
    db.flush()
    return c


def make_notification(db: Session, marker: str, user_id: int | None = None) -> Notification:
    n = Notification(user_id=user_id or make_membership(db, marker).user_id, kind="mention",
                     text=f"mentioned {_tag(marker)}", link="", created_at=utcnow())
    db.add(n)
    db.flush()
    return n


def make_annotation_revision(db: Session, marker: str) -> AnnotationRevision:
    a = make_annotation(db, marker)
    r = AnnotationRevision(annotation_id=a.id, project_id=a.project_id, number=1, version=1, result=a.result,
                           status=a.status, action="submitted", created_at=utcnow())
    db.add(r)
    db.flush()
    return r


def make_review(db: Session, marker: str) -> Review:
    a = make_annotation(db, marker)
    r = Review(project_id=a.project_id, task_id=a.task_id, annotation_id=a.id, verdict="rejected",
               comment=f"fix {_tag(marker)}", annotation_version=2)
    db.add(r)
    db.flush()
    return r


def make_audit_event(db: Session, marker: str) -> AuditEvent:
    label = _tag(marker)
    record(db, "test.event", tenant_id=current_tenant_id(db), object_label=label)  # type: ignore[arg-type]
    write_pending(db)
    from sqlalchemy import select

    return db.scalars(select(AuditEvent).where(AuditEvent.object_label == label)).one()


FACTORIES: dict[type, Callable[[Session, str], object]] = {
    AnnotationRevision: make_annotation_revision,
    Review: make_review,
    Comment: make_comment,
    Notification: make_notification,
    Membership: make_membership,
    Team: make_team,
    TeamMember: make_team_member,
    Role: make_role,
    Project: make_project,
    ProjectGrant: make_project_grant,
    Invitation: make_invitation,
    ApiToken: make_api_token,
    AuditEvent: make_audit_event,
    Task: make_task,
    TaskTally: make_task_tally,
    Annotation: make_annotation,
    Prediction: make_prediction,
    TaskAssignment: make_task_assignment,
    TaskReservation: make_task_reservation,
    ImportBatch: make_import_batch,
    Job: make_job,
    Export: make_export,
    Webhook: make_webhook,
    WebhookDelivery: make_webhook_delivery,
    MLBackend: make_ml_backend,
}
