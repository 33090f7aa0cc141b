"""Agreement and ground truth, stored: services that flush, never commit.

Why stored and not computed on read: the data manager sorts a million tasks by agreement and the
dashboard draws its distribution, both with plain SQL over an indexed column
(``ix_task_project_agreement``). Computing agreement means reading every annotation's result of the
task, far too slow to do for a whole project on each page view. So:

* ``Task.agreement`` — the mean pairwise agreement of the task's counted annotations
  (:func:`workspace.workflow.agreement.task_agreement`), None with fewer than two. Refreshed by
  :func:`refresh_tasks`, which the annotation services call whenever a counted annotation of the task
  changes (submit, update, review decisions that change the result, ground truth marks), and for a
  whole project by :func:`refresh_project` (after a bulk import of annotations, for instance).
* ``Annotation.ground_truth`` — at most one per task, marked by a manager (audited: it is an ORM
  change of an audited model). ``Annotation.gt_score`` — for every other counted annotation of a task
  that has a ground truth, its agreement with it; the dashboard averages it per annotator (accuracy).

The derived columns are written with bulk UPDATEs (not audited: they are recomputed from audited data).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from workspace.audit.chain import record
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Invalid, NotFound
from workspace.tenancy.repositories import fetch
from workspace.workflow.agreement import result_agreement, task_agreement
from workspace.workflow.models import COUNTED_STATUSES, Annotation, Project, Task

__all__ = ["refresh_tasks", "refresh_project", "mark_ground_truth", "counted_annotations", "REFRESH_BATCH"]

REFRESH_BATCH = 500


def counted_annotations(session: Session, task_ids: Iterable[int]) -> dict[int, list[Annotation]]:
    """The counted annotations (submitted, accepted, rejected) of the tasks, oldest first."""
    ids = sorted(set(task_ids))
    out: dict[int, list[Annotation]] = {t: [] for t in ids}
    if not ids:
        return out
    rows = session.scalars(select(Annotation).where(Annotation.task_id.in_(ids),
                                                    Annotation.status.in_(sorted(COUNTED_STATUSES)))
                           .order_by(Annotation.task_id, Annotation.id))
    for annotation in rows:
        out[annotation.task_id].append(annotation)
    return out


def refresh_tasks(session: Session, task_ids: Iterable[int]) -> None:
    """Recompute ``Task.agreement`` and the ground-truth scores of these tasks' annotations."""
    session.flush()
    by_task = counted_annotations(session, task_ids)
    for task_id, counted in by_task.items():
        value = task_agreement([a.result for a in counted])
        session.execute(update(Task).where(Task.id == task_id).values(agreement=value)
                        .execution_options(synchronize_session=False))
        truth = next((a for a in counted if a.ground_truth), None)
        for annotation in counted:
            score = None if truth is None or annotation is truth else result_agreement(annotation.result, truth.result)
            if annotation.gt_score != score:
                session.execute(update(Annotation).where(Annotation.id == annotation.id).values(gt_score=score)
                                .execution_options(synchronize_session=False))
    # Annotations that left the counted set (skipped, drafts) keep no score.
    if by_task:
        session.execute(update(Annotation)
                        .where(Annotation.task_id.in_(list(by_task)), Annotation.gt_score.is_not(None),
                               Annotation.status.not_in(sorted(COUNTED_STATUSES)))
                        .values(gt_score=None).execution_options(synchronize_session=False))
    # The bulk UPDATEs bypassed the identity map: reload those two columns on next access.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Task) and obj.id in by_task:
            session.expire(obj, ["agreement"])
        elif isinstance(obj, Annotation) and obj.task_id in by_task:
            session.expire(obj, ["gt_score"])


def refresh_project(session: Session, ctx: TenantContext, project_id: int) -> int:
    """Recompute agreement and ground-truth scores for every labeled task of the project, in keyset
    batches (memory stays flat); one audit event. Returns the number of tasks refreshed."""
    project = fetch(session, Project, project_id, what="Project")
    last, total = 0, 0
    while True:
        ids = list(session.scalars(select(Task.id).where(Task.project_id == project.id, Task.id > last,
                                                         (Task.annotation_count > 0) | Task.agreement.is_not(None))
                                   .order_by(Task.id).limit(REFRESH_BATCH)))
        if not ids:
            break
        refresh_tasks(session, ids)
        total += len(ids)
        last = ids[-1]
    record(session, "project.agreement_refreshed", tenant_id=ctx.tenant_id, object_type="project",
           object_id=project_id, object_label=project.title, changes={"tasks": total})
    return total


def mark_ground_truth(session: Session, ctx: TenantContext, project_id: int, annotation_id: int,
                      value: bool = True) -> Annotation:
    """Mark (or unmark) an annotation as its task's ground truth. Only a counted annotation can be
    ground truth; marking one unmarks any other of the task. Audited through the model."""
    annotation = fetch(session, Annotation, annotation_id, what="Annotation")
    if annotation.project_id != project_id:
        raise NotFound("Annotation not found")
    if value and annotation.status not in COUNTED_STATUSES:
        raise Invalid(f"Only a submitted, accepted or rejected annotation can be ground truth; "
                      f"annotation {annotation.id} is {annotation.status}.", field="annotation")
    if value:
        others = session.scalars(select(Annotation).where(Annotation.task_id == annotation.task_id,
                                                          Annotation.ground_truth.is_(True),
                                                          Annotation.id != annotation.id))
        for other in others:
            other.ground_truth = False
    annotation.ground_truth = value
    session.flush()
    task_id = annotation.task_id
    refresh_tasks(session, [task_id])
    return fetch(session, Annotation, annotation_id, what="Annotation")
