"""Importing tasks into a project: all or nothing, in batches, in bounded memory, re-imports detected.

The parsers (``workflow.importing``) stream the file and validate every task against the fields the
label config uses; this service inserts each batch (tasks, then their annotations and predictions)
in the caller's transaction, so an error anywhere rolls the whole import back.

Parsing runs in a second thread, a few parts ahead of the writes: it reads the file and serializes
plain tasks into rows ready for the database (``TaskBulkWriter.prepare``), a part of at most
``PART_TASKS`` at a time, while the caller's thread writes the previous part (both database drivers
release the GIL while the server or SQLite works). A batch's plain tasks go to the database as one
``TaskStream`` (PostgreSQL: one ``COPY``, so a batch costs one statement however many parts it has,
and the server inserts while the next part is parsed). The session is only used in the caller's
thread; errors arrive there in file order.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from typing import Any, BinaryIO, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from workspace.db.maintenance import analyze_after_commit
from workspace.lib.timeutil import utcnow
from workspace.tenancy.context import TenantContext
from workspace.tenancy.errors import Conflict, Invalid
from workspace.workflow.importing import (
    ImportLimits,
    TaskImportError,
    TaskRecord,
    content_fingerprint,
    detect_format,
    iter_parsed_batches,
    normalize_format,
)
from workspace.workflow.label_config import parse_label_config
from workspace.workflow.models import ImportBatch
from workspace.workflow.repositories import PreparedRecords, TaskBulkWriter, TaskStream
from workspace.workflow.services import get_project

__all__ = ["PART_TASKS", "import_tasks", "previous_import"]

# Most tasks parsed and serialized at a time: small enough that the database's work on one part
# overlaps the parsing of the next, large enough that the per-part costs stay small.
PART_TASKS = 1000


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

    Memory: at most about two batches of ``batch_size`` tasks (a batch of tasks with annotations
    gathered, parts parsed ahead, one being parsed, one being written), whatever the file's size.
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
    part, parts = _parts(batch_size)
    # The first batch's statement starts before the parser thread does: the Python work of running a
    # statement would otherwise wait for the GIL, which the parser holds (an API import is one batch).
    plain: TaskStream | None = writer.stream(part * parts)  # the batch's plain tasks so far, while more may follow
    try:
        stream = _Prefetched(_prepared_parts(source, fmt, filename, config.data_fields, part, parts, limits, writer))
    except BaseException as exc:
        plain.close(exc)
        raise
    tasks = annotations = predictions = in_batch = 0
    try:
        for prepared in stream:
            records = isinstance(prepared.rows, PreparedRecords)
            if plain is not None and records:
                plain.close()  # the COPY ends before the next statement
                plain = None
            if records:
                added_annotations, added_predictions = writer.write_records(prepared.rows)
                annotations += added_annotations
                predictions += added_predictions
            elif prepared.count:
                if plain is None:
                    plain = writer.stream(part * parts - in_batch)
                plain.write(prepared.rows)
            tasks += prepared.count
            in_batch += prepared.count
            if prepared.ends_batch:
                if plain is not None:
                    plain.close()
                    plain = None
                in_batch = 0
                if on_batch is not None:
                    on_batch(tasks, prepared.position)
    except BaseException as exc:
        if plain is not None:
            plain.close(exc)
        if isinstance(exc, TaskImportError):
            raise Invalid(f"{filename}: {exc} Nothing was imported.", field="file") from None
        raise
    finally:
        stream.close()
    if tasks == 0:
        raise Invalid(f"{filename}: the file holds no tasks. Nothing was imported.", field="file")
    batch.task_count, batch.annotation_count, batch.prediction_count = tasks, annotations, predictions
    session.flush()
    analyze_after_commit(session, "task", tasks)  # fresh planner statistics for the new rows
    from workspace.webhooks.services import emit  # sent only if this import commits

    emit(session, ctx, "import.completed", project.id, {"import_id": batch.id, "filename": batch.filename,
         "format": batch.format, "tasks": tasks, "annotations": annotations, "predictions": predictions})
    return batch


class _Prepared(NamedTuple):
    """``count`` parsed tasks serialized for the writer: plain tasks (a part), or ``PreparedRecords``
    (the batch's tasks with annotations or predictions, gathered); ``position`` is how far the file has
    been read, ``ends_batch`` whether these are the last tasks of a batch."""

    count: int
    rows: Any
    position: int
    ends_batch: bool


def _parts(batch_size: int) -> tuple[int, int]:
    """Parts of about equal size, at most ``PART_TASKS`` each, that a batch is parsed in: (size, count)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    count = -(-batch_size // PART_TASKS)
    return -(-batch_size // count), count


def _prepared_parts(source: BinaryIO, fmt: str, filename: str, required: AbstractSet[str], part: int, parts: int,
                    limits: ImportLimits, writer: TaskBulkWriter) -> Iterator[_Prepared]:
    """Parse and validate the file, and serialize it for the writer (no database), in batches of
    ``parts`` parts of ``part`` tasks. Plain tasks go a part at a time; tasks with annotations or
    predictions are gathered up to the next plain part or the batch's end, to be written together."""
    gathered: list[TaskRecord] = []
    now = utcnow()
    done = 0
    for done, parsed in enumerate(iter_parsed_batches(source, format=fmt, filename=filename, required_fields=required,
                                                      batch_size=part, limits=limits), 1):
        ends_batch = done % parts == 0
        if parsed.records is not None:
            gathered.extend(parsed.records)
        else:
            if gathered:
                yield _Prepared(len(gathered), writer.prepare_records(gathered, now), source.tell(), False)
                gathered = []
            yield _Prepared(len(parsed.datas), writer.prepare(parsed.datas, now), source.tell(), ends_batch)
        if gathered and ends_batch:
            yield _Prepared(len(gathered), writer.prepare_records(gathered, now), source.tell(), True)
            gathered = []
        if ends_batch:
            now = utcnow()
    if gathered or done % parts:
        rows = writer.prepare_records(gathered, now) if gathered else None  # None: only the batch's end
        yield _Prepared(len(gathered), rows, source.tell(), True)


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
