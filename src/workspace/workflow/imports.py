"""Importing tasks into a project: all or nothing, in batches, in bounded memory, re-imports detected.

The parsers (``workflow.importing``) stream the file and validate every task against the fields the
label config uses; this service inserts each batch (tasks, then their annotations and predictions)
in the caller's transaction, so an error anywhere rolls the whole import back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from workspace.lib.timeutil import utcnow
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Conflict, Invalid
from workspace.tenancy.scoping import stamp_rows
from workspace.workflow.importing import (
    ImportLimits,
    TaskImportError,
    content_fingerprint,
    detect_format,
    iter_task_batches,
    normalize_format,
)
from workspace.workflow.label_config import parse_label_config
from workspace.workflow.models import Annotation, ImportBatch, Prediction
from workspace.workflow.repositories import insert_tasks
from workspace.workflow.services import get_project

__all__ = ["import_tasks", "previous_import"]


def previous_import(session: Session, project_id: int, fingerprint: str) -> ImportBatch | None:
    return session.scalars(
        select(ImportBatch).where(ImportBatch.project_id == project_id, ImportBatch.fingerprint == fingerprint)
        .order_by(ImportBatch.id.desc())
    ).first()


def import_tasks(
    session: Session,
    ctx: TenantContext,
    project_id: int,
    source: BinaryIO,
    filename: str,
    *,
    format: str | None = None,
    allow_duplicate: bool = False,
    limits: ImportLimits = ImportLimits(),
    batch_size: int = 5000,
    on_batch: Callable[[int, int], None] | None = None,
) -> ImportBatch:
    """Import a seekable file. Raises Invalid (with the row and field) or Conflict (already imported).

    ``on_batch(tasks_so_far, bytes_read)`` is called after each inserted batch (progress for import jobs;
    it may raise to abort the import, which then rolls back like any other error).
    """
    project = get_project(session, project_id)
    config = parse_label_config(project.label_config)
    fingerprint = content_fingerprint(source)
    source.seek(0)
    earlier = previous_import(session, project.id, fingerprint)
    if earlier is not None and not allow_duplicate:
        raise Conflict(
            f"This file was already imported on {earlier.created_at:%Y-%m-%d %H:%M} UTC as import #{earlier.id} "
            f"({earlier.task_count} tasks). Confirm to import it again.", field="file")
    try:
        fmt = normalize_format(format) if format else detect_format(filename, source.read(64 * 1024))
    except TaskImportError as exc:
        raise Invalid(str(exc), field="file") from None
    source.seek(0)
    batch = ImportBatch(project_id=project.id, filename=filename[:255], format=fmt, fingerprint=fingerprint,
                        created_by_id=ctx.user_id)
    session.add(batch)
    session.flush()
    tasks = annotations = predictions = 0
    try:
        for records in iter_task_batches(source, format=fmt, filename=filename, required_fields=config.data_fields,
                                         batch_size=batch_size, limits=limits):
            now = utcnow()
            rows = stamp_rows(session, [
                {"project_id": project.id, "data": r.data, "import_id": batch.id, "created_at": now,
                 "annotation_count": len(r.annotations), "prediction_count": len(r.predictions)}
                for r in records
            ])
            need_ids = any(r.annotations or r.predictions for r in records)
            ids = insert_tasks(session, rows, need_ids=need_ids)
            tasks += len(rows)
            ann_rows, pred_rows = [], []
            if not need_ids:
                if on_batch is not None:
                    on_batch(tasks, source.tell())
                continue
            for task_id, record in zip(ids, records, strict=True):
                for a in record.annotations:
                    ann_rows.append({"project_id": project.id, "task_id": task_id, "result": a.get("result", []),
                                     "status": "submitted", "completed_by_id": None,
                                     "lead_time": a.get("lead_time"), "created_at": now})
                for p in record.predictions:
                    pred_rows.append({"project_id": project.id, "task_id": task_id, "result": p.get("result", []),
                                      "score": p.get("score"), "model_version": str(p.get("model_version") or ""),
                                      "created_at": now})
            if ann_rows:
                session.execute(insert(Annotation), stamp_rows(session, ann_rows))
                annotations += len(ann_rows)
            if pred_rows:
                session.execute(insert(Prediction), stamp_rows(session, pred_rows))
                predictions += len(pred_rows)
            if on_batch is not None:
                on_batch(tasks, source.tell())
    except TaskImportError as exc:
        raise Invalid(f"{filename}: {exc} Nothing was imported.", field="file") from None
    if tasks == 0:
        raise Invalid(f"{filename}: the file holds no tasks. Nothing was imported.", field="file")
    batch.task_count, batch.annotation_count, batch.prediction_count = tasks, annotations, predictions
    session.flush()
    return batch
