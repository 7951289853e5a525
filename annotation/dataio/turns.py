"""A file's turns as conversation turns: ShareGPT's from/value and OpenAI's role/content, alpaca history.

Django-free like the rest of dataio. The readers raise TurnError (1-based turn) or ValueError with the
reason; records.py names the line and the key.
"""

from __future__ import annotations

import json
from typing import Any

from annotation.dataio.conversation import ASSISTANT, SYSTEM, TOOL, USER, TurnError, kind

SHAREGPT_ROLES = {"human": USER, "user": USER, "gpt": ASSISTANT, "assistant": ASSISTANT, "system": SYSTEM,
                  "function_call": ASSISTANT, "observation": TOOL, "tool": TOOL}  # fmt: skip
_PLAIN_TAGS = {tag: role for tag, role in SHAREGPT_ROLES.items() if tag != "function_call"}


def turns_read(value: Any, limit: int) -> list[dict[str, Any]]:
    """Turns in either shape as role/content dicts (other keys kept), each text under `limit` bytes.

    Not yet a checked conversation: conversation_split (or plain_split) checks the order."""
    if not isinstance(value, list):
        raise TurnError(None, f"expected a list of turns, found {kind(value)}")
    turns = []
    for position, raw in enumerate(value, start=1):
        if not isinstance(raw, dict):
            raise TurnError(position, f"a turn must be an object, not {kind(raw)}")
        # conversation_split copies role/content turns; from/value ones of only those keys are the most
        # common shape of all and take the short way.
        turn = raw
        if "from" in raw:
            tag = raw["from"]
            role = _PLAIN_TAGS.get(tag) if type(tag) is str and len(raw) == 2 and "value" in raw else None
            if role is not None:
                turn = {"role": role, "content": raw["value"]}
            else:
                try:
                    turn = _sharegpt_turn(raw)
                except TurnError as exc:
                    raise TurnError(position, exc.reason) from None
        content = turn.get("content")
        if type(content) is str and too_long(content, limit):
            raise TurnError(position, f"the {turn.get('role')} turn {size_reason(content, limit)}")
        for call in (turn.get("tool_calls") or ()) if "tool_calls" in turn else ():
            arguments = call.get("function", {}).get("arguments") if isinstance(call, dict) else None
            if isinstance(arguments, str) and too_long(arguments, limit):
                raise TurnError(position, f"tool call arguments {size_reason(arguments, limit)}")
        turns.append(turn)
    return turns


def plain_split(turns: list[dict]) -> tuple[list[dict], str] | None:
    """conversation_split's (messages, reply) for the plainest and most common conversation: only
    role/content turns of text, user and assistant taking turns from the user. Anything else is None,
    and conversation_split decides (and words any error)."""
    expected = USER
    for turn in turns:
        if len(turn) != 2 or turn.get("role") != expected:
            return None
        content = turn.get("content")
        if type(content) is not str or not content or content.isspace():
            return None
        expected = ASSISTANT if expected == USER else USER
    if not turns:
        return None
    if turns[-1]["role"] == ASSISTANT:
        return turns[:-1], turns[-1]["content"]
    return turns, ""


def history_turns(history: Any, limit: int) -> list[dict[str, str]]:
    """Alpaca history ([[user, assistant], ...]) as turns; ValueError naming the entry that is wrong."""
    if not isinstance(history, list):
        raise ValueError(f"expected a list of [user, assistant] pairs, found {kind(history)}")
    turns = []
    for number, pair in enumerate(history, start=1):
        if not (isinstance(pair, list) and len(pair) == 2):
            what = f"{len(pair)} entries" if isinstance(pair, list) else kind(pair)
            raise ValueError(f"entry {number} must be a [user, assistant] pair, not {what}")
        for role, text in zip((USER, ASSISTANT), pair, strict=True):
            if not isinstance(text, str):
                raise ValueError(f"entry {number}: the {role} text is {kind(text)}")
            if not text.strip():
                raise ValueError(f"entry {number}: the {role} text is empty")
            if too_long(text, limit):
                raise ValueError(f"entry {number}: the {role} text {size_reason(text, limit)}")
            turns.append({"role": role, "content": text})
    return turns


def _sharegpt_turn(raw: dict[str, Any]) -> dict[str, Any]:
    tag = raw["from"]
    role = SHAREGPT_ROLES.get(tag) if isinstance(tag, str) else None
    if role is None:
        raise TurnError(None, f"unknown role {tag!r}; expected one of {', '.join(SHAREGPT_ROLES)}")
    lost = sorted({"role", "content"} & set(raw))
    if lost:
        raise TurnError(None, f"the turn has both 'from'/'value' and {', '.join(lost)}; which is meant?")
    turn = {key: value for key, value in raw.items() if key not in ("from", "value")}
    value = raw.get("value")
    if tag == "function_call":
        turn.update(role=ASSISTANT, content="", tool_calls=_function_calls(value))
    else:
        turn = {"role": role, "content": value, **turn}
    return turn


def _function_calls(value: Any) -> list[dict[str, Any]]:
    """LLaMA-Factory's function_call value (JSON {"name", "arguments"}, or a list) in OpenAI's shape."""
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as exc:
        raise TurnError(
            None, f'a function_call value must be JSON {{"name", "arguments"}}: {exc.msg}'
        ) from None
    calls = parsed if isinstance(parsed, list) else [parsed]
    shaped = []
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) or "arguments" not in call:
            raise TurnError(None, 'a function_call value must be JSON {"name", "arguments"}')
        lost = sorted(set(call) - {"name", "arguments", "id"})
        if lost:
            raise TurnError(None, f"the function_call has keys that would be lost: {', '.join(lost)}")
        arguments = call["arguments"]
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        shaped.append({**({"id": call["id"]} if "id" in call else {}), "type": "function",
                       "function": {"name": call["name"], "arguments": arguments}})  # fmt: skip
    return shaped


def too_long(text: str, limit: int) -> bool:
    # UTF-8 takes at most 4 bytes a character: most texts are cleared without encoding them.
    return len(text) * 4 > limit and len(text.encode("utf-8")) > limit


def size_reason(text: str, limit: int) -> str:
    return f"is {len(text.encode('utf-8')):,} bytes, over the {limit:,}-byte limit"
