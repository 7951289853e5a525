"""How one imported record becomes a conversation row: which key goes where in each format, or why not.

A record is read by a *plan*: for each field (the user turn, the system prompt, the reply, the external
id, alpaca history, the turns, tools) the keys that may hold it, in order of preference. Each format
recognises its own keys; a mapping replaces the keys of the fields it names (null: from no key). Every
key the plan does not take lands in the row's metadata under its own name, so nothing is dropped: a
record the import cannot keep whole is refused with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from annotation.dataio.conversation import USER, TurnError, conversation_split, last_user_text
from annotation.dataio.conversation import kind as _kind
from annotation.dataio.turns import history_turns, plain_split, size_reason, too_long, turns_read

FIELDS = ("input", "system", "reference_output", "external_id", "history", "messages", "tools")
# Older mappings (and Handover's own earlier files) named the system prompt "context".
LEGACY_FIELDS = {"context": "system"}
SCHEMAS = ("label_studio", "alpaca", "sharegpt", "openai")

# Where a field lands, as the key report names it ("metadata.<key>" for everything else).
DESTINATIONS = {"input": "input", "system": "system", "reference_output": "reference_output",
                "external_id": "external_id", "history": "messages", "messages": "messages",
                "tools": "tools", "input_extra": "input"}  # fmt: skip
RECOGNISED: dict[str, dict[str, tuple[str, ...]]] = {
    "plain": {
        "messages": ("messages", "conversations"),
        "input": ("input", "prompt", "question", "query"),
        "reference_output": ("output", "answer", "response", "completion", "reference_output"),
        "system": ("system", "context"),
        "external_id": ("id", "external_id"),
        "history": ("history",),
        "tools": ("tools",),
    },
    "sharegpt": {
        "messages": ("conversations",),
        "system": ("system",),
        "tools": ("tools",),
        "external_id": ("id",),
    },
    "openai": {"messages": ("messages",), "system": ("system",), "tools": ("tools",), "external_id": ("id",)},
    # alpaca's own "input" key is not the user turn but text joined to the instruction (_single_turn).
    "alpaca": {
        "input": ("instruction",),
        "input_extra": ("input",),
        "reference_output": ("output",),
        "system": ("system",),
        "history": ("history",),
        "tools": ("tools",),
        "external_id": ("id",),
    },  # fmt: skip
    # Fields come from the task's data; the external id is the task's own id unless mapped to a data key.
    "label_studio": {"input": ("text",)},
}
MAX_EXTERNAL_ID = 255  # Item.external_id's column
# Label Studio's own task keys (annotations, predictions, meta, ...) are kept together under this key.
LABEL_STUDIO_METADATA = "label_studio"


@dataclass(slots=True)
class ParsedRow:
    """One valid record as an item will hold it (annotation.dataio.conversation's shape); treat it as
    read-only (not frozen only because a frozen __init__ costs twice as much, once per row).

    `line` is the file line for CSV/JSONL, the 1-based record number for a JSON array; `keys` says where
    each source key went, as (key, destination) pairs.
    """

    line: int
    messages: list[dict[str, Any]]
    system: str = ""
    reference_output: str = ""
    reference_extra: dict[str, Any] = field(default_factory=dict)
    tools: list[Any] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    external_id: str = ""
    keys: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def input(self) -> str:
        return last_user_text(self.messages)


@dataclass(frozen=True)
class RowError:
    """Why a record (or the file, when `line` is 1 and `field` None) cannot be imported; `turn` is the
    1-based turn of a conversation, as the file gives its turns."""

    line: int
    field: str | None
    reason: str
    turn: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", field '{self.field}'" if self.field else "")
        return f"{where}{f', turn {self.turn}' if self.turn else ''}: {self.reason}"


@dataclass(frozen=True)
class Plan:
    """Which keys hold which field, for one file: `sources` field -> candidate keys, best first; `owners`
    the same read the other way (key -> (field, rank)); `mapped` the fields a mapping named."""

    schema: str
    sources: dict[str, tuple[str, ...]]
    owners: dict[str, tuple[str, int]]
    mapped: frozenset[str]
    text_cells: bool = False  # CSV: every value is text; structured fields hold JSON text
    # Rows of a file mostly share their keys: what _take decides for a key set is kept (a bounded number).
    shapes: dict[tuple[str, ...], tuple] = field(default_factory=dict, compare=False)


def mapping_normalised(mapping: Mapping[str, str | None] | None) -> dict[str, str | None]:
    """The mapping with legacy field names replaced; ValueError naming unknown fields."""
    clean: dict[str, str | None] = {}
    for name, source in (mapping or {}).items():
        name = LEGACY_FIELDS.get(name, name)
        if name not in FIELDS:
            raise ValueError(f"unknown mapping field {name!r}; expected some of {', '.join(FIELDS)}")
        clean[name] = source or None
    return clean


def plan_for(schema: str, mapping: Mapping[str, str | None] | None, *, text_cells: bool = False) -> Plan:
    clean = mapping_normalised(mapping)
    sources = dict(RECOGNISED[schema])
    for name, source in clean.items():
        sources[name] = (source,) if source else ()
    if clean.get("messages"):
        # Turns from a named key: a question key is not looked for (it stays metadata).
        for name in ("input", "history"):
            if name not in clean:
                sources[name] = ()
    owners: dict[str, tuple[str, int]] = {}
    for name, candidates in sources.items():
        for rank, key in enumerate(candidates):
            owners.setdefault(key, (name, rank))
    mapped = frozenset(name for name, source in clean.items() if source)
    return Plan(schema=schema, sources=sources, owners=owners, mapped=mapped, text_cells=text_cells)


MAX_SHAPES = 1024


def record_row(line: int, record: Mapping[str, Any], plan: Plan, limit: int) -> ParsedRow | list[RowError]:
    """Read one record (a JSON object, or a CSV row as {header: cell}) by `plan`."""
    if plan.schema == "label_studio":
        return _label_studio_row(line, record, plan, limit)
    shape = tuple(record)
    known = plan.shapes.get(shape)
    if known is not None:
        assigned, rest, keys, turns_key = known
        # Seen before: no decisions left, unless the turns key is empty this time (then its question
        # keys are not metadata after all).
        if turns_key is None or (record[turns_key] is not None and record[turns_key] != ""):
            taken = {name: (key, record[key]) for name, key in assigned}
            metadata = {key: record[key] for key in rest}
            return _finish(line, taken, plan, limit, metadata, keys, [])
    taken, rest = _take(record, plan)
    turns_key = taken["messages"][0] if "messages" in taken else None
    usable = turns_key is None or (record[turns_key] is not None and record[turns_key] != "")
    if known is None and usable and "metadata" not in rest and len(plan.shapes) < MAX_SHAPES:
        assigned = tuple((name, key) for name, (key, _) in taken.items())
        keys = tuple((key, DESTINATIONS[name]) for name, key in assigned)
        keys += tuple((key, f"metadata.{key}") for key in rest)
        plan.shapes[shape] = (assigned, tuple(rest), keys, turns_key)
    keys = [(key, DESTINATIONS[name]) for name, (key, _) in taken.items()]
    metadata: dict[str, Any] = {}
    errors: list[RowError] = []
    for key in rest:
        _metadata_put(metadata, key, record[key], line, errors, keys)
    return _finish(line, taken, plan, limit, metadata, keys, errors)


def _take(source: Mapping[str, Any], plan: Plan, prefix: str = ""):
    """({field: (key as reported, value)} of the best candidate key present for each field, the keys of
    `source` left for metadata): one pass over the keys, once per key set (record_row keeps the answer)."""
    owners = plan.owners
    taken: dict[str, tuple[str, Any]] = {}
    ranks: dict[str, int] = {}
    rest: list[str] = []
    for key, value in source.items():
        owner = owners.get(key)
        if owner is None:
            rest.append(key)
            continue
        name, rank = owner
        held = ranks.get(name)
        if held is None or rank < held:
            if held is not None:
                rest.append(taken[name][0][len(prefix) :])
            taken[name] = (prefix + key, value)
            ranks[name] = rank
        else:
            rest.append(key)
    turns = taken.get("messages")
    if turns is not None and turns[1] is not None and turns[1] != "":
        # A record that gives its turns: a recognised question key beside them is the record's metadata.
        for name in ("input", "history"):
            if name in taken and name not in plan.mapped:
                rest.append(taken.pop(name)[0][len(prefix) :])
    return taken, rest


def _metadata_put(metadata: dict, key: str, value: Any, line: int, errors: list, keys: list) -> None:
    # A record's own "metadata" object is the metadata; its keys join those of the record.
    if key == "metadata" and isinstance(value, dict):
        clash = sorted(set(value) & set(metadata))
        if clash:
            errors.append(RowError(line, "metadata", f"keys given twice, in metadata and beside it: "
                                                     f"{', '.join(clash)}"))  # fmt: skip
        metadata.update(value)
        keys.append(("metadata", "metadata"))
        return
    if key in metadata:
        errors.append(RowError(line, key, "key given twice, in metadata and beside it"))
        return
    metadata[key] = value
    keys.append((key, f"metadata.{key}"))


def _label_studio_row(line: int, record: Mapping[str, Any], plan: Plan, limit: int):
    data = record.get("data")
    if not isinstance(data, dict):
        return [RowError(line, "data", "Label Studio task has no 'data' object")]
    taken, rest = _take(data, plan, prefix="data.")
    keys = [(key, DESTINATIONS[name]) for name, (key, _) in taken.items()]
    metadata: dict[str, Any] = {}
    for key in rest:
        metadata[key] = data[key]
        keys.append((f"data.{key}", f"metadata.{key}"))
    task: dict[str, Any] = {}
    for key, value in record.items():
        if key == "data":
            continue
        if key == "id" and "external_id" not in taken:
            # Without a mapped id in data, the task's own id is the stable handle back to Label Studio.
            taken["external_id"] = ("id", value)
            keys.append(("id", "external_id"))
            continue
        task[key] = value
        keys.append((key, f"metadata.{LABEL_STUDIO_METADATA}.{key}"))
    errors: list[RowError] = []
    if task:
        if LABEL_STUDIO_METADATA in metadata:
            errors.append(RowError(line, f"data.{LABEL_STUDIO_METADATA}",
                                   "this data key is where the task's own keys go; rename it"))  # fmt: skip
        metadata[LABEL_STUDIO_METADATA] = task
    return _finish(line, taken, plan, limit, metadata, keys, errors, prefix="data.")


def _finish(line, taken, plan: Plan, limit, metadata, keys, errors, *, prefix=""):
    """Build and check the conversation from the taken (key, value) of each field."""
    system = _text_field(line, taken.get("system"), limit, errors)
    reply = _text_field(line, taken.get("reference_output"), limit, errors)
    external_id = _external_id(line, taken["external_id"], errors) if "external_id" in taken else ""
    tools = _tools(line, taken["tools"], errors) if "tools" in taken else []
    turns_value = taken["messages"][1] if "messages" in taken else None
    if turns_value is None or turns_value == "":
        # One question (and maybe alpaca history): built from checked texts, already in a valid order.
        messages = _single_turn(line, taken, plan, limit, errors, prefix)
        if errors or messages is None:
            return errors
        return ParsedRow(line, messages, system, reply, {}, tools, metadata, external_id, tuple(keys))
    turns_key = taken["messages"][0]
    for other in ("input", "history"):
        if other in taken:
            reason = f"the turns come from '{turns_key}'; map {other} to null, or messages to another key"
            errors.append(RowError(line, taken[other][0], reason))
    turns_value = _structured(line, turns_key, turns_value, plan, errors)
    if errors or turns_value is None:
        return errors
    try:
        turns = turns_read(turns_value, limit)
    except TurnError as exc:
        return [RowError(line, turns_key, exc.reason, exc.turn)]
    plain = plain_split(turns)
    if plain is not None:
        messages, reference, reply_extra = *plain, {}
    else:
        try:
            conversation = conversation_split(turns, system=system, tools=tools)
        except TurnError as exc:
            return [RowError(line, turns_key, exc.reason, exc.turn)]
        if too_long(conversation.system, limit):  # a system turn's text; a system key was checked above
            reason = f"the system turn {size_reason(conversation.system, limit)}"
            return [RowError(line, turns_key, reason, 1)]
        messages, system = conversation.messages, conversation.system
        reference, reply_extra = conversation.reply, conversation.reply_extra
    if reply:
        if reference or reply_extra:
            source = taken["reference_output"][0]
            return [RowError(line, source, f"the reply is given twice: by '{source}' and by the last turn "
                                           f"of '{turns_key}'")]  # fmt: skip
        reference = reply
    return ParsedRow(line, messages, system, reference, reply_extra, tools, metadata, external_id,
                     tuple(keys))  # fmt: skip


def _single_turn(line, taken, plan: Plan, limit, errors, prefix) -> list[dict] | None:
    """The turns of a record that gives one question: history pairs, then the user turn."""
    source, value = taken.get("input", (None, None))
    mapped = plan.sources["input"][0] if "input" in plan.mapped else None
    label = source or (prefix + mapped if mapped else "input")
    missing = value is None
    if missing:
        value = ""
    elif type(value) is not str:
        errors.append(RowError(line, label, f"expected text, found {_kind(value)}"))
        return None
    extra = taken.get("input_extra")
    if extra is not None and extra[1] is not None:
        if type(extra[1]) is not str:
            errors.append(RowError(line, extra[0], f"expected text, found {_kind(extra[1])}"))
            return None
        # LLaMA-Factory builds the prompt as "instruction\ninput"; importing it alike keeps round trips equal.
        if extra[1]:
            value = f"{value}\n{extra[1]}" if value else extra[1]
            missing = False
    if too_long(value, limit):
        errors.append(RowError(line, label, size_reason(value, limit)))
        return None
    if not value or value.isspace():
        reason = "input field is missing" if missing else "input field is empty"
        looked = plan.sources.get("input", ()) + plan.sources.get("messages", ())
        if source is None and "input" not in plan.mapped and looked:
            reason += f"; expected one of {', '.join(prefix + key for key in looked)}"
        errors.append(RowError(line, label, reason))
        return None
    turns: list[dict] = []
    if "history" in taken:
        history_key, history = taken["history"]
        history = _structured(line, history_key, history, plan, errors)
        if history is not None:
            try:
                turns = history_turns(history, limit)
            except ValueError as exc:
                errors.append(RowError(line, history_key, str(exc)))
                return None
    turns.append({"role": USER, "content": value})
    return turns


def _structured(line, key, value, plan: Plan, errors):
    """A CSV cell of a list-valued field holds JSON text; JSON records give the value itself."""
    if not plan.text_cells or not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        errors.append(RowError(line, key, f"a CSV cell of this field must hold JSON: {exc.msg}"))
        return None


def _text_field(line, taken, limit, errors) -> str:
    if taken is None:
        return ""
    key, value = taken
    if type(value) is str:
        if too_long(value, limit):
            errors.append(RowError(line, key, size_reason(value, limit)))
        return value
    if value is not None:
        errors.append(RowError(line, key, f"expected text, found {_kind(value)}"))
    return ""


def _external_id(line, taken, errors) -> str:
    key, value = taken
    if type(value) is str and len(value) <= MAX_EXTERNAL_ID:
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        errors.append(RowError(line, key, f"expected text or a number, found {_kind(value)}"))
        return ""
    if isinstance(value, float):
        value = str(int(value)) if value.is_integer() else repr(value)
    value = str(value).strip()
    if len(value) > MAX_EXTERNAL_ID:
        errors.append(
            RowError(line, key, f"is {len(value):,} characters, over the {MAX_EXTERNAL_ID} allowed")
        )
        return ""
    return value


def _tools(line, taken, errors) -> list:
    key, value = taken
    if value is None or value == "":
        return []
    if isinstance(value, str):
        # LLaMA-Factory's files hold tools as JSON text; kept as the list it encodes.
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            errors.append(RowError(line, key, f"tools given as text must be a JSON list: {exc.msg}"))
            return []
    if not isinstance(value, list):
        errors.append(RowError(line, key, f"expected a list of tool definitions, found {_kind(value)}"))
        return []
    return value


def row_redacted(row: ParsedRow, redact_text: Callable[[str], str]) -> ParsedRow:
    """`row` with `redact_text` applied to every text a person wrote into it: the system prompt, each
    turn's content, tool-call arguments, the reply, and the text values of metadata (at any depth)."""
    messages = []
    for turn in row.messages:
        turn = {**turn, "content": redact_text(turn["content"])}
        if turn.get("tool_calls"):
            turn["tool_calls"] = _calls_redacted(turn["tool_calls"], redact_text)
        messages.append(turn)
    extra = row.reference_extra
    if extra.get("tool_calls"):
        extra = {**extra, "tool_calls": _calls_redacted(extra["tool_calls"], redact_text)}
    return replace(row, messages=messages, system=redact_text(row.system),
                   reference_output=redact_text(row.reference_output), reference_extra=extra,
                   metadata=_json_redacted(row.metadata, redact_text))  # fmt: skip


def _calls_redacted(calls: list, redact_text: Callable[[str], str]) -> list:
    redacted = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if isinstance(arguments, str):
            # Redact the strings inside the JSON, not its text: a phone number as a JSON number stays
            # valid JSON. Text that is not JSON is redacted as text.
            try:
                parsed = json.loads(arguments)
            except json.JSONDecodeError:
                new = redact_text(arguments)
            else:
                clean = _json_redacted(parsed, redact_text)
                new = arguments if clean == parsed else json.dumps(clean, ensure_ascii=False)
            call = {**call, "function": {**function, "arguments": new}}
        redacted.append(call)
    return redacted


def _json_redacted(value: Any, redact_text: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: _json_redacted(item, redact_text) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_redacted(item, redact_text) for item in value]
    return value
