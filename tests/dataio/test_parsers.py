"""Import parsing of containers: CSV / JSON / JSONL rows, and a line-numbered error for each way a file
can be wrong (formats and conversations: test_import_formats.py)."""

import io
import json

import pytest

from annotation.dataio.parsers import (
    FileTooLarge,
    ImportErrorReport,
    ParsedRow,
    RowError,
    detect_container,
    read_records,
)
from tests.import_helpers import jsonl


def read(data: bytes, **kwargs) -> list:
    kwargs.setdefault("filename", "upload")
    return list(read_records(io.BytesIO(data), **kwargs))


def errors(results: list) -> list[RowError]:
    return [r for r in results if isinstance(r, RowError)]


def rows(results: list) -> list[ParsedRow]:
    return [r for r in results if isinstance(r, ParsedRow)]


def question(line: int, text: str, **fields) -> ParsedRow:
    return ParsedRow(line=line, messages=[{"role": "user", "content": text}], **fields)


# --- formats -----------------------------------------------------------------------------------------


def test_csv_with_bom_reads_mapped_fields():
    # given a UTF-8 CSV with a BOM and custom column names
    data = "\ufeffprompt,ctx,answer,key\n你好,背景,回答,k1\n".encode()
    mapping = {"input": "prompt", "system": "ctx", "reference_output": "answer", "external_id": "key"}

    # when
    results = read(data, filename="a.csv", mapping=mapping)

    # then
    assert results == [question(2, "你好", system="背景", reference_output="回答", external_id="k1")]


def test_csv_multiline_cell_reports_the_line_where_the_row_starts():
    data = b'input\n"two\nlines"\n\n'

    results = read(data, filename="a.csv")

    assert results == [question(2, "two\nlines")]


def test_json_array_is_streamed_with_record_numbers():
    data = json.dumps([{"input": "a"}, {"input": "b", "external_id": 7}]).encode()

    results = read(data, filename="a.json")

    assert results == [question(1, "a"), question(2, "b", external_id="7")]


def test_jsonl_skips_blank_lines_and_keeps_line_numbers():
    data = b'{"input": "a"}\n\n{"input": "b"}\n'

    results = read(data, filename="a.jsonl")

    assert [(r.line, r.input) for r in results] == [(1, "a"), (3, "b")]


def test_explicit_format_overrides_the_extension():
    data = jsonl({"input": "a"})

    results = read(data, filename="data.txt", fmt="jsonl")

    assert rows(results) == [question(1, "a")]


def test_detection_sniffs_first_bytes_when_extension_is_unknown():
    assert detect_container("upload", b"  [{") == "json"
    assert detect_container("upload", b'{"a":1}') == "jsonl"
    assert detect_container("upload", b"input,context") == "csv"
    assert detect_container("x.CSV", b"[") == "csv"


def test_unknown_format_name_is_refused():
    with pytest.raises(ValueError, match="unknown format"):
        read(b"input\na\n", fmt="xml")


# --- errors ------------------------------------------------------------------------------------------


def test_malformed_json_line_is_reported_and_later_lines_still_read():
    data = b'{"input": "a"}\n{"input": \n{"input": "c"}\n'

    results = read(data, filename="a.jsonl")

    assert [r.line for r in errors(results)] == [2]
    assert "malformed JSON" in errors(results)[0].reason
    assert [r.input for r in rows(results)] == ["a", "c"]


def test_malformed_json_array_names_the_record():
    data = b'[{"input": "a"}, {"input": ]'

    results = read(data, filename="a.json")

    assert errors(results)[0].line == 2
    assert "malformed JSON" in errors(results)[0].reason


def test_missing_input_field_is_reported_with_the_keys_looked_for():
    results = read(jsonl({"context": "c"}), filename="a.jsonl")

    assert errors(results) == [
        RowError(
            1, "input", "input field is missing; expected one of input, prompt, question, query, messages, "
            "conversations",
        )
    ]  # fmt: skip


def test_missing_mapped_input_field_names_the_mapped_key():
    results = read(jsonl({"q": "a"}, {"other": "b"}), filename="a.jsonl", mapping={"input": "q"})

    assert errors(results) == [RowError(2, "q", "input field is missing")]


def test_empty_input_field_is_reported():
    results = read(b"input,context\n  ,c\n", filename="a.csv")

    assert errors(results) == [RowError(2, "input", "input field is empty")]


@pytest.mark.parametrize(("value", "kind"), [(5, "a number"), ({"a": 1}, "an object"), (["x"], "an array")])
def test_input_of_wrong_type_is_reported(value, kind):
    results = read(jsonl({"input": value}), filename="a.jsonl")

    assert errors(results) == [RowError(1, "input", f"expected text, found {kind}")]


def test_field_over_size_limit_is_reported_with_its_size():
    data = jsonl({"input": "ok", "context": "x" * 101})

    results = read(data, filename="a.jsonl", max_field_bytes=100)

    assert errors(results) == [RowError(1, "context", "is 101 bytes, over the 100-byte limit")]


def test_field_size_limit_applies_to_every_turn():
    turns = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a" * 101},
             {"role": "user", "content": "q2"}]  # fmt: skip

    results = read(jsonl({"messages": turns}), filename="a.jsonl", max_field_bytes=100)

    assert errors(results) == [
        RowError(1, "messages", "the assistant turn is 101 bytes, over the 100-byte limit", 2)
    ]


def test_field_size_limit_counts_utf8_bytes_not_characters():
    data = jsonl({"input": "汉" * 40})  # 120 bytes

    results = read(data, filename="a.jsonl", max_field_bytes=100)

    assert errors(results)[0].field == "input"


def test_file_over_size_limit_raises_a_distinct_exception():
    data = jsonl(*({"input": "a" * 50} for _ in range(100)))

    with pytest.raises(FileTooLarge) as caught:
        read(data, filename="a.jsonl", max_file_bytes=1000)

    assert caught.value.limit == 1000


def test_file_over_size_limit_raises_through_the_json_parser():
    data = json.dumps([{"input": "a" * 50}] * 100).encode()

    with pytest.raises(FileTooLarge):
        read(data, filename="a.json", max_file_bytes=1000)


def test_not_utf8_names_line_and_byte_offset():
    data = b'{"input": "a"}\n{"input": "caf\xe9"}\n'

    results = read(data, filename="a.jsonl")

    assert rows(results) == [question(1, "a")]
    assert errors(results) == [
        RowError(2, None, f"not valid UTF-8 (byte offset {data.index(0xE9)} on line 2); save as UTF-8"),
    ]


def test_multibyte_characters_split_across_read_chunks_are_valid():
    # given enough Chinese text that some characters straddle the reader's 8 KiB chunks
    data = jsonl(*({"input": "汉字测试" * 7} for _ in range(2000)))

    results = read(data, filename="a.jsonl")

    assert errors(results) == []
    assert len(results) == 2000


def test_not_utf8_far_into_the_file_gets_its_exact_offset():
    good = jsonl(*({"input": "汉字"} for _ in range(3000)))
    data = good + b'{"input": "\xff"}\n'

    results = read(data, filename="a.jsonl")

    assert errors(results) == [
        RowError(3001, None, f"not valid UTF-8 (byte offset {len(good) + 11} on line 3001); save as UTF-8"),
    ]


def test_not_utf8_in_csv_is_reported():
    data = b"input\nok\n" + "中文".encode("gbk") + b"\n"

    results = read(data, filename="a.csv")

    assert errors(results)[0].line == 3
    assert "not valid UTF-8" in errors(results)[0].reason


def test_csv_row_with_more_cells_than_header_is_reported():
    results = read(b"input,context\na,b,c\n", filename="a.csv")

    assert errors(results) == [RowError(2, None, "row has 3 cells but the header has 2")]


def test_csv_row_with_fewer_cells_than_header_is_reported():
    results = read(b"input,context\na\n", filename="a.csv")

    assert errors(results) == [RowError(2, None, "row has 1 cells but the header has 2")]


def test_csv_without_a_question_column_is_reported_once():
    results = read(b"title,answer\na,b\nc,d\n", filename="a.csv")

    assert errors(results) == [
        RowError(
            1,
            "input",
            "header has no column for the input field; expected one of input, prompt, "
            "question, query, messages, conversations (or a mapping)",
        )  # fmt: skip
    ]


def test_csv_without_the_mapped_input_column_is_reported_once():
    results = read(b"question\na\nb\n", filename="a.csv", mapping={"input": "prompt"})

    assert errors(results) == [RowError(1, "prompt", "header has no column 'prompt' for the input field")]


def test_csv_header_that_repeats_a_column_is_refused():
    # given two columns of the same name, one of which a dict would silently drop
    results = read(b"input,tag,tag\na,x,y\n", filename="a.csv")

    assert errors(results) == [RowError(1, None, "the header repeats columns: tag")]


def test_duplicate_external_id_is_reported_on_the_second_occurrence():
    data = jsonl({"input": "a", "external_id": "k"}, {"input": "b", "external_id": "k"})

    results = read(data, filename="a.jsonl")

    assert rows(results) == [question(1, "a", external_id="k")]
    assert errors(results) == [RowError(2, "external_id", "duplicate external_id 'k' (first on line 1)")]


@pytest.mark.parametrize("filename", ["a.csv", "a.json", "a.jsonl"])
def test_empty_file_is_reported(filename):
    results = read(b"", filename=filename)

    assert results == [RowError(1, None, "file is empty")]


def test_json_object_instead_of_array_is_reported():
    results = read(b'{"input": "a"}', filename="a.json")

    assert errors(results)[0].line == 1
    assert "expected a JSON array of objects, found an object" in errors(results)[0].reason


def test_json_array_element_that_is_not_an_object_is_reported():
    results = read(b'[{"input": "a"}, "b"]', filename="a.json")

    assert errors(results) == [RowError(2, None, "record is str, expected an object")]


# --- report ------------------------------------------------------------------------------------------


def test_error_report_keeps_100_errors_and_counts_all():
    data = jsonl(*({"input": i} for i in range(250)))
    report = ImportErrorReport()

    for result in read_records(io.BytesIO(data), filename="a.jsonl"):
        if isinstance(result, RowError):
            report.add(result)

    assert (len(report.errors), report.total, report.truncated, report.ok) == (100, 250, True, False)


def test_large_file_is_read_lazily():
    # given a stream that would fail if read past the first rows
    class Exploding(io.BytesIO):
        def read(self, size=-1):
            if self.tell() > 64 * 1024:
                raise AssertionError("read too far ahead")
            return super().read(size)

    data = jsonl(*({"input": f"row {i}"} for i in range(100_000)))

    # when only the first rows are consumed
    results = read_records(Exploding(data), filename="a.jsonl")
    first = [next(results) for _ in range(10)]

    # then only a buffer's worth was read
    assert first[-1] == question(10, "row 9")
