"""Raw chat logs as conversations: one timestamped message per record, grouped into sessions, split by gaps.

Django-free like the rest of dataio. A record is one message: a session id, a timestamp (ISO 8601, or
epoch seconds), a role and the text, under any of the common key spellings; every other key is kept.
`chat_log_rows` reads them all (a session's messages may be anywhere in the file), drops messages a log
shipper sent twice, orders each session by time (file order for ties), splits it where the gap between
two messages exceeds `gap_minutes`, and yields each part as one conversation row:

- the turns up to the last user turn are the prompt, the assistant's answer after it the reply;
  consecutive messages of one role (a user typing in three bubbles) are one turn, their texts joined
  with a newline and each message's own keys under the turn's `log_parts`;
- each turn keeps its `timestamp` (ISO 8601, UTC), the role as the file spelled it (`log_role`, when
  that was a synonym) and every key whose value differs between the conversation's messages; a key
  with one value across all of them (a channel, a user agent, a user id) is the item's metadata;
- system messages (joins, transfers, "chat closed") are events, kept in metadata `system_events`;
  assistant messages before the first user message (a greeting) in metadata `opening`;
- metadata also holds session_id, session_part, started_at, ended_at, message_count, and `flags`: the
  names of the phrase lists a user turn matched (asked for a person, complained), with the phrases
  found under `flag_phrases`.

A conversation without a user message has nothing to answer: it is counted, not yielded. Bad records are
RowErrors naming the line and the key; a turn order that cannot be a conversation names the message.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from annotation.dataio.conversation import (
    ASSISTANT,
    SYSTEM,
    TOOL,
    TURN_KEYS,
    USER,
    TurnError,
    conversation_split,
    kind,
)
from annotation.dataio.records import ParsedRow, RowError
from annotation.dataio.redaction import compliance_flags
from annotation.dataio.turns import size_reason, too_long

CHAT_LOG = "chat_log"

# Each field's keys, best first: a record giving two of them takes the first, the other stays a key.
SESSION_KEYS = ("session_id", "conversation_id", "thread_id")
TIME_KEYS = ("timestamp", "ts", "created_at", "time")
ROLE_KEYS = ("role", "sender", "speaker")
TEXT_KEYS = ("content", "text", "message")

ROLE_SYNONYMS = {
    "user": USER, "customer": USER, "human": USER, "visitor": USER, "client": USER,
    "assistant": ASSISTANT, "agent": ASSISTANT, "bot": ASSISTANT, "ai": ASSISTANT, "gpt": ASSISTANT,
    "system": SYSTEM, "tool": TOOL, "function": TOOL,
}  # fmt: skip

DEFAULT_GAP_MINUTES = 30.0
FLAG_PERSON = "asked_for_person"
FLAG_COMPLAINT = "complained"
DEFAULT_PERSON_PHRASES = ("speak to a human", "talk to a human", "real person", "human agent", "live agent",
                          "转人工", "人工客服", "真人客服")  # fmt: skip
DEFAULT_COMPLAINT_PHRASES = ("complaint", "unacceptable", "terrible service", "投诉", "差评", "太差了")

# Metadata keys this reader writes; a message key of the same name stays on the turns.
RESERVED = ("session_id", "session_part", "started_at", "ended_at", "message_count", "flags", "flag_phrases",
            "opening", "system_events")  # fmt: skip
# Milliseconds since the epoch pass 1e11 in 1973; seconds will not reach it before the year 5138.
_EPOCH_MILLISECONDS = 1e11
_ABSENT = object()
_NUMBER = re.compile(r"[+-]?\d+(\.\d*)?")


@dataclass
class ChatLogOptions:
    gap_minutes: float = DEFAULT_GAP_MINUTES
    # flag name -> phrases; a user turn holding one (case and width aside) flags the conversation
    flag_phrases: Mapping[str, Iterable[str]] = field(
        default_factory=lambda: {
            FLAG_PERSON: DEFAULT_PERSON_PHRASES,
            FLAG_COMPLAINT: DEFAULT_COMPLAINT_PHRASES,
        }
    )
    max_messages: int | None = None  # a preview reads this many messages, then stops


@dataclass
class ChatLogReport:
    """What reading a log found beyond its rows; an import keeps it as the job's format report."""

    messages: int = 0  # valid messages kept
    duplicate_messages: int = 0  # sent twice (same session, role, text and time), dropped
    sessions: int = 0  # distinct session ids
    conversations: int = 0  # sessions and the parts gaps split them into
    split_by_gap: int = 0  # conversations that began after a gap inside a session
    without_user: int = 0  # conversations with no user message, not imported
    truncated: bool = False  # stopped at max_messages

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Message:
    line: int
    at: int  # microseconds since the epoch, UTC: exact, small, and quick to sort
    role: str
    spelled: str  # the role as the file gave it
    text: str
    extra: dict[str, Any]
    keys: tuple[str, str, str, str | None]  # the session, time, role and text keys it used (shared)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def check_gap_minutes(value: object) -> float:
    """The session gap as minutes > 0; ValueError with the reason."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"must be a number of minutes above 0, not {value!r}")
    return float(value)


def chat_log_rows(
    records: Iterable[tuple[int, object] | RowError],
    *,
    options: ChatLogOptions,
    report: ChatLogReport,
    limit: int,
) -> Iterator[ParsedRow | RowError]:
    """Each conversation of the log's (line, record) pairs as a row; errors as they are found.

    Every record is read before the first row is yielded: a session's messages may be anywhere. Memory
    holds the file's messages once (an upload is bounded by the import's size limit).
    """
    gap = round(check_gap_minutes(options.gap_minutes) * 60_000_000)
    sessions: dict[str, list[_Message]] = {}
    shapes: dict[tuple, tuple] = {}
    read = 0
    for item in records:
        if isinstance(item, RowError):
            yield item
            continue
        if options.max_messages is not None and read >= options.max_messages:
            report.truncated = True
            break
        read += 1
        line, record = item
        if not isinstance(record, dict):
            yield RowError(line, None, f"record is {kind(record)}, expected an object (one message)")
            continue
        result = _message(line, record, limit, shapes)
        if isinstance(result, RowError):
            yield result
            continue
        session, message = result
        known = sessions.get(session)
        if known is None:
            sessions[session] = [message]
        else:
            known.append(message)
    report.sessions = len(sessions)
    phrases = {name: list(found) for name, found in options.flag_phrases.items()}
    for session, messages in sessions.items():
        messages.sort(key=lambda m: (m.at, m.line))
        messages = _unique(messages, report)
        report.messages += len(messages)
        for part, chunk in enumerate(_split(messages, gap), start=1):
            report.conversations += 1
            if part > 1:
                report.split_by_gap += 1
            row = _conversation(session, part, chunk, phrases, limit)
            if row is None:
                report.without_user += 1
            elif isinstance(row, list):
                yield from row
            else:
                yield row


def _unique(messages: list[_Message], report: ChatLogReport) -> list[_Message]:
    """`messages` (sorted by time) without the ones a shipper sent again: same role, text and instant.
    Messages of one instant are neighbours after the sort, so only those are compared."""
    kept: list[_Message] = []
    for message in messages:
        earlier = len(kept) - 1
        while earlier >= 0 and kept[earlier].at == message.at:
            if kept[earlier].role == message.role and kept[earlier].text == message.text:
                report.duplicate_messages += 1
                break
            earlier -= 1
        else:
            kept.append(message)
    return kept


def _split(messages: list[_Message], gap: int) -> Iterator[list[_Message]]:
    chunk = [messages[0]]
    for message in messages[1:]:
        if message.at - chunk[-1].at > gap:
            yield chunk
            chunk = []
        chunk.append(message)
    yield chunk


def _first_key(record: Mapping[str, Any], candidates: tuple[str, ...]) -> str | None:
    """The first candidate key with a value; else the first present (its null is the error); else None."""
    first = None
    for key in candidates:
        value = record.get(key, _ABSENT)
        if value is _ABSENT:
            continue
        if value is not None:
            return key
        if first is None:
            first = key
    return first


def _message(line: int, record: dict[str, Any], limit: int, shapes: dict) -> tuple[str, _Message] | RowError:
    session_key = _first_key(record, SESSION_KEYS)
    time_key = _first_key(record, TIME_KEYS)
    role_key = _first_key(record, ROLE_KEYS)
    text_key = _first_key(record, TEXT_KEYS)
    required = ((session_key, SESSION_KEYS, "session id"), (time_key, TIME_KEYS, "timestamp"),
                (role_key, ROLE_KEYS, "role"))  # fmt: skip
    for key, candidates, what in required:
        if key is None:
            return RowError(line, candidates[0], f"no {what}; expected one of {', '.join(candidates)}")
    session = _session_id(record[session_key])
    if session is None:
        return RowError(
            line, session_key, f"the session id must be text or a number, not {kind(record[session_key])}"
        )
    if not session:
        return RowError(line, session_key, "the session id is empty")
    try:
        at = (parse_time(record[time_key]) - _EPOCH) // _MICROSECOND
    except ValueError as exc:
        return RowError(line, time_key, str(exc))
    spelled = record[role_key]
    role = ROLE_SYNONYMS.get(spelled.strip().lower()) if isinstance(spelled, str) else None
    if role is None:
        return RowError(
            line, role_key, f"unknown role {spelled!r}; expected one of {', '.join(ROLE_SYNONYMS)}"
        )
    text = record[text_key] if text_key is not None else None
    # The record's other keys are the message's own: the parsed object itself, not a copy of it.
    for key in (session_key, time_key, role_key, text_key):
        record.pop(key, None)
    extra = record
    if text is None and role == ASSISTANT and extra.get("tool_calls"):
        text = ""  # a message that only calls a tool
    elif text is None:
        return RowError(line, text_key or TEXT_KEYS[0], f"no text; expected one of {', '.join(TEXT_KEYS)}")
    elif not isinstance(text, str):
        return RowError(line, text_key, f"expected text, found {kind(text)}")
    elif not text.strip() and not (role == ASSISTANT and extra.get("tool_calls")):
        return RowError(line, text_key, f"the {spelled} message is empty")
    elif too_long(text, limit):
        return RowError(line, text_key, size_reason(text, limit))
    keys = (session_key, time_key, role_key, text_key)
    # Held for the whole file: the spelling and the key names are shared between messages, not copied.
    message = _Message(line, at, role, sys.intern(spelled), text, extra, shapes.setdefault(keys, keys))
    return session, message


def _session_id(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None


def parse_time(value: Any) -> datetime:
    """ISO 8601 (a time without an offset is UTC) or epoch seconds (milliseconds are recognised by their
    size), as an aware UTC datetime; ValueError naming what was found."""
    expected = "expected ISO 8601 (2026-12-04T10:15:00Z) or epoch seconds"
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        else:
            try:
                at = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"unparseable timestamp {value!r}; {expected}") from None
            return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    else:
        raise ValueError(f"the timestamp is {kind(value)}; {expected}")
    if not math.isfinite(seconds):
        raise ValueError(f"unparseable timestamp {value!r}; {expected}")
    if abs(seconds) >= _EPOCH_MILLISECONDS:
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"timestamp {value!r} is out of range; {expected}") from None


def iso(micros: int) -> str:
    """Microseconds since the epoch as ISO 8601 in UTC, with a Z."""
    return (_EPOCH + micros * _MICROSECOND).isoformat().replace("+00:00", "Z")


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _constant_keys(messages: list[_Message]) -> list[str]:
    """Keys every message gives with one value: the conversation's, kept once as metadata."""
    first = messages[0].extra
    keys = [key for key in first if key not in TURN_KEYS and key not in RESERVED]
    return [key for key in keys if all(key in m.extra and _same(m.extra[key], first[key]) for m in messages)]


def _own_keys(message: _Message, hoisted: set[str]) -> dict[str, Any]:
    """A message's time, role spelling and keys that are not the conversation's."""
    own: dict[str, Any] = {"timestamp": iso(message.at)}
    if message.spelled != message.role:
        own["log_role"] = message.spelled
    own.update((key, value) for key, value in message.extra.items() if key not in hoisted)
    return own


def _mergeable(turn: dict[str, Any], message: _Message) -> bool:
    return (turn["role"] == message.role and message.role in (USER, ASSISTANT)
            and not turn.get("tool_calls") and not message.extra.get("tool_calls"))  # fmt: skip


def _conversation(
    session: str, part: int, messages: list[_Message], phrases: dict[str, list[str]], limit: int
) -> ParsedRow | list[RowError] | None:
    hoisted = set(_constant_keys(messages))
    turns: list[dict[str, Any]] = []
    lines: list[list[_Message]] = []  # the messages of each turn
    opening: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for message in messages:
        own = _own_keys(message, hoisted)
        if message.role == SYSTEM:
            events.append({"content": message.text, **own})
        elif not turns and message.role != USER:
            opening.append({"role": message.role, "content": message.text, **own})
        elif turns and _mergeable(turns[-1], message):
            turn = turns[-1]
            if "log_parts" not in turn:
                first = lines[-1][0]
                parts = [_own_keys(first, hoisted)]
                turns[-1] = turn = {"role": turn["role"], "content": turn["content"],
                                    "timestamp": turn["timestamp"], "log_parts": parts}  # fmt: skip
            turn["content"] += "\n" + message.text
            turn["log_parts"].append(own)
            lines[-1].append(message)
        else:
            turns.append({"role": message.role, "content": message.text, **own})
            lines.append([message])
    if not any(turn["role"] == USER for turn in turns):
        return None
    for turn, group in zip(turns, lines, strict=True):
        if len(group) > 1 and too_long(turn["content"], limit):
            reason = (
                f"the {len(group)} {turn['role']} messages from here on {size_reason(turn['content'], limit)}"
            )
            return [RowError(group[0].line, group[0].keys[3], reason)]
    try:
        conversation = conversation_split(turns)
    except TurnError as exc:
        message = lines[exc.turn - 1][0] if exc.turn else messages[0]
        return [RowError(message.line, message.keys[2], f"session {session!r}: {exc.reason}")]
    user_text = "\n".join(turn["content"] for turn in turns if turn["role"] == USER)
    hits = set(compliance_flags(user_text, [phrase for listed in phrases.values() for phrase in listed]))
    found = {name: [p for p in listed if p in hits] for name, listed in phrases.items() if hits & set(listed)}
    metadata: dict[str, Any] = {
        "session_id": session,
        "session_part": part,
        "started_at": iso(messages[0].at),
        "ended_at": iso(messages[-1].at),
        "message_count": len(messages),
        "flags": list(found),
        "flag_phrases": found,
    }
    if opening:
        metadata["opening"] = opening
    if events:
        metadata["system_events"] = events
    for key in messages[0].extra:
        if key in hoisted:
            metadata[key] = messages[0].extra[key]
    return ParsedRow(
        line=messages[0].line, messages=conversation.messages, reference_output=conversation.reply,
        reference_extra=conversation.reply_extra, metadata=metadata, keys=_keys(messages, hoisted),
    )  # fmt: skip


def _keys(messages: list[_Message], hoisted: set[str]) -> tuple[tuple[str, str], ...]:
    """Where each source key of the conversation's messages went, for the import's key report."""
    places: dict[str, str] = {}
    for message in messages:
        session_key, time_key, role_key, text_key = message.keys
        places.setdefault(session_key, "metadata.session_id")
        places.setdefault(time_key, "messages.timestamp")
        places.setdefault(role_key, "messages.role")
        if text_key is not None:
            places.setdefault(text_key, "messages.content")
        for key in message.extra:
            places.setdefault(key, f"metadata.{key}" if key in hoisted else f"messages.{key}")
    return tuple(places.items())
