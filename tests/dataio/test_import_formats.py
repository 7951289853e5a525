"""Import formats: each record becomes a whole conversation, every other key metadata, or an error naming
the line, the key and the turn."""

import io
import json

import pytest

from annotation.dataio.conversation import content_hash, content_hash_with_json
from annotation.dataio.parsers import KeyReport, ParsedRow, RowError, read_records
from annotation.dataio.records import row_redacted
from tests.import_helpers import jsonl


def read(data: bytes, **kwargs) -> list:
    """Every result; with keys=KeyReport(), the valid rows counted into it as an import counts them."""
    kwargs.setdefault("filename", "upload.jsonl")
    results = list(read_records(io.BytesIO(data), **kwargs))
    for result in results:
        if isinstance(result, ParsedRow) and kwargs.get("keys") is not None:
            kwargs["keys"].add(result.keys)
    return results


def only_row(results: list) -> ParsedRow:
    assert [type(r) for r in results] == [ParsedRow], results
    return results[0]


def user(text):
    return {"role": "user", "content": text}


def assistant(text, **keys):
    return {"role": "assistant", "content": text, **keys}


def sharegpt(*turns, **record):
    return {"conversations": [{"from": tag, "value": value} for tag, value in turns], **record}


# --- the two files of the issue -------------------------------------------------------------------------


def test_sharegpt_four_turns_become_three_turns_and_the_reply():
    # given a ShareGPT record whose conversation has four turns
    record = sharegpt(("human", "问题一"), ("gpt", "回答一"), ("human", "问题二"), ("gpt", "回答二"))

    # when
    row = only_row(read(jsonl(record)))

    # then every turn is kept: the first three as the conversation, the fourth as the reply
    assert row.messages == [user("问题一"), assistant("回答一"), user("问题二")]
    assert (row.reference_output, row.input) == ("回答二", "问题二")


def test_plain_qa_record_keeps_the_id_the_answer_and_the_category():
    row = only_row(read(jsonl({"id": "7", "input": "How do I reset?", "output": "Hold the button.",
                               "category": "it"})))  # fmt: skip

    assert (row.external_id, row.reference_output, row.metadata) == (
        "7",
        "Hold the button.",
        {"category": "it"},
    )
    assert row.messages == [user("How do I reset?")]


def test_the_key_report_says_where_each_key_went():
    keys = KeyReport()
    data = jsonl({"id": "7", "input": "q", "output": "a", "category": "it"}, {"id": "8", "input": "q2"})

    read(data, keys=keys)

    assert keys.format == "jsonl"
    assert keys.as_dict() == {
        "id": {"to": "external_id", "rows": 2},
        "input": {"to": "input", "rows": 2},
        "output": {"to": "reference_output", "rows": 1},
        "category": {"to": "metadata.category", "rows": 1},
    }


# --- ShareGPT --------------------------------------------------------------------------------------------


def test_sharegpt_system_turn_and_top_level_keys():
    record = sharegpt(("system", "你是客服。"), ("human", "q"), ("gpt", "a"), id=12, source="forum")

    row = only_row(read(jsonl(record)))

    assert (row.system, row.external_id, row.metadata) == ("你是客服。", "12", {"source": "forum"})


def test_sharegpt_function_call_and_observation_become_a_tool_call_and_its_result():
    # given LLaMA-Factory's tool-use shape: tools as JSON text, function_call values as JSON
    tools = [{"name": "weather", "description": "Weather by city", "parameters": {"type": "object"}}]
    call = json.dumps({"name": "weather", "arguments": {"city": "北京"}}, ensure_ascii=False)
    record = sharegpt(("human", "北京天气?"), ("function_call", call), ("observation", '{"temp": 3}'),
                      ("gpt", "3 度。"), tools=json.dumps(tools))  # fmt: skip

    row = only_row(read(jsonl(record)))

    calls = [{"type": "function", "function": {"name": "weather", "arguments": '{"city": "北京"}'}}]
    assert row.messages == [user("北京天气?"), assistant("", tool_calls=calls),
                            {"role": "tool", "content": '{"temp": 3}'}]  # fmt: skip
    assert (row.reference_output, row.tools) == ("3 度。", tools)


def test_sharegpt_tools_as_a_list_are_kept_as_given():
    tools = [{"type": "function", "function": {"name": "f"}}]
    row = only_row(read(jsonl(sharegpt(("human", "q"), ("gpt", "a"), tools=tools))))
    assert row.tools == tools


def test_sharegpt_reply_that_is_a_tool_call_keeps_the_call_as_reply_keys():
    call = json.dumps({"name": "f", "arguments": "{}"})
    row = only_row(read(jsonl(sharegpt(("human", "q"), ("function_call", call)))))
    assert row.reference_output == ""
    assert row.reference_extra == {
        "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]
    }


@pytest.mark.parametrize(
    ("turns", "turn", "reason"),
    [
        ([("human", "q1"), ("human", "q2")], 2, "an assistant turn is missing before this user turn"),
        ([("human", "q"), ("gpt", "  ")], 2, "the assistant turn is empty"),
        ([("gpt", "hi"), ("human", "q")], 1, "a conversation starts with the user, not the assistant"),
        ([("human", "q"), ("bot", "a")], 2,
         "unknown role 'bot'; expected one of human, user, gpt, assistant, system, function_call, "
         "observation, tool"),
        ([("human", "q"), ("gpt", "a"), ("system", "s")], 3, "a system turn may only come first"),
        ([("human", "q"), ("function_call", "not json")], 2,
         'a function_call value must be JSON {"name", "arguments"}: Expecting value'),
        ([("human", "q"), ("gpt", "a"), ("observation", "r")], 3,
         "a tool turn must follow an assistant turn that calls a tool"),
    ],
    ids=["two_users", "empty_turn", "starts_with_assistant", "unknown_role", "late_system", "bad_call",
         "stray_observation"],
)  # fmt: skip
def test_sharegpt_conversation_that_cannot_be_read_names_line_key_and_turn(turns, turn, reason):
    data = jsonl(sharegpt(("human", "fine"), ("gpt", "ok")), sharegpt(*turns))

    results = read(data)

    assert [r for r in results if isinstance(r, RowError)] == [RowError(2, "conversations", reason, turn)]


def test_sharegpt_in_a_json_array_names_the_record_number():
    data = json.dumps([sharegpt(("human", "q"), ("gpt", "a")), sharegpt(("human", "q"), ("gpt", 5))]).encode()

    results = read(data, filename="a.json")

    assert results[1] == RowError(2, "conversations", "content must be text, not a number", 2)


def test_duplicate_external_id_names_both_lines():
    data = jsonl(
        sharegpt(("human", "a"), id="x"), sharegpt(("human", "b"), id="y"), sharegpt(("human", "c"), id="x")
    )

    results = read(data)

    assert results[2] == RowError(3, "external_id", "duplicate external_id 'x' (first on line 1)")


# --- OpenAI chat / TRL conversational ---------------------------------------------------------------------


def test_openai_messages_keep_system_tool_calls_names_and_other_turn_keys():
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "订单"}'}}
    ]
    messages = [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": "Where is order 42?", "name": "li"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "content": "shipped", "tool_call_id": "call_1", "name": "lookup"},
        {"role": "assistant", "content": "It has shipped.", "weight": 1},
    ]
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]

    row = only_row(read(jsonl({"messages": messages, "tools": tools, "split": "train"})))

    assert row.system == "You are a support agent."
    assert row.messages == [messages[1], assistant("", tool_calls=calls), messages[3]]
    assert (row.reference_output, row.reference_extra) == ("It has shipped.", {"weight": 1})
    assert (row.tools, row.metadata) == (tools, {"split": "train"})


def test_openai_content_parts_are_refused_rather_than_flattened():
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]

    results = read(jsonl({"messages": messages}))

    assert results == [RowError(1, "messages", "content must be text, not an array; only text content is "
                                               "supported", 1)]  # fmt: skip


def test_a_key_of_a_system_turn_that_would_be_lost_is_named():
    messages = [{"role": "system", "content": "s", "weight": 0}, user("q")]

    results = read(jsonl({"messages": messages}))

    assert results == [RowError(1, "messages", "the system turn has keys that would be lost: weight", 1)]


def test_reply_given_twice_is_refused():
    results = read(jsonl({"messages": [user("q"), assistant("a")], "output": "b"}), mapping={})

    assert results == [RowError(1, "output", "the reply is given twice: by 'output' and by the last turn of "
                                             "'messages'")]  # fmt: skip


def test_messages_ending_with_the_user_take_the_reply_from_a_reply_key():
    row = only_row(read(jsonl({"messages": [user("q")], "response": "a"}), mapping={}))
    assert (row.messages, row.reference_output) == ([user("q")], "a")


# --- alpaca ----------------------------------------------------------------------------------------------


def test_alpaca_history_becomes_the_earlier_turns_in_order():
    record = {"instruction": "翻译", "input": "你好", "output": "Hello", "system": "Be brief",
              "history": [["第一问", "第一答"], ["第二问", "第二答"]]}  # fmt: skip

    row = only_row(read(jsonl(record)))

    assert row.messages == [user("第一问"), assistant("第一答"), user("第二问"), assistant("第二答"),
                            user("翻译\n你好")]  # fmt: skip
    assert (row.system, row.reference_output, row.metadata) == ("Be brief", "Hello", {})


@pytest.mark.parametrize(
    ("history", "reason"),
    [
        ([["q", "a", "extra"]], "entry 1 must be a [user, assistant] pair, not 3 entries"),
        ([["q", ""]], "entry 1: the assistant text is empty"),
        ("q", "expected a list of [user, assistant] pairs, found str"),
    ],
)
def test_alpaca_history_that_cannot_be_read_is_named(history, reason):
    results = read(jsonl({"instruction": "i", "output": "o", "history": history}))
    assert results == [RowError(1, "history", reason)]


# --- Label Studio ----------------------------------------------------------------------------------------


def test_label_studio_export_keeps_data_keys_and_task_keys_in_metadata():
    annotations = [{"id": 1, "result": []}]
    task = {"id": 41, "data": {"text": "问题", "category": "billing"}, "annotations": annotations,
            "predictions": [], "inner_id": 3}  # fmt: skip
    keys = KeyReport()

    row = only_row(read(json.dumps([task]).encode(), filename="export.json", keys=keys))

    assert (row.input, row.external_id) == ("问题", "41")
    task_keys = {"annotations": annotations, "predictions": [], "inner_id": 3}
    assert row.metadata == {"category": "billing", "label_studio": task_keys}
    assert keys.format == "label_studio"
    assert keys.as_dict()["annotations"] == {"to": "metadata.label_studio.annotations", "rows": 1}
    assert keys.as_dict()["data.text"] == {"to": "input", "rows": 1}


def test_label_studio_mapping_takes_fields_from_data_and_keeps_the_task_id():
    task = {"id": 41, "data": {"question": "q", "uid": "u-1", "answer": "a"}}
    mapping = {"input": "question", "external_id": "uid", "reference_output": "answer"}

    row = only_row(read(json.dumps([task]).encode(), filename="a.json", fmt="label_studio", mapping=mapping))

    assert (row.input, row.external_id, row.reference_output) == ("q", "u-1", "a")
    assert row.metadata == {"label_studio": {"id": 41}}


# --- plain records and CSV -------------------------------------------------------------------------------


def test_plain_record_keeps_json_values_in_metadata_as_they_are():
    record = {
        "question": "q",
        "answer": "a",
        "id": 7,
        "score": 0.5,
        "tags": ["x"],
        "meta": {"k": 1},
        "n": None,
    }

    row = only_row(read(jsonl(record)))

    assert (row.input, row.reference_output, row.external_id) == ("q", "a", "7")
    assert row.metadata == {"score": 0.5, "tags": ["x"], "meta": {"k": 1}, "n": None}


def test_a_records_own_metadata_object_is_merged_and_a_clash_refused():
    ok = only_row(read(jsonl({"input": "q", "metadata": {"category": "it"}, "lang": "zh"})))
    clash = read(jsonl({"input": "q", "metadata": {"lang": "en"}, "lang": "zh"}))

    assert ok.metadata == {"category": "it", "lang": "zh"}
    assert clash == [RowError(1, "lang", "key given twice, in metadata and beside it")]


def test_prompt_completion_records_are_recognised():
    row = only_row(read(jsonl({"prompt": "2+2?", "completion": "4"})))
    assert (row.input, row.reference_output) == ("2+2?", "4")


def test_csv_extra_columns_become_text_metadata():
    data = "id,question,answer,category,difficulty\n7,怎么退款?,在订单页申请。,售后,2\n".encode()
    keys = KeyReport()

    row = only_row(read(data, filename="faq.csv", keys=keys))

    assert (row.external_id, row.input, row.reference_output) == ("7", "怎么退款?", "在订单页申请。")
    assert row.metadata == {"category": "售后", "difficulty": "2"}
    assert keys.format == "csv" and keys.as_dict()["difficulty"] == {"to": "metadata.difficulty", "rows": 1}


def test_csv_history_and_messages_columns_hold_json():
    cell = json.dumps([user("q"), assistant("a")]).replace('"', '""')
    data = f'messages,topic\n"{cell}",t\n'.encode()
    row = only_row(read(data, filename="a.csv"))
    assert (row.messages, row.reference_output, row.metadata) == ([user("q")], "a", {"topic": "t"})


def test_mapping_overrides_recognition_and_the_recognised_key_becomes_metadata():
    record = {"input": "an input field that is not the question", "ask": "the question"}

    row = only_row(read(jsonl(record), mapping={"input": "ask"}))

    assert row.input == "the question"
    assert row.metadata == {"input": "an input field that is not the question"}


def test_mapping_a_field_to_null_keeps_its_key_as_metadata():
    row = only_row(read(jsonl({"id": "run-3", "input": "q"}), mapping={"external_id": None}))
    assert (row.external_id, row.metadata) == ("", {"id": "run-3"})


def test_mapping_messages_reads_turns_from_another_key_in_either_shape():
    record = {"dialog": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}], "prompt": "p"}

    row = only_row(read(jsonl(record), mapping={"messages": "dialog"}))

    assert (row.messages, row.reference_output, row.metadata) == ([user("q")], "a", {"prompt": "p"})


def test_turns_beside_a_question_key_keep_the_question_as_metadata():
    row = only_row(read(jsonl({"messages": [user("q"), assistant("a")], "prompt": "summary"}), mapping={}))
    assert row.metadata == {"prompt": "summary"}


@pytest.mark.parametrize(
    ("record", "error"),
    [
        ({"input": "q", "id": True}, RowError(1, "id", "expected text or a number, found a boolean")),
        ({"input": "q", "id": "x" * 256}, RowError(1, "id", "is 256 characters, over the 255 allowed")),
        ({"input": "q", "tools": {"name": "f"}}, RowError(1, "tools", "expected a list of tool definitions, "
                                                                      "found an object")),
        ({"input": "q", "output": 4}, RowError(1, "output", "expected text, found a number")),
    ],
    ids=["bool_id", "long_id", "tools_object", "numeric_answer"],
)  # fmt: skip
def test_values_that_cannot_be_kept_as_they_are_meant_are_named(record, error):
    assert read(jsonl(record)) == [error]


def test_numeric_ids_become_text():
    results = read(jsonl({"input": "a", "id": 3}, {"input": "b", "id": 4.0}, {"input": "c", "id": 4.5}))
    assert [r.external_id for r in results] == ["3", "4", "4.5"]


# --- redaction of a whole row ----------------------------------------------------------------------------


def test_row_redaction_covers_every_turn_tool_arguments_and_metadata_text():
    calls = [{"type": "function", "function": {"name": "f", "arguments": '{"mail": "a@b.cn", "n": 5}'}}]
    row = ParsedRow(line=1, messages=[user("a@b.cn"), assistant("", tool_calls=calls), {"role": "tool",
                    "content": "a@b.cn"}], system="a@b.cn", reference_output="a@b.cn",
                    metadata={"who": "a@b.cn", "deep": [{"x": "a@b.cn"}], "n": 5})  # fmt: skip

    clean = row_redacted(row, lambda text: text.replace("a@b.cn", "[EMAIL]"))

    assert [turn["content"] for turn in clean.messages] == ["[EMAIL]", "", "[EMAIL]"]
    assert json.loads(clean.messages[1]["tool_calls"][0]["function"]["arguments"]) == {
        "mail": "[EMAIL]",
        "n": 5,
    }
    assert (clean.system, clean.reference_output) == ("[EMAIL]", "[EMAIL]")
    assert clean.metadata == {"who": "[EMAIL]", "deep": [{"x": "[EMAIL]"}], "n": 5}


@pytest.mark.parametrize(
    ("system", "messages", "tools"),
    [
        ("", [user("你好")], []),
        ("sys", [user("q")], [{"type": "function", "function": {"name": "f"}}]),
        ("系统", [user("q1"), assistant("a1", weight=0), user("q2")], []),
        ("", [user("q"), assistant("", tool_calls=[{"type": "function", "function": {"name": "f"}}]),
              {"role": "tool", "content": "1.5", "tool_call_id": "c"}], [{"b": 1, "a": [2.5, None]}]),
    ],
    ids=["single_turn", "single_turn_with_tools", "multi_turn", "tool_calls"],
)  # fmt: skip
def test_the_hash_imports_compute_with_their_json_is_content_hash(system, messages, tools):
    # given the staging shortcut that hashes the JSON it stores
    digest, messages_json = content_hash_with_json(system=system, messages=messages, tools=tools)

    # then it is the conversation's content hash (dedup against items made elsewhere), and the JSON its turns
    assert digest == content_hash(system=system, messages=messages, tools=tools)
    assert json.loads(messages_json) == messages


def test_the_key_report_counts_rows_of_many_key_sets():
    # given more distinct key sets than the report keeps apart before folding them into per-key counts
    records = [{"input": f"q{n}", f"extra_{n % 300}": n} for n in range(600)]
    keys = KeyReport()

    read(jsonl(*records), keys=keys)

    report = keys.as_dict()
    assert report["input"] == {"to": "input", "rows": 600}
    assert report["extra_7"] == {"to": "metadata.extra_7", "rows": 2} and len(report) == 301
