"""Exports: reviewed samples, always redacted, written by dataio.exporters, with their dataset_info entry.

Samples stream from the database in chunks (`QuerySet.iterator`) into a file: the API writes to an
anonymous temporary file and streams it back once every sample validated, so a bad sample is a clean 400
rather than a truncated download; the command line writes next to the target and renames on success.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import CharField, F, Func

from annotation.dataio import export_tables, exporters
from annotation.dataio.conversation import last_user_text, single_turn, turns_edited
from annotation.dataio.exporters import EXPORT_FORMATS, ExportValidationError
from annotation.dataio.redaction import CARD, CN_ID, EMAIL, PHONE, redact
from annotation.models import Item, ItemStatus, Project
from annotation.permissions import check_project_admin
from annotation.selectors import items_with_metadata
from annotation.services import audit_record
from core.errors import ApplicationError
from core.hooks import EXPORT_PROVENANCE, hook

EXTENSIONS = {"alpaca": "jsonl", "sharegpt": "jsonl", "openai": "jsonl", "preference": "jsonl",
              "csv": "csv", "parquet": "parquet"}  # fmt: skip
CONTENT_TYPES = {"jsonl": "application/jsonl", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
# CSV is for people, not trainers: it has no LLaMA-Factory entry.
DATASET_INFO_FORMATS = ("alpaca", "sharegpt", "openai", "preference", "parquet")
CHUNK = 2000

_DIGIT = re.compile(r"\d")


def redact_for_export(text: str) -> str:
    """Every redactor, skipping those whose pattern cannot match: an ID needs 17 digits, a card 13, an
    e-mail an '@', a phone a digit. Most answers have none, and the phone matcher is the slow one."""
    if not text:
        return text
    digits = len(_DIGIT.findall(text))
    redactors = [
        redactor
        for redactor, needed in (
            (CN_ID, digits >= 17),
            (CARD, digits >= 13),
            (EMAIL, "@" in text),
            (PHONE, digits > 0),
        )  # fmt: skip
        if needed
    ]
    return redact(text, redactors).text if redactors else text


def check_export_options(*, fmt: str, status: str) -> None:
    if fmt not in EXPORT_FORMATS:
        raise ApplicationError(
            f"format: unknown export format '{fmt}'; one of: {', '.join(EXPORT_FORMATS)}.",
            details={"format": fmt},
        )
    if status not in ItemStatus.values:
        raise ApplicationError(
            f"status: unknown status '{status}'; one of: {', '.join(ItemStatus.values)}.",
            details={"status": status},
        )


def export_file_name(*, project: Project, fmt: str) -> str:
    return f"{project.slug}_{fmt}.{EXTENSIONS[fmt]}"


def export_dataset_name(*, project: Project, fmt: str) -> str:
    return f"{project.slug}_{fmt}".replace("-", "_")


def export_dataset_info(*, project: Project, fmt: str) -> dict[str, Any] | None:
    """{dataset name: entry} for LLaMA-Factory's dataset_info.json; None for CSV."""
    if fmt not in DATASET_INFO_FORMATS:
        return None
    entry = exporters.dataset_info_entry(fmt, export_file_name(project=project, fmt=fmt))
    return {export_dataset_name(project=project, fmt=fmt): entry}


def export_samples(
    *, project: Project, status: str = ItemStatus.APPROVED, metadata: bool = False,
    filters: Mapping[str, str] | None = None,
) -> Iterator[dict]:  # fmt: skip
    """The project's items in `status` (and whose metadata matches `filters`) as redacted samples, in id
    order, with flat memory.

    A sample is the item's conversation as its current revision stands for it: `messages` with the
    revision's edits of earlier assistant turns applied, `output` the revision's reply (else the reference
    output), `reply_extra` the reply turn's own keys, `draft` the model draft that revision started from
    (for preference pairs). `metadata` holds the item id, the item's own metadata under "item", and with
    `metadata` set the provenance (author, reviewers, scores, ...).
    """
    # Gold items are checks of people, never data (review/gold/).
    items = Item.objects.filter(project=project, status=status, is_gold=False)
    if filters:
        items = items_with_metadata(items, filters)
    rows = items.order_by("pk").values_list(*_SAMPLE_FIELDS)
    chunk: list[tuple] = []
    for row in rows.iterator(chunk_size=CHUNK):
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield from _samples(chunk, metadata=metadata)
            chunk = []
    yield from _samples(chunk, metadata=metadata)


_SAMPLE_FIELDS = (
    "pk", "external_id", "input", "system", "messages", "tools", "reference_output", "reference_extra",
    "metadata", "current_revision__text", "current_revision__turn_edits", "current_revision__draft__text",
    "current_revision__draft__model_version_id", "current_revision__author__username", "approved_at",
)  # fmt: skip


def _samples(rows: list[tuple], *, metadata: bool) -> Iterator[dict]:
    # Who reviewed each item and how it was rated are the review layer's to say (core.hooks).
    provenance = hook(EXPORT_PROVENANCE) if metadata and rows else None
    reviewed = provenance([row[0] for row in rows]) if provenance else {}
    for (
        pk, external_id, input_, system, messages, tools, reference, reference_extra, item_metadata,
        text, turn_edits, draft, model_version, author, approved_at,
    ) in rows:  # fmt: skip
        turns = turns_edited(messages or single_turn(input_), turn_edits)
        sample = {
            "input": redact_for_export(last_user_text(turns) or input_),
            "system": redact_for_export(system),
            "messages": [_redact_turn(turn) for turn in turns],
            "tools": tools or [],
            "output": redact_for_export(text if text is not None else reference),
            "reply_extra": _redact_turn(reference_extra or {}),
            "draft": redact_for_export(draft or ""),
            # The id names the sample in validation errors even when metadata is not exported.
            "metadata": {"id": pk, "item": redact_value(item_metadata or {})},
        }
        if metadata:
            sample["metadata"] = {
                "id": pk,
                "external_id": external_id,
                "author": author or "",
                "reviewers": reviewed.get(pk, {}).get("reviewers", {}),
                "scores": reviewed.get(pk, {}).get("scores"),
                "draft_model_version": model_version,
                "approved_at": approved_at.isoformat() if approved_at else None,
                "item": sample["metadata"]["item"],
            }
        yield sample


def redact_value(value: Any) -> Any:
    """Every string (and number: a phone number may be stored as one) inside a JSON value, redacted."""
    if isinstance(value, str):
        return redact_for_export(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if abs(value) < 1_000_000:
            return value  # too short for a phone number, a card or an ID: skip the slow matchers
        text = str(value)
        redacted = redact_for_export(text)
        return value if redacted == text else redacted
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    return value


def _redact_arguments(arguments: Any) -> Any:
    """A tool call's arguments, JSON text as OpenAI gives them: the values inside are redacted and the
    text is kept as it came when nothing needed it (so it stays byte for byte what was reviewed)."""
    if not isinstance(arguments, str):
        return redact_value(arguments)
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return redact_for_export(arguments)
    redacted = redact_value(parsed)
    return arguments if redacted == parsed else json.dumps(redacted, ensure_ascii=False)


def _redact_turn(turn: dict) -> dict:
    """A turn (or the reply's extra keys) with its text and its tool calls' arguments redacted."""
    turn = dict(turn)
    if isinstance(turn.get("content"), str):
        turn["content"] = redact_for_export(turn["content"])
    if isinstance(turn.get("tool_calls"), list):
        turn["tool_calls"] = [_redact_call(call) for call in turn["tool_calls"]]
    return turn


def _redact_call(call: Any) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or "arguments" not in function:
        return call
    return {**call, "function": {**function, "arguments": _redact_arguments(function["arguments"])}}


def _jsonl_with_metadata(fmt: str, samples, stream: IO[bytes]) -> int:
    make = {
        "alpaca": exporters.alpaca_record,
        "sharegpt": exporters.sharegpt_record,
        "openai": exporters.openai_record,
        "preference": exporters.preference_record,
    }[fmt]
    written = 0
    for index, sample in enumerate(samples, 1):
        record = make(sample, index)
        if record is None:
            continue
        record["metadata"] = sample["metadata"]
        stream.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        written += 1
    return written


def export_write(
    *, project: Project, fmt: str, stream: IO[bytes], status: str = ItemStatus.APPROVED,
    metadata: bool = False, filters: Mapping[str, str] | None = None,
) -> int:  # fmt: skip
    """Write the export to `stream`; returns the number of records. A sample the trainer would drop or
    misread raises ApplicationError naming it, part-way: write to a file you can throw away.

    CSV and Parquet always carry the item's metadata as columns; JSONL records carry it (under
    metadata.item, beside the provenance keys) only with `metadata`, since trainers read every key."""
    check_export_options(fmt=fmt, status=status)
    samples = export_samples(project=project, status=status, metadata=metadata, filters=filters)
    try:
        if fmt == "csv":
            return export_tables.write_csv(samples, stream, provenance=metadata)
        if fmt == "parquet":
            return export_tables.write_parquet(samples, stream)
        if metadata:
            return _jsonl_with_metadata(fmt, samples, stream)
        writer = {
            "alpaca": exporters.write_alpaca_jsonl,
            "sharegpt": exporters.write_sharegpt_jsonl,
            "openai": exporters.write_openai_jsonl,
            "preference": exporters.write_preference_jsonl,
        }[fmt]
        return writer(samples, stream)
    except ExportValidationError as exc:
        raise ApplicationError(
            f"Cannot export {exc.sample}: {exc.reason}.",
            code="invalid_sample",
            details={"sample": exc.sample, "reason": exc.reason},
        ) from None


def export_metadata_keys(
    *, project: Project, status: str = ItemStatus.APPROVED, limit: int = 50
) -> list[str]:
    """The metadata keys the project's items in `status` hold (the export page offers a filter for each).
    On PostgreSQL one `jsonb_object_keys` query; elsewhere a walk over the metadata."""
    items = Item.objects.filter(project=project, status=status, is_gold=False)
    if connection.vendor == "postgresql":
        keys = (
            items.annotate(kind=Func(F("metadata"), function="jsonb_typeof", output_field=CharField()))
            .filter(kind="object")
            .annotate(key=Func(F("metadata"), function="jsonb_object_keys", output_field=CharField()))
            .values_list("key", flat=True)
            .distinct()
            .order_by("key")
        )
        return list(keys[:limit])
    found: set[str] = set()
    for value in items.values_list("metadata", flat=True).iterator(chunk_size=CHUNK):
        found.update(value if isinstance(value, dict) else ())
    return sorted(found)[:limit]


@dataclass(frozen=True)
class ExportFile:
    file: IO[bytes]
    file_name: str
    content_type: str
    records: int
    dataset_info: dict[str, Any] | None


def export_to_tempfile(
    *, project: Project, actor: AbstractBaseUser, fmt: str, status: str = ItemStatus.APPROVED,
    metadata: bool = False, filters: Mapping[str, str] | None = None,
) -> ExportFile:  # fmt: skip
    """Write the export into an anonymous temporary file (deleted when closed), rewound for reading."""
    check_project_admin(user=actor, project=project)
    check_export_options(fmt=fmt, status=status)
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - the response closes it after streaming
    try:
        records = export_write(
            project=project, fmt=fmt, stream=handle, status=status, metadata=metadata, filters=filters
        )
    except BaseException:
        handle.close()
        raise
    handle.seek(0)
    _audit_export(project=project, actor=actor, fmt=fmt, status=status, records=records, filters=filters)
    return ExportFile(
        file=handle,
        file_name=export_file_name(project=project, fmt=fmt),
        content_type=CONTENT_TYPES[EXTENSIONS[fmt]],
        records=records,
        dataset_info=export_dataset_info(project=project, fmt=fmt),
    )


@dataclass(frozen=True)
class ExportResult:
    path: Path
    records: int
    dataset_info_path: Path | None


def export_to_dir(
    *, project: Project, fmt: str, out: Path, status: str = ItemStatus.APPROVED, metadata: bool = False,
    filters: Mapping[str, str] | None = None, actor: AbstractBaseUser | None = None,
) -> ExportResult:  # fmt: skip
    """Write the data file into `out` and add its entry to `out/dataset_info.json` (kept entries stay), so
    `out` can be LLaMA-Factory's dataset_dir. Nothing is replaced unless the whole export validated."""
    check_export_options(fmt=fmt, status=status)
    out.mkdir(parents=True, exist_ok=True)
    path = out / export_file_name(project=project, fmt=fmt)
    descriptor, partial = tempfile.mkstemp(dir=out, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            records = export_write(
                project=project, fmt=fmt, stream=stream, status=status, metadata=metadata, filters=filters
            )
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    info_path = None
    info = export_dataset_info(project=project, fmt=fmt)
    if info is not None:
        info_path = out / "dataset_info.json"
        existing = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
        existing.update(info)
        info_path.write_text(json.dumps(existing, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    _audit_export(project=project, actor=actor, fmt=fmt, status=status, records=records, filters=filters)
    return ExportResult(path=path, records=records, dataset_info_path=info_path)


def _audit_export(*, project: Project, actor, fmt: str, status: str, records: int, filters=None) -> None:
    # Data leaving the platform is recorded like a state change: who took what, when.
    data = {"format": fmt, "status": status, "records": records}
    if filters:
        data["metadata"] = dict(filters)
    audit_record(actor=actor, action="export", target=project, project=project, data=data)
