"""Export writers: LLaMA-Factory alpaca / sharegpt / preference and OpenAI JSONL, and their entries."""

import io
import json

import datasets
import pytest

from annotation.dataio.exporters import (
    OPENAI_TAGS,
    SHAREGPT_TAGS,
    TOOL_RESULTS_JOIN,
    ExportValidationError,
    dataset_info_entry,
    validate_conversation,
    validate_dataset_info_entry,
    write_alpaca_jsonl,
    write_openai_jsonl,
    write_preference_jsonl,
    write_sharegpt_jsonl,
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "天气 of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def call(name, arguments, ident):
    arguments = json.dumps(arguments, ensure_ascii=False)
    return {"id": ident, "type": "function", "function": {"name": name, "arguments": arguments}}


def sample(**overrides):
    """A three-turn conversation before the reply (user, assistant, user), as export_samples gives it."""
    base = {
        "input": "那上海呢？",
        "system": "你是翻译",
        "messages": [
            {"role": "user", "content": "把这句话翻译成英文：你好"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "那上海呢？"},
        ],
        "tools": [],
        "output": "Shanghai",
        "reply_extra": {},
        "draft": "Shang hai",
        "metadata": {"id": 7},
    }
    return {**base, **overrides}


def tool_sample(**overrides):
    """A user question, a tool call, its result and the reply, with the tool's definition."""
    messages = [
        {"role": "user", "content": "北京天气怎么样？"},
        {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "北京"}, "call_1")]},
        {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call_1", "name": "get_weather"},
    ]
    return sample(messages=messages, tools=[WEATHER_TOOL], output="北京 21 度，晴。", **overrides)


def lines(buffer: io.BytesIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().decode().splitlines()]


def load_jsonl(tmp_path, write, samples, name="train.jsonl"):
    """Write `samples` with `write` and read the file back as trainers do (datasets' json loader)."""
    path = tmp_path / name
    with path.open("wb") as stream:
        write(samples, stream)
    return path, datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "c")
    )


def llamafactory_read(entry: dict, row: dict) -> dict:
    """One row as LLaMA-Factory's dataset converters read it with `entry` (data/README.md): every column and
    tag the entry names must be in the row, sharegpt turns must alternate user|observation with
    assistant|function, tools is JSON text. Returns the aligned prompt / response / system / tools."""
    columns = entry["columns"]
    for column in columns.values():
        assert column in row, f"the entry names column {column!r}, which the record lacks"
    tools = row.get(columns["tools"], "") if "tools" in columns else ""
    assert isinstance(tools, str), "LLaMA-Factory reads tools as JSON text"
    if tools:
        json.loads(tools)
    if entry.get("formatting", "alpaca") == "alpaca":
        prompt = []
        for old_prompt, old_response in row.get(columns.get("history")) or []:
            prompt += [
                {"role": "user", "content": old_prompt},
                {"role": "assistant", "content": old_response},
            ]
        query = [row[columns[key]] for key in ("prompt", "query") if key in columns and row[columns[key]]]
        prompt.append({"role": "user", "content": "\n".join(query)})
        answers = [columns[key] for key in ("response", "chosen", "rejected") if key in columns]
        response = [{"role": "assistant", "content": row[column]} for column in answers]
        return {
            "prompt": prompt,
            "response": response,
            "system": row.get(columns.get("system"), ""),
            "tools": tools,
        }
    tags = entry["tags"]
    names = {
        tags["user_tag"]: "user",
        tags["assistant_tag"]: "assistant",
        tags.get("observation_tag"): "observation",
        tags.get("function_tag"): "function",
        tags["system_tag"]: "system",
    }
    messages = row[columns["messages"]]
    system = row.get(columns.get("system"), "") or ""
    if messages and messages[0][tags["role_tag"]] == tags["system_tag"]:
        system, messages = messages[0][tags["content_tag"]], messages[1:]
    accepted = ({"user", "observation"}, {"assistant", "function"})
    aligned = []
    for position, turn in enumerate(messages):
        role = names.get(turn[tags["role_tag"]])
        assert role in accepted[position % 2], (
            f"LLaMA-Factory would skip this row: turn {position + 1} is {role}"
        )
        aligned.append({"role": role, "content": turn[tags["content_tag"]]})
    assert len(aligned) % 2 == 0, "LLaMA-Factory would skip this row: it does not end with the assistant"
    return {"prompt": aligned[:-1], "response": aligned[-1:], "system": system, "tools": tools}


def test_sharegpt_keeps_every_turn_the_system_prompt_and_the_reply_last(tmp_path):
    # given a three-turn conversation and its reply
    path, loaded = load_jsonl(tmp_path, write_sharegpt_jsonl, [sample()])

    # when LLaMA-Factory reads the file with its entry
    read = llamafactory_read(dataset_info_entry("sharegpt", path.name), loaded[0])

    # then every turn is there, in order, the reply last
    assert [(t["role"], t["content"]) for t in read["prompt"] + read["response"]] == [
        ("user", "把这句话翻译成英文：你好"), ("assistant", "Hello"), ("user", "那上海呢？"),
        ("assistant", "Shanghai")]  # fmt: skip
    assert read["system"] == "你是翻译"


def test_sharegpt_writes_tool_calls_as_function_call_turns_and_tools_as_json_text(tmp_path):
    path, loaded = load_jsonl(tmp_path, write_sharegpt_jsonl, [tool_sample()])

    row = loaded[0]
    assert [t["from"] for t in row["conversations"]] == ["human", "function_call", "observation", "gpt"]
    # LLaMA-Factory's function_call value: JSON {"name", "arguments"} with the arguments as an object
    assert json.loads(row["conversations"][1]["value"]) == {
        "name": "get_weather", "arguments": {"city": "北京"}, "id": "call_1"}  # fmt: skip
    assert row["conversations"][2]["value"] == '{"temp": 21}'
    assert json.loads(row["tools"]) == [WEATHER_TOOL]
    read = llamafactory_read(dataset_info_entry("sharegpt", path.name), row)
    assert [t["role"] for t in read["prompt"]] == ["user", "function", "observation"]


def test_sharegpt_joins_parallel_tool_results_into_one_observation_as_llamafactory_does():
    calls = [call("get_weather", {"city": "北京"}, "a"), call("get_weather", {"city": "上海"}, "b")]
    messages = [
        {"role": "user", "content": "北京和上海？"},
        {"role": "assistant", "content": "", "tool_calls": calls},
        {"role": "tool", "content": "21", "tool_call_id": "a"},
        {"role": "tool", "content": "25", "tool_call_id": "b"},
    ]
    buffer = io.BytesIO()

    write_sharegpt_jsonl([sample(messages=messages, tools=[WEATHER_TOOL])], buffer)

    turns = lines(buffer)[0]["conversations"]
    assert [t["from"] for t in turns] == ["human", "function_call", "observation", "gpt"]
    assert [c["arguments"]["city"] for c in json.loads(turns[1]["value"])] == ["北京", "上海"]
    assert turns[2] == {"from": "observation", "value": "21" + TOOL_RESULTS_JOIN + "25"}


def test_sharegpt_refuses_a_turn_with_text_and_tool_calls_rather_than_dropping_the_text():
    messages = [
        {"role": "user", "content": "北京天气？"},
        {
            "role": "assistant",
            "content": "我查一下。",
            "tool_calls": [call("get_weather", {"city": "北京"}, "a")],
        },
        {"role": "tool", "content": "21", "tool_call_id": "a"},
    ]

    with pytest.raises(ExportValidationError, match="sample 7: turn 2 has text and tool calls"):
        write_sharegpt_jsonl([sample(messages=messages)], io.BytesIO())


def test_sharegpt_keeps_a_turns_own_keys_beside_from_and_value():
    messages = [
        {"role": "user", "content": "Hi", "name": "li"},
        {"role": "assistant", "content": "Yo", "weight": 0},
        {"role": "user", "content": "Again"},
    ]
    buffer = io.BytesIO()

    write_sharegpt_jsonl([sample(messages=messages, reply_extra={"weight": 1})], buffer)

    turns = lines(buffer)[0]["conversations"]
    assert turns[0] == {"from": "human", "value": "Hi", "name": "li"}
    assert turns[1]["weight"] == 0 and turns[3] == {"from": "gpt", "value": "Shanghai", "weight": 1}


def test_openai_messages_keep_every_turn_and_key_and_the_reply_extras(tmp_path):
    path, loaded = load_jsonl(tmp_path, write_openai_jsonl, [tool_sample(reply_extra={"weight": 1})])

    messages = loaded[0]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert messages[2]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "北京"}',
    }
    assert messages[3]["tool_call_id"] == "call_1" and messages[3]["name"] == "get_weather"
    assert messages[4]["content"] == "北京 21 度，晴。" and messages[4]["weight"] == 1
    assert loaded[0]["tools"][0]["function"]["name"] == "get_weather"


def test_openai_has_no_system_message_or_tools_when_there_are_none():
    buffer = io.BytesIO()

    write_openai_jsonl([sample(system="")], buffer)

    [record] = lines(buffer)
    assert set(record) == {"messages"} and record["messages"][0]["role"] == "user"


def test_openai_file_reads_in_llamafactory_with_its_entry(tmp_path):
    path, loaded = load_jsonl(tmp_path, write_openai_jsonl, [sample()])

    read = llamafactory_read(dataset_info_entry("openai", path.name), loaded[0])

    assert read["system"] == "你是翻译" and len(read["prompt"]) == 3
    assert read["response"] == [{"role": "assistant", "content": "Shanghai"}]


def test_alpaca_writes_the_earlier_pairs_as_history_and_reads_back_whole(tmp_path):
    path, loaded = load_jsonl(tmp_path, write_alpaca_jsonl, [sample(), sample(system="", messages=None)])
    entry = dataset_info_entry("alpaca", path.name)

    first, second = (llamafactory_read(entry, row) for row in loaded)

    assert loaded[0]["history"] == [["把这句话翻译成英文：你好", "Hello"]]
    assert loaded[0]["instruction"] == "那上海呢？" and loaded[0]["output"] == "Shanghai"
    assert [t["content"] for t in first["prompt"]] == ["把这句话翻译成英文：你好", "Hello", "那上海呢？"]
    assert first["system"] == "你是翻译"
    # a sample of one user turn (messages absent: `input`) has no history
    assert loaded[1]["history"] == [] and second["prompt"] == [{"role": "user", "content": "那上海呢？"}]
    assert set(loaded.column_names) == set(entry["columns"].values())


def test_alpaca_refuses_a_tool_conversation_naming_the_sample_and_the_turn():
    with pytest.raises(
        ExportValidationError, match="sample 7: turn 2 is a tool call, which alpaca cannot hold"
    ):
        write_alpaca_jsonl([sample(), tool_sample()], io.BytesIO())


def test_alpaca_refuses_turn_keys_it_has_no_place_for():
    with pytest.raises(ExportValidationError, match=r"turn 4 has keys \(weight\) which alpaca cannot hold"):
        write_alpaca_jsonl([sample(reply_extra={"weight": 0})], io.BytesIO())


def test_alpaca_context_can_go_to_the_input_column():
    buffer = io.BytesIO()

    write_alpaca_jsonl([sample(messages=None, input="你好")], buffer, context_as="input")

    assert lines(buffer) == [
        {"instruction": "你好", "input": "你是翻译", "output": "Shanghai", "history": [], "tools": ""}
    ]
    assert set(dataset_info_entry("alpaca", "f.jsonl", context_as="input")["columns"].values()) == {
        "instruction", "input", "output", "history", "tools"}  # fmt: skip


def test_a_sample_named_the_old_way_is_one_user_turn_with_its_system_prompt():
    # given a sample as snapshot files still give it: input and context, no messages
    old = {"input": "Q?", "context": "Be brief.", "output": "A.", "draft": "", "metadata": {"id": 1}}
    buffer = io.BytesIO()

    write_sharegpt_jsonl([old], buffer)

    assert lines(buffer)[0]["conversations"][0] == {"from": "human", "value": "Q?"}
    assert lines(buffer)[0]["system"] == "Be brief."


def test_chinese_is_written_unescaped():
    buffer = io.BytesIO()

    write_alpaca_jsonl([sample()], buffer)

    assert "你好".encode() in buffer.getvalue()


def test_preference_pairs_keep_history_and_system(tmp_path):
    samples = [sample(), sample(draft=""), sample(draft="Shanghai "), sample(output="沪", draft="Hey")]

    path, loaded = load_jsonl(tmp_path, write_preference_jsonl, samples)

    assert [(r["chosen"], r["rejected"]) for r in loaded] == [("Shanghai", "Shang hai"), ("沪", "Hey")]
    entry = dataset_info_entry("preference", path.name)
    assert entry["ranking"] is True and set(loaded.column_names) == set(entry["columns"].values())
    read = llamafactory_read(entry, loaded[0])
    assert read["system"] == "你是翻译" and [t["content"] for t in read["prompt"]][:2] == [
        "把这句话翻译成英文：你好", "Hello"]  # fmt: skip
    assert [t["content"] for t in read["response"]] == ["Shanghai", "Shang hai"]


def test_empty_output_is_refused_naming_the_sample():
    with pytest.raises(ExportValidationError, match="sample 42: output is empty"):
        write_alpaca_jsonl([sample(output="  ", metadata={"id": 42})], io.BytesIO())


def test_a_reply_that_is_a_tool_call_needs_no_text():
    reply_extra = {"tool_calls": [call("get_weather", {"city": "北京"}, "c")]}
    buffer = io.BytesIO()

    write_openai_jsonl([sample(output="", reply_extra=reply_extra)], buffer)

    assert lines(buffer)[0]["messages"][-1] == {"role": "assistant", "content": "", **reply_extra}


def test_a_conversation_out_of_order_is_refused_naming_the_turn():
    messages = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]

    with pytest.raises(ExportValidationError, match="sample 7: turn 2: an assistant turn is missing"):
        write_openai_jsonl([sample(messages=messages)], io.BytesIO())


def test_sample_without_an_id_is_named_by_position():
    with pytest.raises(ExportValidationError, match="sample #2: input must be text"):
        write_sharegpt_jsonl([sample(), sample(messages=None, input=5, metadata={})], io.BytesIO())


def test_conversation_roles_must_alternate():
    turns = [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]

    with pytest.raises(ExportValidationError, match="roles must alternate"):
        validate_conversation(turns, SHAREGPT_TAGS, "sample 1")


def test_conversation_must_end_with_the_assistant():
    turns = [{"from": "system", "value": "s"}, {"from": "human", "value": "a"}]

    with pytest.raises(ExportValidationError, match="ending with the assistant"):
        validate_conversation(turns, SHAREGPT_TAGS, "sample 1")


def test_sharegpt_and_openai_entries_name_every_tag():
    sharegpt, openai = dataset_info_entry("sharegpt", "s.jsonl"), dataset_info_entry("openai", "o.jsonl")

    assert sharegpt["formatting"] == openai["formatting"] == "sharegpt"
    assert sharegpt["columns"] == {"messages": "conversations", "system": "system", "tools": "tools"}
    assert sharegpt["tags"] == SHAREGPT_TAGS and sharegpt["tags"]["function_tag"] == "function_call"
    assert openai["tags"] == OPENAI_TAGS and openai["tags"]["observation_tag"] == "tool"


def test_dataset_info_key_format_is_refused_with_a_hint():
    with pytest.raises(ExportValidationError, match="did you mean 'formatting'"):
        validate_dataset_info_entry({"file_name": "a.json", "format": "sharegpt"})


def test_dataset_info_ranking_without_chosen_is_refused():
    with pytest.raises(ExportValidationError, match="chosen and rejected"):
        validate_dataset_info_entry({"file_name": "a.json", "ranking": True, "columns": {"prompt": "q"}})


@pytest.mark.parametrize("fmt", ["alpaca", "parquet", "preference", "sharegpt", "openai"])
def test_every_generated_entry_passes_validation(fmt):
    validate_dataset_info_entry(dataset_info_entry(fmt, "f"))
