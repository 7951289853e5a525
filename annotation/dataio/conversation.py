"""Conversations, the unit of data: plain dicts and lists that imports, exports, drafting and training share.

An item holds a conversation split at the turn under work (the *reply*, the final assistant turn):

- ``system``: the system prompt ("" when none);
- ``messages``: every turn before the reply, in order. Each is a dict with ``role`` (user | assistant |
  tool) and ``content`` (text), and optionally ``name``, ``tool_calls`` (OpenAI's shape:
  ``[{"id"?, "type": "function", "function": {"name", "arguments": "<JSON text>"}}]``) and
  ``tool_call_id``; any other key a file gave a turn is kept in the turn as it came. The prompt ends
  with the user (or tool) turn the reply answers;
- ``reply``: the reply's text, and ``reply_extra``: the reply turn's other keys (its ``tool_calls``, a
  ``weight``, ...), so an exported conversation is the imported one with the reply's text replaced;
- ``tools``: the tool definitions the conversation may call (a list, usually JSON schemas).

A single-turn item is a conversation of one user message. Earlier assistant turns are context; when a
project lets people edit them, a revision keeps its edits as ``{turn index: text}`` (``turn_edits``),
so the conversation a revision stands for is the item's with those edits and the revision's reply.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

USER, ASSISTANT, TOOL, SYSTEM = "user", "assistant", "tool", "system"
ROLES = (USER, ASSISTANT, TOOL)
# Keys of a turn that carry meaning here; any other key is kept in the turn untouched.
TURN_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")

Message = dict[str, Any]


class TurnError(ValueError):
    """A conversation that cannot be read; `turn` is the 1-based position in the turns as given."""

    def __init__(self, turn: int | None, reason: str):
        self.turn = turn
        self.reason = reason
        super().__init__(f"turn {turn}: {reason}" if turn else reason)


@dataclass(frozen=True)
class Conversation:
    messages: list[Message]
    system: str = ""
    reply: str = ""
    reply_extra: dict[str, Any] = field(default_factory=dict)
    tools: list[Any] = field(default_factory=list)

    @property
    def input(self) -> str:
        """The question the reply answers: the last user turn's text (what lists and search show)."""
        return last_user_text(self.messages)

    def full(self, *, reply: str | None = None, edits: Mapping[int, str] | None = None) -> list[Message]:
        """Every turn, the reply included (omitted when there is no reply text and no reply_extra)."""
        return conversation_full(self.messages, reply=self.reply if reply is None else reply,
                                 reply_extra=self.reply_extra, edits=edits)  # fmt: skip


def single_turn(text: str) -> list[Message]:
    return [{"role": USER, "content": text}]


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for turn in reversed(messages):
        if turn.get("role") == USER:
            return turn.get("content") or ""
    return ""


def _has_tool_calls(turn: Mapping[str, Any]) -> bool:
    return bool(turn.get("tool_calls"))


def conversation_split(turns: Sequence[Mapping[str, Any]], *, system: str = "", tools=None) -> Conversation:
    """Check `turns` (system turns allowed only first) and split off the reply.

    Raises TurnError naming the 1-based turn: an unknown role, a system turn after the first, text
    that is not a string, an empty turn, a conversation that does not start with the user, two user
    turns in a row (an assistant turn is missing), a tool turn that follows no tool call, or nothing
    to answer (no user turn).
    """
    messages: list[Message] = []
    for position, raw in enumerate(turns, start=1):
        if not isinstance(raw, Mapping):
            raise TurnError(position, "a turn must be an object")
        turn = dict(raw)
        role = turn.get("role")
        if role == SYSTEM:
            if messages:
                raise TurnError(position, "a system turn may only come first")
            content = turn.get("content")
            if not isinstance(content, str):
                raise TurnError(position, f"the system turn's content must be text, not {kind(content)}")
            if system and content != system:
                raise TurnError(position, "the system prompt is given twice, and differently")
            system = content
            extra = sorted(set(turn) - {"role", "content"})
            if extra:
                raise TurnError(position, f"the system turn has keys that would be lost: {', '.join(extra)}")
            continue
        if role not in ROLES:
            raise TurnError(position, f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        content = turn.get("content")
        if content is None and role == ASSISTANT and _has_tool_calls(turn):
            content = ""
        if not isinstance(content, str):
            hint = "; only text content is supported" if isinstance(content, list) else ""
            raise TurnError(position, f"content must be text, not {kind(content)}{hint}")
        if not content.strip() and not (role == ASSISTANT and _has_tool_calls(turn)):
            raise TurnError(position, f"the {role} turn is empty")
        turn["content"] = content
        previous = messages[-1]["role"] if messages else None
        if previous is None and role != USER:
            raise TurnError(position, f"a conversation starts with the user, not the {role}")
        if previous == USER and role != ASSISTANT:
            raise TurnError(position, f"an assistant turn is missing before this {role} turn")
        calls_a_tool = previous == ASSISTANT and _has_tool_calls(messages[-1])
        if role == TOOL and not (previous == TOOL or calls_a_tool):
            raise TurnError(position, "a tool turn must follow an assistant turn that calls a tool")
        if previous == ASSISTANT and role == ASSISTANT:
            raise TurnError(position, "two assistant turns in a row; a user or tool turn is missing")
        messages.append(turn)
    if not messages:
        raise TurnError(None, "the conversation has no turns")
    reply, reply_extra = "", {}
    if messages[-1]["role"] == ASSISTANT:
        last = messages.pop()
        reply = last.pop("content")
        last.pop("role")
        reply_extra = last
    return Conversation(messages=messages, system=system, reply=reply, reply_extra=reply_extra,
                        tools=list(tools or []))  # fmt: skip


def conversation_full(
    messages: Sequence[Mapping[str, Any]],
    *,
    reply: str = "",
    reply_extra: Mapping[str, Any] | None = None,
    edits: Mapping[int, str] | None = None,
) -> list[Message]:
    """The prompt with earlier-turn `edits` applied, then the reply turn (when it has text or keys)."""
    full = turns_edited(messages, edits)
    if reply or reply_extra:
        full.append({"role": ASSISTANT, "content": reply, **(reply_extra or {})})
    return full


def assistant_turns(messages: Sequence[Mapping[str, Any]]) -> list[int]:
    """Indexes (0-based, in `messages`) of the earlier assistant turns, the ones a project may let edit."""
    return [i for i, turn in enumerate(messages) if turn.get("role") == ASSISTANT]


def turn_edits_check(messages: Sequence[Mapping[str, Any]], edits: Mapping) -> dict[int, str]:
    """Validate {index: text} edits of earlier assistant turns; ValueError naming the bad one."""
    allowed = set(assistant_turns(messages))
    clean: dict[int, str] = {}
    for key, text in edits.items():
        try:
            index = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"turn {key!r}: not a turn number") from None
        if index not in allowed:
            raise ValueError(f"turn {index}: not an earlier assistant turn of this conversation")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"turn {index}: the text must not be empty")
        if text != messages[index].get("content"):
            clean[index] = text
    return clean


def turn_edits_merge(
    messages: Sequence[Mapping[str, Any]], carried: Mapping | None, edits: Mapping
) -> dict[str, str]:
    """A revision's cumulative edits: `carried` (its parent's, {str index: text}) with `edits` applied.

    `edits` are checked as turn_edits_check does (ValueError naming the bad turn); an edit that gives a
    turn back its own text undoes the carried edit of that turn instead of being stored.
    """
    clean = turn_edits_check(messages, edits)
    merged = {str(k): v for k, v in (carried or {}).items()}
    for key in edits:
        index = int(key)
        if index in clean:
            merged[str(index)] = clean[index]
        else:
            merged.pop(str(index), None)
    return dict(sorted(merged.items(), key=lambda kv: int(kv[0])))


def turns_edited(messages: Sequence[Mapping[str, Any]], edits: Mapping | None) -> list[Message]:
    """A copy of `messages` with each edited turn's content replaced (keys may be str or int)."""
    edited = {int(k): v for k, v in (edits or {}).items()}
    return [{**turn, "content": edited[i]} if i in edited else dict(turn) for i, turn in enumerate(messages)]


def history_pairs(messages: Sequence[Mapping[str, Any]]) -> tuple[list[list[str]], str]:
    """Alpaca's shape: ([[user, assistant], ...] before the last user turn, the last user turn).

    ValueError when the conversation has tool turns or tool calls, which alpaca cannot hold.
    """
    for position, turn in enumerate(messages, start=1):
        if turn.get("role") == TOOL or _has_tool_calls(turn):
            raise ValueError(f"turn {position} is a tool {'call' if _has_tool_calls(turn) else 'result'}, "
                             "which alpaca cannot hold; export as sharegpt or openai")  # fmt: skip
    pairs = [[messages[i]["content"], messages[i + 1]["content"]] for i in range(0, len(messages) - 1, 2)]
    return pairs, messages[-1]["content"]


def canonical_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def content_hash(*, system: str, messages: Sequence[Mapping[str, Any]], tools: Sequence = ()) -> str:
    """Identity of an item's conversation, to skip re-imports of items without an external id.

    A single user turn with no tools hashes as items always have (its text and the system prompt), so
    items stored before conversations existed keep their hash; anything else hashes its canonical JSON.
    """
    return content_hash_with_json(system=system, messages=messages, tools=tools)[0]


_SPACE = re.compile(r"\s+")
_END_PUNCTUATION = "?!.。？！…"


def question_normalise(text: str) -> str:
    """A question as the answer cache compares it: Unicode compatibility forms folded (full-width
    letters and punctuation become ASCII), case folded, runs of white space made one space, and the
    question marks, full stops and ellipses at its end dropped. "Where is my parcel?" and
    " where  is my PARCEL " are one question; "Where is my parcel, please?" is another."""
    text = _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    return text.rstrip(_END_PUNCTUATION + " ")


def question_key(*, system: str, messages: Sequence[Mapping[str, Any]], tools: Sequence = ()) -> str:
    """The answer cache's key of a conversation that is a single question (one plain user turn, no
    system prompt, no tools: what `ask` receives), else "" (never a cache entry)."""
    if system or tools or len(messages) != 1:
        return ""
    turn = messages[0]
    if set(turn) != {"role", "content"} or turn["role"] != USER or not isinstance(turn["content"], str):
        return ""
    normalised = question_normalise(turn["content"])
    return hashlib.sha256(normalised.encode()).hexdigest() if normalised else ""


_canonical = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode


def content_hash_with_json(
    *, system: str, messages: Sequence[Mapping[str, Any]], tools: Sequence = ()
) -> tuple[str, str]:
    """(content_hash, `messages` as canonical JSON text): the same hash, for a caller that stores the
    JSON too (imports), so that each conversation is encoded once. The body is canonical_json's of
    {"messages", "system", "tools"}, written from its parts (keys in sorted order)."""
    messages_json = _canonical(list(messages))
    plain = len(messages) == 1 and set(messages[0]) == {"role", "content"} and messages[0]["role"] == USER
    if plain and not tools:
        return hashlib.sha256(f"{messages[0]['content']}\x1f{system}".encode()).hexdigest(), messages_json
    body = f'{{"messages":{messages_json},"system":{_canonical(system)},"tools":{_canonical(list(tools))}}}'
    return hashlib.sha256(f"conversation\x1f{body}".encode()).hexdigest(), messages_json


def prompt_turns(
    *, template: str, system: str, messages: Sequence[Mapping[str, Any]], default_system: str | None = None
) -> tuple[str | None, list[Message]]:
    """What the model is asked: (system prompt or None, turns), the project's template around the last
    user turn. A template that places the system text itself ({system}, or {context} as older
    templates name it) puts it in the user turn, and then it is not sent again as the system turn."""
    turns = [dict(turn) for turn in messages]
    places_system = "{system}" in template or "{context}" in template
    for turn in reversed(turns):
        if turn.get("role") == USER:
            turn["content"] = template.format(input=turn["content"], system=system, context=system)
            break
    if places_system:
        return default_system or None, turns
    return (system or default_system or None), turns


def kind(value: object) -> str:
    """How an error names a JSON value's type: \"a number\", \"an array\", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__
