"""Table exports: Parquet (alpaca columns, the conversation, metadata columns) and CSV, read back."""

import csv
import io
import json

import datasets
import pyarrow.parquet as pq
import pytest

from annotation.dataio.export_tables import write_csv, write_parquet
from annotation.dataio.exporters import ExportValidationError, dataset_info_entry

from .test_exporters import llamafactory_read, sample, tool_sample


def with_metadata(ident, **item):
    return sample(metadata={"id": ident, "item": item})


def load(tmp_path, kind, path):
    return datasets.load_dataset(kind, data_files=str(path), split="train", cache_dir=str(tmp_path / "c"))


def write_to(tmp_path, write, samples, name, **options):
    path = tmp_path / name
    with path.open("wb") as stream:
        written = write(samples, stream, **options)
    return path, written


def test_parquet_holds_the_conversation_and_alpacas_columns_for_llamafactory(tmp_path):
    # given a three-turn conversation exported as Parquet
    path, _ = write_to(tmp_path, write_parquet, [sample()], "train.parquet")

    # when datasets reads it
    row = load(tmp_path, "parquet", path)[0]

    # then the whole conversation is a list of {role, content}, system first, the reply last
    assert row["messages"] == [
        {"role": "system", "content": "你是翻译"}, {"role": "user", "content": "把这句话翻译成英文：你好"},
        {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "那上海呢？"},
        {"role": "assistant", "content": "Shanghai"}]  # fmt: skip
    # and LLaMA-Factory reads the same file as alpaca with history
    read = llamafactory_read(dataset_info_entry("parquet", path.name), row)
    assert [t["content"] for t in read["prompt"]] == ["把这句话翻译成英文：你好", "Hello", "那上海呢？"]
    assert read["response"] == [{"role": "assistant", "content": "Shanghai"}]


def test_parquet_has_a_typed_column_per_metadata_key(tmp_path):
    samples = [
        with_metadata(1, category="it", score=3, gold=True, tags=["a"]),
        with_metadata(2, category="法律", score=4.5, gold=False, tags="b"),
        with_metadata(3),
    ]
    path, _ = write_to(tmp_path, write_parquet, samples, "train.parquet")

    loaded = load(tmp_path, "parquet", path)

    assert loaded["metadata.category"] == ["it", "法律", None]
    assert loaded["metadata.score"] == [3.0, 4.5, None]  # ints and floats: one float column
    assert loaded["metadata.gold"] == [True, False, None]
    # values of differing kinds are each written as JSON text, so none is lost or coerced
    assert loaded["metadata.tags"] == ['["a"]', '"b"', None]
    table = pq.read_table(path)
    assert str(table.schema.field("metadata.gold").type) == "bool"


def test_parquet_is_written_in_row_groups_of_batch_size(tmp_path):
    path, written = write_to(
        tmp_path, write_parquet, (sample() for _ in range(25)), "t.parquet", batch_size=10
    )

    assert written == 25 and pq.ParquetFile(path).num_row_groups == 3


def test_parquet_refuses_a_conversation_alpaca_cannot_hold():
    with pytest.raises(ExportValidationError, match="sample 7: turn 2 is a tool call"):
        write_parquet([sample(), tool_sample()], io.BytesIO())


def test_empty_parquet_still_has_its_columns(tmp_path):
    path, written = write_to(tmp_path, write_parquet, [], "empty.parquet")

    assert written == 0
    columns = ["instruction", "input", "output", "system", "history", "tools", "messages"]
    assert pq.read_table(path).column_names == columns


def csv_rows(buffer: io.BytesIO) -> list[dict]:
    return list(csv.DictReader(io.StringIO(buffer.getvalue().decode("utf-8-sig"), newline="")))


def test_csv_loads_with_datasets_with_the_conversation_as_json_and_metadata_columns(tmp_path):
    samples = [with_metadata(1, category="it", n=7), with_metadata(2, lang="zh")]
    path, _ = write_to(tmp_path, write_csv, samples, "train.csv")

    loaded = load(tmp_path, "csv", path)

    fixed = ["input", "system", "messages", "tools", "output", "reply_extra", "draft", "metadata"]
    assert loaded.column_names[:8] == fixed
    assert loaded.column_names[8:] == ["metadata.category", "metadata.lang", "metadata.n"]
    first = loaded[0]
    assert json.loads(first["messages"]) == sample()["messages"] and first["output"] == "Shanghai"
    assert (first["metadata.category"], first["metadata.lang"], first["metadata.n"]) == ("it", None, 7)
    assert loaded[1]["metadata.lang"] == "zh"


def test_csv_neutralises_formula_injection_in_every_cell_metadata_included():
    dangerous = ['=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "\tx", "\rx"]
    samples = [sample(output=text, metadata={"id": 1, "item": {"note": text}}) for text in dangerous]
    buffer = io.BytesIO()

    write_csv(samples, buffer)

    rows = csv_rows(buffer)
    assert [row["output"] for row in rows] == ["'" + text for text in dangerous]
    assert [row["metadata.note"] for row in rows] == ["'" + text for text in dangerous]


def test_csv_keeps_tool_turns_and_the_reply_extras():
    buffer = io.BytesIO()

    write_csv([tool_sample(reply_extra={"weight": 1})], buffer)

    [row] = csv_rows(buffer)
    assert [t["role"] for t in json.loads(row["messages"])] == ["user", "assistant", "tool"]
    assert json.loads(row["tools"])[0]["function"]["name"] == "get_weather"
    assert json.loads(row["reply_extra"]) == {"weight": 1}


def test_csv_provenance_column_is_empty_unless_asked():
    buffer = io.BytesIO()

    write_csv([with_metadata(9, 标签="好")], buffer, provenance=False)

    [row] = csv_rows(buffer)
    assert row["metadata"] == "{}" and row["metadata.标签"] == "好"
    assert not buffer.closed
