"""Export formats: write a project's tasks as the files Label Studio's exporter produces, streaming.

Pure code: no database, no web. :func:`write_export` reads tasks in Label Studio's JSON export shape
from an iterable that it consumes once (a generator over the database) and writes the file to a
binary, write-only stream that need not be seekable. Memory does not grow with the number of tasks:

* JSON and JSONL are written task by task;
* JSON-MIN, CSV, TSV, CoNLL 2003 and the classification CSV are written row by row; CSV/TSV first
  spool their rows to a temporary file, to learn every data column before writing the header;
* COCO spools images and annotations to two temporary files, then writes the document;
* YOLO and Pascal VOC write a zip archive entry by entry to ``out`` (zip data descriptors, so no seek).
  What grows is what any zip writer keeps: the central directory (a few hundred bytes per entry),
  plus the set of entry names already used.

What each format writes, and the choices made where Label Studio's converter is silent or loose:

``JSON``, ``JSONL``
    The tasks exactly as given (the caller applied the export options), one JSON value per task.

``JSON_MIN``
    One object per annotation: ``{"id", **data, "annotation_id", "annotator", "created_at",
    "updated_at", "lead_time", <control>: value}``; a task without annotations gives
    ``{"id", **data}``. Values per control type: one choice -> ``"Positive"``, several ->
    ``{"choices": [...]}``; spans, boxes, polygons and keypoints -> a list of their ``value`` objects
    (image regions with ``original_width``/``original_height``); TextArea -> the text, or a list when
    there are several; Rating/Number -> the number. A control with several regions gives a list of
    those values. When names collide, the fixed keys win over control names, which win over data keys
    (as in Label Studio). Results of controls that are not in the config are left out.

``CSV``, ``TSV``
    The JSON-MIN rows flattened (nested values JSON-encoded, ``None`` empty). Columns: ``id``, the
    config's data fields (object fields in config order, then any other field it reads, by name), the
    other data keys found in the tasks (by name), the fixed columns, then the controls in config
    order. Rows are spooled to a temporary file so that every data key gets its own column.

``CONLL2003``
    One document per annotated task: ``-DOCSTART- -X- O O``, a blank line, one ``token -X- _ TAG``
    line per token, a blank line. Tokens are runs of word characters and single punctuation marks;
    tags are BIO from the spans of the Labels controls on the first ``<Text>`` a Labels control
    labels. Spans are applied by start offset; a token already tagged keeps its tag (the first span
    wins); a span that does not align to token boundaries tags every token it overlaps.

``COCO``
    ``{"images", "categories", "annotations", "info"}``. One image per annotated task (``file_name``
    is the image field's value, ``width``/``height`` from the regions' ``original_width``/
    ``original_height``, null when no region says). Rectangles give ``bbox`` (the axis-aligned box of a
    rotated one) and ``segmentation: []``; polygons give ``segmentation: [[x1, y1, ...]]``, their
    bounding box and their area. Categories are the labels of the rectangle/polygon controls in config
    order, ids from 0; a label found in results but not in the config gets the next id. Only regions
    on that Image are exported; keypoints are not.

``YOLO``
    A zip with ``labels/<image stem>.txt`` (``class x_center y_center width height``, 0..1, the box
    clipped to the image) per annotated task, ``classes.txt`` (one label per line, line number = class
    id) and ``notes.json`` (categories); an annotated task without boxes gets an empty file. The
    stem is the image file name without extension (``?d=`` of Label Studio's local-files URLs is
    understood; ``task_<id>`` when there is no name); a stem used twice (case-insensitively) is
    prefixed with the task id. Polygons and keypoints are not written.

``VOC``
    A zip with ``Annotations/<image stem>.xml`` per annotated task (Pascal VOC: folder, filename,
    size, one object per rectangle with a pixel ``bndbox`` rounded to whole pixels and clipped to the
    image). The size is 0 x 0 when no region of the task says it, and then no box can be placed.
    Polygons and keypoints are not written.

``CLASSIFICATION_CSV``
    ``task_id``, the data fields the Choices controls look at, ``annotator``, one column per Choices
    control (several choices joined with ``|``); one row per annotation, tasks without annotations
    are left out.

The per-image and per-document formats (CoNLL, COCO, YOLO, VOC) use one annotation per task: the
first ground-truth annotation that is not cancelled, else the first annotation that is not
cancelled; a task with none is left out. The caller chooses and orders the annotations it passes.

:class:`ExportCounts` counts what the file holds: the tasks written, the annotations whose results
are in it, and the predictions in it (only JSON and JSONL write predictions).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import tempfile
import time
import zipfile
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import IO, Any, BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from workspace.lib.xmlsafe import XmlElement, xml_child, xml_document, xml_element
from workspace.workflow.label_config import ControlTag, LabelConfig, ObjectTag

__all__ = ["FORMATS", "ExportCounts", "ExportFormat", "conll_tokens", "unsupported_reason", "write_export"]


@dataclass(frozen=True)
class ExportFormat:
    key: str  # "JSON", "JSON_MIN", "CSV", "TSV", "JSONL", "CONLL2003", "COCO", "YOLO", "VOC", "CLASSIFICATION_CSV"
    title: str  # human name for the UI
    extension: str  # "json", "csv", "zip", "conll", ...
    content_type: str
    description: str  # one sentence for the export page


FORMATS: dict[str, ExportFormat] = {
    f.key: f
    for f in (
        ExportFormat("JSON", "JSON", "json", "application/json",
                     "Every task with its data, annotations and predictions as one JSON array "
                     "(Label Studio's own format, which it can import back)."),
        ExportFormat("JSON_MIN", "JSON-MIN", "json", "application/json",
                     "One JSON object per annotation with the task data and each control's answer, "
                     "without region ids or other details."),
        ExportFormat("CSV", "CSV", "csv", "text/csv; charset=utf-8",
                     "One row per annotation with a column per data field and per control, for spreadsheets "
                     "and pandas."),
        ExportFormat("TSV", "TSV", "tsv", "text/tab-separated-values; charset=utf-8",
                     "The CSV export separated by tabs instead of commas."),
        ExportFormat("JSONL", "JSON Lines", "jsonl", "application/x-ndjson",
                     "Every task with its data, annotations and predictions, one JSON object per line."),
        ExportFormat("CONLL2003", "CoNLL 2003", "conll", "text/plain; charset=utf-8",
                     "Named-entity spans as one token per line with BIO tags, for training sequence taggers."),
        ExportFormat("COCO", "COCO", "json", "application/json",
                     "Boxes and polygons in pixels as a COCO object-detection JSON file (images not included)."),
        ExportFormat("YOLO", "YOLO", "zip", "application/zip",
                     "Boxes as YOLO label files (class and normalized center and size) in a zip, with "
                     "classes.txt (images not included)."),
        ExportFormat("VOC", "Pascal VOC XML", "zip", "application/zip",
                     "Boxes in pixels as one Pascal VOC XML file per image in a zip (images not included)."),
        ExportFormat("CLASSIFICATION_CSV", "Classification CSV", "csv", "text/csv; charset=utf-8",
                     "One row per annotation with the task's text and the chosen class of each Choices control."),
    )
}


@dataclass
class ExportCounts:
    tasks: int = 0
    annotations: int = 0
    predictions: int = 0


# --------------------------------------------------------------------------------------------------
# What a config can be exported as
# --------------------------------------------------------------------------------------------------

_BOX_TYPES = ("rectanglelabels",)
_SHAPE_TYPES = ("rectanglelabels", "polygonlabels")
_IMAGE_RESULT_TYPES = frozenset({"rectanglelabels", "polygonlabels", "keypointlabels"})


def _text_target(config: LabelConfig) -> tuple[ObjectTag, tuple[ControlTag, ...]] | None:
    """The first Text (with its text in the task) that a Labels control labels, and its Labels controls."""
    objects = {o.name: o for o in config.objects}
    for control in config.controls:
        if control.result_type != "labels":
            continue
        for name in control.to_names:
            obj = objects.get(name)
            if obj is not None and obj.tag == "Text" and obj.field and obj.attrs.get("valueType") != "url":
                return obj, tuple(c for c in config.controls if c.result_type == "labels" and obj.name in c.to_names)
    return None


def _image_target(config: LabelConfig, kinds: tuple[str, ...]) -> tuple[ObjectTag, tuple[ControlTag, ...]] | None:
    """The first single Image that a control of ``kinds`` labels, and its controls of those kinds."""
    objects = {o.name: o for o in config.objects}
    for control in config.controls:
        if control.result_type not in kinds:
            continue
        for name in control.to_names:
            obj = objects.get(name)
            if obj is not None and obj.tag == "Image" and obj.field and "valueList" not in obj.attrs:
                return obj, tuple(c for c in config.controls if c.result_type in kinds and obj.name in c.to_names)
    return None


def _labels_with(config: LabelConfig) -> str:
    tags = list(dict.fromkeys(f"<{c.tag}>" for c in config.controls))
    return "this project's config labels with " + (", ".join(tags) if tags else "no control")


def unsupported_reason(key: str, config: LabelConfig) -> str | None:
    """None when the format fits the project's config, else a sentence saying why not."""
    if key not in FORMATS:
        return f'"{key}" is not an export format; use one of {", ".join(FORMATS)}.'
    title = FORMATS[key].title
    if key == "CONLL2003" and _text_target(config) is None:
        return (f"{title} needs a <Labels> control on a <Text> object whose text is in the task data "
                f"(named-entity spans); {_labels_with(config)}.")
    if key == "COCO" and _image_target(config, _SHAPE_TYPES) is None:
        return (f"{title} needs a <RectangleLabels> or <PolygonLabels> control on an <Image> object with a "
                f"single image (value=\"$field\"); {_labels_with(config)}.")
    if key in ("YOLO", "VOC") and _image_target(config, _BOX_TYPES) is None:
        return (f"{title} needs a <RectangleLabels> control on an <Image> object with a single image "
                f"(value=\"$field\"); {_labels_with(config)}.")
    if key == "CLASSIFICATION_CSV" and not any(c.result_type == "choices" for c in config.controls):
        return f"{title} needs a <Choices> control; {_labels_with(config)}."
    return None


# --------------------------------------------------------------------------------------------------
# Output plumbing
# --------------------------------------------------------------------------------------------------

_CHUNK = 256 * 1024


class _Out:
    """Collects small writes into chunks for ``out`` (maybe unbuffered, never seeked, never closed).

    Has no ``tell``/``seek``, so :mod:`zipfile` writes to it in its streaming mode.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._parts: list[bytes] = []
        self._pending = 0

    def write(self, data: bytes) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._pending += len(chunk)
        if self._pending >= _CHUNK:
            self._drain()
        return len(chunk)

    def text(self, value: str) -> None:
        # backslashreplace: a lone surrogate (possible in imported JSON) becomes "\udc80", which is
        # still a valid escape inside a JSON string, instead of failing the whole export.
        self.write(value.encode("utf-8", "backslashreplace"))

    def copy_from(self, spool: IO[bytes]) -> None:
        spool.seek(0)
        while chunk := spool.read(_CHUNK):
            self.write(chunk)

    def flush(self) -> None:
        self._drain()
        flush = getattr(self._out, "flush", None)
        if flush is not None:
            flush()

    def _drain(self) -> None:
        if not self._parts:
            return
        view = memoryview(b"".join(self._parts))
        self._parts.clear()
        self._pending = 0
        while view:
            written = self._out.write(view)
            if written is None or written >= len(view):
                break
            view = view[written:]


_dumps: Callable[[Any], str] = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _dumpb(value: Any) -> bytes:
    """Compact UTF-8 JSON, by orjson; what it refuses (lone surrogates, integers beyond 64 bits, keys
    that are not strings) goes through the standard encoder, surrogates written as ``\\udc80``.
    orjson writes NaN and infinities as ``null`` (the standard encoder would write invalid JSON)."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return _dumps(value).encode("utf-8", "backslashreplace")


class _JsonArray:
    """Items of a JSON array written one at a time to a binary stream: ``[``, items, ``]``."""

    def __init__(self, target: _Out | IO[bytes]) -> None:
        self.target = target
        self.count = 0

    def add(self, item: Any) -> None:
        self.target.write((b",\n" if self.count else b"\n") + _dumpb(item))
        self.count += 1

    @property
    def end(self) -> str:
        return "\n]" if self.count else "]"


def _cell(value: Any) -> str:
    """A CSV cell: text as is, nothing empty, anything else as JSON."""
    kind = type(value)
    if kind is str:
        return value
    if value is None:
        return ""
    if kind is int:
        return str(value)
    if kind is float and math.isfinite(value):
        return repr(value)  # what JSON writes for it
    return _dumps(value)


# --------------------------------------------------------------------------------------------------
# Reading Label Studio tasks
# --------------------------------------------------------------------------------------------------

_FIXED = ("annotation_id", "annotator", "created_at", "updated_at", "lead_time")
_ID_AND_FIXED = frozenset(("id", *_FIXED))


def _annotations(task: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in task.get("annotations") or () if isinstance(a, dict)]


def _regions(annotation: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for region in annotation.get("result") or ():
        if isinstance(region, dict) and isinstance(region.get("value"), dict):
            yield region


def _primary(task: dict[str, Any]) -> dict[str, Any] | None:
    """The one annotation per-image/per-document formats use: ground truth first, cancelled never."""
    kept = [a for a in _annotations(task) if not a.get("was_cancelled")]
    for annotation in kept:
        if annotation.get("ground_truth"):
            return annotation
    return kept[0] if kept else None


def _label(region: dict[str, Any], kind: str) -> str | None:
    labels = region["value"].get(kind)
    if isinstance(labels, list) and labels and isinstance(labels[0], str):
        return labels[0]
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _control_value(control: ControlTag, regions: list[dict[str, Any]]) -> Any:
    """One control's answer in JSON-MIN form (see the module docstring)."""
    kind = control.result_type
    if kind == "textarea":
        texts: list[Any] = []
        for region in regions:
            text = region["value"].get("text")
            texts.extend(text if isinstance(text, list) else [text])
        return texts[0] if len(texts) == 1 else texts
    items: list[Any] = []
    for region in regions:
        value = region["value"]
        if kind == "choices":
            choices = value.get("choices")
            items.append(choices[0] if isinstance(choices, list) and len(choices) == 1 else {"choices": choices})
        elif kind in ("rating", "number"):
            items.append(value.get(kind))
        else:
            item = dict(value)
            if kind in _IMAGE_RESULT_TYPES:
                for key in ("original_width", "original_height"):
                    if key in region:
                        item[key] = region[key]
            items.append(item)
    if kind in ("choices", "rating", "number") and len(items) == 1:
        return items[0]
    return items


def _control_values(config: LabelConfig, annotation: dict[str, Any]) -> dict[str, Any]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for region in _regions(annotation):
        name = region.get("from_name")
        if isinstance(name, str):
            grouped.setdefault(name, []).append(region)
    return {c.name: _control_value(c, grouped[c.name]) for c in config.controls if c.name in grouped}


def _min_records(config: LabelConfig, tasks: Iterable[dict[str, Any]], counts: ExportCounts) -> Iterator[dict[str, Any]]:
    """JSON-MIN records: one per annotation, or one per task without annotations."""
    for task in tasks:
        counts.tasks += 1
        data = task.get("data") or {}
        annotations = _annotations(task)
        if not annotations:
            yield {"id": task.get("id"), **{k: v for k, v in data.items() if k != "id"}}
            continue
        for annotation in annotations:
            counts.annotations += 1
            values = _control_values(config, annotation)
            record: dict[str, Any] = {"id": task.get("id")}
            for key, value in data.items():
                if key not in _ID_AND_FIXED and key not in values:
                    record[key] = value
            record["annotation_id"] = annotation.get("id")
            record["annotator"] = annotation.get("completed_by")
            record["created_at"] = annotation.get("created_at")
            record["updated_at"] = annotation.get("updated_at")
            record["lead_time"] = annotation.get("lead_time")
            for key, value in values.items():
                if key not in _ID_AND_FIXED:
                    record[key] = value
            yield record


def _config_fields(config: LabelConfig) -> list[str]:
    """The data fields of the config: object fields in config order, then the others by name."""
    fields = [o.field for o in config.objects if o.field]
    return list(dict.fromkeys([*fields, *sorted(config.data_fields)]))


# --------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------


def _write_json(tasks: Iterable[dict[str, Any]], out: _Out, counts: ExportCounts) -> None:
    array = _JsonArray(out)
    out.text("[")
    for task in tasks:
        array.add(task)
        counts.tasks += 1
        counts.annotations += len(task.get("annotations") or ())
        counts.predictions += len(task.get("predictions") or ())
    out.text(array.end + "\n")


def _write_jsonl(tasks: Iterable[dict[str, Any]], out: _Out, counts: ExportCounts) -> None:
    for task in tasks:
        out.write(_dumpb(task) + b"\n")
        counts.tasks += 1
        counts.annotations += len(task.get("annotations") or ())
        counts.predictions += len(task.get("predictions") or ())


def _write_json_min(config: LabelConfig, tasks: Iterable[dict[str, Any]], out: _Out, counts: ExportCounts) -> None:
    array = _JsonArray(out)
    out.text("[")
    for record in _min_records(config, tasks, counts):
        array.add(record)
    out.text(array.end + "\n")


def _csv_writer(out: _Out, delimiter: str) -> Any:
    return csv.writer(SimpleNamespace(write=out.text), delimiter=delimiter, lineterminator="\n")


def _write_table(config: LabelConfig, tasks: Iterable[dict[str, Any]], out: _Out, counts: ExportCounts,
                 delimiter: str) -> None:
    """CSV/TSV: rows are spooled as CSV; data keys the config does not name ride along as a JSON cell.

    When no task has such a key the spool is the file's body as is; otherwise it is read back once to
    give every extra key its own column (after the config's data fields).
    """
    known = _config_fields(config)
    base = list(dict.fromkeys(["id", *known, *_FIXED, *(c.name for c in config.controls)]))
    insert_at = len(dict.fromkeys(["id", *known]))
    placed = frozenset(base)
    extra_names: set[str] = set()
    with io.TextIOWrapper(tempfile.TemporaryFile(), encoding="utf-8", errors="backslashreplace",
                          newline="") as spool:
        # csv writes each row to ``parts`` (list.append is cheap); they go to the spool in big chunks.
        parts: list[str] = []
        spooled = csv.writer(SimpleNamespace(write=parts.append), delimiter=delimiter, lineterminator="\n")
        cell = _cell
        for record in _min_records(config, tasks, counts):
            row = [v if v.__class__ is str else cell(v) for v in map(record.get, base)]
            if record.keys() - placed:
                extras = {key: value for key, value in record.items() if key not in placed}
                extra_names.update(extras)
                row.append(json.dumps(extras))
            spooled.writerow(row)
            if len(parts) >= 2000:
                spool.write("".join(parts))
                parts.clear()
        spool.write("".join(parts))
        spool.flush()
        writer = _csv_writer(out, delimiter)
        if not extra_names:
            writer.writerow(base)
            out.copy_from(spool.buffer)
            return
        extra_columns = sorted(extra_names)
        writer.writerow([*base[:insert_at], *extra_columns, *base[insert_at:]])
        spool.seek(0)
        for row in csv.reader(spool, delimiter=delimiter):
            extras = json.loads(row[len(base)]) if len(row) > len(base) else {}
            writer.writerow([*row[:insert_at], *(_cell(extras.get(name)) for name in extra_columns),
                             *row[insert_at:len(base)]])


def _write_classification_csv(config: LabelConfig, tasks: Iterable[dict[str, Any]], out: _Out,
                              counts: ExportCounts) -> None:
    choices = [c for c in config.controls if c.result_type == "choices"]
    objects = {o.name: o for o in config.objects}
    fields = list(dict.fromkeys(objects[n].field for c in choices for n in c.to_names
                                if n in objects and objects[n].field))
    writer = _csv_writer(out, ",")
    writer.writerow(["task_id", *fields, "annotator", *(c.name for c in choices)])
    for task in tasks:
        data = task.get("data") or {}
        annotations = _annotations(task)
        if annotations:
            counts.tasks += 1
        for annotation in annotations:
            counts.annotations += 1
            picked: dict[str, list[str]] = {c.name: [] for c in choices}
            for region in _regions(annotation):
                name = region.get("from_name")
                values = region["value"].get("choices")
                if name in picked and isinstance(values, list):
                    picked[name].extend(str(v) for v in values if str(v) not in picked[name])
            writer.writerow([_cell(task.get("id")), *(_cell(data.get(f)) for f in fields),
                             _cell(annotation.get("completed_by")), *("|".join(picked[c.name]) for c in choices)])


# -- CoNLL 2003 ------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_SPACE_RE = re.compile(r"\s+")


def conll_tokens(text: str) -> list[tuple[str, int, int]]:
    """The CoNLL tokens of ``text`` with their character offsets: word runs and single punctuation marks."""
    return [(m.group(), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


def _bio_tags(tokens: list[tuple[str, int, int]], spans: list[tuple[int, int, str]]) -> list[str]:
    tags = ["O"] * len(tokens)
    ends = [end for _, _, end in tokens]
    for start, end, label in sorted(spans, key=lambda span: span[0]):  # stable: ties keep result order
        claimed_previous = False
        index = bisect_right(ends, start)  # the first token that ends after the span starts
        while index < len(tokens) and tokens[index][1] < end:
            if tags[index] == "O":
                tags[index] = ("I-" if claimed_previous else "B-") + label
                claimed_previous = True
            else:  # an earlier span holds it; the next token we take starts a new entity
                claimed_previous = False
            index += 1
    return tags


def _write_conll(config: LabelConfig, tasks: Iterable[dict[str, Any]], out: _Out, counts: ExportCounts) -> None:
    target = _text_target(config)
    assert target is not None
    obj, controls = target
    names = {c.name for c in controls}
    for task in tasks:
        annotation = _primary(task)
        text = (task.get("data") or {}).get(obj.field)
        if annotation is None or not isinstance(text, str):
            continue
        counts.tasks += 1
        counts.annotations += 1
        spans: list[tuple[int, int, str]] = []
        for region in _regions(annotation):
            value, label = region["value"], _label(region, "labels")
            if (region.get("from_name") in names and region.get("to_name") == obj.name and label is not None
                    and isinstance(value.get("start"), int) and isinstance(value.get("end"), int)):
                spans.append((value["start"], value["end"], _SPACE_RE.sub("_", label)))
        tokens = conll_tokens(text)
        lines = [f"{token} -X- _ {tag}\n" for (token, _, _), tag in zip(tokens, _bio_tags(tokens, spans))]
        out.text("-DOCSTART- -X- O O\n\n" + "".join(lines) + "\n")


# -- image formats ---------------------------------------------------------------------------------


class _Categories:
    """Label -> id (0-based): config order first, labels found only in results appended."""

    def __init__(self, controls: Iterable[ControlTag]) -> None:
        self.ids: dict[str, int] = {}
        for control in controls:
            for label in control.labels:
                self.ids.setdefault(label.result_value, len(self.ids))

    def id(self, label: str) -> int:
        return self.ids.setdefault(label, len(self.ids))

    def as_list(self) -> list[dict[str, Any]]:
        return [{"id": i, "name": name} for name, i in self.ids.items()]


def _image_size(regions: Iterable[dict[str, Any]]) -> tuple[int | float, int | float] | None:
    for region in regions:
        width, height = region.get("original_width"), region.get("original_height")
        if _number(width) and _number(height) and width > 0 and height > 0:
            return width, height
    return None


def _box_pixels(value: dict[str, Any], width: float, height: float) -> tuple[float, float, float, float] | None:
    """The axis-aligned box (x, y, w, h) in pixels of a Label Studio rectangle given in percent.

    Label Studio rotates a rectangle by ``rotation`` degrees clockwise around its top-left corner.
    """
    if not all(_number(value.get(k)) for k in ("x", "y", "width", "height")):
        return None
    x, y = value["x"] * width / 100, value["y"] * height / 100
    w, h = value["width"] * width / 100, value["height"] * height / 100
    rotation = value.get("rotation") or 0
    if not _number(rotation) or rotation % 360 == 0:
        return x, y, w, h
    angle = math.radians(rotation)
    cos, sin = math.cos(angle), math.sin(angle)
    xs = [x, x + w * cos, x + w * cos - h * sin, x - h * sin]
    ys = [y, y + w * sin, y + w * sin + h * cos, y + h * cos]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def _clip(box: tuple[float, float, float, float], width: float, height: float) -> tuple[float, float, float, float]:
    x0, y0 = min(max(box[0], 0.0), width), min(max(box[1], 0.0), height)
    x1, y1 = min(max(box[0] + box[2], 0.0), width), min(max(box[1] + box[3], 0.0), height)
    return x0, y0, x1 - x0, y1 - y0


def _polygon_area(xs: list[float], ys: list[float]) -> float:
    total = sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs)))
    return abs(total) / 2


def _image_regions(annotation: dict[str, Any], obj: ObjectTag, controls: tuple[ControlTag, ...],
                   kinds: tuple[str, ...]) -> list[tuple[dict[str, Any], str, str]]:
    """(region, type, label) of the annotation's shapes of ``kinds`` on ``obj`` by ``controls``."""
    names = {c.name for c in controls}
    found = []
    for region in _regions(annotation):
        kind = region.get("type")
        if kind in kinds and region.get("from_name") in names and region.get("to_name") == obj.name:
            label = _label(region, kind)
            if label is not None:
                found.append((region, kind, label))
    return found


def _info(project_title: str) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    return {"year": now.year, "version": "1.0", "description": project_title, "contributor": "Workspace",
            "url": "", "date_created": now.isoformat(timespec="seconds")}


def _write_coco(config: LabelConfig, tasks: Iterable[dict[str, Any]], out: _Out, counts: ExportCounts,
                project_title: str) -> None:
    target = _image_target(config, _SHAPE_TYPES)
    assert target is not None
    obj, controls = target
    categories = _Categories(controls)
    with tempfile.TemporaryFile() as image_spool, tempfile.TemporaryFile() as annotation_spool:
        images, annotations = _JsonArray(image_spool), _JsonArray(annotation_spool)
        for task in tasks:
            annotation = _primary(task)
            if annotation is None:
                continue
            counts.tasks += 1
            counts.annotations += 1
            image_id = images.count
            shapes = _image_regions(annotation, obj, controls, _SHAPE_TYPES)
            size = _image_size(region for region, _, _ in shapes)
            for region, kind, label in shapes:
                region_size = _image_size([region]) or size
                if region_size is None:
                    continue  # percent without the image size cannot become pixels
                width, height = region_size
                item = _coco_annotation(region["value"], kind, width, height)
                if item is not None:
                    annotations.add({"id": annotations.count, "image_id": image_id,
                                     "category_id": categories.id(label), **item, "ignore": 0, "iscrowd": 0})
            images.add({"id": image_id, "file_name": (task.get("data") or {}).get(obj.field),
                        "width": size[0] if size else None, "height": size[1] if size else None})
        out.text('{"images": [')
        out.copy_from(image_spool)
        out.text(images.end + ',\n"categories": ' + _dumps(categories.as_list()) + ',\n"annotations": [')
        out.copy_from(annotation_spool)
        out.text(annotations.end + ',\n"info": ' + _dumps(_info(project_title)) + "}\n")


def _coco_annotation(value: dict[str, Any], kind: str, width: float, height: float) -> dict[str, Any] | None:
    if kind == "rectanglelabels":
        box = _box_pixels(value, width, height)
        if box is None:
            return None
        return {"bbox": list(box), "area": box[2] * box[3], "segmentation": []}
    points = value.get("points")
    if not isinstance(points, list) or len(points) < 3 or not all(
            isinstance(p, list) and len(p) == 2 and _number(p[0]) and _number(p[1]) for p in points):
        return None
    xs = [p[0] * width / 100 for p in points]
    ys = [p[1] * height / 100 for p in points]
    return {"bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], "area": _polygon_area(xs, ys),
            "segmentation": [[c for point in zip(xs, ys) for c in point]]}


_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f]")


def _image_name(value: Any) -> str:
    """The file name (last path segment) of an image URL or path, or "" when there is none."""
    if not isinstance(value, str) or value.startswith("data:"):
        return ""
    parts = urlsplit(value)
    name = unquote(parts.path).replace("\\", "/").rsplit("/", 1)[-1]
    if not name and parts.query:  # Label Studio's local files: /data/local-files/?d=dir/image.jpg
        name = unquote(parse_qs(parts.query).get("d", [""])[0]).replace("\\", "/").rsplit("/", 1)[-1]
    return _UNSAFE_NAME.sub("_", name)


def _stem(name: str, task_id: Any) -> str:
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    stem = stem[:150]
    return stem if stem not in ("", ".", "..") else f"task_{task_id}"


class _ZipNames:
    """Entry names unique even on case-insensitive file systems: a repeated stem gets the task id."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def name(self, folder: str, stem: str, task_id: Any, suffix: str) -> str:
        candidates = [f"{folder}{stem}{suffix}", f"{folder}{task_id}_{stem}{suffix}"]
        number = 2
        while True:
            for name in candidates:
                if name.casefold() not in self.used:
                    self.used.add(name.casefold())
                    return name
            candidates = [f"{folder}{task_id}_{number}_{stem}{suffix}"]
            number += 1


class _Zip:
    """A zip archive written entry by entry to a non-seekable stream."""

    def __init__(self, out: _Out) -> None:
        self.archive = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED)
        self.date_time = time.localtime()[:6]

    def add(self, name: str, content: str | bytes) -> None:
        info = zipfile.ZipInfo(name, date_time=self.date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        self.archive.writestr(info, content)

    def close(self) -> None:
        self.archive.close()


@dataclass(frozen=True)
class _Box:
    """A rectangle as an axis-aligned box in pixels, clipped to the image (in percent when the size is unknown)."""

    label: str
    class_id: int
    x: float
    y: float
    w: float
    h: float
    image_width: float
    image_height: float
    in_pixels: bool


def _boxes(annotation: dict[str, Any], obj: ObjectTag, controls: tuple[ControlTag, ...],
           categories: _Categories) -> tuple[tuple[int | float, int | float] | None, list[_Box]]:
    """The image size (when a region says it) and the rectangles of the annotation on ``obj``."""
    regions = _image_regions(annotation, obj, controls, _BOX_TYPES)
    size = _image_size(region for region in _regions(annotation) if region.get("to_name") == obj.name)
    boxes = []
    for region, _, label in regions:
        known = _image_size([region]) or size
        width, height = known or (100, 100)
        box = _box_pixels(region["value"], width, height)
        if box is not None:
            boxes.append(_Box(label, categories.id(label), *_clip(box, width, height), width, height, known is not None))
    return size, boxes


def _decimal(value: float) -> str:
    text = f"{value:.10f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _write_yolo(config: LabelConfig, tasks: Iterable[dict[str, Any]], out: _Out, counts: ExportCounts,
                project_title: str) -> None:
    target = _image_target(config, _BOX_TYPES)
    assert target is not None
    obj, controls = target
    categories = _Categories(controls)
    names = _ZipNames()
    archive = _Zip(out)
    for task in tasks:
        annotation = _primary(task)
        if annotation is None:
            continue
        counts.tasks += 1
        counts.annotations += 1
        _, boxes = _boxes(annotation, obj, controls, categories)
        lines = []
        for box in boxes:
            width, height = box.image_width, box.image_height
            numbers = ((box.x + box.w / 2) / width, (box.y + box.h / 2) / height, box.w / width, box.h / height)
            lines.append(" ".join([str(box.class_id), *map(_decimal, numbers)]) + "\n")
        image = (task.get("data") or {}).get(obj.field)
        entry = names.name("labels/", _stem(_image_name(image), task.get("id")), task.get("id"), ".txt")
        archive.add(entry, "".join(lines))
    archive.add("classes.txt", "".join(f"{name}\n" for name in categories.ids))
    notes = {"categories": categories.as_list(), "info": _info(project_title)}
    archive.add("notes.json", json.dumps(notes, ensure_ascii=False, indent=2) + "\n")
    archive.close()


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _sub(parent: XmlElement, tag: str, text: Any = None) -> XmlElement:
    element = xml_child(parent, tag)
    if text is not None:
        element.text = _XML_INVALID.sub("", str(text))
    return element


def _voc_xml(file_name: str, size: tuple[int | float, int | float] | None,
             boxes: list[_Box]) -> bytes:
    root = xml_element("annotation")
    _sub(root, "folder", "images")
    _sub(root, "filename", file_name)
    source = _sub(root, "source")
    _sub(source, "database", "Workspace")
    size_element = _sub(root, "size")
    _sub(size_element, "width", round(size[0]) if size else 0)
    _sub(size_element, "height", round(size[1]) if size else 0)
    _sub(size_element, "depth", 3)
    _sub(root, "segmented", 0)
    for box in boxes:
        if not box.in_pixels:
            continue  # percent without the image size cannot become pixels
        item = _sub(root, "object")
        _sub(item, "name", box.label)
        _sub(item, "pose", "Unspecified")
        _sub(item, "truncated", 0)
        _sub(item, "difficult", 0)
        bndbox = _sub(item, "bndbox")
        _sub(bndbox, "xmin", round(box.x))
        _sub(bndbox, "ymin", round(box.y))
        _sub(bndbox, "xmax", round(box.x + box.w))
        _sub(bndbox, "ymax", round(box.y + box.h))
    return xml_document(root)


def _write_voc(config: LabelConfig, tasks: Iterable[dict[str, Any]], out: _Out, counts: ExportCounts) -> None:
    target = _image_target(config, _BOX_TYPES)
    assert target is not None
    obj, controls = target
    categories = _Categories(controls)
    names = _ZipNames()
    archive = _Zip(out)
    for task in tasks:
        annotation = _primary(task)
        if annotation is None:
            continue
        counts.tasks += 1
        counts.annotations += 1
        size, boxes = _boxes(annotation, obj, controls, categories)
        file_name = _image_name((task.get("data") or {}).get(obj.field))
        stem = _stem(file_name, task.get("id"))
        entry = names.name("Annotations/", stem, task.get("id"), ".xml")
        archive.add(entry, _voc_xml(file_name or f"{stem}.jpg", size, boxes))
    archive.close()


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def write_export(key: str, config: LabelConfig, tasks: Iterable[dict], out: BinaryIO, *,
                 project_title: str = "") -> ExportCounts:
    """Write the export to `out` (a binary, write-only, possibly non-seekable stream) in bounded memory.

    Raises ValueError for an unknown format or one that does not fit ``config`` (see
    :func:`unsupported_reason`), before reading any task. ``out`` is flushed, never closed.
    """
    reason = unsupported_reason(key, config)
    if reason is not None:
        raise ValueError(reason)
    counts = ExportCounts()
    sink = _Out(out)
    writers: dict[str, Callable[[], None]] = {
        "JSON": lambda: _write_json(tasks, sink, counts),
        "JSONL": lambda: _write_jsonl(tasks, sink, counts),
        "JSON_MIN": lambda: _write_json_min(config, tasks, sink, counts),
        "CSV": lambda: _write_table(config, tasks, sink, counts, ","),
        "TSV": lambda: _write_table(config, tasks, sink, counts, "\t"),
        "CONLL2003": lambda: _write_conll(config, tasks, sink, counts),
        "COCO": lambda: _write_coco(config, tasks, sink, counts, project_title),
        "YOLO": lambda: _write_yolo(config, tasks, sink, counts, project_title),
        "VOC": lambda: _write_voc(config, tasks, sink, counts),
        "CLASSIFICATION_CSV": lambda: _write_classification_csv(config, tasks, sink, counts),
    }
    writers[key]()
    sink.flush()
    return counts
