"""Raw chat logs: messages grouped into sessions, split by gaps, ordered by time, duplicates dropped and
counted, every key kept, bad lines named."""

import io
import json
import random

import pytest

from annotation.dataio.chat_logs import ChatLogOptions, ChatLogReport, parse_time
from annotation.dataio.parsers import KeyReport, ParsedRow, RowError, read_records
from tests.import_helpers import jsonl


def read(data: bytes, *, gap: float = 30, filename: str = "chat.jsonl", keys=None, **options):
    report = ChatLogReport()
    chat_log = ChatLogOptions(gap_minutes=gap, **options)
    stream = io.BytesIO(data)
    results = list(
        read_records(
            stream, filename=filename, fmt="chat_log", chat_log=chat_log, chat_log_report=report, keys=keys
        )
    )
    for result in results:
        if isinstance(result, ParsedRow) and keys is not None:
            keys.add(result.keys)
    return results, report


def rows(results) -> list[ParsedRow]:
    assert all(isinstance(r, ParsedRow) for r in results), results
    return results


T = "2026-12-01T10:00:00Z"


def msg(session, at, role, text, **extra):
    return {"session_id": session, "timestamp": at, "role": role, "content": text, **extra}


ORDER = [
    msg("s-1001", "2026-12-01T09:00:00Z", "bot", "您好，我是小助手，请问有什么可以帮您？", channel="app"),
    msg("s-1001", "2026-12-01T09:00:20Z", "user", "我的快递三天了还没到", channel="app", msg_id="m1"),
    msg("s-1001", "2026-12-01T09:00:23Z", "bot", "请提供订单号，我帮您查询。", channel="app", msg_id="m2"),
    msg("s-1001", "2026-12-01T09:01:02Z", "user", "订单号 A20261130", channel="app", msg_id="m3"),
    msg(
        "s-1001",
        "2026-12-01T09:01:05Z",
        "bot",
        "您的包裹在派送中，预计今天送达。",
        channel="app",
        msg_id="m4",
    ),
]


def test_a_session_becomes_one_conversation_with_the_last_answer_as_the_reply():
    # given a five-message session that opens with the bot's greeting
    (row,), report = read(jsonl(*ORDER))
    # then the greeting is the opening, the turns run to the last question, the last answer is the reply
    assert [(t["role"], t["content"]) for t in row.messages] == [
        ("user", "我的快递三天了还没到"),
        ("assistant", "请提供订单号，我帮您查询。"),
        ("user", "订单号 A20261130"),
    ]
    assert row.reference_output == "您的包裹在派送中，预计今天送达。"
    assert row.metadata["opening"][0]["content"] == "您好，我是小助手，请问有什么可以帮您？"
    assert {k: row.metadata[k] for k in ("session_id", "session_part", "started_at", "ended_at")} == {
        "session_id": "s-1001",
        "session_part": 1,
        "started_at": "2026-12-01T09:00:00Z",
        "ended_at": "2026-12-01T09:01:05Z",
    }
    assert row.metadata["message_count"] == 5
    assert (report.messages, report.sessions, report.conversations) == (5, 1, 1)


def test_shuffled_lines_are_put_back_in_time_order_and_ties_keep_file_order():
    # given the session's lines shuffled, and two user messages sent in the same second
    lines = ORDER + [
        msg("s-1001", "2026-12-01T09:01:05Z", "user", "好的谢谢", msg_id="m5", channel="app"),
        msg("s-1001", "2026-12-01T09:01:05Z", "user", "再见", msg_id="m6", channel="app"),
    ]
    shuffled = lines[:5]
    random.Random(7).shuffle(shuffled)
    (row,), _ = read(jsonl(*shuffled, *lines[5:]))
    # then the order is the clock's; the tie (m4 at 09:01:05 came first in the file) keeps file order
    assert [t.get("msg_id") for t in row.messages[:4]] == ["m1", "m2", "m3", "m4"]
    assert row.messages[4]["content"] == "好的谢谢\n再见"
    assert [part["msg_id"] for part in row.messages[4]["log_parts"]] == ["m5", "m6"]


def test_sessions_are_split_by_id():
    # given two customers' messages interleaved
    data = jsonl(
        msg("a", "2026-12-01T10:00:00Z", "user", "Where is my refund?"),
        msg("b", "2026-12-01T10:00:01Z", "user", "How do I change my address?"),
        msg("a", "2026-12-01T10:00:05Z", "assistant", "Refunds take 5 working days."),
        msg("b", "2026-12-01T10:00:09Z", "assistant", "Open Settings, then Addresses."),
    )
    results, report = read(data)
    # then each session is its own conversation
    assert [(r.metadata["session_id"], r.input, r.reference_output) for r in rows(results)] == [
        ("a", "Where is my refund?", "Refunds take 5 working days."),
        ("b", "How do I change my address?", "Open Settings, then Addresses."),
    ]
    assert report.sessions == 2


def test_a_session_id_over_two_days_becomes_two_conversations_at_the_gap():
    # given one thread id used again the next day (epoch seconds, as many shippers write them)
    day = 1_796_115_600  # 2026-12-01T09:00:00Z
    data = jsonl(
        msg("t-7", day, "user", "My card was charged twice"),
        msg("t-7", day + 40, "assistant", "I have refunded the second charge."),
        msg("t-7", day + 86_400, "user", "The refund has not arrived"),
        msg("t-7", day + 86_460, "assistant", "It shows as sent; allow two days."),
    )
    results, report = read(data, gap=30)
    first, second = rows(results)
    assert (first.input, second.input) == ("My card was charged twice", "The refund has not arrived")
    assert (first.metadata["session_part"], second.metadata["session_part"]) == (1, 2)
    assert second.metadata["started_at"] == "2026-12-02T09:00:00Z"
    assert (report.conversations, report.split_by_gap) == (2, 1)
    # and a gap longer than the silence keeps the session whole
    (whole,), _ = read(data, gap=2 * 24 * 60)
    assert len(whole.messages) == 3


def test_a_message_sent_twice_is_dropped_and_counted():
    # given a shipper that resent two lines (one as epoch seconds: the same instant)
    data = jsonl(
        msg("s", "2026-12-01T10:00:00Z", "user", "I want to speak to a human"),
        msg("s", "2026-12-01T10:00:00Z", "user", "I want to speak to a human"),
        msg("s", "2026-12-01T10:00:03Z", "assistant", "Connecting you to an agent."),
        msg("s", 1_796_119_203, "assistant", "Connecting you to an agent."),
    )
    (row,), report = read(data)
    assert (row.input, row.reference_output) == ("I want to speak to a human", "Connecting you to an agent.")
    assert (report.messages, report.duplicate_messages, row.metadata["message_count"]) == (2, 2, 2)


def test_key_and_role_synonyms_are_read_and_the_spelling_kept():
    # given the other common spellings of each key and role
    data = jsonl(
        {
            "conversation_id": 42,
            "ts": "2026-12-01 08:00:00",
            "sender": "customer",
            "text": "Is the shop open?",
        },
        {
            "thread_id": "x",
            "conversation_id": 42,
            "created_at": "2026-12-01T16:00:30+08:00",
            "speaker": "Agent",
            "message": "Yes, until 9 pm.",
        },
    )
    (row,), _ = read(data)
    # then the session id 42 (a number) is text, a time without offset is UTC, +08:00 is converted
    assert row.metadata["session_id"] == "42"
    assert row.messages == [
        {
            "role": "user",
            "content": "Is the shop open?",
            "timestamp": "2026-12-01T08:00:00Z",
            "log_role": "customer",
        }
    ]
    assert row.reference_output == "Yes, until 9 pm."
    # the second record gave two session keys: conversation_id comes first, thread_id stays the reply's key
    assert row.reference_extra == {"timestamp": "2026-12-01T08:00:30Z", "log_role": "Agent", "thread_id": "x"}


TURNS = [("user", "你好"), ("bot", "您好！"), ("user", "发票怎么开？"), ("bot", "在订单页点开票。")]


def test_every_other_key_is_kept_on_the_turn_or_once_as_metadata():
    # given keys that are the session's (channel, user agent, user id) and keys of each message
    agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X)"
    data = jsonl(
        *(
            msg(
                "s",
                f"2026-12-01T10:00:0{n}Z",
                role,
                text,
                channel="wechat",
                user_agent=agent,
                user={"id": 7},
                msg_id=f"m{n}",
                **({"latency_ms": 812} if role == "bot" else {}),
            )
            for n, (role, text) in enumerate(TURNS)
        )
    )
    keys = KeyReport()
    (row,), _ = read(data, keys=keys)
    assert {k: row.metadata[k] for k in ("channel", "user_agent", "user")} == {
        "channel": "wechat",
        "user_agent": agent,
        "user": {"id": 7},
    }
    assert row.messages[1] == {
        "role": "assistant",
        "content": "您好！",
        "timestamp": "2026-12-01T10:00:01Z",
        "log_role": "bot",
        "msg_id": "m1",
        "latency_ms": 812,
    }
    assert row.reference_extra["msg_id"] == "m3"
    report = keys.as_dict()
    assert report["channel"]["to"] == "metadata.channel"
    assert report["msg_id"]["to"] == "messages.msg_id"
    assert report["content"]["to"] == "messages.content"


def test_system_messages_are_events_and_a_user_less_session_is_counted_not_imported():
    data = jsonl(
        msg("s", "2026-12-01T10:00:00Z", "user", "转人工"),
        msg("s", "2026-12-01T10:00:02Z", "system", "客服小王已接入"),
        msg("s", "2026-12-01T10:00:05Z", "agent", "您好，我是小王。"),
        msg("idle", "2026-12-01T11:00:00Z", "bot", "您好，请问有什么可以帮您？"),
    )
    results, report = read(data)
    (row,) = rows(results)
    assert row.metadata["system_events"] == [
        {"content": "客服小王已接入", "timestamp": "2026-12-01T10:00:02Z"}
    ]
    assert row.reference_output == "您好，我是小王。"
    assert (report.conversations, report.without_user) == (2, 1)


def test_user_turns_that_ask_for_a_person_or_complain_are_flagged():
    data = jsonl(
        msg("s", "2026-12-01T10:00:00Z", "user", "This is UNACCEPTABLE, I want to talk to a real person"),
        # the bot's words flag nothing
        msg("s", "2026-12-01T10:00:05Z", "bot", "Sorry, a real person will call you."),
        msg("t", "2026-12-01T10:00:00Z", "user", "我要投诉"),
        msg("u", "2026-12-01T10:00:00Z", "user", "Thanks!"),
    )
    results, _ = read(data)
    flags = {
        r.metadata["session_id"]: (r.metadata["flags"], r.metadata["flag_phrases"]) for r in rows(results)
    }
    assert flags == {
        "s": (
            ["asked_for_person", "complained"],
            {"asked_for_person": ["real person"], "complained": ["unacceptable"]},
        ),
        "t": (["complained"], {"complained": ["投诉"]}),
        "u": ([], {}),
    }


def test_the_flag_phrases_are_the_ones_given():
    data = jsonl(msg("s", "2026-12-01T10:00:00Z", "user", "Operator please"))
    (row,), _ = read(data, flag_phrases={"asked_for_person": ["operator"], "complained": []})
    assert row.metadata["flags"] == ["asked_for_person"]


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        (
            {"timestamp": "2026-12-01T10:00:00Z", "role": "user", "content": "hi"},
            "session_id",
            "no session id; expected one of session_id, conversation_id, thread_id",
        ),
        (msg("", "2026-12-01T10:00:00Z", "user", "hi"), "session_id", "the session id is empty"),
        (msg(["s"], "2026-12-01T10:00:00Z", "user", "hi"), "session_id", "must be text or a number"),
        (msg("s", "noon", "user", "hi"), "timestamp", "unparseable timestamp 'noon'"),
        ({"session_id": "s", "ts": None, "role": "user", "content": "hi"}, "ts", "the timestamp is null"),
        (msg("s", T, "moderator", "hi"), "role", "unknown role 'moderator'; expected one of user"),
        ({"session_id": "s", "ts": 1, "sender": "user"}, "content", "no text; expected one of content, text"),
        (msg("s", "2026-12-01T10:00:00Z", "user", "  "), "content", "the user message is empty"),
        (msg("s", T, "user", {"type": "image"}), "content", "expected text, found an object"),
    ],
)
def test_a_bad_line_is_named_with_its_key(record, field, reason):
    good = msg("s", "2026-12-01T09:00:00Z", "user", "hello")
    results, _ = read(jsonl(good, record))
    errors = [r for r in results if isinstance(r, RowError)]
    assert [(e.line, e.field) for e in errors] == [(2, field)], errors
    assert reason in errors[0].reason


def test_a_turn_order_that_cannot_be_a_conversation_names_the_message():
    # a tool result with no tool call before it
    data = jsonl(
        msg("s", "2026-12-01T10:00:00Z", "user", "Where is order 7?"),
        msg("s", "2026-12-01T10:00:01Z", "bot", "Let me look."),
        msg("s", "2026-12-01T10:00:02Z", "tool", '{"status": "shipped"}'),
    )
    results, _ = read(data)
    (error,) = results
    assert (error.line, error.field) == (3, "role")
    assert "session 's'" in error.reason and "tool turn must follow" in error.reason


def test_a_json_array_of_messages_is_read_too_and_csv_is_refused():
    data = json.dumps([msg("s", "2026-12-01T10:00:00Z", "user", "hi")]).encode()
    (row,), _ = read(data, filename="log.json")
    assert row.input == "hi"
    with pytest.raises(ValueError, match="cannot be read as CSV"):
        read(b"session_id,timestamp,role,content\ns,1,user,hi\n", filename="log.csv")


def test_a_chat_log_takes_no_mapping():
    with pytest.raises(ValueError, match="takes no mapping"):
        list(read_records(io.BytesIO(b"{}"), fmt="chat_log", mapping={"input": "text"}))


def test_a_preview_stops_after_its_messages_and_says_so():
    data = jsonl(*(msg(f"s{n}", "2026-12-01T10:00:00Z", "user", f"q{n}") for n in range(5)))
    results, report = read(data, max_messages=3)
    assert [r.input for r in rows(results)] == ["q0", "q1", "q2"]
    assert report.truncated


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-04T10:15:00Z", "2026-12-04T10:15:00+00:00"),
        ("2026-12-04T18:15:00.250+08:00", "2026-12-04T10:15:00.250000+00:00"),
        (1_796_379_300, "2026-12-04T10:15:00+00:00"),
        (1_796_379_300_000, "2026-12-04T10:15:00+00:00"),  # milliseconds, by their size
        ("1796379300.5", "2026-12-04T10:15:00.500000+00:00"),
    ],
)
def test_timestamps_in_iso_or_epoch(value, expected):
    assert parse_time(value).isoformat() == expected
