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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.contrib.auth.models import AbstractBaseUser

from core.errors import ApplicationError

from .dataio import exporters
from .dataio.exporters import EXPORT_FORMATS, ExportValidationError
from .dataio.redaction import CARD, CN_ID, EMAIL, PHONE, redact
from .models import Item, ItemStatus, Project
from .permissions import check_project_admin
from .services import audit_record

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
    *, project: Project, status: str = ItemStatus.APPROVED, metadata: bool = False
) -> Iterator[dict]:
    """The project's items in `status` as redacted samples, in id order, with flat memory.

    The output is the item's current revision (the approved answer), else its reference output; the draft
    is the model draft that revision started from (for preference pairs).
    """
    rows = (
        Item.objects.filter(project=project, status=status)
        .order_by("pk")
        .values_list(
            "pk",
            "external_id",
            "input",
            "system",
            "reference_output",
            "current_revision__text",
            "current_revision__draft__text",
            "current_revision__draft__model_version_id",
            "current_revision__author__username",
            "approved_at",
        )  # fmt: skip
    )
    chunk: list[tuple] = []
    for row in rows.iterator(chunk_size=CHUNK):
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield from _samples(chunk, metadata=metadata)
            chunk = []
    yield from _samples(chunk, metadata=metadata)


def _samples(rows: list[tuple], *, metadata: bool) -> Iterator[dict]:
    reviews = _reviewers_per_tier([row[0] for row in rows]) if metadata and rows else {}
    scores = _rating_scores([row[0] for row in rows]) if metadata and rows else {}
    for (
        pk,
        external_id,
        input_,
        context,
        reference,
        text,
        draft,
        model_version,
        author,
        approved_at,
    ) in rows:
        sample = {
            "input": redact_for_export(input_),
            "context": redact_for_export(context),
            "output": redact_for_export(text if text is not None else reference),
            "draft": redact_for_export(draft or ""),
            # The id names the sample in validation errors even when metadata is not exported.
            "metadata": {"id": pk},
        }
        if metadata:
            sample["metadata"] = {
                "id": pk,
                "external_id": external_id,
                "author": author or "",
                "reviewers": reviews.get(pk, {}),
                "scores": scores.get(pk),
                "draft_model_version": model_version,
                "approved_at": approved_at.isoformat() if approved_at else None,
            }
        yield sample


def _reviewers_per_tier(item_ids: list[int]) -> dict[int, dict[str, list[str]]]:
    """Who approved (or edited and approved) each item at each tier since it was last sent back."""
    from review.models import Decision, ReviewDecision

    result: dict[int, dict[str, list[str]]] = {}
    decisions = (
        ReviewDecision.objects.filter(item_id__in=item_ids)
        .order_by("item_id", "created_at", "pk")
        .values_list("item_id", "stage", "decision", "reviewer__username")
    )
    for item_id, stage, decision, reviewer in decisions:
        tiers = result.setdefault(item_id, {})
        if decision == Decision.REJECT:
            tiers.clear()  # the answer was redone; earlier approvals are not of the exported text
        elif reviewer not in tiers.setdefault(stage, []):
            tiers[stage].append(reviewer)
    return result


def _rating_scores(item_ids: list[int]) -> dict[int, dict]:
    """Rubric ratings of responses made from each item: count, mean weighted score, per-dimension means."""
    from review.models import Rating

    sums: dict[int, dict] = {}
    ratings = Rating.objects.filter(response__item_id__in=item_ids).values_list(
        "response__item_id", "weighted_score", "scores"
    )
    for item_id, weighted, dimension_scores in ratings:
        acc = sums.setdefault(item_id, {"n": 0, "weighted": 0.0, "dimensions": {}})
        acc["n"] += 1
        acc["weighted"] += weighted
        for key, value in dimension_scores.items():
            acc["dimensions"].setdefault(key, []).append(value)
    return {
        item_id: {
            "n": acc["n"],
            "weighted_mean": acc["weighted"] / acc["n"],
            "dimensions": {k: sum(v) / len(v) for k, v in acc["dimensions"].items()},
        }
        for item_id, acc in sums.items()
    }


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
    metadata: bool = False,
) -> int:  # fmt: skip
    """Write the export to `stream`; returns the number of records. A sample the trainer would drop or
    misread raises ApplicationError naming it, part-way: write to a file you can throw away."""
    check_export_options(fmt=fmt, status=status)
    samples = export_samples(project=project, status=status, metadata=metadata)
    try:
        if fmt == "csv":
            if not metadata:
                samples = ({**s, "metadata": {}} for s in samples)
            return exporters.write_csv(samples, stream)
        if fmt == "parquet":
            return exporters.write_parquet(samples, stream)
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


@dataclass(frozen=True)
class ExportFile:
    file: IO[bytes]
    file_name: str
    content_type: str
    records: int
    dataset_info: dict[str, Any] | None


def export_to_tempfile(
    *, project: Project, actor: AbstractBaseUser, fmt: str, status: str = ItemStatus.APPROVED,
    metadata: bool = False,
) -> ExportFile:  # fmt: skip
    """Write the export into an anonymous temporary file (deleted when closed), rewound for reading."""
    check_project_admin(user=actor, project=project)
    check_export_options(fmt=fmt, status=status)
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - the response closes it after streaming
    try:
        records = export_write(project=project, fmt=fmt, stream=handle, status=status, metadata=metadata)
    except BaseException:
        handle.close()
        raise
    handle.seek(0)
    _audit_export(project=project, actor=actor, fmt=fmt, status=status, records=records)
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
    actor: AbstractBaseUser | None = None,
) -> ExportResult:  # fmt: skip
    """Write the data file into `out` and add its entry to `out/dataset_info.json` (kept entries stay), so
    `out` can be LLaMA-Factory's dataset_dir. Nothing is replaced unless the whole export validated."""
    check_export_options(fmt=fmt, status=status)
    out.mkdir(parents=True, exist_ok=True)
    path = out / export_file_name(project=project, fmt=fmt)
    descriptor, partial = tempfile.mkstemp(dir=out, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            records = export_write(project=project, fmt=fmt, stream=stream, status=status, metadata=metadata)
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
    _audit_export(project=project, actor=actor, fmt=fmt, status=status, records=records)
    return ExportResult(path=path, records=records, dataset_info_path=info_path)


def _audit_export(*, project: Project, actor, fmt: str, status: str, records: int) -> None:
    # Data leaving the platform is recorded like a state change: who took what, when.
    audit_record(
        actor=actor, action="export", target=project, project=project,
        data={"format": fmt, "status": status, "records": records},
    )  # fmt: skip
