"""Import jobs: a file becomes items through an ImportJob, streamed, all-or-nothing, without duplicates.

How a job runs (`import_job_run`, called by the Celery task and by `manage.py import_items`):

1. Start: in a short transaction, lock the job row; only a `queued` job starts (tasks are idempotent).
2. Stage: stream the file through `dataio.parsers.read_records`; valid rows, each a conversation
   (redacted when the job says so, every turn included, with their compliance flags), go in batches into
   a session-local temporary table (`staging`). This phase runs in autocommit, so the progress and
   heartbeat written to the job row between batches are visible to the API and the browser while the
   file is read. Where each source key went is counted as rows pass and kept on the job (`key_report`).
3. Insert: when the file is clean (or `skip_invalid`), one transaction locks the job row and the project's
   advisory lock, copies the staged rows into `annotation_item` with one INSERT ... SELECT ... ON CONFLICT
   DO NOTHING (the external-id unique index; rows without an external id are deduplicated by content hash
   against the project and within the file), records flags, marks the job succeeded and appends the audit
   event. Either all of it commits or none of it does.

Memory stays flat: rows live in the database, never in a Python list of the whole file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import PurePath
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import File
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotation.dataio.chat_logs import (
    DEFAULT_GAP_MINUTES,
    FLAG_COMPLAINT,
    FLAG_PERSON,
    ChatLogOptions,
    ChatLogReport,
    check_gap_minutes,
)
from annotation.dataio.parsers import (
    CHAT_LOG,
    FIELDS,
    FORMATS,
    FileTooLarge,
    ImportErrorReport,
    KeyReport,
    RowError,
    read_records,
)
from annotation.dataio.records import LEGACY_FIELDS
from annotation.dataio.redaction import DEFAULT as ALL_REDACTORS
from annotation.importing.staging import Staging, stage_row
from annotation.models import ImportJob, ImportStatus, ItemSource, Project
from annotation.permissions import check_project_admin
from annotation.selectors import project_get_for_user
from annotation.services import audit_record
from core.errors import ApplicationError, NotFound
from core.hooks import IMPORT_ITEMS_ADDED, hook, task_send_on_commit

logger = logging.getLogger(__name__)

IMPORT_RUN = "annotation.tasks.import_job_run_task"  # sent by name: the tasks module sits above

BATCH_ROWS = 10_000
PROGRESS_EVERY_S = 0.5


class TooLarge(ApplicationError):
    status = 413
    code = "too_large"


ProgressCallback = Callable[[ImportJob], None]


# --- checks ---------------------------------------------------------------------------------------------


def check_import_options(*, fmt: str, mapping: object, options: object = None) -> dict:
    """Reject an unknown format, a mapping that is not {field: source key} or options the format does not
    take, before a job exists; returns the format's options with their defaults (a chat log's gap)."""
    if fmt and fmt not in FORMATS:
        raise ApplicationError(
            f"format: unknown format '{fmt}'; one of: {', '.join(FORMATS)} (or leave it empty to detect).",
            details={"format": fmt},
        )
    clean = _format_options(fmt, options)
    if mapping is None:
        return clean
    if fmt == CHAT_LOG:
        raise ApplicationError(
            "mapping: a chat log is read by its own keys (session_id, timestamp, role, content and their "
            "synonyms); leave the mapping empty."
        )
    if not isinstance(mapping, dict):
        raise ApplicationError("mapping: expected a JSON object of field -> source key.")
    unknown = sorted(set(mapping) - set(FIELDS) - set(LEGACY_FIELDS))
    if unknown:
        raise ApplicationError(
            f"mapping: unknown fields {', '.join(unknown)}; expected some of {', '.join(FIELDS)}.",
            details={"unknown": unknown},
        )
    bad = sorted(key for key, value in mapping.items() if value is not None and not isinstance(value, str))
    if bad:
        raise ApplicationError(f"mapping: the source of {', '.join(bad)} must be a key name or null.")
    # null: the field comes from no key (its usual keys stay metadata); the question must come from one.
    if "input" in mapping and not mapping["input"] and not mapping.get("messages"):
        raise ApplicationError("mapping: input must come from a source field (or map messages).")
    return clean


def _format_options(fmt: str, options: object) -> dict:
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise ApplicationError("options: expected an object of option -> value.")
    if fmt != CHAT_LOG:
        if options:
            names = ", ".join(sorted(options))
            raise ApplicationError(f"{names}: only the chat_log format takes this option.")
        return {}
    unknown = sorted(set(options) - {"session_gap_minutes"})
    if unknown:
        names = ", ".join(unknown)
        raise ApplicationError(f"{names}: not an option of chat_log; it takes session_gap_minutes.")
    gap = options.get("session_gap_minutes")
    try:
        gap = DEFAULT_GAP_MINUTES if gap is None else check_gap_minutes(gap)
    except ValueError as exc:
        raise ApplicationError(f"session_gap_minutes: {exc}.", details={"session_gap_minutes": gap}) from None
    return {"session_gap_minutes": gap}


def chat_log_options(*, project: Project, options: dict, max_messages: int | None = None) -> ChatLogOptions:
    """How a chat log is read into this project: the job's gap, the project's flag phrases."""
    phrases = {FLAG_PERSON: list(project.log_person_phrases or []),
               FLAG_COMPLAINT: list(project.log_complaint_phrases or [])}  # fmt: skip
    gap = options.get("session_gap_minutes", DEFAULT_GAP_MINUTES)
    return ChatLogOptions(gap_minutes=gap, flag_phrases=phrases, max_messages=max_messages)


def check_file_size(*, size: int) -> None:
    limit = settings.IMPORT_MAX_FILE_BYTES
    if size > limit:
        raise TooLarge(
            f"The file is {size:,} bytes, over the {limit:,}-byte import limit.",
            details={"size": size, "limit": limit},
        )


# --- selectors ------------------------------------------------------------------------------------------


def import_job_get_for_user(*, user: AbstractBaseUser, job_id: int) -> ImportJob:
    """The job, for its project's admins: 404 when the project is not visible, 403 for other members."""
    job = ImportJob.objects.select_related("project", "created_by").filter(pk=job_id).first()
    if job is None:
        raise NotFound("Import not found.")
    try:
        project_get_for_user(user=user, project_id=job.project_id)
    except NotFound:
        raise NotFound("Import not found.") from None
    check_project_admin(user=user, project=job.project)
    return job


def import_jobs_recent(*, project: Project, limit: int = 20) -> QuerySet[ImportJob]:
    jobs = ImportJob.objects.filter(project=project).select_related("created_by")
    return jobs.order_by("-created_at", "-pk")[:limit]


# --- services -------------------------------------------------------------------------------------------


def _safe_filename(name: str) -> str:
    return PurePath(name or "upload").name[:200] or "upload"


@transaction.atomic
def import_job_create(
    *,
    project: Project,
    actor: AbstractBaseUser | None,
    filename: str,
    file: File | None = None,
    size: int | None = None,
    fmt: str = "",
    mapping: dict | None = None,
    skip_invalid: bool = False,
    redact: bool | None = None,
    options: dict | None = None,
    enqueue: bool = True,
) -> ImportJob:
    """Create a queued import of `file` (kept under MEDIA_ROOT) and send it to a worker on commit.

    `actor` None is the command line, which is trusted and passes no file: it runs the job itself on the
    local file with `import_job_run(stream=...)`. `redact` None takes the project's setting. `options` are
    the format's (chat_log: session_gap_minutes).
    """
    if actor is not None:
        check_project_admin(user=actor, project=project)
    options = check_import_options(fmt=fmt, mapping=mapping, options=options)
    if file is not None:
        size = file.size if size is None else size
        check_file_size(size=size)
    job = ImportJob(
        project=project,
        created_by=actor,
        filename=_safe_filename(filename),
        format=fmt,
        mapping=mapping,
        options=options,
        skip_invalid=skip_invalid,
        redact=project.redact_on_import if redact is None else redact,
        bytes_total=size or 0,
    )
    if file is not None:
        job.file.save(job.filename, file, save=False)
    job.save()
    audit_record(
        actor=actor,
        action="import.create",
        target=job,
        project=project,
        to_state=ImportStatus.QUEUED,
        data={"filename": job.filename, "format": fmt, "skip_invalid": skip_invalid, "options": options},
    )
    if enqueue and file is not None:
        task_send_on_commit(IMPORT_RUN, job.pk)
    return job


def _heartbeat_stale(job: ImportJob, now) -> bool:
    limit = timedelta(seconds=settings.IMPORT_HEARTBEAT_TIMEOUT)
    return job.heartbeat_at is None or job.heartbeat_at < now - limit


def _fail_locked(job: ImportJob, *, message: str, now) -> None:
    """Fail a job whose row the caller holds locked."""
    from_state = job.status
    job.status = ImportStatus.FAILED
    job.message = message
    job.finished_at = now
    job.save(update_fields=["status", "message", "finished_at"])
    audit_record(
        actor=None, action="import.fail", target=job, project=job.project,
        from_state=from_state, to_state=job.status, data={"message": message},
    )  # fmt: skip


@transaction.atomic
def import_job_start(*, job_id: int) -> ImportJob | None:
    """Move a queued job to running; None when there is nothing to run (already ran, running or gone).

    A job found running with a stale heartbeat lost its worker (acks_late redelivered the task): it is
    failed with that reason rather than run twice.
    """
    now = timezone.now()
    job = (
        ImportJob.objects.select_for_update(of=("self",)).select_related("project").filter(pk=job_id).first()
    )
    if job is None:
        return None
    if job.status == ImportStatus.RUNNING and _heartbeat_stale(job, now):
        _fail_locked(job, message="The worker running this import stopped (no heartbeat).", now=now)
        return None
    if job.status != ImportStatus.QUEUED:
        return None
    job.status = ImportStatus.RUNNING
    job.started_at = job.heartbeat_at = now
    job.save(update_fields=["status", "started_at", "heartbeat_at"])
    audit_record(
        actor=None, action="import.start", target=job, project=job.project,
        from_state=ImportStatus.QUEUED, to_state=ImportStatus.RUNNING,
    )  # fmt: skip
    return job


def import_jobs_fail_stale() -> int:
    """Fail running jobs whose heartbeat is older than IMPORT_HEARTBEAT_TIMEOUT; returns how many.

    Jobs being inserted hold their row lock and are skipped (SKIP LOCKED), so this never fails a job that
    is about to commit.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.IMPORT_HEARTBEAT_TIMEOUT)
    with transaction.atomic():
        stale = list(
            ImportJob.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("project")
            .filter(status=ImportStatus.RUNNING, heartbeat_at__lt=cutoff)
            .order_by("pk")
        )
        for job in stale:
            _fail_locked(job, message="The worker running this import stopped (no heartbeat).", now=now)
    return len(stale)


class _CountingReader:
    """Counts the bytes the parser has pulled, for the progress bar."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        self.count += len(chunk)
        return chunk

    def readinto(self, buffer) -> int:
        n = self._raw.readinto(buffer)
        self.count += n or 0
        return n

    def readable(self) -> bool:
        return True


def _save_progress(job: ImportJob, fields: list[str]) -> None:
    job.heartbeat_at = timezone.now()
    values = {name: getattr(job, name) for name in [*fields, "heartbeat_at"]}
    ImportJob.objects.filter(pk=job.pk).update(**values)


def error_dicts(errors) -> list[dict]:
    return [{"line": e.line, "field": e.field, "turn": e.turn, "reason": e.reason} for e in errors]


def _finish(job: ImportJob, report: ImportErrorReport, keys: KeyReport, *, status: str, message: str) -> None:
    """Write the outcome; with status SUCCEEDED the caller holds the job's row lock in its transaction."""
    job.status = status
    job.message = message
    job.errors = error_dicts(report.errors)
    job.errors_total = report.total
    job.key_report = keys.as_dict()
    job.detected_format = keys.format
    job.finished_at = timezone.now()
    fields = ["status", "message", "errors", "errors_total", "finished_at", "rows_read", "rows_imported",
              "rows_duplicate", "rows_invalid", "rows_flagged", "bytes_read", "bytes_total", "key_report",
              "detected_format", "format_report"]  # fmt: skip
    _save_progress(job, fields)
    audit_record(
        actor=None, action="import.finish", target=job, project=job.project,
        from_state=ImportStatus.RUNNING, to_state=status,
        data={"imported": job.rows_imported, "duplicates": job.rows_duplicate, "invalid": job.rows_invalid},
    )  # fmt: skip


def import_job_run(
    *, job_id: int, stream: BinaryIO | None = None, on_progress: ProgressCallback | None = None
) -> ImportJob:
    """Run a queued job to its end (see the module docstring); a job in any other state is left alone.

    `stream` is the file for jobs created without one (the command line). Returns the job as it ended.
    Expects no transaction around it: the progress it writes must be visible while it runs.
    """
    job = import_job_start(job_id=job_id)
    if job is None:
        return ImportJob.objects.get(pk=job_id)
    report = ImportErrorReport()
    keys = KeyReport()
    staging = Staging()
    own_stream = stream is None
    try:
        if own_stream:
            stream = job.file.open("rb")
        if not job.bytes_total:
            job.bytes_total = _stream_size(stream)
        staging.create()
        _stage(job, stream, staging, report, keys, on_progress)
        if report.total and not job.skip_invalid:
            message = f"{report.total:,} error(s) found; nothing was imported."
            _finish(job, report, keys, status=ImportStatus.FAILED, message=message)
        elif not job.rows_read - job.rows_invalid:
            message = "No valid rows; nothing was imported."
            _finish(job, report, keys, status=ImportStatus.FAILED, message=message)
        else:
            _insert(job, staging, report, keys)
    except FileTooLarge as exc:
        report.add(RowError(1, None, str(exc)))
        _finish(job, report, keys, status=ImportStatus.FAILED, message=f"The {exc}; nothing was imported.")
    except _Abandoned:
        pass
    except Exception as exc:
        if ImportJob.objects.filter(pk=job.pk, status=ImportStatus.SUCCEEDED).exists():
            # The insert committed and what failed ran after it (an on-commit send to a broker that is
            # down): the items are there, and the job must not say otherwise.
            logger.exception("import %s committed; a hook after its commit failed", job.pk)
        else:
            logger.exception("import %s failed", job.pk)
            _finish(job, report, keys, status=ImportStatus.FAILED, message=f"Import failed: {exc}")
    finally:
        try:
            staging.drop()
        except Exception:  # the connection may be the thing that broke; the table dies with it
            logger.warning("could not drop the staging table of import %s", job.pk)
        if own_stream and stream is not None:
            stream.close()
    job.refresh_from_db()
    if on_progress:
        on_progress(job)
    return job


def _log_summary(counts: dict) -> str:
    """A chat log's counts as the job's message says them."""
    text = (f"{counts['conversations']:,} conversation(s) from {counts['messages']:,} message(s) in "
            f"{counts['sessions']:,} session(s), {counts['split_by_gap']:,} split off by a gap; "
            f"{counts['duplicate_messages']:,} duplicate message(s) dropped")  # fmt: skip
    if counts["without_user"]:
        text += f"; {counts['without_user']:,} conversation(s) without a user message not imported"
    return text


class _Abandoned(Exception):
    """The job was failed by someone else (the stale reaper) before its insert committed."""


def _stream_size(stream: BinaryIO) -> int:
    try:
        position = stream.tell()
        size = stream.seek(0, 2)
        stream.seek(position)
        return size
    except (AttributeError, OSError, ValueError):
        return 0


def _stage(job, stream, staging: Staging, report: ImportErrorReport, keys: KeyReport, on_progress) -> None:
    reader = _CountingReader(stream)
    redactors = ALL_REDACTORS if job.redact else ()
    phrases = list(job.project.compliance_phrases or [])
    chat_log = chat_log_options(project=job.project, options=job.options) if job.format == CHAT_LOG else None
    log_report = ChatLogReport() if chat_log is not None else None
    batch: list[tuple] = []
    valid = invalid = 0
    last_bad_line = None
    last_report = time.monotonic()

    def report_progress():
        job.bytes_read, job.rows_read, job.rows_invalid = reader.count, valid + invalid, invalid
        _save_progress(job, ["bytes_read", "bytes_total", "rows_read", "rows_invalid"])
        if on_progress:
            on_progress(job)

    rows = read_records(
        reader,
        filename=job.filename,
        fmt=job.format or None,
        mapping=job.mapping,
        max_field_bytes=settings.IMPORT_MAX_FIELD_BYTES,
        max_file_bytes=max(settings.IMPORT_MAX_FILE_BYTES, job.bytes_total),
        keys=keys,
        chat_log=chat_log,
        chat_log_report=log_report,
    )
    for row in rows:
        if isinstance(row, RowError):
            report.add(row)
            if row.line != last_bad_line:
                invalid += 1
                last_bad_line = row.line
            continue
        valid += 1
        keys.add(row.keys)
        # Once a row is bad and bad rows are not skipped nothing will be imported: only count the rest.
        if report.ok or job.skip_invalid:
            batch.append(stage_row(row, redactors=redactors, phrases=phrases, log_flags=chat_log is not None))
            if len(batch) >= BATCH_ROWS:
                staging.write(batch)
                batch = []
        if time.monotonic() - last_report >= PROGRESS_EVERY_S:
            report_progress()
            last_report = time.monotonic()
    if batch and (report.ok or job.skip_invalid):
        staging.write(batch)
    if log_report is not None:
        job.format_report = log_report.as_dict()
    report_progress()


def _insert(job: ImportJob, staging: Staging, report: ImportErrorReport, keys: KeyReport) -> None:
    with transaction.atomic():
        locked = ImportJob.objects.select_for_update().filter(pk=job.pk).values_list("status", flat=True)
        locked = locked.first()
        if locked != ImportStatus.RUNNING:
            raise _Abandoned
        source = ItemSource.LOG if job.format == CHAT_LOG else ItemSource.IMPORT
        created, flagged = staging.insert_items(project_id=job.project_id, source=source)
        gold = hook(IMPORT_ITEMS_ADDED)  # review's gold checks: records with a `gold` key
        if created and gold:
            gold(job.project_id, job.created_by_id)
        job.rows_imported = created
        job.rows_flagged = flagged
        job.rows_duplicate = job.rows_read - job.rows_invalid - created
        parts = [f"{created:,} imported", f"{job.rows_duplicate:,} already present"]
        if job.rows_invalid:
            parts.append(f"{job.rows_invalid:,} invalid row(s) skipped")
        if job.format == CHAT_LOG:
            parts.append(_log_summary(job.format_report))
        _finish(job, report, keys, status=ImportStatus.SUCCEEDED, message="; ".join(parts) + ".")
        if created:
            from annotation.services import items_arrived

            items_arrived(project_id=job.project_id)
