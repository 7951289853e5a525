"""Conversations through the real import (API upload, then the job as the worker runs it): every turn,
key and id kept, the key report in the API, errors naming the turn."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.importing import import_job_run
from annotation.models import ComplianceFlag, Item
from annotation.selectors import items_with_metadata
from tests.import_helpers import jsonl

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def import_file(api, people, project, name, content, **fields) -> dict:
    client = api(people["admin"])
    if isinstance(fields.get("mapping"), dict):
        fields["mapping"] = json.dumps(fields["mapping"])
    response = client.post(
        f"/api/projects/{project.pk}/imports/", {"file": SimpleUploadedFile(name, content), **fields},
        format="multipart",
    )  # fmt: skip
    assert response.status_code == 202, response.json()
    import_job_run(job_id=response.json()["id"])
    return client.get(f"/api/imports/{response.json()['id']}/").json()


def turns(*pairs):
    return [{"from": tag, "value": value} for tag, value in pairs]


def test_sharegpt_file_with_four_turn_conversations_imports_every_turn(api, people, project):
    # given the ShareGPT file: one conversation of human, gpt, human, gpt
    record = {"conversations": turns(("human", "我的订单没到"), ("gpt", "请提供订单号"), ("human", "12345"),
                                     ("gpt", "已为您查询：明天送达"))}  # fmt: skip

    # when
    job = import_file(api, people, project, "chat.jsonl", jsonl(record))

    # then one item holds the first three turns and the fourth as its reply; the job says so
    assert (job["status"], job["counts"]["imported"]) == ("succeeded", 1)
    assert job["detected_format"] == "sharegpt"
    assert job["key_report"] == {"conversations": {"to": "messages", "rows": 1}}
    item = Item.objects.get(project=project)
    assert item.messages == [
        {"role": "user", "content": "我的订单没到"},
        {"role": "assistant", "content": "请提供订单号"},
        {"role": "user", "content": "12345"},
    ]
    assert (item.input, item.reference_output) == ("12345", "已为您查询：明天送达")


def test_plain_qa_file_keeps_the_answer_the_id_and_the_category(api, people, project):
    # given the JSONL in the most common Q/A shape
    content = jsonl(
        {"id": "7", "input": "How do I reset my password?", "output": "Use the link.", "category": "it"}
    )

    job = import_file(api, people, project, "qa.jsonl", content)

    item = Item.objects.get(project=project)
    assert (item.external_id, item.reference_output, item.metadata) == (
        "7",
        "Use the link.",
        {"category": "it"},
    )
    assert job["key_report"] == {
        "id": {"to": "external_id", "rows": 1},
        "input": {"to": "input", "rows": 1},
        "output": {"to": "reference_output", "rows": 1},
        "category": {"to": "metadata.category", "rows": 1},
    }
    # and the metadata is a JSON object the metadata filters find (not JSON text)
    assert list(items_with_metadata(Item.objects.all(), {"category": "it"})) == [item]


def test_openai_file_with_a_system_message_and_tool_calls(api, people, project):
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "track", "arguments": '{"order": "42"}'}}
    ]
    tools = [{"type": "function", "function": {"name": "track", "parameters": {"type": "object"}}}]
    messages = [
        {"role": "system", "content": "你是物流助手。"},
        {"role": "user", "content": "订单 42 到哪了?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "content": '{"city": "上海"}', "tool_call_id": "call_1"},
        {"role": "assistant", "content": "在上海。", "weight": 1},
    ]

    job = import_file(
        api, people, project, "chat.jsonl", jsonl({"messages": messages, "tools": tools, "id": 3})
    )

    item = Item.objects.get(project=project)
    assert job["detected_format"] == "openai"
    assert (item.system, item.external_id, item.tools) == ("你是物流助手。", "3", tools)
    assert item.messages == [
        messages[1],
        {"role": "assistant", "content": "", "tool_calls": calls},
        messages[3],
    ]
    assert (item.reference_output, item.reference_extra) == ("在上海。", {"weight": 1})


def test_alpaca_with_history(api, people, project):
    record = {
        "instruction": "那退货呢?",
        "input": "",
        "output": "七天内可退。",
        "history": [["能换货吗?", "可以。"]],
    }

    import_file(api, people, project, "a.jsonl", jsonl(record))

    item = Item.objects.get(project=project)
    assert item.messages == [
        {"role": "user", "content": "能换货吗?"},
        {"role": "assistant", "content": "可以。"},
        {"role": "user", "content": "那退货呢?"},
    ]
    assert item.reference_output == "七天内可退。"


def test_label_studio_export_with_annotations(api, people, project):
    annotations = [{"id": 9, "result": [{"value": {"text": ["在订单页"]}}]}]
    tasks = [
        {
            "id": 101,
            "data": {"text": "发票怎么开?", "channel": "app"},
            "annotations": annotations,
            "project": 4,
        }
    ]

    job = import_file(api, people, project, "ls.json", json.dumps(tasks, ensure_ascii=False).encode())

    item = Item.objects.get(project=project)
    assert (item.input, item.external_id) == ("发票怎么开?", "101")
    assert item.metadata == {
        "channel": "app",
        "label_studio": {"annotations": tasks[0]["annotations"], "project": 4},
    }
    assert job["key_report"]["annotations"] == {"to": "metadata.label_studio.annotations", "rows": 1}


def test_csv_with_extra_columns(api, people, project):
    content = "question,answer,id,category,priority_hint\n怎么退款?,在订单页申请。,11,售后,high\n".encode()

    import_file(api, people, project, "faq.csv", content)

    item = Item.objects.get(project=project)
    assert (item.input, item.reference_output, item.external_id) == ("怎么退款?", "在订单页申请。", "11")
    assert item.metadata == {"category": "售后", "priority_hint": "high"}


def test_a_mapping_with_null_keeps_the_key_as_metadata(api, people, project):
    content = jsonl({"id": "run-1", "prompt": "q"})

    job = import_file(api, people, project, "q.jsonl", content, mapping={"external_id": None})

    assert Item.objects.get(project=project).metadata == {"id": "run-1"}
    assert job["key_report"]["id"] == {"to": "metadata.id", "rows": 1}


def test_a_conversation_that_cannot_be_read_fails_naming_line_and_turn(api, people, project):
    good = {"conversations": turns(("human", "q"), ("gpt", "a"))}
    bad = {"conversations": turns(("human", "q"), ("gpt", "a"), ("human", "q2"), ("human", "q3"))}

    job = import_file(api, people, project, "chat.jsonl", jsonl(good, bad))

    assert job["status"] == "failed" and "nothing was imported" in job["message"]
    assert job["errors"] == [{"line": 2, "field": "conversations", "turn": 4,
                              "reason": "an assistant turn is missing before this user turn"}]  # fmt: skip
    assert not Item.objects.exists()


def test_redaction_covers_every_turn_and_metadata(api, people, project):
    conversation = turns(("human", "我的邮箱 li@example.com"), ("gpt", "好的"), ("human", "电话 13800138000"),
                         ("gpt", "已记录 li@example.com"))  # fmt: skip
    record = {"conversations": conversation, "contact": "li@example.com"}

    import_file(api, people, project, "chat.jsonl", jsonl(record), redact=True)

    item = Item.objects.get(project=project)
    assert [turn["content"] for turn in item.messages] == ["我的邮箱 [EMAIL]", "好的", "电话 [PHONE]"]
    assert (item.reference_output, item.metadata) == ("已记录 [EMAIL]", {"contact": "[EMAIL]"})


def test_compliance_phrases_in_an_earlier_turn_flag_the_item(api, people, project):
    project.compliance_phrases = ["保证收益"]
    project.save()
    record = {
        "conversations": turns(("human", "这个基金保证收益吗?"), ("gpt", "不保证。"), ("human", "费率呢?"))
    }

    job = import_file(api, people, project, "chat.jsonl", jsonl(record))

    assert job["counts"]["flagged"] == 1
    assert ComplianceFlag.objects.get().phrases == ["保证收益"]


def test_reimport_of_conversations_without_ids_is_deduplicated_by_the_whole_conversation(
    api, people, project
):
    # given two conversations that differ only in an earlier turn
    first = {"conversations": turns(("human", "q1"), ("gpt", "a1"), ("human", "same"))}
    second = {"conversations": turns(("human", "q1"), ("gpt", "other"), ("human", "same"))}
    import_file(api, people, project, "chat.jsonl", jsonl(first, second))

    # when the same file comes again
    job = import_file(api, people, project, "chat.jsonl", jsonl(first, second))

    # then both were kept the first time and nothing is new the second
    assert Item.objects.filter(project=project).count() == 2
    assert (job["counts"]["imported"], job["counts"]["duplicates"]) == (0, 2)


def test_ids_given_as_numbers_dedupe_as_text(api, people, project):
    import_file(api, people, project, "q.jsonl", jsonl({"id": 1, "input": "a"}))
    job = import_file(api, people, project, "q.json", json.dumps([{"id": "1", "input": "changed"}]).encode())
    assert (job["counts"]["imported"], job["counts"]["duplicates"]) == (0, 1)


def test_a_mapping_that_names_the_system_prompt_context_still_works(api, people, project):
    content = b"q,background\nWhat now?,You are terse.\n"

    import_file(api, people, project, "q.csv", content, mapping={"input": "q", "context": "background"})

    assert Item.objects.get(project=project).system == "You are terse."
