"""The entry points: :func:`iter_task_batches`, :func:`detect_format`."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from itertools import islice
from pathlib import PurePosixPath
from typing import Any, BinaryIO, NamedTuple

from workspace.workflow.importing.parsers import (
    JSON_SPACE,
    Parsed,
    parse_delimited,
    parse_json,
    parse_jsonl,
    parse_text,
)
from workspace.workflow.importing.records import ImportLimits, Location, TaskImportError, TaskRecord
from workspace.workflow.importing.streams import CHUNK, Utf8Reader, read_head, strip_bom

__all__ = ["FORMATS", "ParsedBatch", "detect_format", "iter_parsed_batches", "iter_task_batches", "normalize_format"]

FORMATS = ("json", "jsonl", "csv", "tsv", "txt")

_EXTENSIONS = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonlines": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "txt",
    ".text": "txt",
}
_ALIASES = {"ndjson": "jsonl", "jsonlines": "jsonl", "text": "txt", "tab": "tsv"}


def normalize_format(name: str) -> str:
    """'JSONL', '.ndjson', 'text' → the canonical names of :data:`FORMATS`."""
    key = name.strip().lower().removeprefix(".")
    key = _ALIASES.get(key, key)
    if key not in FORMATS:
        raise TaskImportError(f"unknown import format {name!r}; use one of {', '.join(FORMATS)}")
    return key


def detect_format(filename: str, head_bytes: bytes) -> str:
    """The format of an upload from its name, or from its first bytes when the name doesn't tell.

    ``.json`` whose first line is a whole object followed by another object is JSONL (a common
    misnaming). Without a known extension only JSON and JSONL are recognised, by content: a text
    line may hold commas or tabs, so CSV/TSV/text are never guessed.
    """
    head, _ = strip_bom(head_bytes)
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    found = _EXTENSIONS.get(suffix)
    if found == "json" or found is None:
        start = head.lstrip(JSON_SPACE)[:1]
        if start == b"{" and _looks_like_jsonl(head):
            return "jsonl"
        if found is None and start in (b"[", b"{"):
            return "json"
    if found is None:
        known = ", ".join(sorted(_EXTENSIONS))
        raise TaskImportError(
            f"can't tell the format of {filename or 'the upload'!r}: name it with one of {known}, or choose the format"
        )
    return found


def _looks_like_jsonl(head: bytes) -> bool:
    body = head.lstrip(JSON_SPACE)
    first, newline, rest = body.partition(b"\n")
    if not newline or not rest.lstrip(JSON_SPACE).startswith(b"{"):
        return False
    try:
        return isinstance(json.loads(first), dict)
    except ValueError:
        return False


def iter_task_batches(
    source: BinaryIO,
    *,
    format: str | None,
    filename: str,
    required_fields: AbstractSet[str],
    batch_size: int = 5000,
    limits: ImportLimits = ImportLimits(),  # noqa: B008 - frozen, so sharing the default is safe
) -> Iterator[list[TaskRecord]]:
    """Parse an upload into lists of at most ``batch_size`` validated tasks, streaming.

    ``format`` is one of :data:`FORMATS` (or an alias), or ``None`` to detect it from ``filename``
    and the first bytes. ``required_fields`` are the ``$fields`` of the label config; each task's
    data must have them all. Records are numbered 0, 1, 2, ... across batches. The first problem
    raises :class:`TaskImportError` naming the line/row (1-based) or the JSON index (0-based) and
    what is wrong; batches yielded before it must be thrown away by the caller (an import is all or
    nothing). Memory stays bounded whatever the file's size: about two batches (the one the caller
    still holds while the next is built), one read chunk of 64 KiB and one task within ``limits``.
    """
    batches = iter_parsed_batches(source, format=format, filename=filename, required_fields=required_fields,
                                  batch_size=batch_size, limits=limits)
    return (batch.task_records() for batch in batches)


class ParsedBatch(NamedTuple):
    """Up to ``batch_size`` validated tasks, the first being task number ``start`` of the file.

    ``records`` is ``None`` when no task of the batch has annotations or predictions (the usual
    import): ``datas`` (each task's data) is then all there is, and no per-task record is built.
    """

    start: int
    datas: list[dict[str, Any]]
    records: list[TaskRecord] | None

    def task_records(self) -> list[TaskRecord]:
        if self.records is not None:
            return self.records
        return [TaskRecord(data, [], [], index) for index, data in enumerate(self.datas, self.start)]


def iter_parsed_batches(
    source: BinaryIO,
    *,
    format: str | None,
    filename: str,
    required_fields: AbstractSet[str],
    batch_size: int = 5000,
    limits: ImportLimits = ImportLimits(),  # noqa: B008 - frozen, so sharing the default is safe
) -> Iterator[ParsedBatch]:
    """:func:`iter_task_batches` for bulk inserts: the same parsing, checks, errors and batches, as
    :class:`ParsedBatch` (which skips building a record per task when there are no annotations)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    chosen = normalize_format(format) if format is not None else None
    return _batches(source, chosen, filename, frozenset(required_fields), batch_size, limits)


def _batches(
    source: BinaryIO,
    chosen: str | None,
    filename: str,
    required: frozenset[str],
    batch_size: int,
    limits: ImportLimits,
) -> Iterator[ParsedBatch]:
    head = read_head(source, CHUNK)
    complete = len(head) < CHUNK
    head, bom = strip_bom(head)
    if complete and not head.strip(JSON_SPACE):
        raise TaskImportError("the file is empty")
    fmt = chosen or detect_format(filename, head)
    reader = Utf8Reader(source, head, bom=bom)
    parsed: Iterator[Parsed]
    if fmt == "json":
        parsed = parse_json(reader, head, required, limits)
    elif fmt == "jsonl":
        parsed = parse_jsonl(reader, required, limits)
    elif fmt in ("csv", "tsv"):
        parsed = parse_delimited(reader, "\t" if fmt == "tsv" else ",", required, limits)
    else:
        parsed = parse_text(reader, required, limits)
    index = 0
    while True:
        # Never parse beyond the task after the limit: that one is refused, wherever the file goes wrong later.
        take = min(batch_size, limits.max_tasks - index + 1)
        # Each task's parts go into the batch's lists rather than the batch holding the parser's tuple
        # per task: a tuple holding a dict is tracked by the garbage collector, and thousands of them
        # alive for a batch's time get walked by collection after collection.
        datas: list[dict[str, Any]] = []
        annotations: list[Sequence[dict[str, Any]]] = []
        predictions: list[Sequence[dict[str, Any]]] = []
        add_data, add_annotations, add_predictions = datas.append, annotations.append, predictions.append
        where = None
        for data, task_annotations, task_predictions, where in islice(parsed, take):
            add_data(data)
            add_annotations(task_annotations)
            add_predictions(task_predictions)
        if not datas:
            return
        if index + len(datas) > limits.max_tasks:
            raise TaskImportError(
                f"the file has more than {limits.max_tasks:,} tasks, the limit for one import; "
                "split it into smaller files",
                Location._make(where),  # the last task parsed
            )
        if any(annotations) or any(predictions):
            records = [TaskRecord(data, list(task_annotations), list(task_predictions), at)
                       for at, (data, task_annotations, task_predictions)
                       in enumerate(zip(datas, annotations, predictions), index)]
            yield ParsedBatch(index, datas, records)
        else:
            yield ParsedBatch(index, datas, None)
        index += len(datas)
