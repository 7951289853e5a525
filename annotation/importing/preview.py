"""An import's preview: what importing a file would store, read from its start, creating nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import File

from annotation.dataio.chat_logs import ChatLogReport
from annotation.dataio.parsers import (
    CHAT_LOG,
    ImportErrorReport,
    KeyReport,
    ParsedRow,
    RowError,
    read_records,
)
from annotation.dataio.redaction import DEFAULT as ALL_REDACTORS
from annotation.importing.jobs import chat_log_options, check_file_size, check_import_options, error_dicts
from annotation.importing.staging import row_redacted_all
from annotation.models import Project
from annotation.permissions import check_project_admin
from core.errors import ApplicationError

PREVIEW_ROWS = 5
# A preview answers within a request: it reads this many records, and says when the file has more.
PREVIEW_MAX_RECORDS = 10_000


@dataclass(frozen=True)
class ImportPreview:
    format: str  # what the file is read as
    rows: list[dict]  # the first PREVIEW_ROWS valid rows as items will hold them
    keys: dict  # the key report of the records read
    errors: list[dict]  # the first errors in what was read
    errors_total: int
    records_read: int
    records_invalid: int
    complete: bool  # the whole file was read; otherwise only the first PREVIEW_MAX_RECORDS records
    format_report: dict = field(default_factory=dict)  # a chat log's counts (messages, sessions, ...)


def _preview_row(row: ParsedRow) -> dict:
    return {"line": row.line, "external_id": row.external_id, "system": row.system, "messages": row.messages,
            "reference_output": row.reference_output, "reference_extra": row.reference_extra,
            "tools": row.tools, "metadata": row.metadata}  # fmt: skip


def import_preview(
    *,
    project: Project,
    actor: AbstractBaseUser,
    file: File,
    filename: str,
    fmt: str = "",
    mapping: dict | None = None,
    redact: bool | None = None,
    options: dict | None = None,
) -> ImportPreview:
    """What importing `file` with these options would store, read from its start; creates nothing.

    Rows are shown redacted when the import would redact them. The checks are the import's own, so a
    preview that is refused (403/404, 400, 413) is an import that would be.
    """
    check_project_admin(user=actor, project=project)
    options = check_import_options(fmt=fmt, mapping=mapping, options=options)
    check_file_size(size=file.size)
    # A chat log is read whole before its first conversation: the preview reads its first messages.
    chat_log = log_report = None
    if fmt == CHAT_LOG:
        chat_log = chat_log_options(project=project, options=options, max_messages=PREVIEW_MAX_RECORDS)
        log_report = ChatLogReport()
    redactors = ALL_REDACTORS if (project.redact_on_import if redact is None else redact) else ()
    keys, report = KeyReport(), ImportErrorReport()
    shown: list[dict] = []
    read = invalid = 0
    last_bad_line = None
    file.seek(0)
    results = read_records(
        file, filename=filename, fmt=fmt or None, mapping=mapping, keys=keys,
        max_field_bytes=settings.IMPORT_MAX_FIELD_BYTES, max_file_bytes=settings.IMPORT_MAX_FILE_BYTES,
        chat_log=chat_log, chat_log_report=log_report,
    )  # fmt: skip
    complete = True
    try:
        for result in results:
            # More errors of the last record read still belong to the preview; a new record does not.
            fresh = not isinstance(result, RowError) or result.line != last_bad_line
            if read >= PREVIEW_MAX_RECORDS and fresh:
                complete = False
                break
            if isinstance(result, RowError):
                report.add(result)
                if result.line != last_bad_line:
                    read, invalid, last_bad_line = read + 1, invalid + 1, result.line
                continue
            read += 1
            keys.add(result.keys)
            if len(shown) < PREVIEW_ROWS:
                if redactors:
                    result = row_redacted_all(result, redactors)
                shown.append(_preview_row(result))
    except ValueError as exc:  # a format the file's container cannot hold (sharegpt named for a CSV)
        raise ApplicationError(f"format: {exc}.") from None
    finally:
        results.close()
    if log_report is not None and log_report.truncated:
        complete = False
    return ImportPreview(
        format=keys.format, rows=shown, keys=keys.as_dict(), errors=error_dicts(report.errors),
        errors_total=report.total, records_read=read, records_invalid=invalid, complete=complete,
        format_report=log_report.as_dict() if log_report is not None else {},
    )  # fmt: skip
