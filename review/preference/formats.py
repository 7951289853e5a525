"""Preference files, read and written: LLaMA-Factory's ranking format (alpaca or sharegpt shape) and TRL's
preference format (standard or conversational). No Django, like annotation/dataio, whose conversation
checks and writers it uses; unit-tested without a database.

A pair here is a conversation (system, the turns before the answer, ending with the user or tool turn
answered) and two answers to it, chosen and rejected. Reading never drops a key: what a format does not
name is kept in the pair's metadata.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import ijson

from annotation.dataio.conversation import (
    ASSISTANT,
    SYSTEM,
    Conversation,
    TurnError,
    conversation_split,
    kind,
)
from annotation.dataio.exporters import (
    SHAREGPT_TAGS,
    ExportValidationError,
    alpaca_conversation,
    sharegpt_turns,
    validate_dataset_info_entry,
)
from annotation.dataio.turns import history_turns, size_reason, too_long, turns_read

PAIR_FORMATS = ("llamafactory_alpaca", "llamafactory_sharegpt", "trl", "trl_conversational")
# The keys each format reads; every other key of a record is kept as metadata.
FORMAT_KEYS = {
    "llamafactory_alpaca": {"instruction", "input", "system", "history", "chosen", "rejected"},
    "llamafactory_sharegpt": {"conversations", "system", "chosen", "rejected"},
    "trl": {"prompt", "chosen", "rejected"},
    "trl_conversational": {"prompt", "chosen", "rejected"},
}
DEFAULT_MAX_FIELD_BYTES = 32 * 1024


class PairError(ValueError):
    """A record that cannot be read: its line (record number in a JSON array), the key, the reason."""

    def __init__(self, line: int, key: str | None, reason: str):
        self.line, self.key, self.reason = line, key, reason
        super().__init__(f"line {line}: {key}: {reason}" if key else f"line {line}: {reason}")

    def as_dict(self) -> dict:
        return {"line": self.line, "field": self.key, "reason": self.reason}


@dataclass(frozen=True)
class PairRecord:
    line: int
    system: str
    messages: list[dict[str, Any]]
    chosen: str
    rejected: str
    metadata: dict[str, Any] = field(default_factory=dict)


def detect_pair_format(record: Mapping[str, Any]) -> str | None:
    if "conversations" in record:
        return "llamafactory_sharegpt"
    if "instruction" in record:
        return "llamafactory_alpaca"
    if "prompt" in record:
        return "trl_conversational" if isinstance(record["prompt"], list) else "trl"
    if isinstance(record.get("chosen"), list):
        return "trl_conversational"  # TRL's implicit prompt: the shared turns of chosen and rejected
    return None


def _text(record, key, line, limit, *, required=True) -> str:
    value = record.get(key, "")
    if value is None and not required:
        value = ""
    if not isinstance(value, str):
        raise PairError(line, key, f"expected text, found {kind(value)}")
    if required and not value.strip():
        raise PairError(line, key, "is empty" if key in record else "is missing")
    if too_long(value, limit):
        raise PairError(line, key, size_reason(value, limit))
    return value


def _conversation(turns, system, line, key) -> Conversation:
    try:
        conv = conversation_split(turns, system=system)
    except TurnError as exc:
        raise PairError(line, key, str(exc)) from None
    if conv.reply or conv.reply_extra:
        raise PairError(line, key, "must end with the user (or tool) turn that chosen and rejected answer")
    return conv


def _answer_turns(value, line, key, limit) -> str:
    """A TRL conversational answer: a list holding one assistant turn of text."""
    if not isinstance(value, list):
        raise PairError(line, key, f"expected a list of turns, found {kind(value)}")
    if len(value) != 1:
        raise PairError(line, key, f"expected one assistant turn, found {len(value)} turns")
    turn = value[0]
    if not isinstance(turn, dict) or turn.get("role") != ASSISTANT:
        raise PairError(line, key, "the turn must be an assistant turn")
    lost = sorted(set(turn) - {"role", "content"})
    if lost:
        raise PairError(line, key, f"the turn has keys a pair cannot hold: {', '.join(lost)}")
    try:
        return _text(turn, "content", line, limit)
    except PairError as exc:
        raise PairError(line, key, f"content {exc.reason}") from None


def _sharegpt_answer(value, line, key, limit) -> str:
    if not isinstance(value, dict):
        raise PairError(line, key, f'expected a turn {{"from", "value"}}, found {kind(value)}')
    if value.get("from") not in ("gpt", "assistant"):
        raise PairError(line, key, f"the turn must be from gpt, not {value.get('from')!r}")
    lost = sorted(set(value) - {"from", "value"})
    if lost:
        raise PairError(line, key, f"the turn has keys a pair cannot hold: {', '.join(lost)}")
    try:
        return _text(value, "value", line, limit)
    except PairError as exc:
        raise PairError(line, key, f"value {exc.reason}") from None


def _implicit_prompt(record, line, limit) -> tuple[list, str, str]:
    """TRL's implicit prompt: chosen and rejected are whole conversations sharing all but the last turn."""
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if not isinstance(rejected, list):
        raise PairError(line, "rejected", f"expected a list of turns, found {kind(rejected)}")
    if len(chosen) < 2 or chosen[:-1] != rejected[:-1]:
        raise PairError(
            line, "chosen", "without a prompt, chosen and rejected must share every turn but the last"
        )
    return (
        chosen[:-1],
        _answer_turns(chosen[-1:], line, "chosen", limit),
        _answer_turns(rejected[-1:], line, "rejected", limit),
    )


def pair_record_read(
    record: Any, line: int, *, fmt: str | None = None, max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES
) -> PairRecord:
    """One record of a preference file as a PairRecord; PairError naming the line and key otherwise."""
    if not isinstance(record, dict):
        raise PairError(line, None, f"a record must be an object, not {kind(record)}")
    fmt = fmt or detect_pair_format(record)
    if fmt is None:
        raise PairError(
            line,
            None,
            "not a preference record: expected conversations (LLaMA-Factory sharegpt), instruction "
            "(LLaMA-Factory alpaca) or prompt (TRL), with chosen and rejected",
        )
    if fmt not in PAIR_FORMATS:
        raise ValueError(f"unknown preference format {fmt!r}; one of {', '.join(PAIR_FORMATS)}")
    limit = max_field_bytes
    for key in ("chosen", "rejected"):
        if key not in record:
            raise PairError(line, key, "is missing")
    system, where = "", "prompt"  # `where`: the key an error in the conversation names
    if fmt == "llamafactory_alpaca":
        where = "history"
        query = [
            _text(record, "instruction", line, limit),
            _text(record, "input", line, limit, required=False),
        ]
        system = _text(record, "system", line, limit, required=False)
        try:
            history = history_turns(record.get("history") or [], limit)
        except ValueError as exc:
            raise PairError(line, "history", str(exc)) from None
        turns = [*history, {"role": "user", "content": "\n".join(q for q in query if q)}]
        chosen, rejected = (_text(record, key, line, limit) for key in ("chosen", "rejected"))
    elif fmt == "llamafactory_sharegpt":
        where = "conversations"
        try:
            turns = turns_read(record["conversations"], limit)
        except TurnError as exc:
            raise PairError(line, "conversations", str(exc)) from None
        system = _text(record, "system", line, limit, required=False)
        chosen, rejected = (_sharegpt_answer(record[key], line, key, limit) for key in ("chosen", "rejected"))
    elif fmt == "trl":
        turns = [{"role": "user", "content": _text(record, "prompt", line, limit)}]
        chosen, rejected = (_text(record, key, line, limit) for key in ("chosen", "rejected"))
    elif "prompt" in record:
        prompt = record["prompt"]
        if not isinstance(prompt, list):
            raise PairError(line, "prompt", f"expected a list of turns, found {kind(prompt)}")
        try:
            turns = turns_read(prompt, limit)
        except TurnError as exc:
            raise PairError(line, "prompt", str(exc)) from None
        chosen, rejected = (_answer_turns(record[key], line, key, limit) for key in ("chosen", "rejected"))
    else:
        prompt, chosen, rejected = _implicit_prompt(record, line, limit)
        where = "chosen"
        try:
            turns = turns_read(prompt, limit)
        except TurnError as exc:
            raise PairError(line, "chosen", str(exc)) from None
    conv = _conversation(turns, system, line, where)
    metadata = {key: value for key, value in record.items() if key not in FORMAT_KEYS[fmt]}
    return PairRecord(line, conv.system, conv.messages, chosen, rejected, metadata)


def pairs_read(
    stream: BinaryIO, *, fmt: str | None = None, max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES
) -> Iterator[PairRecord | PairError]:
    """Each record of a JSON Lines file or a JSON array (told by the first character) as a PairRecord or
    a PairError. The format is `fmt`, else detected per record."""
    buffered = stream if hasattr(stream, "peek") else io.BufferedReader(stream)
    if buffered.peek(3)[:3] == b"\xef\xbb\xbf":
        buffered.read(3)
    head = buffered.peek(4096).lstrip()[:1]
    if not head:
        yield PairError(1, None, "the file has no records")
        return
    if head == b"[":
        number = 0
        try:
            for number, record in enumerate(ijson.items(buffered, "item", use_float=True), start=1):
                yield _read_one(record, number, fmt, max_field_bytes)
        except ijson.JSONError as exc:
            yield PairError(
                number + 1,
                None,
                f"malformed JSON in or after record {number + 1}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'unreadable'}",
            )
        return
    for number, raw in enumerate(buffered, start=1):
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            yield PairError(number, None, "not valid UTF-8; save the file as UTF-8")
            continue
        if not text:
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            yield PairError(number, None, f"malformed JSON: {exc.msg} at column {exc.colno}")
            continue
        yield _read_one(record, number, fmt, max_field_bytes)


def _read_one(record, line, fmt, max_field_bytes) -> PairRecord | PairError:
    try:
        return pair_record_read(record, line, fmt=fmt, max_field_bytes=max_field_bytes)
    except PairError as exc:
        return exc


# --- writing judged pairs -----------------------------------------------------------------------------


def _prompt_conversation(system: str, messages: list, chosen: str, ref: str) -> Conversation:
    try:
        return conversation_split([*messages, {"role": ASSISTANT, "content": chosen}], system=system)
    except TurnError as exc:
        raise ExportValidationError(ref, str(exc)) from None


def preference_record(fmt: str, *, system: str, messages: list, chosen: str, rejected: str, ref: str) -> dict:
    """One judged pair in `fmt`; ExportValidationError naming `ref` when the format cannot hold it."""
    conv = _prompt_conversation(system, messages, chosen, ref)
    if fmt == "llamafactory_alpaca":
        record = alpaca_conversation(conv, ref)
        record.pop("tools")  # a response holds no tools; LLaMA-Factory skips an empty tools text anyway
        chosen = record.pop("output")
        return {**record, "chosen": chosen, "rejected": rejected}
    if fmt == "llamafactory_sharegpt":
        turns = sharegpt_turns(conv, ref)
        return {
            "conversations": turns[:-1],
            "chosen": turns[-1],
            "rejected": {"from": SHAREGPT_TAGS["assistant_tag"], "value": rejected},
            "system": conv.system,
        }
    if fmt == "trl":
        if conv.system.strip() or len(conv.messages) > 1:
            raise ExportValidationError(
                ref,
                "the conversation has a system prompt or earlier turns, which TRL's standard format "
                "cannot hold; export as trl_conversational",
            )
        return {"prompt": conv.input, "chosen": chosen, "rejected": rejected}
    if fmt == "trl_conversational":
        head = [{"role": SYSTEM, "content": conv.system}] if conv.system.strip() else []
        return {
            "prompt": head + [dict(turn) for turn in conv.messages],
            "chosen": [{"role": ASSISTANT, "content": chosen}],
            "rejected": [{"role": ASSISTANT, "content": rejected}],
        }
    raise ValueError(f"unknown preference format {fmt!r}; one of {', '.join(PAIR_FORMATS)}")


def dataset_info_entry(fmt: str, file_name: str) -> dict[str, Any] | None:
    """The LLaMA-Factory dataset_info.json entry for a ranking file; None for TRL's formats."""
    if fmt == "llamafactory_alpaca":
        entry = {
            "file_name": file_name,
            "formatting": "alpaca",
            "ranking": True,
            "columns": {
                "prompt": "instruction",
                "query": "input",
                "chosen": "chosen",
                "rejected": "rejected",
                "system": "system",
                "history": "history",
            },
        }
    elif fmt == "llamafactory_sharegpt":
        entry = {
            "file_name": file_name,
            "formatting": "sharegpt",
            "ranking": True,
            "columns": {
                "messages": "conversations",
                "chosen": "chosen",
                "rejected": "rejected",
                "system": "system",
            },
            "tags": dict(SHAREGPT_TAGS),
        }
    else:
        return None
    validate_dataset_info_entry(entry, name=file_name)
    return entry
