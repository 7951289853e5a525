"""The one rendering of a conversation into the text a model continues: drafting and training share it.

A `Prompt` is what the model is asked: the turns before the reply (the project's template already
around the last user turn), the system prompt (None: the model version's own), and the tools.

With a chat template, the system turn, every turn and the tools go through `apply_chat_template`, then
the assistant's opening. Without one the turns are written plainly, one after the other:

    <system>\\n\\n                     when there is a system prompt
    Tools: <tools as JSON>\\n\\n        when there are tools
    prompt_template(<user text>)     for each user turn, and for each tool result
    <assistant text><eos token>      for each earlier assistant turn (its tool calls as JSON after it)

so a single user turn with no system prompt is just `prompt_template.format(input=text)`, as it always
was, and the model learns to end its turns the way the trainer ends the reply (with the eos token).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

USER, ASSISTANT = "user", "assistant"


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, Any]]
    system: str | None = None
    tools: list[Any] = field(default_factory=list)

    @classmethod
    def of(cls, value: str | Prompt | Mapping) -> Prompt:
        """A prompt from a question (one user turn), a Prompt, or a sample dict: `messages` (+ `system`,
        `tools`), or the single-turn shape `input` (+ `context` or `system`)."""
        if isinstance(value, Prompt):
            return value
        if isinstance(value, str):
            return cls(messages=[{"role": USER, "content": value}])
        messages = value.get("messages") or [{"role": USER, "content": value["input"]}]
        system = value.get("system") or value.get("context") or None
        return cls(messages=list(messages), system=system, tools=list(value.get("tools") or []))


@dataclass(frozen=True)
class Layout:
    """Where the turns lie in the rendered prompt, as character offsets into `text`.

    `turn_starts[k]`: where turn k of the prompt's messages begins (None where the template writes the
    earlier turns differently once later ones follow, so no such place exists); `assistant_spans[k]`:
    for each earlier assistant turn, the text the model would have written for it (after the assistant's
    opening, up to and including its end-of-turn token), or None for the same reason."""

    text: str
    turn_starts: list[int | None]
    assistant_spans: dict[int, tuple[int, int] | None]


def uses_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(
    tokenizer, prompt: str | Prompt | Mapping, *, system: str | None = None, prompt_template: str = "{input}"
) -> str:
    """The exact text fed to the model before its answer (`system`: used when the prompt has none)."""
    prompt = Prompt.of(prompt)
    system = prompt.system or system
    if not uses_chat_template(tokenizer):
        return _plain(tokenizer, prompt.messages, system, prompt.tools, prompt_template).text
    return _chat(tokenizer, _chat_turns(prompt.messages, system), prompt.tools, opening=True)


def render_reply(
    tokenizer,
    prompt: str | Prompt | Mapping,
    reply: str,
    *,
    reply_extra: Mapping | None = None,
    system: str | None = None,
    prompt_template: str = "{input}",
) -> str:
    """The reply as it follows the prompt: with a chat template, the text the template writes after the
    prompt once the reply turn is added (its end-of-turn token and whatever the template puts after it);
    without one, the reply's text (and its tool calls). Raises ValueError when the template writes the
    prompt differently once the reply exists: training on that would teach a prompt drafting never feeds."""
    prompt = Prompt.of(prompt)
    turn = {"role": ASSISTANT, "content": reply, **(reply_extra or {})}
    if not uses_chat_template(tokenizer):
        return _plain_assistant(turn)
    system = prompt.system or system
    prompt_text = _chat(tokenizer, _chat_turns(prompt.messages, system), prompt.tools, opening=True)
    full = _chat(tokenizer, _chat_turns([*prompt.messages, turn], system), prompt.tools, opening=False)
    if not full.startswith(prompt_text):
        # e.g. templates that strip "thinking" from earlier turns once an answer exists
        raise ValueError("the chat template renders the prompt differently once the answer is added")
    return full[len(prompt_text) :]


def prompt_layout(
    tokenizer, prompt: str | Prompt | Mapping, *, system: str | None = None, prompt_template: str = "{input}"
) -> Layout:
    """The rendered prompt with where each turn begins and where each earlier assistant turn's own text
    lies (what training labels when every assistant turn is trained, and where truncation may cut).

    With a chat template the places come from rendering the conversation up to each turn: a template
    is read as writing a conversation's beginning the same whatever follows, and a place where it does
    not is None rather than a guess."""
    prompt = Prompt.of(prompt)
    system = prompt.system or system
    if not uses_chat_template(tokenizer):
        return _plain(tokenizer, prompt.messages, system, prompt.tools, prompt_template)
    turns = _chat_turns(prompt.messages, system)
    head = len(turns) - len(prompt.messages)  # the system turn, when there is one
    text = _chat(tokenizer, turns, prompt.tools, opening=True)
    eos = tokenizer.eos_token or ""

    def prefix(k: int, *, opening: bool) -> str | None:
        try:
            rendered = _chat(tokenizer, turns[: head + k], prompt.tools, opening=opening)
        except Exception:  # a template may refuse a conversation that stops there (e.g. no turn at all)
            return None
        return rendered if text.startswith(rendered) else None

    starts: list[int | None] = []
    spans: dict[int, tuple[int, int] | None] = {}
    for k, turn in enumerate(prompt.messages):
        before = prefix(k, opening=False)
        starts.append(None if before is None else len(before))
        if turn.get("role") != ASSISTANT:
            continue
        opened, through = prefix(k, opening=True), prefix(k + 1, opening=False)
        if opened is None or through is None or not through.startswith(opened):
            spans[k] = None
            continue
        end = through.find(eos, len(opened)) if eos else -1
        spans[k] = (len(opened), end + len(eos) if end >= 0 else len(through))
    return Layout(text=text, turn_starts=starts, assistant_spans=spans)


def _chat_turns(messages: Sequence[Mapping[str, Any]], system: str | None) -> list[dict[str, Any]]:
    turns = [{"role": "system", "content": system}] if system else []
    return turns + [_template_turn(turn) for turn in messages]


def _template_turn(turn: Mapping[str, Any]) -> dict[str, Any]:
    """A turn as chat templates read it: tool-call arguments as an object. OpenAI's shape (which the
    conversation keeps) holds them as JSON text, and templates that `tojson` them would quote it twice."""
    calls = turn.get("tool_calls")
    if not calls:
        return dict(turn)
    converted = []
    for call in calls:
        function = call.get("function") if isinstance(call, Mapping) else None
        arguments = function.get("arguments") if isinstance(function, Mapping) else None
        if isinstance(arguments, str):
            try:
                parsed = json.loads(arguments)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                call = {**call, "function": {**function, "arguments": parsed}}
        converted.append(call)
    return {**turn, "tool_calls": converted}


def _chat(tokenizer, turns: list[dict[str, Any]], tools: list, *, opening: bool) -> str:
    return tokenizer.apply_chat_template(
        turns, tools=tools or None, add_generation_prompt=opening, tokenize=False
    )


def _plain_assistant(turn: Mapping[str, Any]) -> str:
    calls = turn.get("tool_calls")
    content = turn.get("content") or ""
    if not calls:
        return content
    encoded = json.dumps(calls, ensure_ascii=False)
    return f"{content}\n{encoded}" if content else encoded


def _plain(tokenizer, messages, system: str | None, tools: list, prompt_template: str) -> Layout:
    """The plain rendering (see the module's docstring), built piece by piece so every place is exact."""
    text = f"{system}\n\n" if system else ""
    if tools:
        text += f"Tools: {json.dumps(tools, ensure_ascii=False)}\n\n"
    eos = tokenizer.eos_token or ""
    starts: list[int | None] = []
    spans: dict[int, tuple[int, int] | None] = {}
    for k, turn in enumerate(messages):
        starts.append(len(text))
        if turn.get("role") == ASSISTANT:
            text += _plain_assistant(turn) + eos
            spans[k] = (starts[-1], len(text))
        else:
            text += prompt_template.format(input=turn.get("content") or "")
    return Layout(text=text, turn_starts=starts, assistant_spans=spans)
