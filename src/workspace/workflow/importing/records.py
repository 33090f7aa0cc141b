"""What an import produces (:class:`TaskRecord`), what it refuses (:class:`TaskImportError`) and the
checks every format shares: the shape of a Label Studio task and the fields the label config needs.

Pure functions, no I/O.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["NO_CHILDREN", "ImportLimits", "Location", "TaskImportError", "TaskRecord"]

MiB = 1024 * 1024


# What the parsers give a task without annotations or predictions: one shared immutable empty tuple,
# not two new lists per task (a million tasks would otherwise mean two million objects for the
# garbage collector to track). :class:`TaskRecord` still holds lists.
NO_CHILDREN: tuple[()] = ()


class TaskRecord(NamedTuple):
    """One task ready to insert: its data, annotations and predictions, and its 0-based position."""

    data: dict[str, Any]
    annotations: list[dict[str, Any]]
    predictions: list[dict[str, Any]]
    index: int


@dataclass(frozen=True, slots=True)
class ImportLimits:
    """Caps that keep one upload from exhausting memory or the database.

    ``max_task_bytes`` bounds one task of a JSON list (its text, annotations included); a JSONL task
    is bounded by ``max_line_bytes`` instead, since it is one line.
    """

    max_tasks: int = 1_000_000
    max_field_bytes: int = 1 * MiB
    max_line_bytes: int = 8 * MiB
    max_task_bytes: int = 8 * MiB

    def __post_init__(self) -> None:
        for name in ("max_tasks", "max_field_bytes", "max_line_bytes", "max_task_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"ImportLimits.{name} must be at least 1")


class Location(NamedTuple):
    """Where a task is in its file: a line (and spreadsheet row) or an index in a JSON list."""

    line: int | None = None
    row: int | None = None
    index: int | None = None

    def __str__(self) -> str:
        if self.row is not None:
            same = self.line is None or self.line == self.row
            return f"row {self.row}" if same else f"row {self.row} (line {self.line})"
        if self.line is not None:
            return f"line {self.line}"
        if self.index is not None:
            return f"task at index {self.index}"
        return "the file"


class TaskImportError(ValueError):
    """The upload can't be imported. ``str(error)`` says where (line, row or index) and what is wrong.

    ``line``/``row`` are 1-based (CSV rows count the header as row 1, like a spreadsheet), ``index``
    is the 0-based position in a JSON list, ``fields`` names the task fields the problem is about.
    """

    def __init__(
        self,
        detail: str,
        where: Location | None = None,
        *,
        fields: Iterable[str] = (),
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.detail = detail
        self.where = where
        self.line = where.line if where is not None and where.line is not None else line
        self.row = where.row if where is not None else None
        self.index = where.index if where is not None else None
        self.column = column
        self.fields = tuple(fields)
        super().__init__(f"{where}: {detail}" if where is not None else detail)


# --------------------------------------------------------------------------------------------------
# Descriptions used in messages
# --------------------------------------------------------------------------------------------------


def kind(value: object) -> str:
    """How a JSON value is called in a message: 'an object', 'a list', 'a string', ..."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return type(value).__name__


def size(n: int) -> str:
    """A byte count for people: '512 bytes', '3.2 KiB', '8 MiB'."""
    if n < 1024:
        return "1 byte" if n == 1 else f"{n} bytes"
    value = n / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            break
        value /= 1024
    else:
        unit = "GiB"
    return f"{value:.1f}".rstrip("0").rstrip(".") + f" {unit}"


def quoted(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)


def listing(names: Iterable[str], limit: int = 20) -> str:
    """'id, body' (the names as found), shortened for wide tables."""
    names = list(names)
    if not names:
        return "(none)"
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, … ({len(names)} in all)"


def missing_fields_detail(missing: list[str], found: list[str], noun: str, subject: str) -> str:
    """'the task has no field 'text' (the label config uses $text); fields found: id, body'."""
    plural = "s" if len(missing) > 1 else ""
    uses = " and ".join(f"${name}" for name in missing)
    detail = f"{subject}{plural} {quoted(missing)} (the label config uses {uses}); {noun} found: {listing(found)}"
    hints = [
        f"{close[0]!r} for {name!r}"
        for name in missing
        if (close := difflib.get_close_matches(name, found, n=1, cutoff=0.75))
    ]
    if hints:
        detail += f" (did you mean {', '.join(hints)}?)"
    return detail


# --------------------------------------------------------------------------------------------------
# Checks shared by the formats
# --------------------------------------------------------------------------------------------------


def check_required(
    data: Mapping[str, Any],
    required: AbstractSet[str],
    where: Location,
    *,
    noun: str = "fields",
    subject: str = "the task has no field",
) -> None:
    """Every field the label config reads is in ``data``; else name the missing and the found ones."""
    if not required or required <= data.keys():
        return
    missing = sorted(required - data.keys())
    raise TaskImportError(missing_fields_detail(missing, list(data), noun, subject), where, fields=missing)


def check_values(data: dict[str, Any], limits: ImportLimits, where: Location) -> None:
    """Every top-level value fits ``max_field_bytes`` (UTF-8 or compact JSON) and holds no NUL."""
    cap = limits.max_field_bytes
    quick = cap // 4  # a string this short can't exceed the cap, whatever its characters
    for name, value in data.items():
        if isinstance(value, str):
            if "\x00" in value:
                raise TaskImportError(
                    f"the value of field {name!r} contains a NUL character (\\u0000), which can't be stored",
                    where,
                    fields=[name],
                )
            if len(value) <= quick:
                continue
            n = len(value) if len(value) > cap else len(value.encode("utf-8", "surrogatepass"))
        elif isinstance(value, dict | list):
            n = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
        else:
            continue
        if n > cap:
            raise TaskImportError(
                f"the value of field {name!r} is {size(n)}, larger than the limit of {size(cap)} per field",
                where,
                fields=[name],
            )


def plain_data(data: dict[str, Any], required: AbstractSet[str], quick: int) -> bool:
    """Whether ``data`` passes :func:`check_required` and :func:`check_values` by a quick look: it has
    every required field, and its values are scalars or strings of at most ``quick`` characters
    (``max_field_bytes // 4``: no shorter string can exceed the limit) without NUL. False means only
    that the full checks must decide."""
    if required and not data.keys() >= required:  # (this way round it is a direct set comparison)
        return False
    for value in data.values():
        kind_ = type(value)
        if kind_ is str:
            if len(value) > quick or "\x00" in value:
                return False
        elif kind_ is dict or kind_ is list:
            return False
    return True


def _no_children(value: object) -> bool:
    return value is None or (type(value) is list and not value)


def task_parts(
    obj: object, where: Location | tuple[int | None, int | None, int | None], required: AbstractSet[str],
    limits: ImportLimits,
) -> tuple[dict[str, Any], Sequence[dict[str, Any]], Sequence[dict[str, Any]]]:
    """Split a JSON task (bare data, or ``{"data", "annotations", "predictions"}``) and check it.

    ``where`` is a :class:`Location` or its fields as a plain tuple. Annotations and predictions come
    as lists, or as :data:`NO_CHILDREN` when there are none."""
    if type(obj) is dict:  # the usual task, without annotations, accepted without the full checks
        quick = limits.max_field_bytes // 4
        if "data" in obj:
            data = obj["data"]
            if (type(data) is dict and _no_children(obj.get("annotations")) and _no_children(obj.get("predictions"))
                    and plain_data(data, required, quick)):
                return data, NO_CHILDREN, NO_CHILDREN
        elif "annotations" not in obj and "predictions" not in obj and plain_data(obj, required, quick):
            return obj, NO_CHILDREN, NO_CHILDREN
    where = Location._make(where)
    if not isinstance(obj, dict):
        raise TaskImportError(f"a task must be a JSON object, not {kind(obj)}", where)
    if "data" in obj:
        data = obj["data"]
        if not isinstance(data, dict):
            raise TaskImportError(f"'data' must be an object holding the task's fields, not {kind(data)}", where)
        annotations = _annotations(obj.get("annotations"), "annotations", where)
        predictions = _annotations(obj.get("predictions"), "predictions", where)
    else:
        for key in ("annotations", "predictions"):
            if key in obj:
                raise TaskImportError(
                    f"the task has {key!r} but no 'data'; put the task's fields in a 'data' object: "
                    f'{{"data": {{...}}, "{key}": [...]}}',
                    where,
                )
        data, annotations, predictions = obj, [], []
    check_required(data, required, where)
    check_values(data, limits, where)
    return data, annotations, predictions


_RESULT_KEYS = ("from_name", "to_name", "type", "value")
_RELATION_KEYS = ("from_id", "to_id")


def _annotations(value: object, key: str, where: Location) -> list[dict[str, Any]]:
    """Annotations or predictions: a list of objects whose ``result`` is a list of result items.

    Label Studio's JSON export lists predictions by id (ints); those ids mean nothing here and are
    dropped, so that an export can be imported again.
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise TaskImportError(f"{key!r} must be a list, not {kind(value)}", where)
    kept: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        name = f"{key}[{i}]"
        if key == "predictions" and isinstance(item, int) and not isinstance(item, bool):
            continue
        if not isinstance(item, dict):
            raise TaskImportError(f"{name} must be an object, not {kind(item)}", where)
        if "result" not in item:
            raise TaskImportError(f"{name} has no 'result' list", where)
        result = item["result"]
        if not isinstance(result, list):
            raise TaskImportError(f"{name}.result must be a list, not {kind(result)}", where)
        for j, region in enumerate(result):
            _check_result_item(region, f"{name}.result[{j}]", where)
        if key == "predictions":
            score = item.get("score")
            if score is not None and (
                isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score)
            ):
                raise TaskImportError(f"{name}.score must be a number, not {kind(score)}", where)
        kept.append(item)
    return kept


def _check_result_item(region: object, name: str, where: Location) -> None:
    if not isinstance(region, dict):
        raise TaskImportError(f"{name} must be an object, not {kind(region)}", where)
    if region.get("type") == "relation":  # Label Studio links two regions by id, without from_name
        needed: tuple[str, ...] = _RELATION_KEYS
        what = "a relation needs from_id and to_id"
    else:
        needed = _RESULT_KEYS
        what = "a result item needs from_name, to_name, type and value"
    missing = [k for k in needed if k not in region]
    if missing:
        raise TaskImportError(f"{name} has no {quoted(missing)} ({what})", where)
    if needed is _RELATION_KEYS:
        return
    for k in ("from_name", "to_name", "type"):
        if not isinstance(region[k], str) or not region[k]:
            raise TaskImportError(f"{name}.{k} must be a non-empty string, not {kind(region[k])}", where)
    if not isinstance(region["value"], dict):
        raise TaskImportError(f"{name}.value must be an object, not {kind(region['value'])}", where)
