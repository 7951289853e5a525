"""Streaming writers from reviewed conversations to LLaMA-Factory and OpenAI JSONL, and their entries."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO, Literal

from annotation.dataio.conversation import (
    ASSISTANT,
    TOOL,
    USER,
    Conversation,
    TurnError,
    conversation_split,
    history_pairs,
    single_turn,
)

# A sample is a mapping with keys system, messages (the turns before the reply), tools, output (the
# reply's text), reply_extra (the reply turn's other keys), draft (the model draft it started from, may
# be empty) and metadata (a dict: its "id" names the sample in errors, its "item" holds the item's own
# metadata). A sample without messages is the single turn `input`; `context` is read for `system` from
# callers that still name it so.
Sample = Mapping[str, Any]
ContextAs = Literal["system", "input"]

EXPORT_FORMATS = ("alpaca", "sharegpt", "openai", "preference", "csv", "parquet")

SHAREGPT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}
# LLaMA-Factory reads OpenAI files with its sharegpt reader (data/README.md, "OpenAI Format"): it sees
# role and content only, so tool calls reach it through the sharegpt export's function_call turns.
OPENAI_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "observation_tag": "tool",
    "system_tag": "system",
}
_SHAREGPT_FROM = {USER: "human", ASSISTANT: "gpt", TOOL: "observation"}
# How LLaMA-Factory itself joins parallel tool results into one observation turn (converter.py).
TOOL_RESULTS_JOIN = "\n</tool_response>\n<tool_response>\n"
_ALPACA_CANNOT = "which alpaca cannot hold; export as sharegpt or openai"

# Keys LLaMA-Factory reads from a dataset_info.json entry (data/README.md); anything else is a typo it
# would silently ignore, such as "format" for "formatting".
_ENTRY_KEYS = {"hf_hub_url", "ms_hub_url", "script_url", "file_name", "file_sha1", "subset", "folder",
               "ranking", "formatting", "columns", "tags", "split", "num_samples"}  # fmt: skip
_COLUMN_KEYS = {"prompt", "query", "response", "history", "messages", "system", "tools", "images",
                "videos", "audios", "chosen", "rejected", "kto_tag"}  # fmt: skip
_TAG_KEYS = {"role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag",
             "system_tag"}  # fmt: skip
_HINTS = {
    "format": "formatting",
    "column": "columns",
    "tag": "tags",
    "file": "file_name",
    "filename": "file_name",
}


class ExportValidationError(ValueError):
    """A sample or dataset_info entry that would train wrongly; `sample` names which one."""

    def __init__(self, sample: str, reason: str):
        self.sample = sample
        self.reason = reason
        super().__init__(f"{sample}: {reason}")


def sample_ref(sample: Sample, index: int) -> str:
    metadata = sample.get("metadata") or {}
    ident = metadata.get("id") if isinstance(metadata, Mapping) else None
    return f"sample {ident!r}" if ident is not None else f"sample #{index}"


def sample_text(sample: Sample, key: str, ref: str, *, required: bool) -> str:
    value = sample.get(key)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ExportValidationError(ref, f"{key} must be text, not {type(value).__name__}")
    if required and not value.strip():
        raise ExportValidationError(ref, f"{key} is empty")
    return value


def sample_conversation(sample: Sample, index: int = 0) -> Conversation:
    """The sample's whole conversation, checked as imports check it (errors name the 1-based turn)."""
    ref = sample_ref(sample, index)
    system = sample_text(sample, "system" if "system" in sample else "context", ref, required=False)
    messages = sample.get("messages") or single_turn(sample_text(sample, "input", ref, required=True))
    output = sample_text(sample, "output", ref, required=False)
    reply_extra = dict(sample.get("reply_extra") or {})
    tools = sample.get("tools") or []
    if not isinstance(messages, list):
        raise ExportValidationError(ref, f"messages must be a list, not {type(messages).__name__}")
    if not isinstance(tools, list):
        raise ExportValidationError(ref, f"tools must be a list, not {type(tools).__name__}")
    if not output.strip() and not reply_extra.get("tool_calls"):
        raise ExportValidationError(ref, "output is empty")
    reply = {"role": ASSISTANT, "content": output, **reply_extra}
    try:
        conv = conversation_split([*messages, reply], system=system, tools=tools)
    except TurnError as exc:
        raise ExportValidationError(ref, str(exc)) from None
    return conv


def _sharegpt_call(call: Any, ref: str, turn: int) -> dict[str, Any]:
    """One OpenAI tool call as LLaMA-Factory's {"name", "arguments"} (arguments a JSON value, not text)."""
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise ExportValidationError(ref, f"turn {turn}: a tool call needs a function with a name")
    lost = sorted((set(call) - {"id", "type", "function"}) | (set(function) - {"name", "arguments"}))
    if call.get("type", "function") != "function" or lost:
        what = f"keys {', '.join(lost)}" if lost else f"type {call.get('type')!r}"
        raise ExportValidationError(
            ref, f"turn {turn}: a function_call turn cannot hold the tool call's {what}"
        )
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise ExportValidationError(
                ref, f"turn {turn}: the arguments of tool call {function['name']!r} are not JSON"
            ) from None
    value = {"name": function["name"], "arguments": arguments}
    if call.get("id"):
        value["id"] = call["id"]  # LLaMA-Factory ignores it; an import reads it back
    return value


def sharegpt_turns(conv: Conversation, ref: str) -> list[dict[str, Any]]:
    """Every turn as LLaMA-Factory names it: human, gpt, function_call (the calls as JSON text) and
    observation; a turn's other keys (a name, a weight) are kept beside from/value."""
    turns: list[dict[str, Any]] = []
    for position, turn in enumerate(conv.full(), start=1):
        role, content = turn["role"], turn["content"]
        extra = {k: v for k, v in turn.items() if k not in ("role", "content", "tool_calls")}
        if role == TOOL and turns and turns[-1]["from"] == "observation":
            # Parallel results: LLaMA-Factory wants one observation; the calls' order says which is which.
            kept = sorted((set(extra) | set(turns[-1])) - {"from", "value", "name", "tool_call_id"})
            if kept:
                raise ExportValidationError(
                    ref, f"turn {position}: parallel tool results with keys {', '.join(kept)} cannot be "
                    "joined into one observation; export as openai",
                )  # fmt: skip
            turns[-1] = {"from": "observation", "value": turns[-1]["value"] + TOOL_RESULTS_JOIN + content}
        elif role == ASSISTANT and turn.get("tool_calls"):
            if content.strip():
                raise ExportValidationError(
                    ref, f"turn {position} has text and tool calls; a function_call turn holds only the "
                    "calls; export as openai",
                )  # fmt: skip
            calls = [_sharegpt_call(call, ref, position) for call in turn["tool_calls"]]
            value = calls[0] if len(calls) == 1 else calls
            turns.append({"from": "function_call", "value": json.dumps(value, ensure_ascii=False), **extra})
        else:
            turns.append({"from": _SHAREGPT_FROM[role], "value": content, **extra})
    return turns


def validate_conversation(messages: Sequence[Mapping[str, Any]], tags: Mapping[str, str], ref: str) -> None:
    """Check the turn order LLaMA-Factory's sharegpt reader expects: optional system, then user (or
    observation) and assistant (or function call) turns alternating, starting with the user and ending
    with the assistant, each with non-empty text."""
    role, content = tags["role_tag"], tags["content_tag"]
    odd = {tags["user_tag"], tags.get("observation_tag")} - {None}
    even = {tags["assistant_tag"], tags.get("function_tag")} - {None}
    turns = list(messages)
    if turns and turns[0].get(role) == tags["system_tag"]:
        turns = turns[1:]
    if not turns or len(turns) % 2:
        raise ExportValidationError(
            ref, "a conversation needs user/assistant pairs, ending with the assistant"
        )
    for position, turn in enumerate(turns):
        allowed = odd if position % 2 == 0 else even
        if turn.get(role) not in allowed:
            expected = " or ".join(repr(tag) for tag in sorted(allowed))
            raise ExportValidationError(
                ref, f"turn {position + 1} is {turn.get(role)!r}; roles must alternate, expected {expected}"
            )
        text = turn.get(content)
        if not isinstance(text, str) or not text.strip():
            raise ExportValidationError(ref, f"turn {position + 1} has no text")


def _tools_text(conv: Conversation) -> str:
    # LLaMA-Factory reads tools as JSON text and skips them when the text is empty.
    return json.dumps(conv.tools, ensure_ascii=False) if conv.tools else ""


def alpaca_record(sample: Sample, index: int = 0, *, context_as: ContextAs = "system") -> dict[str, Any]:
    return alpaca_conversation(sample_conversation(sample, index), sample_ref(sample, index), context_as)


def alpaca_conversation(conv: Conversation, ref: str, context_as: ContextAs = "system") -> dict[str, Any]:
    """instruction (the last user turn), output, system, history ([user, assistant] pairs before it) and
    tools; a conversation alpaca cannot hold (tool turns, a turn's own keys) is refused with the reason."""
    if conv.reply_extra.get("tool_calls"):
        raise ExportValidationError(ref, f"the reply is a tool call, {_ALPACA_CANNOT}")
    try:
        history, prompt = history_pairs(conv.messages)
    except ValueError as exc:
        raise ExportValidationError(ref, str(exc)) from None
    for position, turn in enumerate(conv.full(), start=1):
        lost = sorted(set(turn) - {"role", "content"})
        if lost:
            raise ExportValidationError(ref, f"turn {position} has keys ({', '.join(lost)}) {_ALPACA_CANNOT}")
    # Classic alpaca (context_as="input"): the task in instruction, the material it works on in input.
    head = {"instruction": prompt, "input": conv.system} if context_as == "input" else {
        "instruction": prompt, "input": "", "system": conv.system}  # fmt: skip
    return {**head, "output": conv.reply, "history": history, "tools": _tools_text(conv)}


def sharegpt_record(sample: Sample, index: int = 0) -> dict[str, Any]:
    ref = sample_ref(sample, index)
    conv = sample_conversation(sample, index)
    conversations = sharegpt_turns(conv, ref)
    validate_conversation(conversations, SHAREGPT_TAGS, ref)
    return {"conversations": conversations, "system": conv.system, "tools": _tools_text(conv)}


def openai_messages(conv: Conversation) -> list[dict[str, Any]]:
    """The system message, then every turn as it is held (tool_calls, tool_call_id, name and any other
    key), the reply last with its own keys: what the fine-tuning API and TRL's SFTTrainer read."""
    system = [{"role": "system", "content": conv.system}] if conv.system.strip() else []
    return system + conv.full()


def openai_record(sample: Sample, index: int = 0) -> dict[str, Any]:
    conv = sample_conversation(sample, index)
    record: dict[str, Any] = {"messages": openai_messages(conv)}
    if conv.tools:
        record["tools"] = conv.tools
    return record


def preference_record(
    sample: Sample, index: int = 0, *, context_as: ContextAs = "system"
) -> dict[str, Any] | None:
    """The reviewer's output as chosen over the model draft as rejected; None when there is no real pair."""
    ref = sample_ref(sample, index)
    output = sample_text(sample, "output", ref, required=True)
    draft = sample_text(sample, "draft", ref, required=False)
    if not draft.strip() or draft.strip() == output.strip():
        return None
    record = alpaca_record(sample, index, context_as=context_as)
    chosen = record.pop("output")
    return {**record, "chosen": chosen, "rejected": draft}


def _write_jsonl(records: Iterable[Mapping[str, Any] | None], stream: BinaryIO) -> int:
    written = 0
    for record in records:
        if record is None:
            continue
        # ensure_ascii=False keeps Chinese readable and the file a third of the size.
        stream.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        written += 1
    return written


def write_alpaca_jsonl(
    samples: Iterable[Sample], stream: BinaryIO, *, context_as: ContextAs = "system"
) -> int:
    """Write LLaMA-Factory alpaca JSONL; returns the number of records. Raises ExportValidationError
    mid-stream on a bad sample, so write to a temporary file and move it into place on success."""
    return _write_jsonl(
        (alpaca_record(s, i, context_as=context_as) for i, s in enumerate(samples, 1)), stream
    )


def write_sharegpt_jsonl(samples: Iterable[Sample], stream: BinaryIO) -> int:
    return _write_jsonl((sharegpt_record(s, i) for i, s in enumerate(samples, 1)), stream)


def write_openai_jsonl(samples: Iterable[Sample], stream: BinaryIO) -> int:
    return _write_jsonl((openai_record(s, i) for i, s in enumerate(samples, 1)), stream)


def write_preference_jsonl(
    samples: Iterable[Sample], stream: BinaryIO, *, context_as: ContextAs = "system"
) -> int:
    """Write one LLaMA-Factory ranking record per sample whose output differs from a non-empty draft."""
    return _write_jsonl(
        (preference_record(s, i, context_as=context_as) for i, s in enumerate(samples, 1)), stream
    )


# --- dataset_info.json --------------------------------------------------------------------------------


def dataset_info_entry(fmt: str, file_name: str, *, context_as: ContextAs = "system") -> dict[str, Any]:
    """The LLaMA-Factory dataset_info.json entry that reads a file written by the matching writer."""
    system = {"system": "system"} if context_as == "system" else {}
    alpaca_rest = {**system, "history": "history", "tools": "tools"}
    if fmt in ("alpaca", "parquet"):
        entry = {
            "file_name": file_name,
            "formatting": "alpaca",
            "columns": {"prompt": "instruction", "query": "input", "response": "output", **alpaca_rest},
        }
    elif fmt == "preference":
        entry = {
            "file_name": file_name,
            "formatting": "alpaca",
            "ranking": True,
            "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected",
                        **alpaca_rest},
        }  # fmt: skip
    elif fmt == "sharegpt":
        entry = {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
            "tags": dict(SHAREGPT_TAGS),
        }
    elif fmt == "openai":
        entry = {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "messages"},
            "tags": dict(OPENAI_TAGS),
        }
    else:
        raise ValueError(
            f"no dataset_info entry for {fmt!r}; expected alpaca, parquet, preference, sharegpt, openai"
        )
    validate_dataset_info_entry(entry, name=file_name)
    return entry


def validate_dataset_info_entry(entry: Mapping[str, Any], *, name: str = "entry") -> None:
    """Reject keys LLaMA-Factory would ignore and values it would refuse, naming the entry."""
    for key in entry:
        if key not in _ENTRY_KEYS:
            hint = f"; did you mean {_HINTS[key]!r}?" if key in _HINTS else ""
            raise ExportValidationError(name, f"unknown dataset_info key {key!r}{hint}")
    if entry.get("formatting", "alpaca") not in ("alpaca", "sharegpt"):
        raise ExportValidationError(
            name, f"formatting must be 'alpaca' or 'sharegpt', not {entry['formatting']!r}"
        )
    for key in entry.get("columns", {}):
        if key not in _COLUMN_KEYS:
            raise ExportValidationError(name, f"unknown columns key {key!r}")
    for key in entry.get("tags", {}):
        if key not in _TAG_KEYS:
            raise ExportValidationError(name, f"unknown tags key {key!r}")
    if entry.get("tags") and entry.get("formatting") != "sharegpt":
        raise ExportValidationError(name, "tags are read only with formatting 'sharegpt'")
    if entry.get("ranking") and not {"chosen", "rejected"} <= set(entry.get("columns", {})):
        raise ExportValidationError(name, "a ranking dataset needs chosen and rejected columns")
