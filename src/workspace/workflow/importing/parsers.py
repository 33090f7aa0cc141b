"""One streaming parser per format. Each yields ``(data, annotations, predictions, location)`` for
every task, in file order, and raises :class:`TaskImportError` at the first problem.

* JSON goes through ``ijson`` (yajl2 C backend): one task object is built at a time, however long
  the list, and a task larger than ``max_task_bytes`` is refused before it is complete.
* JSONL, CSV/TSV and text read bounded lines (``max_line_bytes``); CSV/TSV go through :mod:`csv`.
"""

from __future__ import annotations

import ast
import csv
import io
import json
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import ijson

from workspace.workflow.importing.records import (
    NO_CHILDREN,
    ImportLimits,
    Location,
    TaskImportError,
    check_required,
    check_values,
    plain_data,
    size,
    task_parts,
)
from workspace.workflow.importing.streams import CHUNK, Utf8Reader, chars, line_length, lines

__all__ = ["parse_delimited", "parse_json", "parse_jsonl", "parse_text"]

# (data, annotations, predictions, where): no annotations or predictions is NO_CHILDREN, and ``where`` is
# the fields of a Location as a plain tuple (``Location._make(where)``). A plain tuple of numbers leaves
# the garbage collector's lists at its first pass; a NamedTuple never does, and a million of them, held
# a batch at a time, would make the collector walk them over and over.
Where = tuple[int | None, int | None, int | None]
Parsed = tuple[dict[str, Any], Sequence[dict[str, Any]], Sequence[dict[str, Any]], Where]

JSON_SPACE = b" \t\r\n"

# --------------------------------------------------------------------------------------------------
# JSON: a list of tasks, or one task object
# --------------------------------------------------------------------------------------------------


def parse_json(reader: Utf8Reader, head: bytes, required: AbstractSet[str], limits: ImportLimits) -> Iterator[Parsed]:
    """Tasks of a JSON file whose first bytes (after the BOM) are ``head``."""
    body = head.lstrip(JSON_SPACE)
    first = body[:1]
    if first not in (b"[", b"{"):
        at = len(head) - len(body)
        line = head[:at].count(b"\n") + 1
        column = 1 + chars(head[head.rfind(b"\n", 0, at) + 1 : at])
        found = repr(body[:4].decode("utf-8", "ignore")[:1]) if body else f"over {size(len(head))} of blank space"
        raise TaskImportError(
            f"malformed JSON at line {line}, column {column}: a JSON import must be a list of tasks "
            f"([...]) or one task object ({{...}}), but the file starts with {found}",
            line=line,
            column=column,
        )
    index = 0
    mark = 0

    def guard() -> None:  # called after each chunk: the task being built may not outgrow the cap
        if reader.last_offset - mark > limits.max_task_bytes:
            raise TaskImportError(
                f"the task is larger than the limit of {size(limits.max_task_bytes)} per task",
                Location(index=index),
            )

    reader.on_read = guard
    items = ijson.items(reader, "item" if first == b"[" else "", use_float=True, buf_size=CHUNK)
    try:
        for obj in items:
            where = (None, None, index)
            data, annotations, predictions = task_parts(obj, where, required, limits)
            yield data, annotations, predictions, where
            index += 1
            mark = reader.offset
    except ijson.JSONError as error:
        raise _syntax_error(reader, str(error), first) from None
    finally:
        reader.on_read = None
    if index == 0:
        raise TaskImportError("the file has no tasks: its JSON list is empty")


_NEWLINES_TO_SPACES = bytes.maketrans(b"\r\n", b"  ")
_REASONS = {
    "trailing garbage": "there is more text after the end of the JSON",
    "invalid char in json text": "unexpected character",
    "invalid string in json text": "unexpected word (strings need double quotes; true, false and null are lower case)",
}


def _syntax_error(reader: Utf8Reader, message: str, first: bytes) -> TaskImportError:
    """A yajl error turned into 'malformed JSON at line L, column C: reason, near ...'."""
    lexical, reason, snippet = _yajl_parts(message)
    at = _locate(reader.last, snippet) if snippet and snippet.strip() else None
    if at is not None and at > 0 and (lexical or reason == "trailing garbage"):
        at -= 1  # yajl reports these one byte past the character it could not take
    if at is None:  # yajl reports the end of the input (premature EOF) with an empty excerpt
        line, column, byte = reader.line, reader.column, reader.bom + reader.offset
    else:
        line, column, byte = reader.position(at)
    if reason == "premature EOF":
        closer = "]" if first == b"[" else "}"
        detail = f"the file ends before the JSON does; is it cut off, or is a closing {closer!r} missing?"
    else:
        detail = _REASONS.get(reason, reason)
        if reason == "trailing garbage" and first == b"{":
            detail += " (a file with one task per line is JSONL: name it .jsonl)"
    if at is not None:
        near = reader.last[max(0, at - 24) : at + 16].decode("utf-8", "replace")
        detail += f", near {near!r}"
    return TaskImportError(
        f"malformed JSON at line {line}, column {column} (byte offset {byte}): {detail}", line=line, column=column
    )


def _yajl_parts(message: str) -> tuple[bool, str, bytes | None]:
    """Whether yajl's error is lexical, its reason ('after array element, I expect ...') and excerpt."""
    raw: bytes
    if message.startswith(("b'", 'b"')):  # ijson shows the message as bytes when it isn't UTF-8
        try:
            raw = ast.literal_eval(message)
        except (ValueError, SyntaxError):
            raw = message.encode()
    else:
        raw = message.encode("utf-8", "surrogateescape")
    parts = raw.split(b"\n")
    reason = parts[0].decode("utf-8", "replace").strip()
    lexical = reason.startswith("lexical error: ")
    for prefix in ("parse error: ", "lexical error: "):
        reason = reason.removeprefix(prefix)
    reason = reason.rstrip(".")
    snippet = parts[1] if len(parts) >= 3 and b"(right here)" in parts[2] else None
    return lexical, reason, snippet


def _locate(chunk: bytes, snippet: bytes) -> int | None:
    """The offset in ``chunk`` that yajl's excerpt points at (its 41st character).

    yajl prints the 30 bytes before and after the error (newlines as spaces), padded on the left so
    that the error is in column 41; we find the excerpt in the chunk and check that it renders the
    same at that offset. ``None`` if that can't be found.
    """
    text = snippet.lstrip(b" ")
    if not text:
        return None
    lead = len(snippet) - len(text)
    flat = chunk.translate(_NEWLINES_TO_SPACES)
    start = 0
    for _ in range(10_000):
        found = flat.find(text, start)
        if found < 0:
            return None
        at = found + 40 - lead
        if 0 <= at <= len(flat) and _excerpt(flat, at) == snippet:
            return at
        start = found + 1
    return None


def _excerpt(flat: bytes, at: int) -> bytes:
    if at < 30:
        return b" " * (40 - at) + flat[: at + 30]
    return b" " * 10 + flat[at - 30 : at + 30]


# --------------------------------------------------------------------------------------------------
# JSONL: one task per line
# --------------------------------------------------------------------------------------------------


class _Constant(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _Constant(name)


# One decoder for every line (``json.loads`` with options builds a new one per call); its scanner
# parses one value at a position. Anything unusual (a scan error, text after the value) goes through
# ``json.loads`` again, so every error reads exactly as json words it.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)
_scan = _DECODER.scan_once
_JSON_BLANK = " \t\n\r"


def _loads(text: str, where: Location) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise TaskImportError(
            f"malformed JSON at column {error.colno}: {error.msg}", where, column=error.colno
        ) from None
    except _Constant as error:
        raise TaskImportError(f"{error} is not valid JSON; write a number or null", where) from None


def parse_jsonl(reader: Utf8Reader, required: AbstractSet[str], limits: ImportLimits) -> Iterator[Parsed]:
    found = False
    scan, blank = _scan, _JSON_BLANK
    for number, raw in lines(reader, limits.max_line_bytes):
        text = raw.decode("utf-8")
        if not text.strip():
            continue
        where = (number, None, None)
        try:
            obj, end = scan(text, len(text) - len(text.lstrip(blank)))
        except (StopIteration, ValueError):
            end = -1
        if end != len(text) and (end < 0 or text[end:].strip(blank)):
            obj = _loads(text, Location(number))  # raises the error json.loads reports
        data, annotations, predictions = task_parts(obj, where, required, limits)
        found = True
        yield data, annotations, predictions, where
    if not found:
        raise TaskImportError("the file is empty: it has only blank lines")


# --------------------------------------------------------------------------------------------------
# CSV and TSV: a header row, then one task per row
# --------------------------------------------------------------------------------------------------


class _Feed:
    """Lines for :func:`csv.reader`, counting them and the bytes of the record being read.

    The same checks as :func:`~workspace.workflow.importing.streams.lines`, read straight from one
    buffered reader (this runs once per line of the file)."""

    def __init__(self, reader: Utf8Reader, limits: ImportLimits) -> None:
        self._readline = io.BufferedReader(reader, CHUNK).readline
        self._limit = limits.max_line_bytes
        self.number = 0
        self.record_bytes = 0

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        limit = self._limit
        raw = self._readline(limit + 2)
        if not raw:
            raise StopIteration
        self.number += 1
        length = len(raw)
        if length > limit and line_length(raw) > limit:
            raise TaskImportError(f"the line is longer than the limit of {size(limit)} per line",
                                  Location(line=self.number))
        self.record_bytes += length
        if self.record_bytes > limit + 2:
            raise _RecordTooLong
        return raw.decode("utf-8")


class _RecordTooLong(Exception):
    pass


_NOTHING: frozenset[str] = frozenset()  # the header already has every required column


def _allow_fields_up_to(max_field_bytes: int) -> None:
    # csv's own cap (131072 characters by default) is process-wide; it is only ever raised, to our
    # per-field limit, which every import then checks itself in bytes.
    if csv.field_size_limit() < max_field_bytes:
        csv.field_size_limit(max_field_bytes)


def parse_delimited(
    reader: Utf8Reader, delimiter: str, required: AbstractSet[str], limits: ImportLimits
) -> Iterator[Parsed]:
    kind = "TSV" if delimiter == "\t" else "CSV"
    _allow_fields_up_to(limits.max_field_bytes)
    feed = _Feed(reader, limits)
    rows = csv.reader(feed, delimiter=delimiter, strict=True)
    quick = limits.max_field_bytes // 4
    header: list[str] | None = None
    header_row = 0
    row = 0
    found = False
    while True:
        feed.record_bytes = 0
        where = (feed.number + 1, row + 1, None)
        try:
            values = next(rows)
        except StopIteration:
            break
        except _RecordTooLong:
            raise TaskImportError(
                f"the row is longer than the limit of {size(limits.max_line_bytes)} "
                "(is a quoted value missing its closing quote?)",
                Location(*where),
            ) from None
        except csv.Error as error:
            raise _csv_error(str(error), kind, Location(*where), limits) from None
        row += 1
        if not any(values):  # a blank line, or a spreadsheet's empty row (",,,")
            continue
        if header is None:
            header, header_row = _header(values, Location(*where), required), row
            continue
        if len(values) != len(header):
            hint = " (is a value with a delimiter in it missing its quotes?)" if len(values) > len(header) else ""
            raise TaskImportError(
                f"the row has {len(values)} values, but the header (row {header_row}) has {len(header)} columns{hint}",
                Location(*where),
            )
        data = dict(zip(header, values, strict=True))
        if not plain_data(data, _NOTHING, quick):
            check_values(data, limits, Location(*where))
        found = True
        yield data, NO_CHILDREN, NO_CHILDREN, where
    if header is None:
        raise TaskImportError("the file is empty: it has no header row and no tasks")
    if not found:
        raise TaskImportError(f"the file has a header row (row {header_row}) but no tasks")


def _header(values: list[str], where: Location, required: AbstractSet[str]) -> list[str]:
    names = [value.strip() for value in values]
    first_column: dict[str, int] = {}
    for column, name in enumerate(names, start=1):
        if not name:
            raise TaskImportError(
                f"column {column} of the header has no name; name every column, or delete the empty one", where
            )
        if name in first_column:
            raise TaskImportError(
                f"the header has the column {name!r} twice (columns {first_column[name]} and {column}); "
                "column names must be unique",
                where,
                fields=[name],
            )
        first_column[name] = column
    check_required(first_column, required, where, noun="columns", subject="the header has no column")
    return names


def _csv_error(message: str, kind: str, where: Location, limits: ImportLimits) -> TaskImportError:
    if message.startswith("field larger than field limit"):
        return TaskImportError(
            f"a value is larger than the limit of {size(limits.max_field_bytes)} per field "
            "(is a quoted value missing its closing quote?)",
            where,
        )
    if message == "unexpected end of data":
        return TaskImportError(
            f"malformed {kind}: the file ends inside a quoted value (a closing quote is missing)", where
        )
    return TaskImportError(f"malformed {kind}: {message}", where)


# --------------------------------------------------------------------------------------------------
# Plain text: one task per non-empty line
# --------------------------------------------------------------------------------------------------


def parse_text(reader: Utf8Reader, required: AbstractSet[str], limits: ImportLimits) -> Iterator[Parsed]:
    if len(required) > 1:
        uses = " and ".join(f"${name}" for name in sorted(required))
        raise TaskImportError(
            f"a text file gives each task one field (one line each), but the label config uses {uses}; "
            "import a CSV, TSV or JSON file with those fields instead",
            fields=sorted(required),
        )
    field = next(iter(required)) if required else "text"
    found = False
    for number, raw in lines(reader, limits.max_line_bytes):
        end = len(raw) - (2 if raw.endswith(b"\r\n") else 1 if raw.endswith(b"\n") else 0)
        text = raw[:end].decode("utf-8")
        if not text.strip():
            continue
        data = {field: text}
        check_values(data, limits, Location(number))
        found = True
        yield data, NO_CHILDREN, NO_CHILDREN, (number, None, None)
    if not found:
        raise TaskImportError("the file is empty: it has only blank lines")
