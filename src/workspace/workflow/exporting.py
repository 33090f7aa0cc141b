"""Exports: a job streams the project's tasks, in Label Studio's export shape, through a format writer
into the media store, and records the manifest (counts, format, options, size, SHA-256).

Memory stays flat: tasks are read in keyset batches and written as they come; the object is written
through the store's atomic writer, so it appears only once complete — a failed or killed export
leaves no object, and a retried one writes the same key again. Only a ``ready`` export is offered for
download, through a short-lived URL.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workspace.jobs.services import create_job
from workspace.lib.timeutil import as_utc, utcnow
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Conflict, Invalid, NotFound
from workspace.workflow.datamanager import FILTER_FIELDS, conditions, parse_filters
from workspace.workflow.label_config import parse_label_config
from workspace.workflow.models import Annotation, Export, Prediction, Project, Task
from workspace.workflow.services import get_project

if TYPE_CHECKING:
    from workspace.jobs.runner import JobContext
    from workspace.media import MediaStore
    from workspace.runtime import Runtime

__all__ = ["ExportOptions", "parse_options", "queue_export", "iter_export_tasks", "run_export", "cleanup_export",
           "get_export", "list_exports", "delete_export", "download_url", "EXPORTED_STATUSES"]

BATCH = 500
DOWNLOAD_EXPIRY = timedelta(minutes=5)
# Annotations in an export: submitted and reviewed work; drafts only on request; skips never.
EXPORTED_STATUSES = ("submitted", "accepted", "rejected", "fixed")
ACCEPTED_STATUSES = ("accepted", "fixed")


def _iso(value: datetime | None) -> str | None:
    """Label Studio's timestamp style: UTC with microseconds and a ``Z``."""
    value = as_utc(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value is not None else None


class ExportOptions:
    def __init__(self, *, only_accepted: bool = False, include_predictions: bool = True,
                 include_drafts: bool = False, filters: dict[str, str] | None = None) -> None:
        self.only_accepted = only_accepted
        self.include_predictions = include_predictions
        self.include_drafts = include_drafts
        self.filters = dict(filters or {})

    def as_dict(self) -> dict[str, Any]:
        return {"only_accepted": self.only_accepted, "include_predictions": self.include_predictions,
                "include_drafts": self.include_drafts, "filters": self.filters}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ExportOptions:
        return cls(only_accepted=bool(raw.get("only_accepted")), include_predictions=bool(raw.get("include_predictions")),
                   include_drafts=bool(raw.get("include_drafts")), filters=dict(raw.get("filters") or {}))

    def statuses(self) -> tuple[str, ...]:
        if self.only_accepted:
            return ACCEPTED_STATUSES
        return (*EXPORTED_STATUSES, "draft") if self.include_drafts else EXPORTED_STATUSES

    def describe(self) -> str:
        parts = ["accepted annotations only" if self.only_accepted else "all submitted annotations"]
        if self.include_drafts and not self.only_accepted:
            parts.append("drafts")
        parts.append("predictions" if self.include_predictions else "no predictions")
        if self.filters:
            parts.append("tasks matching " + ", ".join(f"{k}={v}" for k, v in sorted(self.filters.items())))
        return "; ".join(parts)


def parse_options(form: dict[str, str]) -> ExportOptions:
    """Options from the export form (checkboxes) and the data manager's filter fields, if any."""
    filters, errors = parse_filters({k: form.get(k, "") for k in FILTER_FIELDS})
    if errors:
        field, message = next(iter(errors.items()))
        raise Invalid(f"The task filter is not valid ({field}): {message}", field="filters")
    return ExportOptions(only_accepted=form.get("only_accepted") == "1",
                         include_predictions=form.get("include_predictions") == "1",
                         include_drafts=form.get("include_drafts") == "1",
                         filters=filters.query(with_sort=False))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "project"


def queue_export(session: Session, ctx: TenantContext, project_id: int, fmt: str, options: ExportOptions) -> Export:
    from workspace.workflow.export_formats import FORMATS, unsupported_reason

    project = get_project(session, project_id)
    if fmt not in FORMATS:
        raise Invalid(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.", field="format")
    reason = unsupported_reason(fmt, parse_label_config(project.label_config))
    if reason:
        raise Invalid(f"{FORMATS[fmt].title} does not fit this project: {reason}", field="format")
    stamp = utcnow().strftime("%Y%m%d-%H%M%S")
    export = Export(project_id=project.id, format=fmt, status="queued", options=options.as_dict(),
                    filename=f"project-{project.id}-{_slug(project.title)}-{stamp}.{FORMATS[fmt].extension}",
                    created_by_id=ctx.user_id)
    session.add(export)
    session.flush()
    export.object_key = f"exports/{export.id}/{export.filename}"
    job = create_job(session, ctx, "export", title=f"{FORMATS[fmt].title} export", project_id=project.id,
                     params={"export_id": export.id})
    export.job_id = job.id
    session.flush()
    return export


def _task_query(session: Session, project_id: int, options: ExportOptions):  # type: ignore[no-untyped-def]
    filters, _errors = parse_filters(options.filters)
    return conditions(session, project_id, filters)


def count_export_tasks(session: Session, project_id: int, options: ExportOptions) -> int:
    return session.scalar(select(func.count()).select_from(Task).where(*_task_query(session, project_id, options))) or 0


def iter_export_tasks(session: Session, project_id: int, options: ExportOptions) -> Iterator[dict[str, Any]]:
    """The project's tasks in Label Studio's JSON export shape, read in keyset batches of ``BATCH``."""
    where = _task_query(session, project_id, options)
    statuses = options.statuses()
    last_id = 0
    while True:
        tasks = list(session.scalars(select(Task).where(*where, Task.id > last_id).order_by(Task.id).limit(BATCH)))
        if not tasks:
            return
        ids = [t.id for t in tasks]
        last_id = ids[-1]
        annotations: dict[int, list[Annotation]] = {}
        for a in session.scalars(select(Annotation).where(Annotation.task_id.in_(ids), Annotation.status.in_(statuses))
                                 .order_by(Annotation.id)):
            annotations.setdefault(a.task_id, []).append(a)
        predictions: dict[int, list[Prediction]] = {}
        if options.include_predictions:
            for p in session.scalars(select(Prediction).where(Prediction.task_id.in_(ids)).order_by(Prediction.id)):
                predictions.setdefault(p.task_id, []).append(p)
        for task in tasks:
            anns = annotations.get(task.id, [])
            preds = predictions.get(task.id, [])
            yield {
                "id": task.id,
                "data": task.data,
                "annotations": [{
                    "id": a.id, "completed_by": a.completed_by_id, "result": a.result,
                    "was_cancelled": a.status == "skipped", "ground_truth": False,
                    "created_at": _iso(a.created_at), "updated_at": _iso(a.updated_at or a.created_at),
                    "lead_time": a.lead_time, "task": task.id, "project": project_id, "status": a.status,
                } for a in anns],
                "predictions": [{
                    "id": p.id, "result": p.result, "score": p.score, "model_version": p.model_version,
                    "created_at": _iso(p.created_at), "task": task.id, "project": project_id,
                } for p in preds],
                "meta": {},
                "created_at": _iso(task.created_at),
                "updated_at": _iso(task.created_at),
                "project": project_id,
                "file_upload": None,
                "total_annotations": len(anns),
                "cancelled_annotations": 0,
                "total_predictions": len(preds),
            }


class _Digest:
    """Counts and hashes what is written, passing it on to the store's writer."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self._out.write(data)
        return len(data)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass


class _Progress:
    def __init__(self, source: Iterator[dict[str, Any]], job: JobContext, total: int) -> None:
        self._source, self._job, self._total, self.done = source, job, total, 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for task in self._source:
            yield task
            self.done += 1
            if self.done % BATCH == 0:
                self._job.progress(self.done, self._total, f"{self.done:,} of {self._total:,} tasks written")


def run_export(session: Session, job: JobContext) -> tuple[dict[str, Any], str]:
    from workspace.workflow.export_formats import FORMATS, write_export

    export = session.get(Export, int(job.params["export_id"]))
    if export is None:
        raise NotFound("The export was deleted before it ran.")
    project = session.get(Project, export.project_id)
    assert project is not None
    options = ExportOptions.from_dict(export.options or {})
    fmt = FORMATS[export.format]
    export.status = "running"
    session.flush()
    total = count_export_tasks(session, project.id, options)
    job.progress(0, total, f"Writing {total:,} tasks")
    config = parse_label_config(project.label_config)
    store = job.runtime.media
    tasks = _Progress(iter_export_tasks(session, project.id, options), job, total)
    with store.open_writer(job.tenant_id, export.object_key, content_type=fmt.content_type) as writer:
        digest = _Digest(writer)
        counts = write_export(export.format, config, tasks, digest, project_title=project.title)  # type: ignore[arg-type]
    export.status, export.size, export.sha256 = "ready", digest.size, digest.sha.hexdigest()
    export.counts = {"tasks": counts.tasks, "annotations": counts.annotations, "predictions": counts.predictions}
    export.finished_at = utcnow()
    export.message = f"{counts.tasks:,} tasks, {counts.annotations:,} annotations"
    session.flush()
    manifest = {"export_id": export.id, "format": export.format, "filename": export.filename, "size": export.size,
                "sha256": export.sha256, "counts": export.counts, "options": export.options}
    from workspace.webhooks.services import emit

    emit(session, job.ctx, "export.ready", project.id, manifest)
    return manifest, f"Exported {counts.tasks:,} tasks ({counts.annotations:,} annotations) as {fmt.title}."


def cleanup_export(runtime: Runtime, job: Any) -> None:
    """A failed or cancelled export keeps no object and says why."""
    if job.status == "succeeded":
        return
    export_id = (job.params or {}).get("export_id")
    with runtime.unit_of_work(job.tenant_id) as db:
        export = db.get(Export, export_id) if export_id else None
        if export is None:
            return
        if export.object_key:
            runtime.media.delete(job.tenant_id, export.object_key)
        if export.status != "ready":
            export.status = "failed" if job.status == "failed" else "cancelled"
            export.message = job.message[:500]
            export.finished_at = utcnow()


def get_export(session: Session, project_id: int, export_id: int) -> Export:
    export = session.get(Export, export_id)
    if export is None or export.project_id != project_id:
        raise NotFound("Export not found")
    return export


def list_exports(session: Session, project_id: int, limit: int = 50) -> list[Export]:
    return list(session.scalars(select(Export).where(Export.project_id == project_id)
                                .order_by(Export.id.desc()).limit(limit)))


def delete_export(session: Session, store: MediaStore, export: Export) -> None:
    if export.status in ("queued", "running"):
        raise Conflict("This export is still running; cancel its job first.")
    if export.object_key:
        store.delete(export.tenant_id, export.object_key)
    session.delete(export)
    session.flush()


def download_url(store: MediaStore, export: Export) -> str:
    if export.status != "ready":
        raise Conflict("This export is not ready; only complete exports can be downloaded.")
    return store.url_for(export.tenant_id, export.object_key, expires=DOWNLOAD_EXPIRY, download_name=export.filename)
