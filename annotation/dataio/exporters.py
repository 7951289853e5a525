"""Streaming writers from reviewed samples to LLaMA-Factory / OpenAI training files, CSV and Parquet."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, Literal

import pyarrow as pa
import pyarrow.parquet as pq

# A sample is a mapping with keys input, context, output, draft (model draft it started from, may be
# empty) and optionally metadata (a dict; its "id" names the sample in errors).
Sample = Mapping[str, Any]
ContextAs = Literal["system", "input"]

EXPORT_FORMATS = ("alpaca", "sharegpt", "openai", "preference", "csv", "parquet")

SHAREGPT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "system_tag": "system",
}
OPENAI_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}

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

# Characters that make Excel / LibreOffice / Sheets read a cell as a formula (OWASP CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = ("input", "context", "output", "draft", "metadata")


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


def _text(sample: Sample, key: str, ref: str, *, required: bool) -> str:
    value = sample.get(key)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ExportValidationError(ref, f"{key} must be text, not {type(value).__name__}")
    if required and not value.strip():
        raise ExportValidationError(ref, f"{key} is empty")
    return value


def validate_conversation(messages: Sequence[Mapping[str, Any]], tags: Mapping[str, str], ref: str) -> None:
    """Check the turn order LLaMA-Factory's sharegpt reader expects: optional system, then user/assistant
    pairs starting with the user and ending with the assistant, each with non-empty text."""
    role, content = tags["role_tag"], tags["content_tag"]
    turns = list(messages)
    if turns and turns[0].get(role) == tags["system_tag"]:
        turns = turns[1:]
    if not turns or len(turns) % 2:
        raise ExportValidationError(
            ref, "a conversation needs user/assistant pairs, ending with the assistant"
        )
    for position, turn in enumerate(turns):
        expected = tags["user_tag"] if position % 2 == 0 else tags["assistant_tag"]
        if turn.get(role) != expected:
            raise ExportValidationError(
                ref, f"turn {position + 1} is {turn.get(role)!r}; roles must alternate, expected {expected!r}"
            )
        text = turn.get(content)
        if not isinstance(text, str) or not text.strip():
            raise ExportValidationError(ref, f"turn {position + 1} has no text")


def alpaca_record(sample: Sample, index: int = 0, *, context_as: ContextAs = "system") -> dict[str, str]:
    ref = sample_ref(sample, index)
    prompt = _text(sample, "input", ref, required=True)
    context = _text(sample, "context", ref, required=False)
    output = _text(sample, "output", ref, required=True)
    if context_as == "input":
        # Classic alpaca: the task in instruction, the material it works on in input.
        return {"instruction": prompt, "input": context, "output": output}
    return {"instruction": prompt, "input": "", "output": output, "system": context}


def sharegpt_record(sample: Sample, index: int = 0) -> dict[str, Any]:
    ref = sample_ref(sample, index)
    conversations = [
        {"from": "human", "value": _text(sample, "input", ref, required=True)},
        {"from": "gpt", "value": _text(sample, "output", ref, required=True)},
    ]
    validate_conversation(conversations, SHAREGPT_TAGS, ref)
    return {"conversations": conversations, "system": _text(sample, "context", ref, required=False)}


def openai_record(sample: Sample, index: int = 0) -> dict[str, Any]:
    ref = sample_ref(sample, index)
    context = _text(sample, "context", ref, required=False)
    messages = [{"role": "system", "content": context}] if context.strip() else []
    messages += [
        {"role": "user", "content": _text(sample, "input", ref, required=True)},
        {"role": "assistant", "content": _text(sample, "output", ref, required=True)},
    ]
    validate_conversation(messages, OPENAI_TAGS, ref)
    return {"messages": messages}


def preference_record(
    sample: Sample, index: int = 0, *, context_as: ContextAs = "system"
) -> dict[str, str] | None:
    """The reviewer's output as chosen over the model draft as rejected; None when there is no real pair."""
    ref = sample_ref(sample, index)
    draft = _text(sample, "draft", ref, required=False)
    record = alpaca_record(sample, index, context_as=context_as)
    output = record.pop("output")
    if not draft.strip() or draft.strip() == output.strip():
        return None
    return {**record, "chosen": output, "rejected": draft}


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


def csv_safe(value: str) -> str:
    """Neutralise a cell a spreadsheet would run as a formula by prefixing a single quote."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def write_csv(samples: Iterable[Sample], stream: BinaryIO) -> int:
    """Write samples as CSV with every cell neutralised against formula injection."""
    # utf-8-sig: Excel reads BOM-less UTF-8 as the local code page and garbles Chinese.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    writer = csv.writer(text)
    writer.writerow(CSV_COLUMNS)
    written = 0
    for index, sample in enumerate(samples, 1):
        ref = sample_ref(sample, index)
        row = [
            _text(sample, "input", ref, required=True),
            _text(sample, "context", ref, required=False),
            _text(sample, "output", ref, required=True),
            _text(sample, "draft", ref, required=False),
            json.dumps(sample.get("metadata") or {}, ensure_ascii=False, default=str),
        ]
        writer.writerow([csv_safe(cell) for cell in row])
        written += 1
    text.flush()
    text.detach()  # leave the caller's stream open
    return written


def _parquet_schema(context_as: ContextAs) -> pa.Schema:
    names = ["instruction", "input", "output"] + (["system"] if context_as == "system" else [])
    return pa.schema([(name, pa.string()) for name in names])


def _batches(records: Iterable[dict[str, str]], size: int) -> Iterator[list[dict[str, str]]]:
    batch: list[dict[str, str]] = []
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
    """Write alpaca-shaped rows to Parquet, one row group per `batch_size` samples to keep memory flat."""
    schema = _parquet_schema(context_as)
    records = (alpaca_record(s, i, context_as=context_as) for i, s in enumerate(samples, 1))
    written = 0
    with pq.ParquetWriter(stream, schema) as writer:
        for batch in _batches(records, batch_size):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            written += len(batch)
        if not written:
            writer.write_table(schema.empty_table())
    return written


def dataset_info_entry(fmt: str, file_name: str, *, context_as: ContextAs = "system") -> dict[str, Any]:
    """The LLaMA-Factory dataset_info.json entry that reads a file written by the matching writer."""
    system = {"system": "system"} if context_as == "system" else {}
    if fmt in ("alpaca", "parquet"):
        entry = {
            "file_name": file_name,
            "formatting": "alpaca",
            "columns": {"prompt": "instruction", "query": "input", "response": "output", **system},
        }
    elif fmt == "preference":
        entry = {
            "file_name": file_name,
            "formatting": "alpaca",
            "ranking": True,
            "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected",
                        **system},
        }  # fmt: skip
    elif fmt == "sharegpt":
        entry = {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system"},
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
