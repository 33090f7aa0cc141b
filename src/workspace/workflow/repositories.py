"""Workflow queries, including the fast paths for bulk task inserts.

Two ways in:

* :func:`insert_tasks` takes dict rows already stamped with the tenant (``tenancy.scoping.stamp_rows``);
  media imports use it.
* :class:`TaskBulkWriter` is the file import's fast path. Every row of one import shares its tenant
  (the session's, never a value from the file), project, import batch and timestamp, so rows go to
  the DBAPI connection directly, without SQLAlchemy's per-row parameter processing: pre-serialized
  ``COPY`` text on PostgreSQL, multi-row ``INSERT`` statements on SQLite. Tasks with annotations or
  predictions get their ids allocated up front, so they and their children are written the same way.

Both number the tasks they write in their project (``Task.inner_id``, Label Studio's 1-based number
of a task in its project) from blocks that :func:`allocate_inner_ids` takes at write time.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import chain
from typing import Any, NamedTuple

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from workspace.tenancy.scoping import bulk_tenant_id
from workspace.workflow.importing import TaskRecord
from workspace.workflow.models import Annotation, Project, Task

__all__ = ["PreparedRecords", "TaskBulkWriter", "TaskStream", "allocate_inner_ids", "copy_escape",
           "give_back_inner_ids", "insert_tasks"]

_COPY_COLUMNS = ("tenant_id", "project_id", "data", "import_id", "created_at", "annotation_count", "prediction_count",
                 "inner_id")

# The fast path's column order: the constants of an import first, then the task's data, so a COPY line
# is one shared prefix and the data's JSON text; the inner id, known only at write time, last.
_BULK_COLUMNS = ("tenant_id", "project_id", "import_id", "created_at", "annotation_count", "prediction_count", "data",
                 "inner_id")
# Tasks with children: id and inner id first (allocated when the batch is written), then what was prepared.
_TASK_COLUMNS = ("id", "inner_id", *_BULK_COLUMNS[:-1])
_ANNOTATION_COLUMNS = ("task_id", "tenant_id", "project_id", "created_at", "status", "lead_time", "result")
_PREDICTION_COLUMNS = ("task_id", "tenant_id", "project_id", "created_at", "model_version", "score", "result")
# Most rows per INSERT statement on SQLite (one bound parameter each; the connection's limits may allow fewer).
_SQLITE_ROWS_PER_INSERT = 10_000

# JSON text as PostgreSQL stores it: non-ASCII as is (the data manager's text search matches it as typed).
_encode_json = json.JSONEncoder(ensure_ascii=False).encode


def _json_writer(escape: Callable[[str], str], encode: Callable[[Any], str]) -> Callable[[dict[str, Any]], str]:
    """``encode`` (a default ``json`` encoder), sped up for the usual task: an object of strings,
    integers, booleans and nulls (``{"text": ..., "idx": 7}``).

    Builds exactly the text ``encode`` would (separators ``", "`` and ``": "``, ``escape`` being the
    encoder's own string escaper, integers as ``int.__repr__`` like the encoder), several times faster
    than going through the encoder per row. Anything else (floats, nested values) goes to ``encode``.
    """
    scalars: dict[type, Callable[[Any], str]] = {
        str: escape, int: int.__repr__, bool: {True: "true", False: "false"}.__getitem__, type(None): lambda _: "null"}
    writer_of = scalars.get

    def write(data: dict[str, Any]) -> str:
        parts = []
        for key, value in data.items():
            text = writer_of(type(value))
            if text is None or type(key) is not str:
                return encode(data)
            parts.append(escape(key) + ": " + text(value))
        return "{" + ", ".join(parts) + "}"

    return write


_json_text = _json_writer(json.encoder.encode_basestring, _encode_json)  # type: ignore[attr-defined]
_json_text_ascii = _json_writer(json.encoder.encode_basestring_ascii, json.dumps)  # type: ignore[attr-defined]


def copy_escape(text: str) -> str:
    """``text`` as one field of PostgreSQL's COPY text format (backslash, tab, newline, CR escaped)."""
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if "\t" in text:
        text = text.replace("\t", "\\t")
    if "\n" in text:
        text = text.replace("\n", "\\n")
    if "\r" in text:
        text = text.replace("\r", "\\r")
    return text


def _copy_value(value: Any) -> str:
    """A scalar as a COPY text field: NULL, a number, or escaped text (the server parses it)."""
    if value is None:
        return "\\N"
    if type(value) is float:
        return repr(value)
    return copy_escape(str(value))


def allocate_inner_ids(session: Session, project_id: int, n: int) -> int:
    """Take ``n`` consecutive inner ids in the project; return the first.

    One ``UPDATE project SET task_seq = task_seq + n ... RETURNING`` (tenant-scoped like any ORM
    statement: another tenant's project is not found). Its row lock is held until the transaction
    ends, so concurrent writers of one project's tasks run one after the other from here on: a
    writer's tasks, whose ids are drawn after its numbers, all get larger ids than those of a writer
    that numbered before it, and inner ids increase with task ids within a project. Numbers are
    never given twice, deleted tasks' included; a rolled-back transaction gives its block back.
    """
    last = session.execute(update(Project).where(Project.id == project_id)
                           .values(task_seq=Project.task_seq + n).returning(Project.task_seq)).scalar_one_or_none()
    if last is None:
        raise LookupError(f"project {project_id} not found (numbering its new tasks)")
    return int(last) - n + 1


def give_back_inner_ids(session: Session, project_id: int, n: int) -> None:
    """Return the last ``n`` inner ids :func:`allocate_inner_ids` gave this transaction and it did not
    use. Only right while the transaction holds the project row (it does from its first allocation
    on), so no one else took numbers after them: the project's next tasks get them, and numbering
    stays gapless."""
    session.execute(update(Project).where(Project.id == project_id).values(task_seq=Project.task_seq - n))


def _number_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Set ``inner_id`` on each row, in order, per project (projects locked in id order)."""
    counts = Counter(row["project_id"] for row in rows)
    following = {pid: allocate_inner_ids(session, pid, counts[pid]) for pid in sorted(counts)}
    for row in rows:
        pid = row["project_id"]
        row["inner_id"] = following[pid]
        following[pid] += 1


def insert_tasks(session: Session, rows: list[dict[str, Any]], *, need_ids: bool) -> list[int]:
    """Insert task rows; return their ids in order when ``need_ids`` (else an empty list).

    The rows get their ``inner_id`` here (the dicts are updated). PostgreSQL without ids uses COPY
    (an order of magnitude faster than INSERT); with ids, one multi-row INSERT ... RETURNING per
    batch. SQLite uses executemany.
    """
    if not rows:
        return []
    _number_rows(session, rows)
    if need_ids:
        return list(session.scalars(insert(Task).returning(Task.id, sort_by_parameter_order=True), rows))
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        raw = connection.connection.dbapi_connection
        columns = ", ".join(_COPY_COLUMNS)
        with raw.cursor() as cursor, cursor.copy(f"COPY task ({columns}) FROM STDIN") as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row((row["tenant_id"], row["project_id"], json.dumps(row["data"], ensure_ascii=False),
                                row["import_id"], row["created_at"], row["annotation_count"],
                                row["prediction_count"], row["inner_id"]))
        return []
    connection.execute(insert(Task.__table__), rows)
    return []


class TaskStream:
    """Plain tasks written in parts as they are parsed, up to ``most`` of them, numbered in file order.

    PostgreSQL: the inner ids for ``most`` tasks are taken up front and one ``COPY`` stays open, so the
    server inserts each part while the caller parses the next one, for the cost of one statement
    (its statement triggers included); :meth:`close` ends it and gives back the numbers not used.
    Nothing else may use the session meanwhile. SQLite: each part is inserted when it is written.
    Used as a context manager: an exception aborts the ``COPY`` (the caller's rollback removes it all).
    """

    def __init__(self, writer: TaskBulkWriter, most: int) -> None:
        self._writer = writer
        self._copy: Any = None
        if not writer.postgres or most < 1:
            return
        self._next = allocate_inner_ids(writer._session, writer.project_id, most)
        self._end = self._next + most
        raw = writer._session.connection().connection.dbapi_connection
        self._cursor = raw.cursor()  # type: ignore[union-attr]
        try:
            self._statement = self._cursor.copy(f"COPY task ({', '.join(_BULK_COLUMNS)}) FROM STDIN")
            self._copy = self._statement.__enter__()
        except BaseException:
            self._cursor.close()
            raise

    def write(self, prepared: Any) -> None:
        """Add the tasks of one :meth:`TaskBulkWriter.prepare` result."""
        if not self._writer.postgres:
            self._writer._insert_plain(prepared)
            return
        if not prepared:
            return
        first, n = self._next, len(prepared)
        room = self._end - first if self._copy is not None else 0
        if n > room:
            raise ValueError(f"the task stream has room for {room} more tasks, not {n}")
        numbers = map(b"%d\n".__mod__, range(first, first + n))
        # About 0.15 µs a row, all in C: formatting and joining, no Python per row.
        self._copy.write(b"".join(chain.from_iterable(zip(prepared, numbers))))
        self._next = first + n

    def close(self, error: BaseException | None = None) -> None:
        """End the ``COPY``: its rows are in the table when this returns (or ``error`` cancels it)."""
        if self._copy is None:
            return
        self._copy = None
        try:
            self._statement.__exit__(type(error) if error else None, error, error.__traceback__ if error else None)
        finally:
            self._cursor.close()
        if error is None and self._end > self._next:
            give_back_inner_ids(self._writer._session, self._writer.project_id, self._end - self._next)

    def __enter__(self) -> TaskStream:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        self.close(error)


class PreparedRecords(NamedTuple):
    """Tasks with annotations or predictions, serialized but for the task ids (``TaskBulkWriter``)."""

    count: int
    tasks: list[Any]
    annotations: list[tuple[int, Any]]  # (the task's position in the batch, the row)
    predictions: list[tuple[int, Any]]


class TaskBulkWriter:
    """Writes the tasks of one import (and their annotations and predictions) in the session's transaction.

    The tenant is the session's bound tenant (:func:`~workspace.tenancy.scoping.bulk_tenant_id`
    raises when there is none); project and import batch are the caller's. Each write is complete
    when it returns (PostgreSQL: one ``COPY`` statement per table and batch), so an error, or the
    caller's decision to stop, leaves nothing behind that the transaction's rollback doesn't remove.

    Plain tasks: :meth:`prepare` (no database; it may run in a parser thread) then :meth:`write`, or
    several prepared parts into one :meth:`stream` (PostgreSQL: one ``COPY`` that the server works on
    while the next part is being parsed); tasks with annotations or predictions: :meth:`prepare_records`
    then :meth:`write_records`.
    """

    def __init__(self, session: Session, *, project_id: int, import_id: int) -> None:
        self.tenant_id = int(bulk_tenant_id(session))
        self.project_id = int(project_id)
        self.import_id = int(import_id)
        self._session = session
        connection = session.connection()
        dialect = connection.dialect
        self.postgres = dialect.name == "postgresql"
        raw = connection.connection.dbapi_connection
        # The JSON text SQLAlchemy's own inserts would store for results (its serializer, default json.dumps).
        self._dumps: Callable[[Any], str] = getattr(dialect, "_json_serializer", None) or json.dumps
        if self.postgres:
            self._encoding = raw.info.encoding  # type: ignore[union-attr]
            self._sequence: str | None = None
        else:
            table = Task.__table__
            # The exact text SQLAlchemy would store on SQLite: its JSON serializer, its DATETIME format.
            if getattr(dialect, "_json_serializer", None) is None:
                self._serialize = _json_text_ascii
            else:
                self._serialize = table.c.data.type.dialect_impl(dialect).bind_processor(dialect)
            self._datetime = table.c.created_at.type.dialect_impl(dialect).bind_processor(dialect) or (lambda v: v)
            self._result = Annotation.__table__.c.result.type.dialect_impl(dialect).bind_processor(dialect)
            self._inserts: dict[tuple[str, int], str] = {}
            self._variables = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # type: ignore[union-attr]
            sql_bytes = raw.getlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH)  # type: ignore[union-attr]
            self._rows_per_insert = max(1, min(_SQLITE_ROWS_PER_INSERT, self._variables - 5, sql_bytes // 50))

    # -- plain tasks, serialized without the database (may run in a parser thread) -------------------

    def prepare(self, datas: Sequence[dict[str, Any]], created_at: datetime) -> Any:
        """The rows for ``datas`` as :meth:`write` takes them, all but their inner ids: COPY lines
        (a list of bytes) on PostgreSQL; on SQLite the import's constants and the data's JSON texts."""
        if self.postgres:
            return self._copy_text(datas, created_at).split(b"\n")  # COPY text holds no raw newline but between lines
        serialize = self._serialize
        constants = [self.tenant_id, self.project_id, self.import_id, self._datetime(created_at)]
        return constants, [serialize(data) for data in datas]

    def _copy_text(self, datas: Sequence[dict[str, Any]], created_at: datetime) -> bytes:
        """COPY lines without their last field (the inner id), each ending with its tab; lines are
        separated by newlines, and :class:`TaskStream` appends each one's inner id and newline."""
        prefix = f"{self.tenant_id}\t{self.project_id}\t{self.import_id}\t{created_at.isoformat()}\t0\t0\t"
        texts = [_json_text(data) for data in datas]
        body = "\n".join(texts)
        # json's encoder escapes every control character, so the only COPY special character its
        # output can hold is the backslash of its own escapes: double them for the whole batch at
        # once. Should a text ever hold a raw tab, CR or newline, escape field by field instead.
        if "\t" in body or "\r" in body or body.count("\n") != len(texts) - 1:
            body = "\n".join(copy_escape(text) for text in texts)
        elif "\\" in body:
            body = body.replace("\\", "\\\\")
        return (prefix + body.replace("\n", "\t\n" + prefix) + "\t").encode(self._encoding)

    def write(self, prepared: Any) -> None:
        """Insert the plain tasks :meth:`prepare` made, numbered in the project now; they are in the
        table when this returns."""
        count = len(prepared) if self.postgres else len(prepared[1])
        with self.stream(count) as stream:
            stream.write(prepared)

    def stream(self, most: int) -> TaskStream:
        """A :class:`TaskStream` for up to ``most`` plain tasks, in parts that :meth:`prepare` made."""
        return TaskStream(self, most)

    def _insert_plain(self, prepared: tuple[list[Any], list[Any]]) -> None:
        """SQLite: insert the plain tasks :meth:`prepare` made, numbered in the project now."""
        raw = self._session.connection().connection.dbapi_connection
        constants, texts = prepared
        if not texts:
            return
        first = allocate_inner_ids(self._session, self.project_id, len(texts))
        step = self._rows_per_insert
        cursor = raw.cursor()  # type: ignore[union-attr]
        try:
            for at in range(0, len(texts), step):
                part = texts[at:at + step]
                cursor.execute(self._constants_insert(len(part)), [*constants, first + at, *part])
        finally:
            cursor.close()

    def _constants_insert(self, rows: int) -> str:
        """One INSERT of ``rows`` plain tasks: the import's constants bound once (``?1``..``?4``), and
        the first row's inner id (``?5``; the others follow it), then one parameter per row for its
        data. Several times cheaper per row than ``executemany`` of one-row INSERTs (SQLite's
        per-statement work is paid once), and the driver releases the GIL for the whole statement
        rather than for each row, so a parser thread gets to run meanwhile."""
        key = ("plain", rows)
        sql = self._inserts.get(key)
        if sql is None:
            values = ",".join(f"(?1,?2,?3,?4,0,0,?{i},?5+{i - 6})" for i in range(6, rows + 6))
            sql = self._inserts[key] = f"INSERT INTO task ({', '.join(_BULK_COLUMNS)}) VALUES {values}"
        return sql

    # -- tasks with annotations or predictions ------------------------------------------------------

    def prepare_records(self, records: Sequence[TaskRecord], created_at: datetime) -> PreparedRecords:
        """Serialize tasks with their annotations and predictions, all but the task ids (no database;
        may run in a parser thread). :meth:`write_records` allocates the ids and writes them."""
        tenant, project = self.tenant_id, self.project_id
        tasks: list[Any] = []
        annotations: list[tuple[int, Any]] = []
        predictions: list[tuple[int, Any]] = []
        if self.postgres:
            stamp = created_at.isoformat()
            head = f"{tenant}\t{project}\t"
            result = self._dumps
            for at, record in enumerate(records):
                tasks.append(f"{head}{self.import_id}\t{stamp}\t{len(record.annotations)}\t"
                             f"{len(record.predictions)}\t{copy_escape(_json_text(record.data))}\n")
                for a in record.annotations:
                    annotations.append((at, f"{head}{stamp}\tsubmitted\t{_copy_value(a.get('lead_time'))}\t"
                                            f"{copy_escape(result(a.get('result', [])))}\n"))
                for p in record.predictions:
                    version = copy_escape(str(p.get("model_version") or ""))
                    predictions.append((at, f"{head}{stamp}\t{version}\t{_copy_value(p.get('score'))}\t"
                                            f"{copy_escape(result(p.get('result', [])))}\n"))
        else:
            stamp = self._datetime(created_at)
            result = self._result
            for at, record in enumerate(records):
                tasks.append((tenant, project, self.import_id, stamp, len(record.annotations),
                              len(record.predictions), self._serialize(record.data)))
                for a in record.annotations:
                    annotations.append((at, (tenant, project, stamp, "submitted", a.get("lead_time"),
                                             result(a.get("result", [])))))
                for p in record.predictions:
                    predictions.append((at, (tenant, project, stamp, str(p.get("model_version") or ""),
                                             p.get("score"), result(p.get("result", [])))))
        return PreparedRecords(len(tasks), tasks, annotations, predictions)

    def write_records(self, prepared: PreparedRecords) -> tuple[int, int]:
        """Insert what :meth:`prepare_records` made; return how many annotations and predictions.

        Inner ids, then task ids are allocated first, in file order (task ids, PostgreSQL: from the
        table's sequence; SQLite: after the largest id, which is what SQLite itself would pick, this
        transaction holding the write lock), so the children are written in bulk too, no RETURNING needed.
        """
        if not prepared.count:
            return 0, 0
        first = allocate_inner_ids(self._session, self.project_id, prepared.count)
        ids = self._allocate_ids(prepared.count)
        numbered = zip(ids, range(first, first + prepared.count), prepared.tasks)
        if self.postgres:
            tasks = [(f"{task_id}\t{number}", rest) for task_id, number, rest in numbered]
        else:
            tasks = [(task_id, (number, *rest)) for task_id, number, rest in numbered]
        self._insert_rows("task", _TASK_COLUMNS, tasks)
        for table, columns, rows in (("annotation", _ANNOTATION_COLUMNS, prepared.annotations),
                                     ("prediction", _PREDICTION_COLUMNS, prepared.predictions)):
            if rows:
                self._insert_rows(table, columns, [(ids[at], row) for at, row in rows])
        return len(prepared.annotations), len(prepared.predictions)

    def _allocate_ids(self, n: int) -> list[int]:
        raw = self._session.connection().connection.dbapi_connection
        cursor = raw.cursor()  # type: ignore[union-attr]
        try:
            if self.postgres:
                if self._sequence is None:
                    cursor.execute("SELECT pg_get_serial_sequence('task', 'id')")
                    self._sequence = cursor.fetchone()[0]
                cursor.execute("SELECT nextval(%s) FROM generate_series(1, %s)", (self._sequence, n))
                return sorted(row[0] for row in cursor.fetchall())
            cursor.execute("SELECT max(id) FROM task")
            last = cursor.fetchone()[0] or 0
            return list(range(last + 1, last + 1 + n))
        finally:
            cursor.close()

    @staticmethod
    def _copy(raw: Any, table: str, columns: Sequence[str], data: bytes) -> None:
        """One COPY statement: the rows are in the table (or an error raised) when it returns."""
        with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            copy.write(data)

    def _insert_rows(self, table: str, columns: Sequence[str], rows: list[tuple[int, Any]]) -> None:
        """Rows of (id, the rest as prepared): COPY lines without their first field, or tuples. On
        PostgreSQL the "id" may be several leading fields already joined by tabs."""
        raw = self._session.connection().connection.dbapi_connection
        if self.postgres:
            text = "".join([f"{key}\t{rest}" for key, rest in rows])
            self._copy(raw, table, columns, text.encode(self._encoding))
            return
        width = len(columns)
        step = max(1, min(500, self._variables // width))
        cursor = raw.cursor()  # type: ignore[union-attr]
        try:
            for at in range(0, len(rows), step):
                part = rows[at:at + step]
                key = (table, len(part))
                sql = self._inserts.get(key)
                if sql is None:
                    one = "(" + ",".join("?" * width) + ")"
                    sql = self._inserts[key] = f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ",".join(
                        [one] * len(part))
                params: list[Any] = []
                for first, rest in part:
                    params.append(first)
                    params.extend(rest)
                cursor.execute(sql, params)
        finally:
            cursor.close()
