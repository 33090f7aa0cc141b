"""Workflow models. Projects, tasks, annotations and predictions have integer ids (Label Studio's API
and SDK treat them as integers); isolation comes from tenant scoping, never from unguessable ids.

Tasks are written in bulk by imports and are not audited row by row: an import writes one audit event
with its counts. Projects and annotations are audited by the flush hook like every other model.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, ForeignKeyConstraint, Index, Integer,
                        String, Text, UniqueConstraint)
from sqlalchemy import false, text
from sqlalchemy.orm import Mapped, mapped_column

from workspace.db.base import Audited, Base, TenantOwned, Timestamped
from workspace.lib.canonical import canonical_json

__all__ = ["Project", "Task", "Annotation", "Prediction", "ImportBatch", "Export", "DEFAULT_LABEL_CONFIG",
           "SUBMITTED", "SKIPPED", "DRAFT", "ACCEPTED", "REJECTED", "COUNTED_STATUSES",
           "TaskAssignment", "TaskReservation", "TaskTally", "ANNOTATOR", "REVIEWER"]

BigId = BigInteger().with_variant(Integer, "sqlite")

DEFAULT_LABEL_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text" choice="single">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
  </Choices>
</View>
"""


class Project(TenantOwned, Timestamped, Audited, Base):
    __tablename__ = "project"
    __audit_type__ = "project"
    # The target of the task table's (tenant_id, project_id) foreign key.
    __table_args__ = (UniqueConstraint("tenant_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    instructions: Mapped[str] = mapped_column(Text, default="", nullable=False)
    label_config: Mapped[str] = mapped_column(Text, default=DEFAULT_LABEL_CONFIG, nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    # Workflow settings (overlap, distribution, review...): see workspace.workflow.settings.
    workflow: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    # The last Task.inner_id given in the project (taken in blocks by workflow.repositories.allocate_inner_ids).
    task_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0", nullable=False)


class ImportBatch(TenantOwned, Timestamped, Audited, Base):
    """One import of one file: what came in, from whom, and its fingerprint (re-imports are detected)."""

    __tablename__ = "import_batch"
    __audit_type__ = "import"
    __table_args__ = (Index("ix_import_batch_project_fingerprint", "project_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), nullable=False)
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    format: Mapped[str] = mapped_column(String(16), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    task_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    annotation_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    prediction_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))

    def audit_verb(self, verb: str, changes: dict[str, list[object]]) -> str:
        return "completed" if verb == "updated" and "task_count" in changes else verb

    def audit_label(self) -> str:
        return self.filename


class Task(TenantOwned, Base):
    __tablename__ = "task"
    # The data manager's keyset pages sort by (created_at, id) and (annotation_count, id) too.
    # Imports write tasks by the hundred thousand, and PostgreSQL checks every foreign key row by row:
    # one composite key to the project (which also proves the task's tenant is its project's) instead
    # of separate keys to tenant, project and import batch halves the server's work per imported row.
    # ``import_id`` is not a foreign key: import batches are only ever deleted with their project.
    __table_args__ = (ForeignKeyConstraint(["tenant_id", "project_id"], ["project.tenant_id", "project.id"],
                                           ondelete="CASCADE"),
                      Index("ix_task_project_id_id", "project_id", "id"),
                      Index("ix_task_project_created", "project_id", "created_at", "id"),
                      Index("ix_task_project_annotations", "project_id", "annotation_count", "id"),
                      # Partial: only tasks with an agreement (two or more annotations) are sorted by it,
                      # and imported tasks, which have none, cost the index nothing.
                      Index("ix_task_project_agreement", "project_id", "agreement", "id",
                            postgresql_where=text("agreement IS NOT NULL"),
                            sqlite_where=text("agreement IS NOT NULL")))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer, nullable=False)  # scoped through the key above
    project_id: Mapped[int] = mapped_column(Integer, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    import_id: Mapped[int | None] = mapped_column(Integer)
    annotation_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    prediction_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # Mean pairwise agreement of the task's counted annotations (0..1; None with fewer than two),
    # kept up to date by workspace.workflow.quality.refresh_tasks.
    agreement: Mapped[float | None] = mapped_column(Float)
    # Label Studio's inner_id: the task's 1-based number in its project, given when it is created
    # (migration 0016). No index: imports would pay for it and reads have the task in hand.
    inner_id: Mapped[int | None] = mapped_column(BigInteger)


class TaskTally(TenantOwned, Base):
    """Deltas of a project's task totals; the totals are the sum of the project's rows.

    Written only by PostgreSQL's triggers on task (migration 0015), which insert one row per statement
    and project and now and then compact a project's rows into one; insert-only, so concurrent writers
    of a project's tasks never wait for each other here. Read through ``workspace.workflow.tally``.
    SQLite has the table but no triggers: there the totals are aggregated from the tasks.
    """

    __tablename__ = "task_tally"
    __table_args__ = (Index("ix_task_tally_project_id", "project_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer, nullable=False)  # the project's (scoped like any model)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), nullable=False)
    tasks: Mapped[int] = mapped_column(BigInteger, nullable=False)
    labeled: Mapped[int] = mapped_column(BigInteger, nullable=False)  # tasks with annotation_count > 0
    annotations: Mapped[int] = mapped_column(BigInteger, nullable=False)  # sum of annotation_count
    predictions: Mapped[int] = mapped_column(BigInteger, nullable=False)  # sum of prediction_count


# Annotation.status. On the labeling page a member keeps at most one submitted-or-skipped annotation
# and one draft per task.
SUBMITTED = "submitted"  # counted in Task.annotation_count
SKIPPED = "skipped"  # Label Studio's was_cancelled: an empty result, never counted, never served again
DRAFT = "draft"  # work in progress, saved by the labeling page: never counted, shown only to its author
ACCEPTED = "accepted"  # a reviewer accepted it (or fixed and accepted it)
REJECTED = "rejected"  # a reviewer rejected it: back to its annotator (when the project says so)
# Statuses that fill one of a task's overlap slots and count in Task.annotation_count.
COUNTED_STATUSES = frozenset({SUBMITTED, ACCEPTED, REJECTED})
# ``session.info`` key: the projects whose submitted or accepted work changed in this transaction (the
# ML retraining check reads it before commit). A flush hook fills it for annotations written through
# the ORM; a statement that inserts annotations itself adds its project.
LABELED_PROJECTS = "workflow.labeled_projects"


class Annotation(TenantOwned, Timestamped, Audited, Base):
    """A result in Label Studio's format (list of {id, from_name, to_name, type, value, ...})."""

    __tablename__ = "annotation"
    __audit_type__ = "annotation"
    __table_args__ = (Index("ix_annotation_task_id", "task_id"),
                      Index("ix_annotation_project_created", "project_id", "created_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), nullable=False)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), nullable=False)
    result: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="submitted", nullable=False)
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    lead_time: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Optimistic concurrency: bumped by every lifecycle action (workspace.workflow.revisions); an
    # action carries the version its actor saw and is refused with a conflict when it moved on.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1", nullable=False)
    # Ground truth (workspace.workflow.quality): a manager marks at most one per task; the other
    # counted annotations of the task get ``gt_score``, their agreement with it (0..1).
    ground_truth: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), nullable=False)
    gt_score: Mapped[float | None] = mapped_column(Float)

    def audit_verb(self, verb: str, changes: dict[str, list[object]]) -> str:
        if verb == "updated" and self.status == DRAFT and set(changes) <= {"result", "updated_at", "lead_time"}:
            return "draft_saved"
        return verb

    def audit_changes(self, changes: dict[str, list[object]]) -> dict[str, list[object]]:
        """A draft autosaves every few seconds: its events record a digest of the result (regions and
        SHA-256), not the result itself; submitted work keeps the full before/after."""
        if self.status != DRAFT or "result" not in changes:
            return changes
        return {**changes, "result": [_digest(v) for v in changes["result"]]}


def _digest(result: object) -> dict[str, object] | None:
    if result is None:
        return None
    text = canonical_json(result)
    return {"regions": len(result) if isinstance(result, list) else None,
            "sha256": hashlib.sha256(text).hexdigest()}


class Prediction(TenantOwned, Base):
    __tablename__ = "prediction"
    __table_args__ = (Index("ix_prediction_task_id", "task_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), nullable=False)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), nullable=False)
    result: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    score: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(120), default="", nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Export(TenantOwned, Timestamped, Audited, Base):
    """One export of a project's labels: its options, and once ready the stored file and its manifest.

    Status: queued → running → ready | failed. Only a ready export can be downloaded; its object is
    written atomically (it appears in the media store only once complete) under ``object_key``.
    """

    __tablename__ = "export"
    __audit_type__ = "export"
    # Bookkeeping set right after creation (the key and the job need the export's id): not events.
    __audit_exclude__ = frozenset({"object_key", "job_id"})
    __table_args__ = (Index("ix_export_project_id", "project_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), nullable=False)
    format: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="queued", nullable=False)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    filename: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    object_key: Mapped[str] = mapped_column(String(512), default="", nullable=False)
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), default="", nullable=False)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    message: Mapped[str] = mapped_column(String(500), default="", nullable=False)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def audit_verb(self, verb: str, changes: dict[str, list[object]]) -> str:
        if verb == "updated" and "status" in changes:
            return str(changes["status"][-1])
        return verb

    def audit_label(self) -> str:
        return f"{self.format} export" + (f" {self.filename}" if self.filename else "")


# TaskAssignment.role
ANNOTATOR = "annotator"
REVIEWER = "reviewer"


class TaskAssignment(TenantOwned, Base):
    """A task assigned to one member as annotator or reviewer (``workspace.workflow.assignment``).

    A team is expanded to its members when it is assigned: later changes to the team do not move
    work that was already handed out. Written in bulk from the data manager; each bulk action is one
    audit event with its counts, not one per row.
    """

    __tablename__ = "task_assignment"
    __table_args__ = (Index("ux_task_assignment_task_user_role", "task_id", "user_id", "role", unique=True),
                      Index("ix_task_assignment_project_user", "project_id", "user_id", "role", "task_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), nullable=False)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="SET NULL"))  # assigned through
    assigned_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class TaskReservation(TenantOwned, Base):
    """A task handed out by "label next" and held for its annotator until ``expires_at``: it fills
    one of the task's overlap slots meanwhile. Submitting or skipping the task releases it."""

    __tablename__ = "task_reservation"
    __table_args__ = (Index("ux_task_reservation_task_user", "task_id", "user_id", unique=True),
                      Index("ix_task_reservation_project_user", "project_id", "user_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), nullable=False)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
