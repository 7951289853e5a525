"""Streaming readers that turn an uploaded CSV / JSON / JSONL file into conversation rows or row errors.

This module knows containers (how records are laid out in a file, and the guards on size and encoding);
`records` knows what a record of each format means.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import BinaryIO

import ijson

from annotation.dataio.chat_logs import CHAT_LOG, ChatLogOptions, ChatLogReport, chat_log_rows
from annotation.dataio.conversation import kind as _kind
from annotation.dataio.records import (
    FIELDS,
    SCHEMAS,
    ParsedRow,
    RowError,
    mapping_normalised,
    plan_for,
    record_row,
)

__all__ = ["CHAT_LOG", "CONTAINERS", "FIELDS", "FORMATS", "SCHEMAS", "FileTooLarge", "ImportErrorReport",
           "KeyReport", "ParsedRow", "RowError", "detect_container", "detect_schema",
           "read_records"]  # fmt: skip

KIB = 1024
MIB = 1024 * KIB
DEFAULT_MAX_FIELD_BYTES = 32 * KIB
DEFAULT_MAX_FILE_BYTES = 50 * MIB
MAX_LISTED_ERRORS = 100

# Container formats say how records are laid out in the file; schemas say what a record looks like. A
# chat log's records are messages, not conversations: it is named, never detected.
CONTAINERS = ("csv", "json", "jsonl")
FORMATS = CONTAINERS + SCHEMAS + (CHAT_LOG,)

_BOM = codecs.BOM_UTF8


class FileTooLarge(Exception):
    """The upload is over `max_file_bytes`; the web layer answers 413."""

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__(f"file is over the {limit:,}-byte limit")


class _NotUtf8(Exception):
    def __init__(self, line: int, offset: int):
        self.line = line
        self.offset = offset


class KeyReport:
    """Which source key went where, and in how many rows: {key: {"to": destination, "rows": n}}.

    Rows of one file mostly share their keys, so whole key sets are counted and only folded into per-key
    counts now and then: the cost per row is one hash of a tuple, and memory stays bounded.
    """

    FOLD_AT = 256

    def __init__(self):
        self.format = ""  # what the file was read as: a schema, or its container for plain records
        self._shapes: Counter[tuple[tuple[str, str], ...]] = Counter()
        self._keys: dict[str, dict[str, object]] = {}

    def add(self, keys: tuple[tuple[str, str], ...]) -> None:
        self._shapes[keys] += 1
        if len(self._shapes) > self.FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        for keys, rows in self._shapes.items():
            for key, destination in keys:
                entry = self._keys.setdefault(key, {"to": destination, "rows": 0})
                if destination not in str(entry["to"]).split(" | "):
                    entry["to"] = f"{entry['to']} | {destination}"
                entry["rows"] = int(entry["rows"]) + rows
        self._shapes.clear()

    def as_dict(self) -> dict[str, dict[str, object]]:
        self._fold()
        return {key: dict(entry) for key, entry in self._keys.items()}


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
    """Recognise ShareGPT, OpenAI chat, alpaca and Label Studio records by their keys; anything else is a
    plain record, read by its recognised keys and the mapping."""
    if isinstance(record.get("conversations"), list):
        return "sharegpt"
    if isinstance(record.get("messages"), list):
        return "openai"
    if "instruction" in record:
        return "alpaca"
    if isinstance(record.get("data"), dict):
        return "label_studio"
    return "plain"


def read_records(
    stream: BinaryIO,
    *,
    filename: str = "",
    fmt: str | None = None,
    mapping: Mapping[str, str | None] | None = None,
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    keys: KeyReport | None = None,
    chat_log: ChatLogOptions | None = None,
    chat_log_report: ChatLogReport | None = None,
) -> Iterator[ParsedRow | RowError]:
    """Yield each record of `stream` as a ParsedRow (a conversation), or one RowError per problem in it.

    `fmt` is a container ("csv", "json", "jsonl") or a schema ("label_studio", "alpaca", "sharegpt",
    "openai"); left None, the container comes from `filename` and the first bytes, the schema from the
    first record; "chat_log" reads JSON or JSONL messages into conversations (`chat_logs`), by
    `chat_log` options, counting what it found into `chat_log_report`. `mapping` (field -> source key or
    None, fields as in records.FIELDS) overrides which key holds a field; given without a schema fmt it
    turns detection off (records are read as plain).
    `keys`, when given, learns what the file is read as (`keys.format`); the caller counts the rows it
    keeps with `keys.add(row.keys)`, so a reader stopped early (a preview) counts what it showed.

    For an all-or-nothing import, collect errors and discard rows when any; to skip invalid records, keep
    the rows. Raises FileTooLarge (possibly after some rows) when the stream passes `max_file_bytes`.
    Memory stays flat except for the set of external ids seen, kept to report duplicates.
    """
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == CHAT_LOG and mapping is not None:
        raise ValueError("a chat log is read by its own keys; it takes no mapping")
    mapping = mapping_normalised(mapping) if mapping is not None else None
    buffered = io.BufferedReader(_GuardedReader(stream, max_file_bytes))
    try:
        if buffered.peek(3)[:3] == _BOM:
            buffered.read(3)
        head = buffered.peek(8 * KIB)
        if not head:
            yield RowError(1, None, "file is empty")
            return
        container = fmt if fmt in CONTAINERS else detect_container(filename, head)
        if fmt == CHAT_LOG:
            if container == "csv":
                reason = "format 'chat_log' is JSON-shaped (JSON Lines or an array); it cannot be read as CSV"
                raise ValueError(reason)
            if keys is not None:
                keys.format = CHAT_LOG
            records = _json_array(buffered) if container == "json" else _jsonl(buffered)
            report = chat_log_report if chat_log_report is not None else ChatLogReport()
            options = chat_log or ChatLogOptions()
            yield from chat_log_rows(records, options=options, report=report, limit=max_field_bytes)
            return
        schema = fmt if fmt in SCHEMAS else ("plain" if mapping is not None else None)
        if container == "csv":
            if schema not in (None, "plain"):
                raise ValueError(f"format {fmt!r} is JSON-shaped and cannot be read from CSV")
            if keys is not None:
                keys.format = "csv"
            rows = _csv_rows(buffered, plan_for("plain", mapping, text_cells=True), max_field_bytes)
        else:
            records = _json_array(buffered) if container == "json" else _jsonl(buffered)
            rows = _records_to_rows(records, schema, mapping, max_field_bytes, keys, container)
        yield from _dedupe(rows)
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


def _csv_rows(buffered: io.BufferedReader, plan, max_field_bytes: int) -> Iterator[ParsedRow | RowError]:
    text = io.TextIOWrapper(buffered, encoding="utf-8", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader, None)
        if header is None:
            yield RowError(1, None, "file is empty")
            return
        header = [name.strip() for name in header]
        problem = _csv_header_problem(header, plan)
        if problem:
            yield problem
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
            result = record_row(line, dict(zip(header, cells, strict=True)), plan, max_field_bytes)
            if isinstance(result, list):
                yield from result
            else:
                yield result
        if not seen_data:
            yield RowError(1, None, "file has a header row but no data rows")
    except csv.Error as exc:
        yield RowError(reader.line_num, None, f"unreadable CSV: {exc}")


def _csv_header_problem(header: list[str], plan) -> RowError | None:
    """A CSV names its keys once: a header without a column for the question fails the file, not each row."""
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        return RowError(1, None, f"the header repeats columns: {', '.join(duplicated)}")
    for name in ("messages", "input"):
        mapped = plan.sources[name] if name in plan.mapped else ()
        if mapped and mapped[0] not in header:
            return RowError(1, mapped[0], f"header has no column {mapped[0]!r} for the {name} field")
    candidates = plan.sources.get("input", ()) + plan.sources.get("messages", ())
    if not any(column in header for column in candidates):
        return RowError(1, "input", f"header has no column for the input field; expected one of "
                                    f"{', '.join(candidates)} (or a mapping)")  # fmt: skip
    return None


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
    keys: KeyReport | None,
    container: str,
) -> Iterator[ParsedRow | RowError]:
    plan = plan_for(schema, mapping) if schema else None
    for item in records:
        if isinstance(item, RowError):
            yield item
            continue
        number, record = item
        if not isinstance(record, dict):
            yield RowError(number, None, f"record is {_kind(record)}, expected an object")
            continue
        if plan is None:
            # The first record fixes the schema so that a file cannot mix shapes.
            plan = plan_for(detect_schema(record), mapping)
        if keys is not None and not keys.format:
            keys.format = container if plan.schema == "plain" else plan.schema
        result = record_row(number, record, plan, max_field_bytes)
        if isinstance(result, list):
            yield from result
        else:
            yield result
