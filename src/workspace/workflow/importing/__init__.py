"""Task import: uploaded files → validated task records, streamed in bounded memory.

Pure parsing, no database and no web code: a service inserts the batches inside one transaction, so
an import is all or nothing, and turns :class:`TaskImportError` into a 400 with its message.

Formats (:data:`FORMATS`): ``json`` (a list of tasks, each bare data or Label Studio's
``{"data", "annotations", "predictions"}``, or one such object), ``jsonl`` (one task per line),
``csv`` and ``tsv`` (a header row; the columns become data fields, values stay strings), ``txt``
(one task per non-empty line, in the label config's single field, else ``text``).

Usage::

    with open(path, "rb") as upload:
        for batch in iter_task_batches(upload, format=None, filename=name,
                                       required_fields=config.data_fields):
            insert(batch)  # list[TaskRecord]: (data, annotations, predictions, index)

Every error names where (1-based line, or spreadsheet row with the header as row 1, or the 0-based
index in a JSON list) and what (the missing field names, the byte that isn't UTF-8, ...).
"""

from workspace.workflow.importing.api import (
    FORMATS,
    ParsedBatch,
    detect_format,
    iter_parsed_batches,
    iter_task_batches,
    normalize_format,
)
from workspace.workflow.importing.records import ImportLimits, Location, TaskImportError, TaskRecord
from workspace.workflow.importing.streams import content_fingerprint

__all__ = [
    "FORMATS",
    "ImportLimits",
    "Location",
    "ParsedBatch",
    "TaskImportError",
    "TaskRecord",
    "content_fingerprint",
    "detect_format",
    "iter_parsed_batches",
    "iter_task_batches",
    "normalize_format",
]
