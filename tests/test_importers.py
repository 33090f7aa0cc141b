"""Task import parsers: every format gives the same task records; every refusal says where and what.

Messages are asserted whole, so a regression in the row/index or in the named field shows up. The
last tests write 200k-task files to disk and check with tracemalloc that parsing them stays within a
few MB, however big the file.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import tracemalloc
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from workspace.workflow.importing import (
    FORMATS,
    ImportLimits,
    TaskImportError,
    TaskRecord,
    content_fingerprint,
    detect_format,
    iter_task_batches,
)

TEXT = frozenset({"text"})
RESAVE = "re-save it as UTF-8 (in Excel: Save As → 'CSV UTF-8'; in an editor: encoding UTF-8)"


def as_bytes(content: bytes | str) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


def batches(
    content: bytes | str,
    filename: str,
    required: Iterable[str] = TEXT,
    *,
    format: str | None = None,
    batch_size: int = 5000,
    limits: ImportLimits = ImportLimits(),  # noqa: B008
) -> list[list[TaskRecord]]:
    source = io.BytesIO(as_bytes(content))
    return list(
        iter_task_batches(
            source,
            format=format,
            filename=filename,
            required_fields=set(required),
            batch_size=batch_size,
            limits=limits,
        )
    )


def records(content: bytes | str, filename: str, required: Iterable[str] = TEXT, **kw: Any) -> list[TaskRecord]:
    return [record for batch in batches(content, filename, required, **kw) for record in batch]


def datas(content: bytes | str, filename: str, required: Iterable[str] = TEXT, **kw: Any) -> list[dict[str, Any]]:
    return [record.data for record in records(content, filename, required, **kw)]


def refusal(content: bytes | str, filename: str, required: Iterable[str] = TEXT, **kw: Any) -> TaskImportError:
    with pytest.raises(TaskImportError) as caught:
        records(content, filename, required, **kw)
    return caught.value


def message(content: bytes | str, filename: str, required: Iterable[str] = TEXT, **kw: Any) -> str:
    return str(refusal(content, filename, required, **kw))


CHOICE = {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Positive"]}}


def result_item(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = dict(CHOICE)
    for key, value in changes.items():
        if value is ...:
            del item[key]
        else:
            item[key] = value
    return item


# ==================================================================================================
# JSON
# ==================================================================================================


def test_label_studio_json_keeps_annotations_and_predictions_verbatim() -> None:
    annotation = {
        "id": 149,
        "completed_by": 1,
        "result": [dict(CHOICE, id="a1", origin="manual")],
        "was_cancelled": False,
        "lead_time": 3.5,
    }
    relation = {"from_id": "r1", "to_id": "r2", "type": "relation", "direction": "right"}
    prediction = {"result": [CHOICE, relation], "score": 0.87, "model_version": "v2"}
    tasks = [
        {
            "id": 8,
            "data": {"text": "good movie", "meta_info": {"lang": "en"}},
            "annotations": [annotation],
            "predictions": [prediction],
            "meta": {},
            "drafts": [],
        },
        {"data": {"text": "bad movie"}},
        {"data": {"text": "exported"}, "annotations": [], "predictions": [62, 63]},  # LS export: prediction ids
    ]
    got = records(json.dumps(tasks), "export.json")
    assert got == [
        TaskRecord({"text": "good movie", "meta_info": {"lang": "en"}}, [annotation], [prediction], 0),
        TaskRecord({"text": "bad movie"}, [], [], 1),
        TaskRecord({"text": "exported"}, [], [], 2),
    ]
    data, _, _, index = got[0]  # a plain 4-tuple too
    assert (data["text"], index) == ("good movie", 0)


def test_bare_data_json_list_becomes_task_data() -> None:
    content = '[{"text": "one", "idx": 1, "score": 0.5, "tags": ["a"]}, {"text": "two", "idx": 2, "ok": null}]'
    assert datas(content, "tasks.json") == [
        {"text": "one", "idx": 1, "score": 0.5, "tags": ["a"]},
        {"text": "two", "idx": 2, "ok": None},
    ]
    assert type(datas(content, "tasks.json")[0]["score"]) is float  # not Decimal: storable as JSON


def test_single_json_object_is_one_task() -> None:
    assert records('{"text": "only"}', "one.json") == [TaskRecord({"text": "only"}, [], [], 0)]
    wrapped = {"data": {"text": "only"}, "annotations": [{"result": [CHOICE]}]}
    assert records(json.dumps(wrapped, indent=2), "one.json") == [
        TaskRecord({"text": "only"}, [{"result": [CHOICE]}], [], 0)
    ]


def test_json_with_bom_pretty_printing_and_unicode() -> None:
    content = (
        codecs.BOM_UTF8 + json.dumps([{"text": "café ☕"}, {"text": "日本語"}], indent=4, ensure_ascii=False).encode()
    )
    assert datas(content, "tasks.json") == [{"text": "café ☕"}, {"text": "日本語"}]


def test_required_fields_may_be_empty_and_extra_fields_are_kept() -> None:
    assert datas('[{"a": 1}, {"b": 2}]', "x.json", required=()) == [{"a": 1}, {"b": 2}]
    assert datas('[{"image": "s3://x.png", "text": "t", "extra": 1}]', "x.json", {"image", "text"}) == [
        {"image": "s3://x.png", "text": "t", "extra": 1}
    ]


# ==================================================================================================
# JSONL
# ==================================================================================================


def test_jsonl_one_task_per_line_skipping_blank_lines() -> None:
    content = '{"text": "a"}\r\n\n   \n{"data": {"text": "b"}, "annotations": [{"result": []}]}\n{"text": "c"}'
    assert records(content, "tasks.jsonl") == [
        TaskRecord({"text": "a"}, [], [], 0),
        TaskRecord({"text": "b"}, [{"result": []}], [], 1),
        TaskRecord({"text": "c"}, [], [], 2),
    ]
    assert datas('{"text": "x"}\n', "tasks.ndjson") == [{"text": "x"}]


def test_jsonl_saved_as_json_is_recognised() -> None:
    assert datas('{"text": "a"}\n{"text": "b"}\n', "tasks.json") == [{"text": "a"}, {"text": "b"}]


# ==================================================================================================
# CSV, TSV, text
# ==================================================================================================


def test_csv_with_bom_quoted_newlines_quotes_and_crlf() -> None:
    content = (
        "\ufeffid,text,note\r\n"
        '007,"first line\r\nsecond line",plain\r\n'
        '8,"she said ""hi"", then left",\r\n'
        ",,\r\n"  # an empty spreadsheet row
        "\r\n"
    )
    assert records(content, "tasks.csv") == [
        TaskRecord({"id": "007", "text": "first line\r\nsecond line", "note": "plain"}, [], [], 0),
        TaskRecord({"id": "8", "text": 'she said "hi", then left', "note": ""}, [], [], 1),
    ]


def test_csv_header_names_are_trimmed() -> None:
    assert datas("id , text\n1,a\n", "t.csv") == [{"id": "1", "text": "a"}]


def test_tsv() -> None:
    content = 'id\ttext\n1\thello, world\n2\t"quoted\ttab"\n'
    assert datas(content, "tasks.tsv") == [{"id": "1", "text": "hello, world"}, {"id": "2", "text": "quoted\ttab"}]


def test_text_one_task_per_non_empty_line() -> None:
    content = "first task\r\n\n   \nsecond, with a comma\tand a tab\nlast without newline"
    assert records(content, "lines.txt") == [
        TaskRecord({"text": "first task"}, [], [], 0),
        TaskRecord({"text": "second, with a comma\tand a tab"}, [], [], 1),
        TaskRecord({"text": "last without newline"}, [], [], 2),
    ]


def test_text_goes_into_the_single_field_of_the_label_config() -> None:
    assert datas("a\nb\n", "lines.txt", {"review"}) == [{"review": "a"}, {"review": "b"}]
    assert datas("a\n", "lines.txt", ()) == [{"text": "a"}]


def test_every_format_gives_the_same_records() -> None:
    rows = [{"text": "a, b"}, {"text": 'say "x"'}, {"text": "ü"}]
    contents = {
        "t.json": json.dumps(rows),
        "t.jsonl": "\n".join(json.dumps(row) for row in rows),
        "t.csv": 'text\n"a, b"\n"say ""x"""\nü\n',
        "t.tsv": 'text\na, b\n"say ""x"""\nü\n',
        "t.txt": 'a, b\nsay "x"\nü\n',
    }
    for filename, content in contents.items():
        assert records(content, filename) == [TaskRecord(row, [], [], i) for i, row in enumerate(rows)], filename


# ==================================================================================================
# Format detection
# ==================================================================================================


@pytest.mark.parametrize(
    ("filename", "head", "expected"),
    [
        ("a.json", b'[{"text": 1}]', "json"),
        ("a.JSON", b'{\n  "text": 1\n}', "json"),
        ("a.json", b'{"text": 1}', "json"),
        ("a.json", b'{"text": 1}\n{"text": 2}\n', "jsonl"),
        ("a.jsonl", b'{"text": 1}', "jsonl"),
        ("a.ndjson", b"", "jsonl"),
        ("dir/a.csv", b"id,text\n", "csv"),
        ("C:\\Users\\me\\a.tsv", b"id\ttext\n", "tsv"),
        ("a.tab", b"", "tsv"),
        ("a.txt", b"[not json]", "txt"),
        ("upload", b"\xef\xbb\xbf  [1]", "json"),
        ("upload.dat", b'{"a": 1}', "json"),
        ("upload", b'{"a": 1}\n{"a": 2}', "jsonl"),
    ],
)
def test_detect_format(filename: str, head: bytes, expected: str) -> None:
    assert detect_format(filename, head) == expected
    assert expected in FORMATS


def test_detect_format_refuses_to_guess_plain_content() -> None:
    with pytest.raises(TaskImportError, match=r"can't tell the format of 'upload.dat': name it with one of"):
        detect_format("upload.dat", b"id,text\n1,a\n")


def test_explicit_format_wins_over_the_name_and_takes_aliases() -> None:
    assert datas("a\nb\n", "data.csv", format="text") == [{"text": "a"}, {"text": "b"}]
    assert datas('{"text": "a"}\n', "upload", format="NDJSON") == [{"text": "a"}]
    with pytest.raises(TaskImportError, match="unknown import format 'xml'; use one of json, jsonl, csv, tsv, txt"):
        batches("x", "x.txt", format="xml")


# ==================================================================================================
# Missing fields: where and what
# ==================================================================================================


def test_json_task_missing_a_field_names_the_index_and_the_field() -> None:
    content = '[{"text": "a"}, {"text": "b"}, {"id": 3, "body": "c"}]'
    error = refusal(content, "t.json")
    assert str(error) == (
        "task at index 2: the task has no field 'text' (the label config uses $text); fields found: id, body"
    )
    assert (error.index, error.line, error.fields) == (2, None, ("text",))


def test_wrapped_task_missing_fields_lists_them_all_and_suggests_near_misses() -> None:
    content = '[{"data": {"image": "x.png", "Text": "t"}}]'
    assert message(content, "t.json", {"image", "text", "audio"}) == (
        "task at index 0: the task has no fields 'audio', 'text' (the label config uses $audio and $text); "
        "fields found: image, Text (did you mean 'Text' for 'text'?)"
    )


def test_jsonl_task_missing_a_field_names_the_line() -> None:
    content = '{"text": "a"}\n\n{"id": 1, "body": "b"}\n'
    error = refusal(content, "t.jsonl")
    assert str(error) == "line 3: the task has no field 'text' (the label config uses $text); fields found: id, body"
    assert (error.line, error.index) == (3, None)


def test_csv_without_the_column_is_refused_at_the_header() -> None:
    error = refusal("id,body\n1,a\n", "t.csv")
    assert str(error) == (
        "row 1: the header has no column 'text' (the label config uses $text); columns found: id, body"
    )
    assert (error.row, error.line, error.fields) == (1, 1, ("text",))


def test_text_file_cannot_fill_two_fields() -> None:
    assert message("a\n", "t.txt", {"image", "text"}) == (
        "a text file gives each task one field (one line each), but the label config uses $image and $text; "
        "import a CSV, TSV or JSON file with those fields instead"
    )


# ==================================================================================================
# Encoding
# ==================================================================================================


def test_latin1_csv_is_refused_with_the_line_and_byte() -> None:
    content = "id,text\n1,ok\n2,café\n".encode("latin-1")
    error = refusal(content, "t.csv")
    assert str(error) == (
        f"line 3: the file is not UTF-8 text: the byte 0xE9 at byte offset 18 is not valid UTF-8; {RESAVE}"
    )
    assert error.line == 3


def test_invalid_utf8_in_json_far_into_the_file() -> None:
    head = "[" + ",\n".join(json.dumps({"text": f"é {i}"}, ensure_ascii=False) for i in range(20_000)) + ",\n"
    content = head.encode() + b'{"text": "\x93quoted\x94"}]'
    error = refusal(content, "t.json")
    assert error.line == 20_001
    assert f"byte 0x93 at byte offset {len(head.encode()) + 10} " in str(error)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (codecs.BOM_UTF16_LE + "text\nx\n".encode("utf-16-le"), f"the file is UTF-16 text, not UTF-8; {RESAVE}"),
        (codecs.BOM_UTF16_BE + "text\nx\n".encode("utf-16-be"), f"the file is UTF-16 text, not UTF-8; {RESAVE}"),
        (
            "text\nx\n".encode("utf-16-le"),
            (
                "line 1: the file is not UTF-8 text: it has a NUL byte (0x00 at byte offset 1), "
                f"so it is binary or UTF-16; {RESAVE}"
            ),
        ),
        (
            b"text\nab\n" + "é".encode()[:1],
            f"line 3: the file is not UTF-8 text: it ends in the middle of a character; {RESAVE}",
        ),
    ],
)
def test_other_encodings_are_refused(content: bytes, expected: str) -> None:
    assert message(content, "t.csv") == expected


# ==================================================================================================
# Malformed JSON
# ==================================================================================================


def test_malformed_json_reports_line_column_and_byte() -> None:
    content = '[{"text": "a"},\n {"text": "b" "c"}]'
    error = refusal(content, "t.json")
    # yajl points at the last character of the token it could not place: the closing quote of "c"
    assert (error.line, error.column) == (2, 17)
    assert str(error) == (
        "malformed JSON at line 2, column 17 (byte offset 32): after key and value, inside map, I expect ',' or '}', "
        """near ': "a"},\\n {"text": "b" "c"}]'"""
    )


def test_malformed_json_deep_in_a_large_file_is_located_exactly() -> None:
    lines = [json.dumps({"text": f"tâche {i} " + "é" * (i % 40)}, ensure_ascii=False) for i in range(30_000)]
    lines[21_345] = '{"text": "broken" @}'
    content = ("[\n" + ",\n".join(lines) + "\n]").encode()
    error = refusal(content, "t.json")
    assert (error.line, error.column) == (21_347, 19)  # the '@'
    assert str(error).startswith("malformed JSON at line 21347, column 19 (byte offset ")
    assert "near '" in str(error) and '"broken" @}' in str(error)


def test_truncated_json_points_at_the_end() -> None:
    content = '[{"text": "a"},\n {"text": "b"}'
    assert message(content, "t.json") == (
        "malformed JSON at line 2, column 15 (byte offset 30): the file ends before the JSON does; "
        "is it cut off, or is a closing ']' missing?"
    )


def test_several_top_level_values_in_a_json_file() -> None:
    assert message('{"text": "a"} {"text": "b"}', "t.json") == (
        "malformed JSON at line 1, column 15 (byte offset 14): there is more text after the end of the JSON "
        """(a file with one task per line is JSONL: name it .jsonl), near '{"text": "a"} {"text": "b"}'"""
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "\n  text",
            (
                "malformed JSON at line 2, column 3: a JSON import must be a list of tasks ([...]) or one "
                "task object ({...}), but the file starts with 't'"
            ),
        ),
        (
            '[{"text": NaN}]',
            (
                "malformed JSON at line 1, column 11 (byte offset 10): unexpected character, "
                """near '[{"text": NaN}]'"""
            ),
        ),
        (
            "[{'text': 'a'}]",
            (
                "malformed JSON at line 1, column 3 (byte offset 2): unexpected character, "
                """near "[{'text': 'a'}]\""""
            ),
        ),
    ],
)
def test_json_syntax_errors(content: str, expected: str) -> None:
    assert message(content, "t.json") == expected


def test_malformed_jsonl_line() -> None:
    error = refusal('{"text": "a"}\n{"text": "b",}\n', "t.jsonl")
    assert str(error) == "line 2: malformed JSON at column 14: Expecting property name enclosed in double quotes"
    assert (error.line, error.column) == (2, 14)
    assert message('{"text": NaN}\n', "t.jsonl") == "line 1: NaN is not valid JSON; write a number or null"
    assert message('{"text": "a"} {"text": "b"}\n', "t.jsonl") == "line 1: malformed JSON at column 15: Extra data"


# ==================================================================================================
# Task shapes
# ==================================================================================================


def wrapped(**task: Any) -> str:
    return json.dumps([{"data": {"text": "ok"}}, {"data": {"text": "x"}, **task}])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[{"text": "a"}, "b"]', "task at index 1: a task must be a JSON object, not a string"),
        ('[{"text": "a"}, [1]]', "task at index 1: a task must be a JSON object, not a list"),
        ('[{"text": "a"}, null]', "task at index 1: a task must be a JSON object, not null"),
        ('[{"data": "a"}]', "task at index 0: 'data' must be an object holding the task's fields, not a string"),
        (
            '[{"text": "a", "annotations": []}]',
            (
                "task at index 0: the task has 'annotations' but no 'data'; "
                """put the task's fields in a 'data' object: {"data": {...}, "annotations": [...]}"""
            ),
        ),
        (wrapped(annotations={"result": []}), "task at index 1: 'annotations' must be a list, not an object"),
        (wrapped(predictions="x"), "task at index 1: 'predictions' must be a list, not a string"),
        (wrapped(annotations=[{"result": []}, 5]), "task at index 1: annotations[1] must be an object, not a number"),
        (wrapped(annotations=[{"id": 1}]), "task at index 1: annotations[0] has no 'result' list"),
        (wrapped(annotations=[{"result": {}}]), "task at index 1: annotations[0].result must be a list, not an object"),
        (
            wrapped(annotations=[{"result": [CHOICE, "x"]}]),
            "task at index 1: annotations[0].result[1] must be an object, not a string",
        ),
        (
            wrapped(annotations=[{"result": [result_item(to_name=..., value=...)]}]),
            (
                "task at index 1: annotations[0].result[0] has no 'to_name', 'value' "
                "(a result item needs from_name, to_name, type and value)"
            ),
        ),
        (
            wrapped(annotations=[{"result": [result_item(from_name=3)]}]),
            "task at index 1: annotations[0].result[0].from_name must be a non-empty string, not a number",
        ),
        (
            wrapped(annotations=[{"result": [result_item(type="")]}]),
            "task at index 1: annotations[0].result[0].type must be a non-empty string, not a string",
        ),
        (
            wrapped(annotations=[{"result": [result_item(value=["Positive"])]}]),
            "task at index 1: annotations[0].result[0].value must be an object, not a list",
        ),
        (
            wrapped(annotations=[{"result": [{"type": "relation", "from_id": "a"}]}]),
            "task at index 1: annotations[0].result[0] has no 'to_id' (a relation needs from_id and to_id)",
        ),
        (
            wrapped(predictions=[{"result": [CHOICE]}, {"model_version": "v1"}]),
            "task at index 1: predictions[1] has no 'result' list",
        ),
        (
            wrapped(predictions=[{"result": [result_item(from_name=...)]}]),
            (
                "task at index 1: predictions[0].result[0] has no 'from_name' "
                "(a result item needs from_name, to_name, type and value)"
            ),
        ),
        (
            wrapped(predictions=[{"result": [], "score": "high"}]),
            "task at index 1: predictions[0].score must be a number, not a string",
        ),
    ],
)
def test_json_task_shape_errors(content: str, expected: str) -> None:
    assert message(content, "t.json") == expected


def test_jsonl_shape_errors_name_the_line() -> None:
    assert message('{"text": "a"}\n[1, 2]\n', "t.jsonl") == "line 2: a task must be a JSON object, not a list"
    assert message('{"text": "a"}\n\n{"data": {"text": "b"}, "annotations": [{"result": [1]}]}', "t.jsonl") == (
        "line 3: annotations[0].result[0] must be an object, not a number"
    )


# ==================================================================================================
# CSV structure
# ==================================================================================================


def test_csv_ragged_rows_name_the_spreadsheet_row_and_the_line() -> None:
    content = 'id,text\n1,"two\nlines"\n2,b\n3,c,extra\n'
    assert message(content, "t.csv") == (
        "row 4 (line 5): the row has 3 values, but the header (row 1) has 2 columns "
        "(is a value with a delimiter in it missing its quotes?)"
    )
    assert message("id,text\n1,a\n2\n", "t.csv") == "row 3: the row has 1 values, but the header (row 1) has 2 columns"
    assert message("id\ttext\n1\ta\textra\n", "t.tsv").startswith("row 2: the row has 3 values")


def test_csv_duplicate_and_empty_column_names() -> None:
    error = refusal("id,text,ID,text\n1,a,2,b\n", "t.csv")
    assert str(error) == "row 1: the header has the column 'text' twice (columns 2 and 4); column names must be unique"
    assert error.fields == ("text",)
    assert message("id,,text\n1,,a\n", "t.csv") == (
        "row 1: column 2 of the header has no name; name every column, or delete the empty one"
    )


def test_csv_quoting_errors() -> None:
    assert message('id,text\n1,a\n2,"unclosed\n3,c\n', "t.csv") == (
        "row 3: malformed CSV: the file ends inside a quoted value (a closing quote is missing)"
    )
    assert message('id,text\n1,"a"b\n', "t.csv") == "row 2: malformed CSV: ',' expected after '\"'"


def test_csv_and_text_files_without_tasks() -> None:
    assert message("id,text\r\n\r\n,\r\n", "t.csv") == "the file has a header row (row 1) but no tasks"
    assert message("\n\n", "t.csv") == "the file is empty"
    assert message("\n \n\t\n", "t.txt") == "the file is empty"
    assert message(b"\n" * 70_000, "t.txt") == "the file is empty: it has only blank lines"
    assert message(b"\n" * 70_000, "t.jsonl") == "the file is empty: it has only blank lines"
    assert message(b"\n" * 70_000, "t.csv") == "the file is empty: it has no header row and no tasks"


@pytest.mark.parametrize("content", [b"", b"   \n", codecs.BOM_UTF8, codecs.BOM_UTF8 + b"\r\n"])
@pytest.mark.parametrize("filename", ["t.json", "t.jsonl", "t.csv", "t.tsv", "t.txt", "upload"])
def test_empty_files(content: bytes, filename: str) -> None:
    assert message(content, filename) == "the file is empty"


def test_empty_json_list() -> None:
    assert message(" [ ] ", "t.json") == "the file has no tasks: its JSON list is empty"


# ==================================================================================================
# Limits
# ==================================================================================================


@pytest.mark.parametrize(
    ("filename", "content", "where"),
    [
        ("t.json", json.dumps([{"text": str(i)} for i in range(4)]), "task at index 3"),
        ("t.jsonl", "\n".join(json.dumps({"text": str(i)}) for i in range(4)), "line 4"),
        ("t.csv", "text\n0\n1\n\n2\n3\n", "row 6"),
        ("t.txt", "0\n1\n2\n\n3\n", "line 5"),
    ],
)
def test_too_many_tasks(filename: str, content: str, where: str) -> None:
    limits = ImportLimits(max_tasks=3)
    assert message(content, filename, limits=limits) == (
        f"{where}: the file has more than 3 tasks, the limit for one import; split it into smaller files"
    )
    assert len(records(content, filename, limits=ImportLimits(max_tasks=4))) == 4


def test_field_value_larger_than_the_limit() -> None:
    limits = ImportLimits(max_field_bytes=100)
    ok = "é" * 50  # 100 bytes
    big = "é" * 51  # 102 bytes, 51 characters
    assert datas(json.dumps([{"text": ok}]), "t.json", limits=limits) == [{"text": ok}]
    error = refusal(json.dumps([{"text": ok}, {"text": big}]), "t.json", limits=limits)
    assert (
        str(error)
        == "task at index 1: the value of field 'text' is 102 bytes, larger than the limit of 100 bytes per field"
    )
    assert error.fields == ("text",)
    nested = json.dumps([{"text": "a", "meta": {"words": ["word"] * 20}}])
    assert message(nested, "t.json", limits=limits) == (
        "task at index 0: the value of field 'meta' is 151 bytes, larger than the limit of 100 bytes per field"
    )
    assert message(f"id,text\n1,{ok}\n2,{big}\n", "t.csv", limits=limits) == (
        "row 3: the value of field 'text' is 102 bytes, larger than the limit of 100 bytes per field"
    )
    assert message(f"{ok}\n{big}\n", "t.txt", limits=limits) == (
        "line 2: the value of field 'text' is 102 bytes, larger than the limit of 100 bytes per field"
    )
    assert message(json.dumps({"text": big}) + "\n", "t.jsonl", limits=limits).startswith(
        "line 1: the value of field 'text' is 102 bytes"
    )


def test_default_field_limit_is_checked_in_bytes_for_csv_beyond_csv_modules_own_limit() -> None:
    text = "x" * 300_000  # more than csv's default 131072 characters, less than the 1 MiB default
    assert datas(f'text\n"{text}"\n', "t.csv") == [{"text": text}]
    # 600k characters fit csv's cap (raised to the limit), but are 1.2 MB in UTF-8
    assert message(f'id,text\n1,"{"é" * 600_000}"\n', "t.csv") == (
        "row 2: the value of field 'text' is 1.1 MiB, larger than the limit of 1 MiB per field"
    )
    # more characters than the cap: csv stops reading it, and can't say which column it was
    assert message(f'text\n"{"x" * 1_200_000}"\n', "t.csv") == (
        "row 2: a value is larger than the limit of 1 MiB per field (is a quoted value missing its closing quote?)"
    )


def test_line_longer_than_the_limit() -> None:
    limits = ImportLimits(max_line_bytes=20)
    assert datas("x" * 20 + "\r\n" + "y" * 20, "t.txt", limits=limits) == [{"text": "x" * 20}, {"text": "y" * 20}]
    expected = "line 2: the line is longer than the limit of 20 bytes per line"
    assert message("short\n" + "x" * 21 + "\nshort\n", "t.txt", limits=limits) == expected
    assert message('{"text": "a"}\n{"text": "abcdefghij"}\n', "t.jsonl", limits=limits) == expected
    assert message("text\n" + "x" * 1000, "t.csv", limits=limits) == expected


def test_csv_row_spread_over_many_lines_is_bounded() -> None:
    limits = ImportLimits(max_line_bytes=20)
    content = 'id,text\n1,"' + "ab\n" * 50 + '"\n'
    assert message(content, "t.csv", limits=limits) == (
        "row 2: the row is longer than the limit of 20 bytes (is a quoted value missing its closing quote?)"
    )


def test_json_task_larger_than_the_limit_is_refused_before_it_is_built() -> None:
    limits = ImportLimits(max_task_bytes=256 * 1024, max_field_bytes=8 * 1024 * 1024)
    huge = json.dumps([{"text": "a"}, {"text": "b", "blob": ["x" * 1000] * 2000}])
    error = refusal(huge, "t.json", limits=limits)
    assert str(error) == "task at index 1: the task is larger than the limit of 256 KiB per task"
    assert error.index == 1
    fits = json.dumps([{"text": "b", "blob": ["x" * 1000] * 200}])
    assert len(records(fits, "t.json", limits=limits)) == 1


def test_limits_and_batch_size_are_validated() -> None:
    with pytest.raises(ValueError, match="max_tasks must be at least 1"):
        ImportLimits(max_tasks=0)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        iter_task_batches(io.BytesIO(b"x"), format=None, filename="t.txt", required_fields=set(), batch_size=0)


def test_text_stream_is_refused() -> None:
    with pytest.raises(TypeError, match="binary stream"):
        text_stream: Any = io.StringIO("x")
        list(iter_task_batches(text_stream, format=None, filename="t.txt", required_fields=set()))


# ==================================================================================================
# Batching
# ==================================================================================================


@pytest.mark.parametrize("filename", ["t.json", "t.jsonl", "t.csv", "t.txt"])
def test_batches_respect_the_size_and_number_tasks_continuously(filename: str) -> None:
    rows = [f"task {i}" for i in range(12)]
    contents = {
        "t.json": json.dumps([{"text": row} for row in rows]),
        "t.jsonl": "\n".join(json.dumps({"text": row}) for row in rows),
        "t.csv": "text\n" + "\n".join(rows),
        "t.txt": "\n\n".join(rows),
    }
    got = batches(contents[filename], filename, batch_size=5)
    assert [len(batch) for batch in got] == [5, 5, 2]
    flat = [record for batch in got for record in batch]
    assert [record.index for record in flat] == list(range(12))
    assert [record.data["text"] for record in flat] == rows
    assert [len(batch) for batch in batches(contents[filename], filename, batch_size=4)] == [4, 4, 4]
    assert [len(batch) for batch in batches(contents[filename], filename, batch_size=100)] == [12]


def test_batches_stream_before_a_later_error() -> None:
    content = "text\n" + "".join(f"{i}\n" for i in range(10)) + "a,b\n"
    stream = iter_task_batches(
        io.BytesIO(content.encode()), format=None, filename="t.csv", required_fields=TEXT, batch_size=4
    )
    assert [r.index for r in next(stream)] == [0, 1, 2, 3]
    assert [r.index for r in next(stream)] == [4, 5, 6, 7]
    with pytest.raises(TaskImportError, match="^row 12: the row has 2 values"):
        next(stream)


# ==================================================================================================
# Fingerprint
# ==================================================================================================


def test_content_fingerprint_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    content = b"id,text\n" + b"1,a\n" * 500_000  # several read chunks
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    expected = hashlib.sha256(content).hexdigest()
    assert content_fingerprint(path) == expected
    assert content_fingerprint(str(path)) == expected
    with path.open("rb") as stream:
        assert content_fingerprint(stream) == expected
        assert stream.tell() == 0  # put back, ready to import
        assert len(records(stream.read(), "t.csv")) == 500_000
    assert content_fingerprint(io.BytesIO(content + b"2,b\n")) != expected


def test_content_fingerprint_of_a_non_seekable_stream() -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            chunk = self._data.read(min(len(buffer), 1000))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    pipe: Any = Pipe(b"abc" * 10_000)
    assert content_fingerprint(pipe) == hashlib.sha256(b"abc" * 10_000).hexdigest()
    # the parsers read such streams too, short reads and all
    stream: Any = Pipe(b"a\n" * 3000)
    got = list(iter_task_batches(stream, format=None, filename="t.txt", required_fields=set()))
    assert [len(batch) for batch in got] == [3000]


# ==================================================================================================
# Bounded memory
# ==================================================================================================

TASKS = 200_000
MEMORY_BOUND = 30 * 1024 * 1024


LOREM = (
    "the quick brown fox jumps over the lazy dog, while the five boxing wizards jump quickly and "
    "a wizard's job is to vex chumps quickly in fog; sphinx of black quartz, judge my vow."
)


def write_tasks(path: Path, fmt: str) -> None:
    """A 200k-task file (about 40 MB) written a line at a time, so the test itself never holds it.

    JSON tasks are Label Studio's wrapped form with an annotation; JSONL tasks are bare data; CSV
    values have quoted commas and newlines.
    """
    with path.open("w", encoding="utf-8") as out:
        if fmt == "json":
            out.write("[\n")
        if fmt == "csv":
            out.write("id,text,note\n")
        for i in range(TASKS):
            text = f"Task {i}: {LOREM}"
            if fmt == "csv":
                out.write(f'{i},"{text}","line one\nline two"\n')
            elif fmt == "jsonl":
                out.write(json.dumps({"text": text, "id": i}) + "\n")
            else:
                task = {"data": {"text": text, "id": i}, "annotations": [{"result": [CHOICE]}]}
                out.write(json.dumps(task) + (",\n" if i < TASKS - 1 else "\n]\n"))


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_memory_stays_bounded_on_a_200k_task_file(tmp_path: Path, fmt: str) -> None:
    """Peak memory is about two batches (the caller's and the one being built) and a read chunk.

    Parsing the whole file at once would take over 140 MB here (over 400 MB for the JSON file).
    """
    path = tmp_path / f"big.{fmt}"
    write_tasks(path, fmt)
    assert path.stat().st_size > MEMORY_BOUND  # holding the file, let alone its objects, would fail
    count = 0
    last = -1
    tracemalloc.start()
    try:
        with path.open("rb") as upload:
            for batch in iter_task_batches(upload, format=None, filename=path.name, required_fields=TEXT):
                assert len(batch) <= 5000
                assert batch[0].index == last + 1
                last = batch[-1].index
                count += len(batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == TASKS and last == TASKS - 1
    assert peak < MEMORY_BOUND, f"peak {peak / 2**20:.1f} MiB while parsing {path.stat().st_size / 2**20:.0f} MiB"
