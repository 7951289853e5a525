"""Round trips: a file imported, every item approved as it came, exported in the same format, equals the
file turn by turn (system prompt, tools, tool calls, unicode), through the real import, workflow and export.
"""

import json

import pytest

from annotation.models import Item, ItemStatus, Stage
from annotation.workflow.transitions import item_submit
from tests.import_helpers import jsonl
from tests.test_import_conversations import import_file
from tests.workflow_helpers import claim

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def one_tier(project):
    project.review_tiers = 1  # an annotator's submission approves: what is exported is what they sent
    project.save(update_fields=["review_tiers"])
    return project


def approve_as_imported(project, annotator) -> None:
    """Each imported item taken from the queue and answered with its own imported reply, unchanged."""
    for _ in range(Item.objects.filter(project=project).count()):
        item = claim(project, annotator, Stage.ANNOTATE)
        item_submit(item_id=item.pk, user=annotator, text=item.reference_output, version=item.version)
    assert not Item.objects.filter(project=project).exclude(status=ItemStatus.APPROVED).exists()


def exported(api, people, project, fmt: str) -> list[dict]:
    response = api(people["admin"]).get(f"/api/projects/{project.pk}/export/", {"format": fmt})
    assert response.status_code == 200, response.content
    lines = b"".join(response.streaming_content).decode("utf-8").splitlines()
    return [json.loads(line) for line in lines]


def parsed_function_calls(conversations: list[dict]) -> list[dict]:
    """ShareGPT function_call values are JSON text; compare what they say, not how they are spaced."""
    return [
        {**turn, "value": json.loads(turn["value"])} if turn["from"] == "function_call" else turn
        for turn in conversations
    ]


SHAREGPT = [
    {
        "id": "c-1",
        "system": "你是一位礼貌的客服。",
        "conversations": [
            {"from": "human", "value": "我的订单怎么还没到？"},
            {"from": "gpt", "value": "请提供您的订单号。"},
            {"from": "human", "value": "订单号是 A-1024 🙂"},
            {"from": "gpt", "value": "您的包裹正在配送中，预计明天下午送达。"},
        ],
    },
    {
        "id": "c-2",
        "system": "",
        "tools": json.dumps(
            [{"name": "get_weather", "description": "Weather of a city", "parameters": {"type": "object"}}],
            ensure_ascii=False,
        ),
        "conversations": [
            {"from": "human", "value": "北京天气怎么样？"},
            {
                "from": "function_call",
                "value": json.dumps({"name": "get_weather", "arguments": {"city": "北京"}}),
            },
            {"from": "observation", "value": '{"temp": 21}'},
            {"from": "gpt", "value": "北京今天 21 度，晴。"},
        ],
    },
]


def test_sharegpt_import_approve_export_gives_the_same_conversations(api, people, one_tier):
    job = import_file(api, people, one_tier, "chat.jsonl", jsonl(*SHAREGPT))
    assert job["status"] == "succeeded" and job["counts"]["imported"] == 2, job
    approve_as_imported(one_tier, people["annotator"])

    records = exported(api, people, one_tier, "sharegpt")

    assert len(records) == len(SHAREGPT)
    for original, record in zip(SHAREGPT, records, strict=True):
        assert parsed_function_calls(record["conversations"]) == parsed_function_calls(
            original["conversations"]
        )
        assert record["system"] == original["system"]
        assert json.loads(record.get("tools") or "[]") == json.loads(original.get("tools") or "[]")


OPENAI = [
    {
        "messages": [
            {"role": "system", "content": "You answer in one sentence."},
            {"role": "user", "content": "Où est ma commande ?"},
            {"role": "assistant", "content": "Quel est votre numéro de commande ?", "weight": 0},
            {"role": "user", "content": "C'est le 4521."},
            {"role": "assistant", "content": "Elle arrive demain matin."},
        ]
    },
    {
        "tools": [{"type": "function", "function": {"name": "track", "parameters": {"type": "object"}}}],
        "messages": [
            {"role": "user", "content": "Track parcel 77"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "track", "arguments": '{"n": 77}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_9", "name": "track", "content": "in transit"},
            {"role": "assistant", "content": "Parcel 77 is in transit."},
        ],
    },
]


def test_openai_messages_import_approve_export_gives_the_same_messages(api, people, one_tier):
    job = import_file(api, people, one_tier, "chat.jsonl", jsonl(*OPENAI))
    assert job["status"] == "succeeded" and job["counts"]["imported"] == 2, job
    approve_as_imported(one_tier, people["annotator"])

    records = exported(api, people, one_tier, "openai")

    for original, record in zip(OPENAI, records, strict=True):
        # a tool-calling turn with no text is written with empty text, which readers take alike
        expected = [{**m, "content": m["content"] or ""} for m in original["messages"]]
        assert [{**m, "content": m["content"] or ""} for m in record["messages"]] == expected
        assert record.get("tools", []) == original.get("tools", [])


ALPACA = [
    {
        "instruction": "把下面的句子翻译成英文",
        "input": "",
        "output": "Your refund has been processed.",
        "system": "你是翻译。",
        "history": [["你好", "Hello"], ["谢谢", "Thank you"]],
    },
    {"instruction": "Summarise: the parcel is late.", "input": "", "output": "Late parcel.", "history": []},
]


def test_alpaca_with_history_import_approve_export_gives_the_same_records(api, people, one_tier):
    job = import_file(api, people, one_tier, "alpaca.json", json.dumps(ALPACA, ensure_ascii=False).encode())
    assert job["status"] == "succeeded" and job["counts"]["imported"] == 2, job
    approve_as_imported(one_tier, people["annotator"])

    records = exported(api, people, one_tier, "alpaca")

    for original, record in zip(ALPACA, records, strict=True):
        for key in ("instruction", "input", "output", "history"):
            assert record[key] == original[key], key
        assert record.get("system", "") == original.get("system", "")
