"""Importing tasks into a project: all or nothing, in batches, in bounded memory, re-imports detected.

The parsers (``workflow.importing``) stream the file and validate every task against the fields the
label config uses; this service inserts each batch (tasks, then their annotations and predictions)
in the caller's transaction, so an error anywhere rolls the whole import back.

Parsing runs in a second thread, a couple of batches ahead of the writes: it reads the file and
serializes plain tasks into rows ready for the database (``TaskBulkWriter.prepare``), while the
caller's thread writes the previous batch (both database drivers release the GIL while the server or
SQLite works). The session is only used in the caller's thread; errors arrive there in file order.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from typing import Any, BinaryIO, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from workspace.db.maintenance import vacuum_after_commit
from workspace.lib.timeutil import utcnow
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Conflict, Invalid
from workspace.workflow.importing import (
    ImportLimits,
    TaskImportError,
    content_fingerprint,
    detect_format,
    iter_parsed_batches,
    normalize_format,
)
from workspace.workflow.label_config import parse_label_config
from workspace.workflow.models import ImportBatch
from workspace.workflow.repositories import PreparedRecords, TaskBulkWriter
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

    Memory: at most about four batches of ``batch_size`` tasks (two parsed ahead, one being parsed,
    one being written), whatever the file's size.
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
    writer = TaskBulkWriter(session, project_id=project.id, import_id=batch.id)
    stream = _Prefetched(_prepared_batches(source, fmt, filename, config.data_fields, batch_size, limits, writer))
    tasks = annotations = predictions = 0
    try:
        for prepared in stream:
            if isinstance(prepared.rows, PreparedRecords):
                added_annotations, added_predictions = writer.write_records(prepared.rows)
                annotations += added_annotations
                predictions += added_predictions
            else:
                writer.write(prepared.rows)
            tasks += prepared.count
            if on_batch is not None:
                on_batch(tasks, prepared.position)
    except TaskImportError as exc:
        raise Invalid(f"{filename}: {exc} Nothing was imported.", field="file") from None
    finally:
        stream.close()
    if tasks == 0:
        raise Invalid(f"{filename}: the file holds no tasks. Nothing was imported.", field="file")
    batch.task_count, batch.annotation_count, batch.prediction_count = tasks, annotations, predictions
    session.flush()
    vacuum_after_commit(session, "task", tasks)  # fresh planner statistics and visibility for the new rows
    from workspace.webhooks.services import emit  # sent only if this import commits

    emit(session, ctx, "import.completed", project.id, {"import_id": batch.id, "filename": batch.filename,
         "format": batch.format, "tasks": tasks, "annotations": annotations, "predictions": predictions})
    return batch


class _Prepared(NamedTuple):
    """One parsed batch of ``count`` tasks, serialized for the writer (``PreparedRecords`` when some
    task has annotations or predictions); ``position`` is how far the file has been read."""

    count: int
    rows: Any
    position: int


def _prepared_batches(source: BinaryIO, fmt: str, filename: str, required: AbstractSet[str], batch_size: int,
                      limits: ImportLimits, writer: TaskBulkWriter) -> Iterator[_Prepared]:
    """Parse and validate the file, and serialize each batch for the writer (no database)."""
    for parsed in iter_parsed_batches(source, format=fmt, filename=filename, required_fields=required,
                                      batch_size=batch_size, limits=limits):
        now = utcnow()
        if parsed.records is None:
            yield _Prepared(len(parsed.datas), writer.prepare(parsed.datas, now), source.tell())
        else:
            yield _Prepared(len(parsed.records), writer.prepare_records(parsed.records, now), source.tell())


_END: Any = object()


class _Prefetched:
    """Batches parsed in a background thread, at most ``depth`` ahead of the consumer (bounded memory).

    The thread only reads the file and builds rows; the session stays in the caller's thread. An
    error in the thread (a bad row) is raised in the caller's thread, in order, after the batches
    before it. :meth:`close` (always called) stops the thread and waits for it, so the file is not
    read any more once the import has returned or raised.
    """

    def __init__(self, batches: Iterator[_Prepared], depth: int = 2) -> None:
        self._batches = batches
        self._queue: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="task-import-parser", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._batches:
                if not self._put((item, None)):
                    return
            self._put((_END, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put((_END, exc))
        finally:
            self._batches.close()  # type: ignore[attr-defined]

    def _put(self, entry: tuple[Any, BaseException | None]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[_Prepared]:
        while True:
            item, error = self._queue.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
