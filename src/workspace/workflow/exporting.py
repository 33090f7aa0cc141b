"""Exports: a job streams the project's tasks, in Label Studio's export shape, through a format writer
into the media store, and records the manifest (counts, format, options, size, SHA-256).

Memory stays flat: tasks are read in keyset batches and written as they come; the object is written
through the store's atomic writer, so it appears only once complete — a failed or killed export
leaves no object, and a retried one writes the same key again. Only a ``ready`` export is offered for
download, through a short-lived URL.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson
from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from workspace.jobs.services import create_job
from workspace.lib.timeutil import as_utc, utcnow
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Conflict, Invalid, NotFound
from workspace.tenancy.scoping import bulk_tenant_id
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

BATCH = 500  # progress is reported every BATCH tasks
STREAM_ROWS = 2000  # rows fetched at a time from each query
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


def _json_value(raw: Any) -> Any:
    """A JSON column read as text (``cast(..., Text)``): parsed with orjson, json for what orjson refuses
    (NaN, lone surrogates); a driver that already parsed it hands the value through."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        if raw is None or not isinstance(raw, (str, bytes)):
            return raw
        return json.loads(raw)


def _IsoCache() -> Callable[[datetime | None], str | None]:  # noqa: N802 - used like a class
    """``_iso_fast`` with memory of the last value: rows written together share their timestamps."""
    last: list[Any] = [None, None]

    def iso(value: datetime | None) -> str | None:
        if value == last[0]:
            return last[1]
        last[0], last[1] = value, _iso_fast(value)
        return last[1]

    return iso


def _iso_fast(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        if value.utcoffset():
            value = value.astimezone(timezone.utc)
        value = value.replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


def _stream(session: Session, model: Any, query: Any) -> Iterator[Any]:
    """Rows of ``query`` as they come (server-side cursor on PostgreSQL), ``STREAM_ROWS`` at a time.

    Run as a Core statement on the session's connection: ORM row processing was a third of a large
    export's time. Core statements skip the ORM's automatic tenant criterion, so it is written here
    from the session's bound tenant (``bulk_tenant_id`` raises when none is bound: it fails closed).
    """
    query = query.where(model.tenant_id == bulk_tenant_id(session))
    return iter(session.connection().execute(query.execution_options(yield_per=STREAM_ROWS)))


def iter_export_tasks(session: Session, project_id: int, options: ExportOptions) -> Iterator[dict[str, Any]]:
    """The project's tasks in Label Studio's JSON export shape, streamed.

    Three queries in all, read side by side as streams (server-side cursors on PostgreSQL): the tasks
    in id order, their annotations and their predictions in task order, merged by task id (rows of
    tasks the filter left out are passed over). Columns, not ORM objects; JSON columns are read as
    text and parsed with orjson. Memory holds one fetch buffer per query, whatever the project's size.
    """
    where = _task_query(session, project_id, options)
    statuses = options.statuses()
    task_iso, ann_iso, upd_iso, pred_iso = _IsoCache(), _IsoCache(), _IsoCache(), _IsoCache()
    loads = _json_value
    tasks = _stream(session, Task, select(Task.id, cast(Task.data, Text), Task.created_at).where(*where).order_by(Task.id))
    ann_rows = _stream(session, Annotation, select(
        Annotation.task_id, Annotation.id, Annotation.completed_by_id, cast(Annotation.result, Text),
        Annotation.status, Annotation.created_at, Annotation.updated_at, Annotation.lead_time,
        Annotation.ground_truth)
        .where(Annotation.project_id == project_id, Annotation.status.in_(statuses))
        .order_by(Annotation.task_id, Annotation.id))
    pred_rows: Iterator[Any] = iter(())
    if options.include_predictions:
        pred_rows = _stream(session, Prediction, select(
            Prediction.task_id, Prediction.id, cast(Prediction.result, Text), Prediction.score,
            Prediction.model_version, Prediction.created_at)
            .where(Prediction.project_id == project_id).order_by(Prediction.task_id, Prediction.id))
    ann = next(ann_rows, None)
    pred = next(pred_rows, None)
    for task_id, data, created in tasks:
        anns: list[dict[str, Any]] = []
        while ann is not None and ann[0] <= task_id:
            if ann[0] == task_id:
                _, ann_id, by, result, status, ann_created, updated, lead, truth = ann
                created_at = ann_iso(ann_created)
                anns.append({
                    "id": ann_id, "completed_by": by, "result": loads(result),
                    "was_cancelled": status == "skipped", "ground_truth": bool(truth),
                    "created_at": created_at, "updated_at": upd_iso(updated) if updated is not None else created_at,
                    "lead_time": lead, "task": task_id, "project": project_id, "status": status})
            ann = next(ann_rows, None)
        preds: list[dict[str, Any]] = []
        while pred is not None and pred[0] <= task_id:
            if pred[0] == task_id:
                _, pred_id, result, score, version, pred_created = pred
                preds.append({"id": pred_id, "result": loads(result), "score": score, "model_version": version,
                              "created_at": pred_iso(pred_created), "task": task_id, "project": project_id})
            pred = next(pred_rows, None)
        created_at = task_iso(created)
        yield {
            "id": task_id,
            "data": loads(data),
            "annotations": anns,
            "predictions": preds,
            "meta": {},
            "created_at": created_at,
            "updated_at": created_at,
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
