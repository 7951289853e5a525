"""Exports of judged pairs: LLaMA-Factory ranking (alpaca or sharegpt shape, with its dataset_info entry)
and TRL preference (standard or conversational), redacted as every export is.

These live in review, not in annotation/exporting, because judgements are review's data and annotation
may not import review; the record shapes are written with annotation's Django-free writers
(formats.py). Only decided pairs are written: pairs most raters called a tie, or on which they split,
are left out and counted (selectors.decided_pairs says how votes resolve).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from django.contrib.auth.models import AbstractBaseUser

from annotation.dataio.exporters import ExportValidationError
from annotation.exporting.services import redact_for_export, redact_value
from annotation.models import Project
from annotation.permissions import check_project_admin
from annotation.services import audit_record
from core.errors import ApplicationError
from review.preference.formats import PAIR_FORMATS, dataset_info_entry, preference_record
from review.preference.selectors import DecidedPair, PreferenceFilters, decided_pairs


def redacted_turn(turn: dict) -> dict:
    """A turn as exports write it: its text and tool calls redacted."""
    turn = dict(turn)
    if isinstance(turn.get("content"), str):
        turn["content"] = redact_for_export(turn["content"])
    if "tool_calls" in turn:
        turn["tool_calls"] = redact_value(turn["tool_calls"])
    return turn


def _records(fmt: str, pairs: Iterable[DecidedPair]) -> Iterable[dict]:
    for pair in pairs:
        yield preference_record(
            fmt,
            system=redact_for_export(pair.system),
            messages=[redacted_turn(turn) for turn in pair.messages],
            chosen=redact_for_export(pair.chosen),
            rejected=redact_for_export(pair.rejected),
            ref=f"pair {pair.pair_id}",
        )


def check_preference_format(fmt: str) -> None:
    if fmt not in PAIR_FORMATS:
        raise ApplicationError(
            f"format: unknown preference format '{fmt}'; one of: {', '.join(PAIR_FORMATS)}.",
            details={"format": fmt},
        )


def preference_file_name(*, project: Project, fmt: str) -> str:
    return f"{project.slug}_{fmt}.jsonl"


def preference_dataset_info(*, project: Project, fmt: str) -> dict[str, Any] | None:
    """{dataset name: entry} for LLaMA-Factory's dataset_info.json; None for TRL's formats."""
    check_preference_format(fmt)
    entry = dataset_info_entry(fmt, preference_file_name(project=project, fmt=fmt))
    return None if entry is None else {f"{project.slug}_{fmt}".replace("-", "_"): entry}


NO_FILTERS = PreferenceFilters()  # frozen: safe to share as a default


def preference_export_write(
    *, project: Project, fmt: str, stream: IO[bytes], filters: PreferenceFilters = NO_FILTERS
) -> dict:
    """Write the decided pairs to `stream` as JSON Lines; returns the counts (records written, and the
    pairs left out as ties or splits). A pair the format cannot hold raises ApplicationError naming it,
    part-way: write to a file you can throw away."""
    check_preference_format(fmt)
    pairs, counts = decided_pairs(project=project, filters=filters)
    written = 0
    try:
        for record in _records(fmt, pairs):
            stream.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
            written += 1
    except ExportValidationError as exc:
        raise ApplicationError(
            f"Cannot export {exc.sample}: {exc.reason}.",
            code="invalid_sample",
            details={"sample": exc.sample, "reason": exc.reason},
        ) from None
    return {"records": written, "left_out_ties": counts["tie"], "left_out_split": counts["split"]}


@dataclass(frozen=True)
class PreferenceExport:
    file: IO[bytes]
    file_name: str
    counts: dict
    dataset_info: dict[str, Any] | None


def preference_export_to_tempfile(
    *, project: Project, actor: AbstractBaseUser, fmt: str, filters: PreferenceFilters = NO_FILTERS
) -> PreferenceExport:
    """The export in an anonymous temporary file (deleted when closed), rewound; audited."""
    check_project_admin(user=actor, project=project)
    check_preference_format(fmt)
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - the response closes it after streaming
    try:
        counts = preference_export_write(project=project, fmt=fmt, stream=handle, filters=filters)
    except BaseException:
        handle.close()
        raise
    handle.seek(0)
    audit_record(
        actor=actor,
        action="export",
        target=project,
        project=project,
        to_state=fmt,
        data={"format": fmt, **counts, "filters": filters.as_dict()},
    )
    return PreferenceExport(
        file=handle,
        file_name=preference_file_name(project=project, fmt=fmt),
        counts=counts,
        dataset_info=preference_dataset_info(project=project, fmt=fmt),
    )
