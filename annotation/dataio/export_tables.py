"""Exports as tables: CSV for people and Parquet for datasets / pandas, with item metadata as columns."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from annotation.dataio.exporters import (
    ContextAs,
    Sample,
    alpaca_conversation,
    openai_messages,
    sample_conversation,
    sample_ref,
    sample_text,
)

# Characters that make Excel / LibreOffice / Sheets read a cell as a formula (OWASP CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = ("input", "system", "messages", "tools", "output", "reply_extra", "draft", "metadata")
# An item metadata key becomes the column "metadata.<key>": the prefix keeps it clear of every other
# column, and distinct keys give distinct columns.
METADATA_COLUMN = "metadata."


def item_metadata(sample: Sample) -> dict[str, Any]:
    metadata = sample.get("metadata") or {}
    item = metadata.get("item") if isinstance(metadata, Mapping) else None
    return dict(item) if isinstance(item, Mapping) else {}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "string" if isinstance(value, str) else "json"


class MetadataColumns:
    """The item metadata keys of an export and, per key, one Parquet type for all its values: string,
    int, float (ints and floats mixed), bool, or json (JSON text of each value) when they differ."""

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}

    def add(self, metadata: Mapping[str, Any]) -> None:
        for key, value in metadata.items():
            if value is None:
                self.kinds.setdefault(key, "null")
                continue
            seen, kind = self.kinds.get(key, "null"), _kind(value)
            if seen not in ("null", kind):
                kind = "float" if {seen, kind} == {"int", "float"} else "json"
            self.kinds[key] = kind

    def columns(self) -> dict[str, str]:
        """{column name: kind} in key order (a key only ever null is a string column)."""
        return {METADATA_COLUMN + key: ("string" if kind == "null" else kind)
                for key, kind in sorted(self.kinds.items())}  # fmt: skip


def _spooled(samples: Iterable[Sample]) -> tuple[Iterator[dict], dict[str, str]]:
    """A table's columns must be known before its first row: the samples go to a temporary file while
    their metadata keys are gathered, then come back one by one (memory stays flat, one database pass)."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the reader below
    columns = MetadataColumns()
    try:
        for sample in samples:
            columns.add(item_metadata(sample))
            spool.write(json.dumps(sample, ensure_ascii=False, default=str).encode("utf-8") + b"\n")
    except BaseException:
        spool.close()
        raise
    spool.seek(0)

    def read() -> Iterator[dict]:
        with spool:
            for line in spool:
                yield json.loads(line)

    return read(), columns.columns()


def _metadata_cells(sample: Sample, columns: Mapping[str, str]) -> dict[str, Any]:
    metadata = item_metadata(sample)
    return {name: metadata.get(name[len(METADATA_COLUMN) :]) for name in columns}


def csv_safe(value: str) -> str:
    """Neutralise a cell a spreadsheet would run as a formula by prefixing a single quote."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else _json_text(value)


def write_csv(samples: Iterable[Sample], stream: BinaryIO, *, provenance: bool = True) -> int:
    """Write samples as CSV for people: the last user turn, the system prompt, the turns before the reply
    and the tools as JSON text, the reply (and its own keys), the draft, the provenance metadata ("{}"
    unless `provenance`), then one column per item metadata key. Every cell is neutralised against
    formula injection."""
    rows, columns = _spooled(samples)
    # utf-8-sig: Excel reads BOM-less UTF-8 as the local code page and garbles Chinese.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    writer = csv.writer(text)
    writer.writerow([*CSV_COLUMNS, *columns])
    written = 0
    for index, sample in enumerate(rows, 1):
        ref = sample_ref(sample, index)
        conv = sample_conversation(sample, index)
        metadata = sample.get("metadata") or {}
        origin = {k: v for k, v in metadata.items() if k != "item"} if provenance else {}
        tools = _json_text(conv.tools) if conv.tools else ""
        row = [conv.input, conv.system, _json_text(conv.messages), tools,
               conv.reply, _json_text(conv.reply_extra) if conv.reply_extra else "",
               sample_text(sample, "draft", ref, required=False), _json_text(origin)]  # fmt: skip
        row += [_csv_cell(value) for value in _metadata_cells(sample, columns).values()]
        writer.writerow([csv_safe(cell) for cell in row])
        written += 1
    text.flush()
    text.detach()  # leave the caller's stream open
    return written


_ARROW_TYPES = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
                "json": pa.string()}  # fmt: skip
_PARQUET_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def _parquet_schema(context_as: ContextAs, metadata_columns: Mapping[str, str]) -> pa.Schema:
    names = ["instruction", "input", "output"] + (["system"] if context_as == "system" else [])
    fields = [(name, pa.string()) for name in names]
    fields += [
        ("history", pa.list_(pa.list_(pa.string()))),
        ("tools", pa.string()),
        ("messages", _PARQUET_MESSAGES),
    ]
    fields += [(name, _ARROW_TYPES[kind]) for name, kind in metadata_columns.items()]
    return pa.schema(fields)


def _parquet_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "json":
        return _json_text(value)
    return float(value) if kind == "float" else value


def parquet_row(
    sample: Sample, index: int, *, context_as: ContextAs, metadata_columns: Mapping[str, str]
) -> dict[str, Any]:
    """Alpaca's columns (so LLaMA-Factory reads the file as alpaca), the whole conversation as a list of
    {role, content} with the system prompt first (what TRL reads), and the item's metadata columns."""
    ref = sample_ref(sample, index)
    conv = sample_conversation(sample, index)
    row = alpaca_conversation(conv, ref, context_as)
    row["messages"] = openai_messages(conv)
    cells = _metadata_cells(sample, metadata_columns)
    row.update({name: _parquet_value(value, metadata_columns[name]) for name, value in cells.items()})
    return row


def _batches(records: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_parquet(
    samples: Iterable[Sample],
    stream: BinaryIO,
    *,
    context_as: ContextAs = "system",
    batch_size: int = 1000,
) -> int:
    """Write conversations to Parquet, one row group per `batch_size` samples to keep memory flat."""
    rows, columns = _spooled(samples)
    schema = _parquet_schema(context_as, columns)
    records = (
        parquet_row(s, i, context_as=context_as, metadata_columns=columns) for i, s in enumerate(rows, 1)
    )
    written = 0
    with pq.ParquetWriter(stream, schema) as writer:
        for batch in _batches(records, batch_size):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            written += len(batch)
        if not written:
            writer.write_table(schema.empty_table())
    return written
