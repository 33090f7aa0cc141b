"""Export formats: every writer's output is read back by an independent reader and compared with the input.

Plain unit tests, no database. Tasks are built in Label Studio's JSON export shape and their results
are checked with the labeling page's own validator, so the inputs are results the app can hold.
Every export is written to a write-only, non-seekable stream and fed a one-shot generator, as an
export job does.
"""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
import zipfile
from collections.abc import Iterator
from typing import Any

import defusedxml.ElementTree as SafeET
import pytest

from workspace.workflow.annotations import validate_result
from workspace.workflow.export_formats import (
    FORMATS,
    ExportCounts,
    conll_tokens,
    unsupported_reason,
    write_export,
)
from workspace.workflow.label_config import LabelConfig, parse_label_config

# ==================================================================================================
# Configs and Label Studio-shaped tasks
# ==================================================================================================

CLASSIFICATION = parse_label_config("""
<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single-radio">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
    <Choice value="Neutral"/>
  </Choices>
  <Choices name="topics" toName="text" choice="multiple">
    <Choice value="Sports"/>
    <Choice value="Politics"/>
    <Choice value="Tech"/>
  </Choices>
  <TextArea name="comment" toName="text"/>
  <Rating name="quality" toName="text" maxRating="5"/>
  <Number name="confidence" toName="text" min="0" max="1"/>
</View>
""")

NER = parse_label_config("""
<View>
  <Labels name="label" toName="text">
    <Label value="PER"/>
    <Label value="ORG"/>
    <Label value="LOC"/>
    <Label value="MISC"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>
""")

IMAGES = parse_label_config("""
<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
    <Label value="Cat"/>
    <Label value="Dog"/>
  </RectangleLabels>
  <PolygonLabels name="poly" toName="image">
    <Label value="Dog"/>
    <Label value="Tree"/>
  </PolygonLabels>
</View>
""")

POLYGONS_ONLY = parse_label_config("""
<View>
  <Image name="image" value="$image"/>
  <PolygonLabels name="poly" toName="image"><Label value="Tree"/></PolygonLabels>
</View>
""")

STAMP = "2026-03-01T10:00:00.000000Z"


def annotation(annotation_id: int, task_id: int, result: list[dict[str, Any]], *, completed_by: int = 3,
               ground_truth: bool = False, was_cancelled: bool = False) -> dict[str, Any]:
    return {"id": annotation_id, "completed_by": completed_by, "result": result, "was_cancelled": was_cancelled,
            "ground_truth": ground_truth, "created_at": STAMP, "updated_at": STAMP, "lead_time": 4.2,
            "task": task_id, "project": 7, "status": "submitted"}


def task(config: LabelConfig, task_id: int, data: dict[str, Any], *annotations: dict[str, Any],
         predictions: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    for item in (*annotations, *predictions):
        if item["result"] and not item.get("was_cancelled"):
            validate_result(config, data, item["result"])  # a result the labeling page would accept
    return {"id": task_id, "data": data, "annotations": list(annotations), "predictions": list(predictions),
            "created_at": STAMP, "updated_at": STAMP, "project": 7, "meta": {}, "file_upload": None,
            "total_annotations": len(annotations), "cancelled_annotations": 0,
            "total_predictions": len(predictions)}


def prediction(prediction_id: int, task_id: int, result: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": prediction_id, "result": result, "score": 0.8, "model_version": "v1", "created_at": STAMP,
            "task": task_id, "project": 7}


def region(from_name: str, to_name: str, kind: str, value: dict[str, Any], **extra: Any) -> dict[str, Any]:
    region.count += 1  # type: ignore[attr-defined]
    return {"id": f"r{region.count}", "from_name": from_name, "to_name": to_name, "type": kind,  # type: ignore[attr-defined]
            "value": value, **extra}


region.count = 0  # type: ignore[attr-defined]


def choices(name: str, *values: str) -> dict[str, Any]:
    return region(name, "text", "choices", {"choices": list(values)})


def span(text: str, start: int, end: int, label: str) -> dict[str, Any]:
    return region("label", "text", "labels", {"start": start, "end": end, "text": text[start:end], "labels": [label]})


def rect(x: float, y: float, w: float, h: float, label: str, *, rotation: float = 0, size: tuple[int, int] = (640, 480)
         ) -> dict[str, Any]:
    return region("box", "image", "rectanglelabels",
                  {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": [label]},
                  original_width=size[0], original_height=size[1], image_rotation=0)


def polygon(points: list[list[float]], label: str, *, size: tuple[int, int] = (640, 480)) -> dict[str, Any]:
    return region("poly", "image", "polygonlabels", {"points": points, "polygonlabels": [label], "closed": True},
                  original_width=size[0], original_height=size[1], image_rotation=0)


class WriteOnly(io.RawIOBase):
    """A write-only, non-seekable stream, like an upload pipe: no tell, no seek, no read."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        raise OSError("not seekable")

    def seek(self, *args: Any) -> int:
        raise OSError("not seekable")

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def value(self) -> bytes:
        return b"".join(self.parts)


def once(tasks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield from tasks


def export(key: str, config: LabelConfig, tasks: list[dict[str, Any]], **kwargs: Any) -> tuple[bytes, ExportCounts]:
    out = WriteOnly()
    counts = write_export(key, config, once(tasks), out, **kwargs)
    assert not out.closed
    return out.value(), counts


def classification_tasks() -> list[dict[str, Any]]:
    c = CLASSIFICATION
    return [
        task(c, 1, {"text": "Great match, \"fantastic\" goal!\nLoved it", "source": "news"},
             annotation(11, 1, [choices("sentiment", "Positive"), choices("topics", "Sports", "Tech"),
                                region("comment", "text", "textarea", {"text": ["well written"]}),
                                region("quality", "text", "rating", {"rating": 4}),
                                region("confidence", "text", "number", {"number": 0.75})]),
             annotation(12, 1, [choices("sentiment", "Neutral"), choices("topics", "Sports")], completed_by=4),
             predictions=(prediction(91, 1, [choices("sentiment", "Positive")]),)),
        task(c, 2, {"text": "Parliament votes today", "source": "wire", "lang": "en"},
             annotation(13, 2, [choices("sentiment", "Negative"),
                                region("comment", "text", "textarea", {"text": ["one", "two"]})])),
        task(c, 3, {"text": "Not labelled yet"}),
    ]


NER_TEXTS = {
    1: "Barack Obama visited Paris, France on Monday.",
    2: "Apple Inc. hired Tim Cook in 1998; he moved to Cupertino.",
    3: "Nothing to see here.",
}


def ner_tasks() -> list[dict[str, Any]]:
    t1, t2 = NER_TEXTS[1], NER_TEXTS[2]
    return [
        task(NER, 1, {"text": t1}, annotation(21, 1, [span(t1, 0, 12, "PER"), span(t1, 21, 26, "LOC"),
                                                      span(t1, 28, 34, "LOC")])),
        task(NER, 2, {"text": t2}, annotation(22, 2, [span(t2, 0, 10, "ORG"), span(t2, 17, 25, "PER"),
                                                      span(t2, 47, 56, "LOC")])),
        task(NER, 3, {"text": NER_TEXTS[3]}, annotation(23, 3, [span(NER_TEXTS[3], 0, 7, "MISC")])),
        task(NER, 4, {"text": "Unlabelled text."}),
    ]


def image_tasks() -> list[dict[str, Any]]:
    return [
        task(IMAGES, 1, {"image": "/data/upload/7/cat.jpg"},
             annotation(31, 1, [rect(10, 20, 30, 40, "Cat"), rect(50, 50, 25, 12.5, "Dog"),
                                polygon([[10, 10], [50, 10], [30, 40]], "Tree")])),
        task(IMAGES, 2, {"image": "s3://bucket/photos/cat.png"},  # same stem as task 1
             annotation(32, 2, [rect(0, 0, 100, 100, "Dog", size=(200, 100))], completed_by=5),
             annotation(33, 2, [rect(5, 5, 10, 10, "Cat", size=(200, 100))], ground_truth=True)),
        task(IMAGES, 3, {"image": "https://cdn.example.com/img/Dog%20one.jpeg?sig=abc"},
             annotation(34, 3, [rect(10, 10, 20, 10, "Dog", rotation=90, size=(200, 100))])),
        task(IMAGES, 4, {"image": "/data/local-files/?d=pets/bird.jpg"},
             annotation(35, 4, [], was_cancelled=True)),  # cancelled only: not an image of the export
        task(IMAGES, 5, {"image": "/data/upload/7/empty.jpg"},
             annotation(36, 5, [polygon([[0, 0], [100, 0], [100, 100], [0, 100]], "Tree", size=(300, 150))])),
        task(IMAGES, 6, {"image": "/data/upload/7/CAT.JPG"},  # same stem as task 1 but for the case
             annotation(37, 6, [rect(25, 25, 50, 50, "Cat", size=(100, 100))])),
        task(IMAGES, 7, {"image": "/data/upload/7/unlabelled.jpg"}),
    ]


# ==================================================================================================
# Catalogue and unsupported_reason
# ==================================================================================================


def test_catalogue_has_every_format() -> None:
    assert list(FORMATS) == ["JSON", "JSON_MIN", "CSV", "TSV", "JSONL", "CONLL2003", "COCO", "YOLO", "VOC",
                             "CLASSIFICATION_CSV"]
    assert {k: f.extension for k, f in FORMATS.items()} == {
        "JSON": "json", "JSON_MIN": "json", "CSV": "csv", "TSV": "tsv", "JSONL": "jsonl", "CONLL2003": "conll",
        "COCO": "json", "YOLO": "zip", "VOC": "zip", "CLASSIFICATION_CSV": "csv"}
    for key, fmt in FORMATS.items():
        assert fmt.key == key and fmt.title and fmt.content_type and fmt.description.endswith(".")


@pytest.mark.parametrize("config, supported", [
    (CLASSIFICATION, {"JSON", "JSON_MIN", "CSV", "TSV", "JSONL", "CLASSIFICATION_CSV"}),
    (NER, {"JSON", "JSON_MIN", "CSV", "TSV", "JSONL", "CONLL2003"}),
    (IMAGES, {"JSON", "JSON_MIN", "CSV", "TSV", "JSONL", "COCO", "YOLO", "VOC"}),
    (POLYGONS_ONLY, {"JSON", "JSON_MIN", "CSV", "TSV", "JSONL", "COCO"}),
], ids=["classification", "ner", "images", "polygons"])
def test_unsupported_reason_matches_the_config(config: LabelConfig, supported: set[str]) -> None:
    for key in FORMATS:
        reason = unsupported_reason(key, config)
        if key in supported:
            assert reason is None, (key, reason)
        else:
            assert isinstance(reason, str) and reason.endswith("."), key
            with pytest.raises(ValueError, match="needs"):
                write_export(key, config, once([]), WriteOnly())


def test_unsupported_reasons_say_what_is_needed_and_what_the_config_has() -> None:
    assert unsupported_reason("CONLL2003", CLASSIFICATION) == (
        "CoNLL 2003 needs a <Labels> control on a <Text> object whose text is in the task data (named-entity "
        "spans); this project's config labels with <Choices>, <TextArea>, <Rating>, <Number>.")
    assert "<RectangleLabels> or <PolygonLabels>" in unsupported_reason("COCO", NER)
    assert "<RectangleLabels>" in unsupported_reason("YOLO", POLYGONS_ONLY)
    assert "<Choices>" in unsupported_reason("CLASSIFICATION_CSV", IMAGES)
    assert "not an export format" in unsupported_reason("XML", NER)
    with pytest.raises(ValueError, match="not an export format"):
        write_export("XML", NER, once([]), WriteOnly())


def test_labels_on_a_url_text_or_images_from_a_list_are_not_exportable_as_spans_or_boxes() -> None:
    url_text = parse_label_config('<View><Text name="t" value="$url" valueType="url"/>'
                                  '<Labels name="l" toName="t"><Label value="A"/></Labels></View>')
    image_list = parse_label_config('<View><Image name="i" valueList="$images"/>'
                                    '<RectangleLabels name="b" toName="i"><Label value="A"/></RectangleLabels></View>')
    assert unsupported_reason("CONLL2003", url_text) is not None
    for key in ("COCO", "YOLO", "VOC"):
        assert unsupported_reason(key, image_list) is not None


# ==================================================================================================
# JSON, JSONL
# ==================================================================================================


@pytest.mark.parametrize("tasks", [classification_tasks, ner_tasks, image_tasks])
def test_json_is_the_tasks_as_given(tasks: Any) -> None:
    given = tasks()
    body, counts = export("JSON", IMAGES, given)
    assert json.loads(body.decode("utf-8")) == given
    assert counts == ExportCounts(len(given), sum(len(t["annotations"]) for t in given),
                                  sum(len(t["predictions"]) for t in given))


def test_jsonl_is_one_task_per_line() -> None:
    given = classification_tasks()
    body, counts = export("JSONL", CLASSIFICATION, given)
    lines = body.decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == given
    assert body.endswith(b"\n")
    assert counts == ExportCounts(3, 3, 1)


def test_json_keeps_unicode_readable() -> None:
    given = [task(NER, 1, {"text": "Zoë in Ōsaka 😀"})]
    body, _ = export("JSON", NER, given)
    assert "Zoë in Ōsaka 😀".encode() in body
    assert json.loads(body) == given


# ==================================================================================================
# JSON-MIN, CSV, TSV
# ==================================================================================================

FIXED = {"annotation_id": None, "annotator": None, "created_at": STAMP, "updated_at": STAMP, "lead_time": 4.2}


def test_json_min_classification() -> None:
    body, counts = export("JSON_MIN", CLASSIFICATION, classification_tasks())
    records = json.loads(body)
    assert records == [
        {"id": 1, "text": "Great match, \"fantastic\" goal!\nLoved it", "source": "news", **FIXED,
         "annotation_id": 11, "annotator": 3, "sentiment": "Positive", "topics": {"choices": ["Sports", "Tech"]},
         "comment": "well written", "quality": 4, "confidence": 0.75},
        {"id": 1, "text": "Great match, \"fantastic\" goal!\nLoved it", "source": "news", **FIXED,
         "annotation_id": 12, "annotator": 4, "sentiment": "Neutral", "topics": "Sports"},
        {"id": 2, "text": "Parliament votes today", "source": "wire", "lang": "en", **FIXED,
         "annotation_id": 13, "annotator": 3, "sentiment": "Negative", "comment": ["one", "two"]},
        {"id": 3, "text": "Not labelled yet"},
    ]
    assert list(records[0]) == ["id", "text", "source", "annotation_id", "annotator", "created_at", "updated_at",
                                "lead_time", "sentiment", "topics", "comment", "quality", "confidence"]
    assert counts == ExportCounts(tasks=3, annotations=3, predictions=0)


def test_json_min_spans_and_shapes() -> None:
    ner, _ = export("JSON_MIN", NER, ner_tasks())
    first = json.loads(ner)[0]
    assert first["label"] == [
        {"start": 0, "end": 12, "text": "Barack Obama", "labels": ["PER"]},
        {"start": 21, "end": 26, "text": "Paris", "labels": ["LOC"]},
        {"start": 28, "end": 34, "text": "France", "labels": ["LOC"]},
    ]
    images, _ = export("JSON_MIN", IMAGES, image_tasks()[:1])
    record = json.loads(images)[0]
    assert record["box"] == [
        {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["Cat"],
         "original_width": 640, "original_height": 480},
        {"x": 50, "y": 50, "width": 25, "height": 12.5, "rotation": 0, "rectanglelabels": ["Dog"],
         "original_width": 640, "original_height": 480},
    ]
    assert record["poly"] == [{"points": [[10, 10], [50, 10], [30, 40]], "polygonlabels": ["Tree"], "closed": True,
                               "original_width": 640, "original_height": 480}]


def test_json_min_fixed_keys_and_controls_win_over_data_keys_and_unknown_controls_are_left_out() -> None:
    data = {"text": "x", "id": "data-id", "annotator": "someone", "sentiment": "from data"}
    stale = {"id": "old", "from_name": "removed_control", "to_name": "text", "type": "choices",
             "value": {"choices": ["A"]}}
    given = [{**task(CLASSIFICATION, 5, data), "annotations": [annotation(1, 5, [choices("sentiment", "Positive"),
                                                                                 stale])]}]
    record = json.loads(export("JSON_MIN", CLASSIFICATION, given)[0])[0]
    assert record["id"] == 5 and record["annotator"] == 3 and record["sentiment"] == "Positive"
    assert "removed_control" not in record


def read_table(body: bytes, delimiter: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(body.decode("utf-8"), newline=""), delimiter=delimiter)
    header, *rows = list(reader)
    return header, [dict(zip(header, row, strict=True)) for row in rows]


@pytest.mark.parametrize("key, delimiter", [("CSV", ","), ("TSV", "\t")])
def test_csv_and_tsv_are_json_min_flattened(key: str, delimiter: str) -> None:
    given = classification_tasks()
    given[1]["data"]["text"] = "tab\there, comma, \"quote\"\r\nand newline"
    body, counts = export(key, CLASSIFICATION, given)
    header, rows = read_table(body, delimiter)
    assert header == ["id", "text", "lang", "source", "annotation_id", "annotator", "created_at", "updated_at",
                      "lead_time", "sentiment", "topics", "comment", "quality", "confidence"]
    min_records = json.loads(export("JSON_MIN", CLASSIFICATION, given)[0])
    assert len(rows) == len(min_records) == 4
    for row, record in zip(rows, min_records):
        for column in header:
            value = record.get(column)
            expected = "" if value is None else value if isinstance(value, str) else json.dumps(value)
            cell = row[column]
            if expected.startswith(("{", "[")):  # nested values are JSON
                assert json.loads(cell) == value
            else:
                assert cell == expected, (column, cell, expected)
    assert rows[2]["text"] == "tab\there, comma, \"quote\"\r\nand newline"
    assert rows[0]["topics"] == '{"choices":["Sports","Tech"]}'
    assert rows[2]["comment"] == '["one","two"]'
    assert rows[0]["quality"] == "4" and rows[0]["lead_time"] == "4.2"
    assert rows[3] == {**{c: "" for c in header}, "id": "3", "text": "Not labelled yet"}
    assert counts == ExportCounts(3, 3, 0)


def test_csv_header_comes_from_the_config_when_nothing_is_exported() -> None:
    body, _ = export("CSV", IMAGES, [])
    assert body == b"id,image,annotation_id,annotator,created_at,updated_at,lead_time,box,poly\n"


def test_csv_shapes_are_json_cells() -> None:
    body, _ = export("CSV", IMAGES, image_tasks()[:1])
    _, rows = read_table(body, ",")
    assert [b["rectanglelabels"] for b in json.loads(rows[0]["box"])] == [["Cat"], ["Dog"]]


# ==================================================================================================
# CoNLL 2003
# ==================================================================================================


def read_conll(body: bytes) -> list[list[tuple[str, str]]]:
    """Documents of (token, tag), checking the layout: DOCSTART, blank line, tokens, blank line."""
    lines = body.decode("utf-8").split("\n")
    assert lines[-1] == ""
    documents: list[list[tuple[str, str]]] = []
    index = 0
    while index < len(lines) - 1:
        assert lines[index] == "-DOCSTART- -X- O O" and lines[index + 1] == "", lines[index:index + 2]
        index += 2
        tokens: list[tuple[str, str]] = []
        while lines[index] != "":
            token, pos, chunk, tag = lines[index].split(" ")
            assert (pos, chunk) == ("-X-", "_")
            tokens.append((token, tag))
            index += 1
        documents.append(tokens)
        index += 1
    return documents


def spans_from_bio(text: str, tagged: list[tuple[str, str]]) -> list[tuple[int, int, str]]:
    """Character spans rebuilt from BIO tags, locating each token in the text in order."""
    spans: list[list[Any]] = []
    position = 0
    current: list[Any] | None = None
    for token, tag in tagged:
        start = text.index(token, position)
        position = start + len(token)
        assert text[position - len(token):position] == token
        if tag == "O":
            current = None
        elif tag.startswith("B-"):
            current = [start, position, tag[2:]]
            spans.append(current)
        else:
            assert tag.startswith("I-") and current is not None and current[2] == tag[2:], (token, tag)
            current[1] = position
    assert text[position:].strip() == ""  # every token was found
    return [tuple(s) for s in spans]  # type: ignore[misc]


def test_conll_rebuilds_the_input_spans() -> None:
    given = ner_tasks()
    body, counts = export("CONLL2003", NER, given)
    documents = read_conll(body)
    assert len(documents) == 3  # the unlabelled task is not a document
    for document, source in zip(documents, given):
        text = source["data"]["text"]
        expected = [(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0])
                    for r in source["annotations"][0]["result"]]
        assert spans_from_bio(text, document) == expected
    assert documents[0][:3] == [("Barack", "B-PER"), ("Obama", "I-PER"), ("visited", "O")]
    assert [t for t, _ in documents[1][:4]] == ["Apple", "Inc", ".", "hired"]  # punctuation is its own token
    assert documents[1][2] == (".", "I-ORG")
    assert counts == ExportCounts(tasks=3, annotations=3, predictions=0)


def test_conll_span_off_token_boundaries_tags_the_tokens_it_touches() -> None:
    text = NER_TEXTS[1]
    given = [task(NER, 1, {"text": text}, annotation(1, 1, [span(text, 9, 16, "PER")]))]  # "ama vis"
    tags = [tag for _, tag in read_conll(export("CONLL2003", NER, given)[0])[0]]
    assert tags[:4] == ["O", "B-PER", "I-PER", "O"]


def test_conll_overlapping_spans_first_one_wins() -> None:
    text = NER_TEXTS[1]
    result = [span(text, 7, 20, "ORG"), span(text, 0, 12, "PER"), span(text, 21, 26, "LOC"),
              span(text, 21, 34, "MISC")]
    given = [task(NER, 1, {"text": text}, annotation(1, 1, result))]
    document = read_conll(export("CONLL2003", NER, given)[0])[0]
    assert [tag for _, tag in document[:6]] == ["B-PER", "I-PER", "B-ORG", "B-LOC", "B-MISC", "I-MISC"]
    assert spans_from_bio(text, document)[:2] == [(0, 12, "PER"), (13, 20, "ORG")]


def test_conll_uses_the_ground_truth_annotation_and_skips_cancelled_ones() -> None:
    text = NER_TEXTS[1]
    given = [task(NER, 1, {"text": text}, annotation(1, 1, [], was_cancelled=True),
                  annotation(2, 1, [span(text, 0, 6, "PER")]),
                  annotation(3, 1, [span(text, 21, 26, "LOC")], ground_truth=True))]
    body, counts = export("CONLL2003", NER, given)
    assert spans_from_bio(text, read_conll(body)[0]) == [(21, 26, "LOC")]
    assert counts.annotations == 1


def test_conll_tokens() -> None:
    assert [t for t, _, _ in conll_tokens("U.S. e-mail, can't: Zoë's 42%")] == [
        "U", ".", "S", ".", "e", "-", "mail", ",", "can", "'", "t", ":", "Zoë", "'", "s", "42", "%"]


# ==================================================================================================
# COCO
# ==================================================================================================


def pixel_box(value: dict[str, Any], size: tuple[int, int]) -> list[float]:
    width, height = size
    return [value["x"] * width / 100, value["y"] * height / 100, value["width"] * width / 100,
            value["height"] * height / 100]


def test_coco_document() -> None:
    given = image_tasks()
    body, counts = export("COCO", IMAGES, given, project_title="Pets")
    coco = json.loads(body)
    assert list(coco) == ["images", "categories", "annotations", "info"]
    assert coco["categories"] == [{"id": 0, "name": "Cat"}, {"id": 1, "name": "Dog"}, {"id": 2, "name": "Tree"}]
    assert coco["info"]["description"] == "Pets"
    assert coco["images"] == [
        {"id": 0, "file_name": "/data/upload/7/cat.jpg", "width": 640, "height": 480},
        {"id": 1, "file_name": "s3://bucket/photos/cat.png", "width": 200, "height": 100},
        {"id": 2, "file_name": "https://cdn.example.com/img/Dog%20one.jpeg?sig=abc", "width": 200, "height": 100},
        {"id": 3, "file_name": "/data/upload/7/empty.jpg", "width": 300, "height": 150},
        {"id": 4, "file_name": "/data/upload/7/CAT.JPG", "width": 100, "height": 100},
    ]
    anns = coco["annotations"]
    assert [a["id"] for a in anns] == list(range(len(anns)))
    for a in anns:
        assert set(a) == {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation", "ignore"}
        assert a["iscrowd"] == 0 and a["ignore"] == 0
    cat, dog, tree = anns[0], anns[1], anns[2]
    assert (cat["image_id"], cat["category_id"], cat["segmentation"]) == (0, 0, [])
    assert cat["bbox"] == pytest.approx(pixel_box(given[0]["annotations"][0]["result"][0]["value"], (640, 480)))
    assert cat["bbox"] == pytest.approx([64, 96, 192, 192]) and cat["area"] == pytest.approx(192 * 192)
    assert dog["bbox"] == pytest.approx([320, 240, 160, 60])
    assert tree["category_id"] == 2
    assert tree["segmentation"] == [pytest.approx([64, 48, 320, 48, 192, 192])]
    assert tree["bbox"] == pytest.approx([64, 48, 256, 144])
    assert tree["area"] == pytest.approx(256 * 144 / 2)
    # task 2: the ground-truth annotation, not the first one
    assert [(a["image_id"], a["category_id"]) for a in anns if a["image_id"] == 1] == [(1, 0)]
    assert anns[3]["bbox"] == pytest.approx([10, 5, 20, 10])
    # task 3: 20 x 10 px box turned 90 degrees clockwise around its top-left corner (20, 10)
    rotated = next(a for a in anns if a["image_id"] == 2)
    assert rotated["bbox"] == pytest.approx([10, 10, 10, 40])
    assert counts == ExportCounts(tasks=5, annotations=5, predictions=0)


def test_coco_loads_in_pycocotools(tmp_path: Any) -> None:
    coco_module = pytest.importorskip("pycocotools.coco")
    path = tmp_path / "coco.json"
    path.write_bytes(export("COCO", IMAGES, image_tasks())[0])
    coco = coco_module.COCO(str(path))
    assert sorted(coco.getImgIds()) == [0, 1, 2, 3, 4]
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["Cat", "Dog", "Tree"]
    first = coco.loadAnns(coco.getAnnIds(imgIds=[0]))
    assert [(a["category_id"], a["bbox"]) for a in first][:2] == [(0, pytest.approx([64, 96, 192, 192])),
                                                                   (1, pytest.approx([320, 240, 160, 60]))]
    mask = coco.annToMask(next(a for a in coco.loadAnns(coco.getAnnIds(imgIds=[3]))))
    assert mask.shape == (150, 300) and mask.sum() > 0.9 * 300 * 150  # the polygon covers the whole image
    coco.loadRes([{"image_id": 0, "category_id": 0, "bbox": [64, 96, 192, 192], "score": 0.9}])


def test_coco_label_not_in_config_gets_a_new_category() -> None:
    dynamic = parse_label_config('<View><Image name="image" value="$image"/>'
                                 '<RectangleLabels name="box" toName="image" value="$classes"/></View>')
    given = [task(dynamic, 1, {"image": "a.jpg", "classes": ["Zebra"]},
                  annotation(1, 1, [rect(0, 0, 10, 10, "Zebra")]))]
    coco = json.loads(export("COCO", dynamic, given)[0])
    assert coco["categories"] == [{"id": 0, "name": "Zebra"}]
    assert coco["annotations"][0]["category_id"] == 0


# ==================================================================================================
# YOLO
# ==================================================================================================


def read_zip(body: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def test_yolo_archive() -> None:
    given = image_tasks()
    body, counts = export("YOLO", IMAGES, given, project_title="Pets")
    files = read_zip(body)
    assert sorted(files) == ["classes.txt", "labels/2_cat.txt", "labels/6_CAT.txt", "labels/Dog one.txt",
                             "labels/cat.txt", "labels/empty.txt", "notes.json"]
    classes = files["classes.txt"].decode().splitlines()
    assert classes == ["Cat", "Dog"]
    notes = json.loads(files["notes.json"])
    assert notes["categories"] == [{"id": 0, "name": "Cat"}, {"id": 1, "name": "Dog"}]

    def boxes(name: str) -> list[tuple[str, list[float]]]:
        out = []
        for line in files[name].decode().splitlines():
            class_id, xc, yc, w, h = line.split(" ")
            xc, yc, w, h = float(xc), float(yc), float(w), float(h)
            assert all(0 <= v <= 1 for v in (xc, yc, w, h))
            out.append((classes[int(class_id)], [(xc - w / 2) * 100, (yc - h / 2) * 100, w * 100, h * 100]))
        return out

    def percent(region: dict[str, Any]) -> tuple[str, list[float]]:
        v = region["value"]
        return v["rectanglelabels"][0], [v["x"], v["y"], v["width"], v["height"]]

    def same(got: list[tuple[str, list[float]]], expected: list[tuple[str, list[float]]]) -> None:
        assert [label for label, _ in got] == [label for label, _ in expected]
        for (_, a), (_, b) in zip(got, expected):
            assert a == pytest.approx(b, abs=1e-6)

    same(boxes("labels/cat.txt"), [percent(r) for r in given[0]["annotations"][0]["result"][:2]])
    same(boxes("labels/2_cat.txt"), [percent(given[1]["annotations"][1]["result"][0])])  # ground truth
    same(boxes("labels/6_CAT.txt"), [percent(given[5]["annotations"][0]["result"][0])])
    # rotated 90 degrees: the box around it, pixels (10, 10, 10, 40) of 200 x 100
    same(boxes("labels/Dog one.txt"), [("Dog", [5, 10, 5, 40])])
    assert files["labels/empty.txt"] == b""  # annotated, no box: a negative example
    assert counts == ExportCounts(tasks=5, annotations=5, predictions=0)


def test_yolo_clips_a_rotated_box_to_the_image() -> None:
    given = [task(IMAGES, 1, {"image": "a.jpg"}, annotation(1, 1, [rect(80, 10, 20, 10, "Cat", rotation=-90,
                                                                          size=(100, 100))]))]
    files = read_zip(export("YOLO", IMAGES, given)[0])
    _, xc, yc, w, h = (float(v) for v in files["labels/a.txt"].decode().split())
    assert [xc - w / 2, yc - h / 2, w, h] == pytest.approx([0.8, 0.0, 0.1, 0.1])


def test_yolo_label_file_names_come_from_the_image_path() -> None:
    images = ["/data/local-files/?d=pets/bird.jpg", "data:image/png;base64,iVBORw0KGgo=", "C:\\photos\\owl.tiff",
              "https://example.com/", "relative/dir/fox", "/x/.hidden"]
    given = [task(IMAGES, n, {"image": image}, annotation(n, n, [rect(0, 0, 10, 10, "Cat")]))
             for n, image in enumerate(images, 1)]
    files = read_zip(export("YOLO", IMAGES, given)[0])
    assert sorted(name for name in files if name.startswith("labels/")) == [
        "labels/.hidden.txt", "labels/bird.txt", "labels/fox.txt", "labels/owl.txt", "labels/task_2.txt",
        "labels/task_4.txt"]


# ==================================================================================================
# Pascal VOC
# ==================================================================================================


def test_voc_archive() -> None:
    given = image_tasks()
    body, counts = export("VOC", IMAGES, given)
    files = read_zip(body)
    assert sorted(files) == ["Annotations/2_cat.xml", "Annotations/6_CAT.xml", "Annotations/Dog one.xml",
                             "Annotations/cat.xml", "Annotations/empty.xml"]

    def read(name: str) -> tuple[str, tuple[int, int, int], list[tuple[str, list[int]]]]:
        root = SafeET.fromstring(files[name])
        assert root.tag == "annotation" and root.findtext("folder") == "images"
        size = root.find("size")
        dims = tuple(int(size.findtext(k)) for k in ("width", "height", "depth"))
        objects = []
        for item in root.findall("object"):
            assert (item.findtext("pose"), item.findtext("truncated"), item.findtext("difficult")) == (
                "Unspecified", "0", "0")
            box = item.find("bndbox")
            objects.append((item.findtext("name"), [int(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]))
        return root.findtext("filename"), dims, objects  # type: ignore[return-value]

    def corners(region: dict[str, Any], size: tuple[int, int]) -> tuple[str, list[int]]:
        x, y, w, h = pixel_box(region["value"], size)
        return region["value"]["rectanglelabels"][0], [round(x), round(y), round(x + w), round(y + h)]

    result = given[0]["annotations"][0]["result"]
    assert read("Annotations/cat.xml") == ("cat.jpg", (640, 480, 3), [corners(result[0], (640, 480)),
                                                                      corners(result[1], (640, 480))])
    assert read("Annotations/cat.xml")[2] == [("Cat", [64, 96, 256, 288]), ("Dog", [320, 240, 480, 300])]
    assert read("Annotations/2_cat.xml") == ("cat.png", (200, 100, 3), [("Cat", [10, 5, 30, 15])])
    assert read("Annotations/Dog one.xml") == ("Dog one.jpeg", (200, 100, 3), [("Dog", [10, 10, 20, 50])])
    assert read("Annotations/empty.xml") == ("empty.jpg", (300, 150, 3), [])  # polygons are not VOC boxes
    assert counts == ExportCounts(tasks=5, annotations=5, predictions=0)


def test_voc_text_is_escaped() -> None:
    tricky = parse_label_config('<View><Image name="image" value="$image"/><RectangleLabels name="box" '
                                'toName="image"><Label value="&lt;b&gt; &amp; co"/></RectangleLabels></View>')
    given = [task(tricky, 1, {"image": "/x/a&b<c>.jpg"}, annotation(1, 1, [rect(0, 0, 10, 10, "<b> & co")]))]
    files = read_zip(export("VOC", tricky, given)[0])
    root = SafeET.fromstring(files["Annotations/a&b<c>.xml"])
    assert root.findtext("filename") == "a&b<c>.jpg"
    assert root.findtext("object/name") == "<b> & co"


# ==================================================================================================
# Classification CSV
# ==================================================================================================


def test_classification_csv() -> None:
    body, counts = export("CLASSIFICATION_CSV", CLASSIFICATION, classification_tasks())
    header, rows = read_table(body, ",")
    assert header == ["task_id", "text", "annotator", "sentiment", "topics"]
    assert rows == [
        {"task_id": "1", "text": "Great match, \"fantastic\" goal!\nLoved it", "annotator": "3",
         "sentiment": "Positive", "topics": "Sports|Tech"},
        {"task_id": "1", "text": "Great match, \"fantastic\" goal!\nLoved it", "annotator": "4",
         "sentiment": "Neutral", "topics": "Sports"},
        {"task_id": "2", "text": "Parliament votes today", "annotator": "3", "sentiment": "Negative", "topics": ""},
    ]
    assert counts == ExportCounts(tasks=2, annotations=3, predictions=0)


# ==================================================================================================
# Empty input, streaming, memory
# ==================================================================================================

CONFIG_FOR = {"CONLL2003": NER, "COCO": IMAGES, "YOLO": IMAGES, "VOC": IMAGES, "CLASSIFICATION_CSV": CLASSIFICATION}


@pytest.mark.parametrize("key", list(FORMATS))
def test_empty_input_gives_an_empty_valid_file(key: str) -> None:
    body, counts = export(key, CONFIG_FOR.get(key, CLASSIFICATION), [])
    assert counts == ExportCounts()
    if key in ("JSON", "JSON_MIN"):
        assert json.loads(body) == []
    elif key in ("JSONL", "CONLL2003"):
        assert body == b""
    elif key in ("CSV", "TSV"):
        header, rows = read_table(body, "," if key == "CSV" else "\t")
        assert rows == [] and header[0] == "id" and header[-5:] == ["sentiment", "topics", "comment", "quality",
                                                                     "confidence"]
    elif key == "CLASSIFICATION_CSV":
        assert body == b"task_id,text,annotator,sentiment,topics\n"
    elif key == "COCO":
        coco = json.loads(body)
        assert (coco["images"], coco["annotations"]) == ([], [])
        assert [c["name"] for c in coco["categories"]] == ["Cat", "Dog", "Tree"]
    elif key == "YOLO":
        files = read_zip(body)
        assert sorted(files) == ["classes.txt", "notes.json"] and files["classes.txt"] == b"Cat\nDog\n"
    elif key == "VOC":
        assert read_zip(body) == {}
    else:  # pragma: no cover
        raise AssertionError(key)


@pytest.mark.parametrize("key", list(FORMATS))
def test_every_format_reads_its_tasks_once_and_writes_to_a_write_only_stream(key: str) -> None:
    config = CONFIG_FOR.get(key, IMAGES)
    source = {"CONLL2003": ner_tasks, "CLASSIFICATION_CSV": classification_tasks}.get(key, image_tasks)()
    generator = once(source)
    out = WriteOnly()
    write_export(key, config, generator, out)
    assert next(generator, None) is None
    assert out.value() and not out.closed


class Discard(io.RawIOBase):
    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.size += len(data)
        return len(data)


LIMIT = 8 * 1024 * 1024
LONG_TEXT = "A long enough review of the product, so that the export of all tasks is larger than the memory limit. " * 3


def many_tasks(count: int) -> Iterator[dict[str, Any]]:
    """Lean tasks (tracemalloc slows every allocation down) whose export is larger than LIMIT."""
    result = [{"id": "r1", "from_name": "sentiment", "to_name": "text", "type": "choices",
               "value": {"choices": ["Positive"]}}]
    for task_id in range(1, count + 1):
        yield {"id": task_id, "data": {"text": LONG_TEXT},
               "annotations": [{"id": task_id, "completed_by": 3, "result": result, "created_at": STAMP}]}


@pytest.mark.parametrize("key", ["JSON", "CSV"])
def test_memory_stays_flat_for_40k_tasks(key: str) -> None:
    out = Discard()
    tracemalloc.start()
    try:
        counts = write_export(key, CLASSIFICATION, many_tasks(40_000), out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert counts.tasks == 40_000 and counts.annotations == 40_000
    assert out.size > LIMIT  # the export would not fit: a writer that kept it in memory would fail below
    assert peak < LIMIT, f"peak {peak / 1e6:.1f} MB"
