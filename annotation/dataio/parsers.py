"""Streaming readers that turn an uploaded CSV / JSON / JSONL file into import rows or row errors."""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import BinaryIO

import ijson

KIB = 1024
MIB = 1024 * KIB
DEFAULT_MAX_FIELD_BYTES = 32 * KIB
DEFAULT_MAX_FILE_BYTES = 50 * MIB
MAX_LISTED_ERRORS = 100

# Container formats say how records are laid out in the file; schemas say what a record looks like.
CONTAINERS = ("csv", "json", "jsonl")
SCHEMAS = ("label_studio", "alpaca", "sharegpt")
FORMATS = CONTAINERS + SCHEMAS

FIELDS = ("input", "context", "reference_output", "external_id")
DEFAULT_MAPPING: dict[str, str | None] = {name: name for name in FIELDS}
# Label Studio's own text templates put the text under data.text.
LABEL_STUDIO_MAPPING: dict[str, str | None] = {**DEFAULT_MAPPING, "input": "text"}

_BOM = codecs.BOM_UTF8
_MISSING = object()


class FileTooLarge(Exception):
    """The upload is over `max_file_bytes`; the web layer answers 413."""

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__(f"file is over the {limit:,}-byte limit")


class _NotUtf8(Exception):
    def __init__(self, line: int, offset: int):
        self.line = line
        self.offset = offset


@dataclass(frozen=True)
class ParsedRow:
    """One valid record. `line` is the file line for CSV/JSONL, the 1-based record number for a JSON array."""

    line: int
    input: str
    context: str = ""
    reference_output: str = ""
    external_id: str = ""


@dataclass(frozen=True)
class RowError:
    """Why a record (or the file, when `line` is 1 and `field` None) cannot be imported."""

    line: int
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", field '{self.field}'" if self.field else "")
        return f"{where}: {self.reason}"


@dataclass
class ImportErrorReport:
    """Errors seen during an import: the first `limit` kept for display, all of them counted."""

    limit: int = MAX_LISTED_ERRORS
    errors: list[RowError] = field(default_factory=list)
    total: int = 0

    def add(self, error: RowError) -> None:
        self.total += 1
        if len(self.errors) < self.limit:
            self.errors.append(error)

    @property
    def ok(self) -> bool:
        return self.total == 0

    @property
    def truncated(self) -> bool:
        return self.total > len(self.errors)


class _GuardedReader(io.RawIOBase):
    """Raw stream that enforces the size limit and checks UTF-8 as bytes pass, keeping memory flat.

    Bytes before an invalid sequence are still handed out, so rows ahead of it are read normally and the
    error surfaces on the line that holds the bad byte.
    """

    def __init__(self, raw: BinaryIO, max_bytes: int):
        self._raw = raw
        self._max = max_bytes
        self._passed = 0
        self._newlines = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._pending: _NotUtf8 | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._pending:
            raise self._pending
        chunk = self._raw.read(len(buffer))
        carried = len(self._decoder.getstate()[0])
        try:
            self._decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            offset = self._passed - carried + exc.start
            good = max(0, offset - self._passed)
            chunk = chunk[:good]
            self._pending = _NotUtf8(self._newlines + chunk.count(b"\n") + 1, offset)
            if not chunk:
                raise self._pending from None
        if self._passed + len(chunk) > self._max:
            raise FileTooLarge(self._max)
        self._passed += len(chunk)
        self._newlines += chunk.count(b"\n")
        buffer[: len(chunk)] = chunk
        return len(chunk)


def detect_container(filename: str, head: bytes) -> str:
    """Pick csv/json/jsonl from the extension, else from the first non-blank byte."""
    ext = PurePath(filename).suffix.lower()
    first = head.lstrip()[:1]
    if ext == ".csv":
        return "csv"
    if ext in (".jsonl", ".ndjson"):
        return "jsonl"
    if ext == ".json":
        # A .json file holding one object per line is JSON Lines misnamed; keep it "json" so the user hears
        # "not an array" and renames it, rather than us guessing.
        return "json"
    if first == b"[":
        return "json"
    if first == b"{":
        return "jsonl"
    return "csv"


def detect_schema(record: Mapping[str, object]) -> str:
    """Recognise alpaca, sharegpt and Label Studio records by their keys; anything else uses the mapping."""
    if isinstance(record.get("conversations"), list):
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if isinstance(record.get("data"), dict):
        return "label_studio"
    return "mapped"


def read_records(
    stream: BinaryIO,
    *,
    filename: str = "",
    fmt: str | None = None,
    mapping: Mapping[str, str | None] | None = None,
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> Iterator[ParsedRow | RowError]:
    """Yield each record of `stream` as a ParsedRow, or one RowError per problem found in it.

    `fmt` is a container ("csv", "json", "jsonl") or a schema ("label_studio", "alpaca", "sharegpt");
    left None, the container comes from `filename` and the first bytes, the schema from the first record.
    `mapping` (field -> source key, for input/context/reference_output/external_id) selects fields of
    plain records; given with a container fmt, it turns schema detection off.

    For an all-or-nothing import, collect errors and discard rows when any; to skip invalid records, keep
    the rows. Raises FileTooLarge (possibly after some rows) when the stream passes `max_file_bytes`.
    Memory stays flat except for the set of external ids seen, kept to report duplicates.
    """
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if mapping is not None:
        unknown = set(mapping) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown mapping keys {sorted(unknown)}; expected some of {list(FIELDS)}")
    buffered = io.BufferedReader(_GuardedReader(stream, max_file_bytes))
    try:
        if buffered.peek(3)[:3] == _BOM:
            buffered.read(3)
        head = buffered.peek(8 * KIB)
        if not head:
            yield RowError(1, None, "file is empty")
            return
        container = fmt if fmt in CONTAINERS else detect_container(filename, head)
        schema = fmt if fmt in SCHEMAS else ("mapped" if mapping is not None else None)
        if container == "csv":
            if schema not in (None, "mapped"):
                raise ValueError(f"format {fmt!r} is JSON-shaped and cannot be read from CSV")
            yield from _dedupe(_csv_rows(buffered, {**DEFAULT_MAPPING, **(mapping or {})}, max_field_bytes))
            return
        records = _json_array(buffered) if container == "json" else _jsonl(buffered)
        yield from _dedupe(_records_to_rows(records, schema, mapping, max_field_bytes))
    except _NotUtf8 as exc:
        yield RowError(
            exc.line, None, f"not valid UTF-8 (byte offset {exc.offset} on line {exc.line}); save as UTF-8"
        )


def _dedupe(rows: Iterable[ParsedRow | RowError]) -> Iterator[ParsedRow | RowError]:
    first_seen: dict[str, int] = {}
    for row in rows:
        if isinstance(row, ParsedRow) and row.external_id:
            first = first_seen.get(row.external_id)
            if first is not None:
                reason = f"duplicate external_id {row.external_id!r} (first on line {first})"
                yield RowError(row.line, "external_id", reason)
                continue
            first_seen[row.external_id] = row.line
        yield row


def _kind(value: object) -> str:
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


def _csv_rows(
    buffered: io.BufferedReader, mapping: Mapping[str, str | None], max_field_bytes: int
) -> Iterator[ParsedRow | RowError]:
    text = io.TextIOWrapper(buffered, encoding="utf-8", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader, None)
        if header is None:
            yield RowError(1, None, "file is empty")
            return
        header = [name.strip() for name in header]
        source = mapping.get("input")
        if source not in header:
            yield RowError(1, source, f"header has no column {source!r} for the input field")
            return
        end_of_previous = reader.line_num
        seen_data = False
        for cells in reader:
            line = end_of_previous + 1
            end_of_previous = reader.line_num
            if not cells:
                continue
            seen_data = True
            if len(cells) != len(header):
                yield RowError(line, None, f"row has {len(cells)} cells but the header has {len(header)}")
                continue
            yield from _build_row(line, dict(zip(header, cells, strict=True)), mapping, max_field_bytes)
        if not seen_data:
            yield RowError(1, None, "file has a header row but no data rows")
    except csv.Error as exc:
        yield RowError(reader.line_num, None, f"unreadable CSV: {exc}")


def _json_array(buffered: io.BufferedReader) -> Iterator[tuple[int, object] | RowError]:
    first = buffered.peek(8 * KIB).lstrip()[:1]
    if first != b"[":
        found = {b"{": "an object", b"": "nothing"}.get(first, "something else")
        hint = "; name JSON Lines files .jsonl" if first == b"{" else ""
        yield RowError(1, None, f"expected a JSON array of objects, found {found}{hint}")
        return
    number = 0
    try:
        for number, item in enumerate(ijson.items(buffered, "item", use_float=True), start=1):
            yield number, item
    except ijson.JSONError as exc:
        yield RowError(
            number + 1, None, f"malformed JSON in or after record {number + 1}: {_first_line(exc)}"
        )
        return
    if number == 0:
        yield RowError(1, None, "the JSON array is empty")


def _first_line(exc: Exception) -> str:
    # yajl appends a multi-line excerpt with a caret; the first line is the message.
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _jsonl(buffered: io.BufferedReader) -> Iterator[tuple[int, object] | RowError]:
    seen_data = False
    for line_number, raw in enumerate(buffered, start=1):
        text = raw.decode("utf-8").strip()
        if not text:
            continue
        seen_data = True
        try:
            yield line_number, json.loads(text)
        except json.JSONDecodeError as exc:
            yield RowError(line_number, None, f"malformed JSON: {exc.msg} at column {exc.colno}")
    if not seen_data:
        yield RowError(1, None, "file has no records")


def _records_to_rows(
    records: Iterable[tuple[int, object] | RowError],
    schema: str | None,
    mapping: Mapping[str, str | None] | None,
    max_field_bytes: int,
) -> Iterator[ParsedRow | RowError]:
    for item in records:
        if isinstance(item, RowError):
            yield item
            continue
        number, record = item
        if not isinstance(record, dict):
            yield RowError(number, None, f"record is {_kind(record)}, expected an object")
            continue
        # The first record fixes the schema so that a file cannot mix shapes.
        schema = schema or detect_schema(record)
        if schema == "alpaca":
            yield from _alpaca_row(number, record, max_field_bytes)
        elif schema == "sharegpt":
            yield from _sharegpt_row(number, record, max_field_bytes)
        elif schema == "label_studio":
            yield from _label_studio_row(number, record, mapping, max_field_bytes)
        else:
            yield from _build_row(number, record, {**DEFAULT_MAPPING, **(mapping or {})}, max_field_bytes)


def _build_row(
    line: int, record: Mapping[str, object], mapping: Mapping[str, str | None], max_field_bytes: int
) -> Iterator[ParsedRow | RowError]:
    values = {
        name: (source, record.get(source, _MISSING) if source else _MISSING)
        for name, source in mapping.items()
    }
    yield from _validated(line, values, max_field_bytes)


def _validated(
    line: int, values: Mapping[str, tuple[str | None, object]], max_field_bytes: int
) -> Iterator[ParsedRow | RowError]:
    """Check each canonical field's (source key, value) and yield the row or every error found."""
    errors: list[RowError] = []
    clean: dict[str, str] = {}
    for name, (source, value) in values.items():
        label = source or name
        if value is _MISSING or value is None:
            value = ""
        if name == "external_id" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            errors.append(RowError(line, label, f"expected text, found {_kind(value)}"))
            continue
        size = len(value.encode("utf-8"))
        if size > max_field_bytes:
            reason = f"is {size:,} bytes, over the {max_field_bytes:,}-byte limit"
            errors.append(RowError(line, label, reason))
            continue
        clean[name] = value.strip() if name == "external_id" else value
    if "input" not in values:
        errors.append(RowError(line, "input", "no source field is mapped to input"))
    elif "input" in clean and not clean["input"].strip():
        source = values["input"][0] or "input"
        missing = values["input"][1] is _MISSING
        errors.append(RowError(line, source, "input field is missing" if missing else "input field is empty"))
    if errors:
        yield from errors
        return
    yield ParsedRow(line=line, **{name: clean.get(name, "") for name in FIELDS})


def _alpaca_row(line: int, record: dict, max_field_bytes: int) -> Iterator[ParsedRow | RowError]:
    instruction = record.get("instruction", _MISSING)
    extra = record.get("input") or ""
    if not isinstance(extra, str):
        yield RowError(line, "input", f"expected text, found {_kind(extra)}")
        return
    # LLaMA-Factory builds the prompt as "instruction\ninput"; importing it alike keeps round trips equal.
    if isinstance(instruction, str) and extra:
        instruction = f"{instruction}\n{extra}" if instruction else extra
    values = {
        "input": ("instruction", instruction),
        "context": ("system", record.get("system", _MISSING)),
        "reference_output": ("output", record.get("output", _MISSING)),
        "external_id": ("id", record.get("id", _MISSING)),
    }
    yield from _validated(line, values, max_field_bytes)


def _sharegpt_row(line: int, record: dict, max_field_bytes: int) -> Iterator[ParsedRow | RowError]:
    turns = record.get("conversations")
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        yield RowError(line, "conversations", "expected a list of {from, value} turns")
        return
    system = record.get("system", _MISSING)
    human: object = _MISSING
    answer: object = _MISSING
    for index, turn in enumerate(turns):
        role = turn.get("from")
        if role == "system" and system is _MISSING:
            system = turn.get("value")
        elif role in ("human", "user") and human is _MISSING:
            human = turn.get("value")
            following = turns[index + 1] if index + 1 < len(turns) else {}
            if following.get("from") in ("gpt", "assistant"):
                answer = following.get("value")
            break
    if human is _MISSING:
        yield RowError(line, "conversations", "no human turn in conversations")
        return
    values = {
        "input": ("conversations", human),
        "context": ("system", system),
        "reference_output": ("conversations", answer),
        "external_id": ("id", record.get("id", _MISSING)),
    }
    yield from _validated(line, values, max_field_bytes)


def _label_studio_row(
    line: int, record: dict, mapping: Mapping[str, str | None] | None, max_field_bytes: int
) -> Iterator[ParsedRow | RowError]:
    data = record.get("data")
    if not isinstance(data, dict):
        yield RowError(line, "data", "Label Studio task has no 'data' object")
        return
    mapping = {**LABEL_STUDIO_MAPPING, **(mapping or {})}
    data = dict(data)
    id_source = mapping.get("external_id")
    if (not id_source or id_source not in data) and "id" in record:
        # Without an id in data, the task's own Label Studio id is the stable handle back to the source.
        mapping["external_id"] = "id"
        data["id"] = record["id"]
    yield from _build_row(line, data, mapping, max_field_bytes)
