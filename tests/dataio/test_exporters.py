"""Export writers: LLaMA-Factory / OpenAI JSONL, CSV and Parquet, and their dataset_info entries."""

import csv
import io
import json

import datasets
import pyarrow.parquet as pq
import pytest

from annotation.dataio.exporters import (
    SHAREGPT_TAGS,
    ExportValidationError,
    dataset_info_entry,
    validate_conversation,
    validate_dataset_info_entry,
    write_alpaca_jsonl,
    write_csv,
    write_openai_jsonl,
    write_parquet,
    write_preference_jsonl,
    write_sharegpt_jsonl,
)


def sample(**overrides):
    base = {
        "input": "把这句话翻译成英文：你好",
        "context": "你是翻译",
        "output": "Hello",
        "draft": "Hi there",
    }
    return {**base, **overrides}


def lines(buffer: io.BytesIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().decode().splitlines()]


def mapped_columns(entry: dict) -> set[str]:
    return set(entry["columns"].values())


def test_alpaca_jsonl_loads_with_datasets_and_has_exactly_the_mapped_columns(tmp_path):
    # given an exported file and its dataset_info entry
    path = tmp_path / "train.jsonl"
    with path.open("wb") as stream:
        write_alpaca_jsonl([sample(), sample(context="")], stream)
    entry = dataset_info_entry("alpaca", path.name)
    (tmp_path / "dataset_info.json").write_text(json.dumps({"handover": entry}))

    # when
    loaded = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "c"))

    # then
    assert set(loaded.column_names) == mapped_columns(entry)
    assert loaded[0]["instruction"] == "把这句话翻译成英文：你好"
    assert loaded[0]["system"] == "你是翻译"


def test_alpaca_context_can_go_to_the_input_column():
    buffer = io.BytesIO()

    write_alpaca_jsonl([sample()], buffer, context_as="input")

    assert lines(buffer) == [
        {"instruction": "把这句话翻译成英文：你好", "input": "你是翻译", "output": "Hello"}
    ]
    assert mapped_columns(dataset_info_entry("alpaca", "f.jsonl", context_as="input")) == {
        "instruction", "input", "output"}  # fmt: skip


def test_chinese_is_written_unescaped():
    buffer = io.BytesIO()

    write_alpaca_jsonl([sample()], buffer)

    assert "你好".encode() in buffer.getvalue()


def test_parquet_loads_with_datasets(tmp_path):
    path = tmp_path / "train.parquet"
    with path.open("wb") as stream:
        written = write_parquet((sample(output=f"answer {i}") for i in range(25)), stream, batch_size=10)

    loaded = datasets.load_dataset(
        "parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "c")
    )

    assert written == 25
    assert loaded.num_rows == 25
    assert set(loaded.column_names) == mapped_columns(dataset_info_entry("parquet", path.name))
    assert loaded[24]["output"] == "answer 24"


def test_parquet_is_written_in_row_groups_of_batch_size():
    buffer = io.BytesIO()

    write_parquet((sample() for _ in range(25)), buffer, batch_size=10)

    assert pq.ParquetFile(io.BytesIO(buffer.getvalue())).num_row_groups == 3


def test_sharegpt_record_and_entry():
    buffer = io.BytesIO()

    write_sharegpt_jsonl([sample()], buffer)

    human = {"from": "human", "value": "把这句话翻译成英文：你好"}
    assert lines(buffer) == [
        {"conversations": [human, {"from": "gpt", "value": "Hello"}], "system": "你是翻译"}
    ]
    entry = dataset_info_entry("sharegpt", "s.jsonl")
    assert entry["formatting"] == "sharegpt"
    assert entry["tags"]["user_tag"] == "human"


def test_openai_messages_put_context_in_a_system_message():
    buffer = io.BytesIO()

    write_openai_jsonl([sample(), sample(context="")], buffer)

    first, second = lines(buffer)
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
    assert [m["role"] for m in second["messages"]] == ["user", "assistant"]
    assert dataset_info_entry("openai", "o.jsonl")["tags"]["role_tag"] == "role"


def test_preference_pairs_only_where_output_differs_from_a_draft():
    samples = [sample(), sample(draft=""), sample(draft="Hello "), sample(output="Hi", draft="Hey")]
    buffer = io.BytesIO()

    written = write_preference_jsonl(samples, buffer)

    assert written == 2
    assert [(r["chosen"], r["rejected"]) for r in lines(buffer)] == [("Hello", "Hi there"), ("Hi", "Hey")]
    entry = dataset_info_entry("preference", "p.jsonl")
    assert entry["ranking"] is True
    assert mapped_columns(entry) == set(lines(buffer)[0])


def test_csv_neutralises_formula_injection():
    dangerous = ['=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "\tx", "\rx"]
    buffer = io.BytesIO()

    write_csv([sample(output=text) for text in dangerous], buffer)

    rows = list(csv.DictReader(io.StringIO(buffer.getvalue().decode("utf-8-sig"), newline="")))
    assert [row["output"] for row in rows] == ["'" + text for text in dangerous]


def test_csv_round_trips_chinese_and_leaves_plain_cells_alone():
    buffer = io.BytesIO()

    write_csv([sample(metadata={"id": 9, "标签": "好"})], buffer)

    row = next(csv.DictReader(io.StringIO(buffer.getvalue().decode("utf-8-sig"), newline="")))
    assert row["input"] == "把这句话翻译成英文：你好"
    assert json.loads(row["metadata"]) == {"id": 9, "标签": "好"}
    assert not buffer.closed


def test_empty_output_is_refused_naming_the_sample():
    with pytest.raises(ExportValidationError, match="sample 42: output is empty"):
        write_alpaca_jsonl([sample(output="  ", metadata={"id": 42})], io.BytesIO())


def test_sample_without_an_id_is_named_by_position():
    with pytest.raises(ExportValidationError, match="sample #2: input must be text"):
        write_sharegpt_jsonl([sample(), sample(input=5)], io.BytesIO())


def test_conversation_roles_must_alternate():
    turns = [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]

    with pytest.raises(ExportValidationError, match="roles must alternate"):
        validate_conversation(turns, SHAREGPT_TAGS, "sample 1")


def test_conversation_must_end_with_the_assistant():
    turns = [{"from": "system", "value": "s"}, {"from": "human", "value": "a"}]

    with pytest.raises(ExportValidationError, match="ending with the assistant"):
        validate_conversation(turns, SHAREGPT_TAGS, "sample 1")


def test_dataset_info_key_format_is_refused_with_a_hint():
    with pytest.raises(ExportValidationError, match="did you mean 'formatting'"):
        validate_dataset_info_entry({"file_name": "a.json", "format": "sharegpt"})


def test_dataset_info_ranking_without_chosen_is_refused():
    with pytest.raises(ExportValidationError, match="chosen and rejected"):
        validate_dataset_info_entry({"file_name": "a.json", "ranking": True, "columns": {"prompt": "q"}})


@pytest.mark.parametrize("fmt", ["alpaca", "parquet", "preference", "sharegpt", "openai"])
def test_every_generated_entry_passes_validation(fmt):
    validate_dataset_info_entry(dataset_info_entry(fmt, "f"))
