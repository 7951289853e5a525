"""How a conversation reads in the browser: turns by role, tool calls readable, long histories folded.

Plain functions over the conversation shape (annotation.dataio.conversation), so the workbench, the item
page and the rating page show a conversation the same way. Templates escape every text they are given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from annotation.dataio.conversation import ASSISTANT, TOOL, TURN_KEYS
from annotation.workflow.diffing import text_diff

# The last turns before the reply stay open; earlier ones fold when the conversation is long: more
# turns than FOLD_AFTER_TURNS, or more text than FOLD_AFTER_CHARS. A person then reads the question
# being answered at once and opens older turns when they need them.
KEEP_OPEN = 2
FOLD_AFTER_TURNS = 4
FOLD_AFTER_CHARS = 1200
SUMMARY_CHARS = 90


@dataclass
class ToolCall:
    name: str
    arguments: str  # pretty-printed when it is JSON, else as it came
    id: str = ""


@dataclass
class Turn:
    index: int  # 0-based in the conversation (messages, then the reply)
    number: int  # as people count turns: 1-based
    role: str
    content: str
    name: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str = ""
    tool_name: str = ""  # for a tool result: the function whose call it answers
    preformatted: bool = False  # JSON (tool results), shown as code
    extra: list[tuple[str, str]] = field(default_factory=list)  # other keys the file gave the turn
    edited: bool = False
    original: str = ""
    changes: list[tuple[str, str]] = field(default_factory=list)  # the diff from `original`, when edited
    editable: bool = False
    folded: bool = False

    @property
    def summary(self) -> str:
        text = " ".join(self.content.split()) or ", ".join(call.name for call in self.tool_calls)
        return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


@dataclass
class Chat:
    system: str
    turns: list[Turn]
    tools: list[dict]
    reply_number: int  # the number of the turn under work
    reply_calls: list[ToolCall]  # tool calls the imported reply carries

    @property
    def folded(self) -> int:
        return sum(1 for turn in self.turns if turn.folded)


def conversation_view(
    *,
    messages: Sequence[Mapping[str, Any]],
    system: str = "",
    tools: Sequence | None = None,
    edits: Mapping | None = None,
    shown: Mapping | None = None,
    editable: bool = False,
    reply_extra: Mapping[str, Any] | None = None,
) -> Chat:
    """The conversation before the reply, as the page shows it.

    `edits` ({index: text}) are the turn edits in force (the current revision's or the autosave's);
    `shown` overrides what editable turns display (the text a person posted before an error); with
    `editable`, earlier assistant turns can be edited in place.
    """
    edited = {int(k): v for k, v in (edits or {}).items()}
    shown_text = {int(k): v for k, v in (shown or {}).items()}
    calls_by_id: dict[str, str] = {}
    turns = []
    for index, raw in enumerate(messages):
        role = raw.get("role", "")
        original = raw.get("content") or ""
        content = shown_text.get(index, edited.get(index, original))
        turn = Turn(
            index=index,
            number=index + 1,
            role=role,
            content=content,
            name=str(raw.get("name") or ""),
            tool_calls=tool_calls_view(raw.get("tool_calls")),
            tool_call_id=str(raw.get("tool_call_id") or ""),
            extra=_extra(raw),
            edited=content != original,
            original=original,
            # A turn that only calls a tool has no text to edit (its calls are not edited here).
            editable=editable and role == ASSISTANT and bool(original.strip()),
        )
        if turn.edited:
            turn.changes = text_diff(original, content)
        for call in turn.tool_calls:
            if call.id:
                calls_by_id[call.id] = call.name
        if role == TOOL:
            turn.tool_name = turn.name or calls_by_id.get(turn.tool_call_id, "")
            pretty = _pretty_json(content)
            if pretty is not None and not turn.editable:
                turn.content, turn.preformatted = pretty, True
        turns.append(turn)
    _fold(turns)
    return Chat(
        system=system,
        turns=turns,
        tools=tool_definitions(tools or []),
        reply_number=len(messages) + 1,
        reply_calls=tool_calls_view((reply_extra or {}).get("tool_calls")),
    )


def _fold(turns: list[Turn]) -> None:
    total = sum(len(turn.content) for turn in turns)
    if len(turns) <= FOLD_AFTER_TURNS and total <= FOLD_AFTER_CHARS:
        return
    for turn in turns[:-KEEP_OPEN]:
        turn.folded = True


def tool_calls_view(calls: Any) -> list[ToolCall]:
    """OpenAI-shaped tool calls ({"id", "function": {"name", "arguments"}}) as name and readable arguments;
    anything else in the list is shown as its JSON rather than hidden."""
    if not isinstance(calls, list):
        return []
    shown = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            arguments = function.get("arguments", "")
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments, ensure_ascii=False)
            pretty = _pretty_json(arguments)
            shown.append(
                ToolCall(
                    name=str(function.get("name") or "?"),
                    arguments=pretty if pretty is not None else arguments,
                    id=str(call.get("id") or ""),
                )
            )
        else:
            shown.append(ToolCall(name="?", arguments=json.dumps(call, ensure_ascii=False, indent=2)))
    return shown


def tool_definitions(tools: Sequence) -> list[dict]:
    """Tool definitions (OpenAI's {"type": "function", "function": {...}} or the bare function) as name,
    description and the parameters' JSON."""
    shown = []
    for tool in tools:
        spec = tool.get("function", tool) if isinstance(tool, dict) else {}
        if not isinstance(spec, dict):
            spec = {}
        parameters = spec.get("parameters")
        shown.append(
            {
                "name": str(spec.get("name") or "?"),
                "description": str(spec.get("description") or ""),
                "parameters": json.dumps(parameters, ensure_ascii=False, indent=2) if parameters else "",
            }
        )
    return shown


def metadata_view(metadata: Any) -> list[tuple[str, str, bool]]:
    """Metadata as (key, text, filterable) by key; values that are not text show as JSON,
    and only text, numbers and booleans can be looked up with ?metadata.key=value."""
    if not isinstance(metadata, dict):
        return []
    return [
        (str(key), _as_text(value), isinstance(value, str | int | float | bool))
        for key, value in sorted(metadata.items(), key=lambda pair: str(pair[0]))
    ]


def _extra(turn: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(str(key), _as_text(value)) for key, value in turn.items() if key not in TURN_KEYS]


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _pretty_json(text: str) -> str | None:
    """`text` indented when it holds a JSON object or array, else None."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        return json.dumps(json.loads(stripped), ensure_ascii=False, indent=2)
    except ValueError:
        return None
