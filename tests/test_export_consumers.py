"""Exports read back by their real consumers: datasets, a chat template (TRL's formatting and SFTTrainer), and
LLaMA-Factory's dataset_info entry; items imported as conversations and approved through the workflow."""

import json
from pathlib import Path

import datasets
import pytest
import trl
from transformers import AutoTokenizer
from trl.data_utils import apply_chat_template, is_conversational, maybe_apply_chat_template

from annotation.models import Item, ItemStatus, Stage
from annotation.services import items_create
from annotation.workflow.transitions import item_submit
from tests.dataio.test_exporters import llamafactory_read
from tests.test_drafting_support import tiny_model_path
from tests.workflow_helpers import claim, review

pytestmark = pytest.mark.django_db

SYSTEM = "你是一位礼貌的客服。"
THREE_TURNS = [
    {"role": "user", "content": "我的订单怎么还没到？"},
    {"role": "assistant", "content": "请提供您的订单号。"},
    {"role": "user", "content": "订单号是 A-1024 🙂"},
]
EDITED = "请提供您的订单号，我来帮您查询。"
REPLY = "您的包裹正在配送中，预计明天下午送达。"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "北京"}'},
}
TOOL_TURNS = [
    {"role": "user", "content": "北京天气怎么样？"},
    {"role": "assistant", "content": "", "tool_calls": [WEATHER_CALL]},
    {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call_1", "name": "get_weather"},
]
TOOL_REPLY = "北京今天 21 度，晴。"


@pytest.fixture
def chat_project(project):
    project.edit_all_assistant_turns = True
    project.save(update_fields=["edit_all_assistant_turns"])
    return project


def approve(project, people, answers):
    """Import nothing; take the project's new items in order through the three tiers with the real workflow.
    `answers` is one (reply, {turn index: text} or None) per item."""
    approved = Item.objects.filter(project=project, status=ItemStatus.APPROVED).count()
    for reply, turns in answers:
        item = claim(project, people["annotator"], Stage.ANNOTATE)
        item_submit(item_id=item.pk, user=people["annotator"], text=reply, version=item.version, turns=turns)
    for _ in answers:
        review(project, people["expert"], "expert")
    for _ in answers:
        review(project, people["domain_reviewer"], "domain")
    assert Item.objects.filter(project=project, status=ItemStatus.APPROVED).count() == approved + len(answers)


def three_turn_item(project, people, *, external_id="", **metadata):
    row = {"messages": THREE_TURNS, "system": SYSTEM, "metadata": metadata, "reference_output": REPLY,
           "external_id": external_id}  # fmt: skip
    items_create(project=project, actor=people["admin"], rows=[row])


def tool_item(project, people):
    row = {"messages": TOOL_TURNS, "tools": [WEATHER_TOOL], "reference_output": TOOL_REPLY}
    items_create(project=project, actor=people["admin"], rows=[row])


def download(api, people, project, tmp_path, **params):
    """The export through the API, saved as its file name says; with the dataset_info entry it came with."""
    response = api(people["admin"]).get(f"/api/projects/{project.pk}/export/", params)
    assert response.status_code == 200, response.content
    filename = response["Content-Disposition"].split('filename="')[1].rstrip('"')
    path = tmp_path / filename
    path.write_bytes(b"".join(response.streaming_content))
    info = json.loads(response["X-Dataset-Info"]) if "X-Dataset-Info" in response else {}
    entry = next(iter(info.values()), None)
    return path, entry


def load(tmp_path, kind, path):
    return datasets.load_dataset(kind, data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))


def tiny_tokenizer():
    return AutoTokenizer.from_pretrained(tiny_model_path())


def chatml(turns):
    """What the tiny model's ChatML template renders for `turns`."""
    return "<|bos|>" + "".join(f"<|im_start|>{t['role']}\n{t['content']}<|im_end|>\n" for t in turns)


def test_openai_export_renders_every_turn_through_the_chat_template_with_the_edited_turn(
    api, people, chat_project, tmp_path
):
    # given a three-turn conversation whose earlier assistant turn the annotator rewrote
    three_turn_item(chat_project, people)
    approve(chat_project, people, [(REPLY, {1: EDITED})])

    # when exported as OpenAI messages and read as TRL reads a dataset
    path, _ = download(api, people, chat_project, tmp_path, format="openai")
    row = load(tmp_path, "json", path)[0]
    tokenizer = tiny_tokenizer()

    # then the chat template renders the system prompt, every turn (the edited text, not the imported
    # one) and the approved reply
    expected = chatml([{"role": "system", "content": SYSTEM}, THREE_TURNS[0],
                       {"role": "assistant", "content": EDITED}, THREE_TURNS[2],
                       {"role": "assistant", "content": REPLY}])  # fmt: skip
    assert tokenizer.apply_chat_template(row["messages"], tokenize=False) == expected
    assert is_conversational(row)
    assert maybe_apply_chat_template(row, tokenizer)["text"] == expected


def test_sft_trainer_tokenizes_the_openai_export_whole(api, people, chat_project, tmp_path):
    three_turn_item(chat_project, people)
    approve(chat_project, people, [(REPLY, {1: EDITED})])
    path, _ = download(api, people, chat_project, tmp_path, format="openai")

    # when TRL's SFTTrainer prepares the file for training the tiny model
    trainer = trl.SFTTrainer(
        model=str(tiny_model_path()),
        train_dataset=load(tmp_path, "json", path),
        args=trl.SFTConfig(output_dir=str(tmp_path / "out"), report_to=[], max_steps=1, use_cpu=True),
    )

    # then its tokens are the whole conversation, unicode intact
    decoded = tiny_tokenizer().decode(trainer.train_dataset[0]["input_ids"])
    assert EDITED in decoded and REPLY in decoded and "A-1024 🙂" in decoded
    assert THREE_TURNS[1]["content"] + "<|im_end|>" not in decoded


def test_tool_calls_and_tools_reach_a_tool_aware_chat_template(api, people, project, tmp_path):
    # given a conversation with a tool call, its result and the tool's definition
    tool_item(project, people)
    approve(project, people, [(TOOL_REPLY, None)])
    path, _ = download(api, people, project, tmp_path, format="openai")
    row = load(tmp_path, "json", path)[0]
    # Qwen3's own chat template, as TRL ships it, renders tool calls and tool definitions.
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = (Path(trl.__file__).parent / "chat_templates" / "qwen3.jinja").read_text()

    # when TRL formats the example with the tools column, as SFTTrainer passes it
    text = apply_chat_template({"messages": row["messages"]}, tokenizer, tools=row["tools"])["text"]

    # then the call, the result, the tool's schema and the reply are all in the training text
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "北京"}}\n</tool_call>' in text
    assert '<tool_response>\n{"temp": 21}\n</tool_response>' in text
    assert json.loads(text.split("<tools>\n")[1].split("\n</tools>")[0]) == WEATHER_TOOL
    assert text.rstrip().endswith(TOOL_REPLY + "<|im_end|>")


def test_sharegpt_export_keeps_every_turn_and_llamafactory_reads_it_with_its_entry(
    api, people, project, tmp_path
):
    three_turn_item(project, people)
    tool_item(project, people)
    approve(project, people, [(REPLY, None), (TOOL_REPLY, None)])

    path, entry = download(api, people, project, tmp_path, format="sharegpt")
    plain, tool = load(tmp_path, "json", path)

    assert [(t["from"], t["value"]) for t in plain["conversations"]] == [
        ("human", THREE_TURNS[0]["content"]), ("gpt", THREE_TURNS[1]["content"]),
        ("human", THREE_TURNS[2]["content"]), ("gpt", REPLY)]  # fmt: skip
    assert plain["system"] == SYSTEM and plain["tools"] == ""
    assert [t["from"] for t in tool["conversations"]] == ["human", "function_call", "observation", "gpt"]
    assert json.loads(tool["conversations"][1]["value"])["arguments"] == {"city": "北京"}
    assert json.loads(tool["tools"]) == [WEATHER_TOOL]
    # the entry's columns and tags name what the records hold, and LLaMA-Factory keeps both rows
    assert entry["formatting"] == "sharegpt" and entry["file_name"] == path.name
    read = llamafactory_read(entry, tool)
    assert [t["role"] for t in read["prompt"]] == ["user", "function", "observation"]
    assert llamafactory_read(entry, plain)["system"] == SYSTEM


def test_alpaca_export_writes_the_earlier_turns_as_history(api, people, project, tmp_path):
    three_turn_item(project, people)
    approve(project, people, [(REPLY, None)])

    path, entry = download(api, people, project, tmp_path, format="alpaca")
    row = load(tmp_path, "json", path)[0]

    assert row["history"] == [[THREE_TURNS[0]["content"], THREE_TURNS[1]["content"]]]
    assert (row["instruction"], row["output"], row["system"]) == (THREE_TURNS[2]["content"], REPLY, SYSTEM)
    assert len(llamafactory_read(entry, row)["prompt"]) == 3


def test_alpaca_export_refuses_a_tool_conversation_by_name(api, people, project):
    # given an approved conversation with a tool call, which alpaca has no place for
    tool_item(project, people)
    approve(project, people, [(TOOL_REPLY, None)])
    item = Item.objects.get(project=project)

    # when exported as alpaca
    response = api(people["admin"]).get(f"/api/projects/{project.pk}/export/", {"format": "alpaca"})

    # then it is refused naming the sample and why, never exported with turns missing
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        f"Cannot export sample {item.pk}: turn 2 is a tool call, which alpaca cannot hold; export as "
        "sharegpt or openai."
    )


def test_parquet_export_filtered_by_metadata_reads_in_datasets_trl_and_llamafactory(
    api, people, project, tmp_path
):
    three_turn_item(project, people, external_id="q-1", category="it", priority=1)
    three_turn_item(project, people, external_id="q-2", category="law")
    approve(project, people, [(REPLY, None), ("另一个回答", None)])

    path, entry = download(api, people, project, tmp_path, format="parquet", **{"metadata.category": "it"})
    loaded = load(tmp_path, "parquet", path)

    assert (
        loaded.num_rows == 1
        and loaded[0]["metadata.category"] == "it"
        and loaded[0]["metadata.priority"] == 1
    )
    text = maybe_apply_chat_template({"messages": loaded[0]["messages"]}, tiny_tokenizer())["text"]
    assert text == chatml(
        [{"role": "system", "content": SYSTEM}, *THREE_TURNS, {"role": "assistant", "content": REPLY}]
    )
    assert llamafactory_read(entry, loaded[0])["response"] == [{"role": "assistant", "content": REPLY}]


def test_csv_export_reads_back_with_the_conversation_and_metadata(api, people, chat_project, tmp_path):
    three_turn_item(chat_project, people, category="it")
    approve(chat_project, people, [(REPLY, {1: EDITED})])

    path, entry = download(api, people, chat_project, tmp_path, format="csv")
    row = load(tmp_path, "csv", path)[0]

    assert entry is None  # CSV is for people: no LLaMA-Factory entry
    assert json.loads(row["messages"]) == [
        THREE_TURNS[0],
        {"role": "assistant", "content": EDITED},
        THREE_TURNS[2],
    ]
    assert (row["system"], row["output"], row["metadata.category"]) == (SYSTEM, REPLY, "it")
