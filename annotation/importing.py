"""Imports: a file becomes items through an ImportJob, streamed, all-or-nothing, without duplicates.

How a job runs (`import_job_run`, called by the Celery task and by `manage.py import_items`):

1. Start: in a short transaction, lock the job row; only a `queued` job starts (tasks are idempotent).
2. Stage: stream the file through `dataio.parsers.read_records`; valid rows (redacted when the job says
   so, with their compliance flags) go in batches into a session-local temporary table (PostgreSQL
   COPY; plain INSERTs elsewhere). This phase runs in autocommit, so the progress and heartbeat written to
   the job row between batches are visible to the API and the browser while the file is read.
3. Insert: when the file is clean (or `skip_invalid`), one transaction locks the job row and the project's
   advisory lock, copies the staged rows into `annotation_item` with one INSERT ... SELECT ... ON CONFLICT
   DO NOTHING (the external-id unique index; rows without an external id are deduplicated by content hash
   against the project and within the file), records flags, marks the job succeeded and appends the audit
   event. Either all of it commits or none of it does.

Memory stays flat: rows live in the database, never in a Python list of the whole file.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import PurePath
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import File
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from core.errors import ApplicationError, NotFound

from .dataio.parsers import FIELDS, FORMATS, FileTooLarge, ImportErrorReport, RowError, read_records
from .dataio.redaction import DEFAULT as ALL_REDACTORS
from .dataio.redaction import compliance_flags, redact
from .models import ComplianceFlag, ImportJob, ImportStatus, Item, ItemSource, Project
from .permissions import check_project_admin
from .selectors import project_get_for_user
from .services import audit_record, item_content_hash

logger = logging.getLogger(__name__)

STAGING_TABLE = "hv_import_staging"
BATCH_ROWS = 10_000
PROGRESS_EVERY_S = 0.5
# First key of pg_advisory_xact_lock(int, int): serialises imports into one project, so two concurrent
# imports of the same rows cannot both pass the content-hash check.
ADVISORY_LOCK_NAMESPACE = 3_000_003


class TooLarge(ApplicationError):
    status = 413
    code = "too_large"


ProgressCallback = Callable[[ImportJob], None]


# --- checks ---------------------------------------------------------------------------------------------


def check_import_options(*, fmt: str, mapping: object) -> None:
    """Reject an unknown format or a mapping that is not {field: source key} before a job exists."""
    if fmt and fmt not in FORMATS:
        raise ApplicationError(
            f"format: unknown format '{fmt}'; one of: {', '.join(FORMATS)} (or leave it empty to detect).",
            details={"format": fmt},
        )
    if mapping is None:
        return
    if not isinstance(mapping, dict):
        raise ApplicationError("mapping: expected a JSON object of field -> source key.")
    unknown = sorted(set(mapping) - set(FIELDS))
    if unknown:
        raise ApplicationError(
            f"mapping: unknown fields {', '.join(unknown)}; expected some of {', '.join(FIELDS)}.",
            details={"unknown": unknown},
        )
    bad = sorted(key for key, value in mapping.items() if value is not None and not isinstance(value, str))
    if bad:
        raise ApplicationError(f"mapping: the source of {', '.join(bad)} must be a key name or null.")
    if not mapping.get("input", "input"):
        raise ApplicationError("mapping: input must come from a source field.")


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
    enqueue: bool = True,
) -> ImportJob:
    """Create a queued import of `file` (kept under MEDIA_ROOT) and send it to a worker on commit.

    `actor` None is the command line, which is trusted and passes no file: it runs the job itself on the
    local file with `import_job_run(stream=...)`. `redact` None takes the project's setting.
    """
    if actor is not None:
        check_project_admin(user=actor, project=project)
    check_import_options(fmt=fmt, mapping=mapping)
    if file is not None:
        size = file.size if size is None else size
        check_file_size(size=size)
    job = ImportJob(
        project=project,
        created_by=actor,
        filename=_safe_filename(filename),
        format=fmt,
        mapping=mapping,
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
        data={"filename": job.filename, "format": fmt, "skip_invalid": skip_invalid},
    )
    if enqueue and file is not None:
        from .tasks import import_job_run_task

        transaction.on_commit(lambda: import_job_run_task.delay(job.pk))
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


class _Staging:
    """A temporary table on the current connection holding the valid rows of one import."""

    COLUMNS = ("line", "input", "system", "messages", "reference_output", "external_id", "content_hash",
               "flags")  # fmt: skip

    def __init__(self):
        self.postgres = connection.vendor == "postgresql"
        self.table = f"pg_temp.{STAGING_TABLE}" if self.postgres else f"temp.{STAGING_TABLE}"

    def create(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {STAGING_TABLE} (line integer NOT NULL, input text NOT NULL, "
                "system text NOT NULL, messages text NOT NULL, reference_output text NOT NULL, "
                "external_id text NOT NULL, "
                "content_hash varchar(64) NOT NULL, flags text)"
            )

    def write(self, rows: list[tuple]) -> None:
        with connection.cursor() as cursor:
            if self.postgres:
                # COPY is the fastest way in: one round trip per batch, no per-row statement.
                columns = ", ".join(self.COLUMNS)
                with cursor.cursor.copy(f"COPY {self.table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join(["%s"] * len(self.COLUMNS))
                cursor.executemany(f"INSERT INTO {self.table} VALUES ({marks})", rows)

    def drop(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")

    def insert_items(self, *, project_id: int) -> tuple[int, int]:
        """Insert the staged rows as items in file order, skipping duplicates; returns (created, flagged)."""
        now = timezone.now()
        item_table = Item._meta.db_table
        staged = {"input", "system", "reference_output", "external_id", "content_hash"}
        staged_json = {"messages"}
        columns, values, params = [], [], []
        # Every other concrete column gets the model's default, so a field added to Item later is filled
        # the way Model.save() would fill it.
        for field in Item._meta.concrete_fields:
            if field.primary_key:
                continue
            columns.append(connection.ops.quote_name(field.column))
            if field.name in staged:
                values.append(f"s.{field.name}")
                continue
            if field.name in staged_json:
                values.append(f"CAST(s.{field.name} AS jsonb)" if self.postgres else f"s.{field.name}")
                continue
            if field.name == "project":
                value = project_id
            elif field.name == "source":
                value = ItemSource.IMPORT
            elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                value = now
            else:
                value = field.get_default()
            values.append("%s")
            params.append(field.get_db_prep_save(value, connection))
        with connection.cursor() as cursor:
            if self.postgres:
                cursor.execute("SET LOCAL work_mem = '128MB'")
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ADVISORY_LOCK_NAMESPACE, project_id])
                cursor.execute(f"ANALYZE {self.table}")
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {item_table}")
            last_id_before = cursor.fetchone()[0]
            # External ids are unique within a file (the parser reports repeats); the unique partial
            # index (project, external_id) skips ones already in the project. Rows without an external id
            # keep the first of each content hash in the file, and only if the project lacks that hash.
            cursor.execute(
                f"""
                INSERT INTO {item_table} ({", ".join(columns)})
                SELECT {", ".join(values)} FROM (
                    SELECT t.*, ROW_NUMBER() OVER (
                        PARTITION BY t.external_id, CASE WHEN t.external_id = '' THEN t.content_hash END
                        ORDER BY t.line
                    ) AS n
                    FROM {self.table} t
                ) s
                WHERE s.n = 1 AND (s.external_id <> '' OR NOT EXISTS (
                    SELECT 1 FROM {item_table} i WHERE i.project_id = %s AND i.content_hash = s.content_hash
                ))
                ORDER BY s.line
                ON CONFLICT DO NOTHING
                """,
                [*params, project_id],
            )
            created = cursor.rowcount
            flags = "CAST(s.flags AS jsonb)" if self.postgres else "s.flags"
            flag_table = ComplianceFlag._meta.db_table
            cursor.execute(
                f"""
                INSERT INTO {flag_table} (item_id, revision_id, phrases, created_at)
                SELECT i.id, NULL, {flags}, %s
                FROM {self.table} s JOIN {item_table} i ON i.project_id = %s AND (
                    (s.external_id <> '' AND i.external_id = s.external_id)
                    OR (s.external_id = '' AND i.external_id = '' AND i.content_hash = s.content_hash)
                )
                WHERE s.flags IS NOT NULL AND i.id > %s
                ON CONFLICT DO NOTHING
                """,
                [now, project_id, last_id_before],
            )
            flagged = cursor.rowcount
        return created, flagged


def _stage_row(row, *, redactors, phrases) -> tuple:
    values = [row.input, row.context, row.reference_output]
    if redactors:
        values = [redact(text, redactors).text if text else text for text in values]
    input_, system, reference = values
    flags = compliance_flags("\n".join(values), phrases) if phrases else []
    messages = [{"role": "user", "content": input_}]
    return (
        row.line,
        input_,
        system,
        json.dumps(messages, ensure_ascii=False),
        reference,
        row.external_id,
        item_content_hash(messages=messages, system=system),
        json.dumps(flags, ensure_ascii=False) if flags else None,
    )


def _save_progress(job: ImportJob, fields: list[str]) -> None:
    job.heartbeat_at = timezone.now()
    values = {name: getattr(job, name) for name in [*fields, "heartbeat_at"]}
    ImportJob.objects.filter(pk=job.pk).update(**values)


def _finish(job: ImportJob, report: ImportErrorReport, *, status: str, message: str) -> None:
    """Write the outcome; with status SUCCEEDED the caller holds the job's row lock in its transaction."""
    job.status = status
    job.message = message
    job.errors = [{"line": e.line, "field": e.field, "reason": e.reason} for e in report.errors]
    job.errors_total = report.total
    job.finished_at = timezone.now()
    fields = ["status", "message", "errors", "errors_total", "finished_at", "rows_read", "rows_imported",
              "rows_duplicate", "rows_invalid", "rows_flagged", "bytes_read", "bytes_total"]  # fmt: skip
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
    staging = _Staging()
    own_stream = stream is None
    try:
        if own_stream:
            stream = job.file.open("rb")
        if not job.bytes_total:
            job.bytes_total = _stream_size(stream)
        staging.create()
        _stage(job, stream, staging, report, on_progress)
        if report.total and not job.skip_invalid:
            message = f"{report.total:,} error(s) found; nothing was imported."
            _finish(job, report, status=ImportStatus.FAILED, message=message)
        elif not job.rows_read - job.rows_invalid:
            _finish(job, report, status=ImportStatus.FAILED, message="No valid rows; nothing was imported.")
        else:
            _insert(job, staging, report)
    except FileTooLarge as exc:
        report.add(RowError(1, None, str(exc)))
        _finish(job, report, status=ImportStatus.FAILED, message=f"The {exc}; nothing was imported.")
    except _Abandoned:
        pass
    except Exception as exc:
        logger.exception("import %s failed", job.pk)
        _finish(job, report, status=ImportStatus.FAILED, message=f"Import failed: {exc}")
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


def _stage(job, stream, staging: _Staging, report: ImportErrorReport, on_progress) -> None:
    reader = _CountingReader(stream)
    redactors = ALL_REDACTORS if job.redact else ()
    phrases = list(job.project.compliance_phrases or [])
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
    )
    for row in rows:
        if isinstance(row, RowError):
            report.add(row)
            if row.line != last_bad_line:
                invalid += 1
                last_bad_line = row.line
            continue
        valid += 1
        # Once a row is bad and bad rows are not skipped nothing will be imported: only count the rest.
        if report.ok or job.skip_invalid:
            batch.append(_stage_row(row, redactors=redactors, phrases=phrases))
            if len(batch) >= BATCH_ROWS:
                staging.write(batch)
                batch = []
        if time.monotonic() - last_report >= PROGRESS_EVERY_S:
            report_progress()
            last_report = time.monotonic()
    if batch and (report.ok or job.skip_invalid):
        staging.write(batch)
    report_progress()


def _insert(job: ImportJob, staging: _Staging, report: ImportErrorReport) -> None:
    with transaction.atomic():
        locked = ImportJob.objects.select_for_update().filter(pk=job.pk).values_list("status", flat=True)
        locked = locked.first()
        if locked != ImportStatus.RUNNING:
            raise _Abandoned
        created, flagged = staging.insert_items(project_id=job.project_id)
        job.rows_imported = created
        job.rows_flagged = flagged
        job.rows_duplicate = job.rows_read - job.rows_invalid - created
        parts = [f"{created:,} imported", f"{job.rows_duplicate:,} already present"]
        if job.rows_invalid:
            parts.append(f"{job.rows_invalid:,} invalid row(s) skipped")
        _finish(job, report, status=ImportStatus.SUCCEEDED, message="; ".join(parts) + ".")
        if created:
            from .services import items_arrived

            items_arrived(project_id=job.project_id)


# --- compliance flags for the review UI -------------------------------------------------------------------


def compliance_flags_for_items(*, item_ids) -> dict[int, list[str]]:
    """The phrases flagged on each item or any of its revisions, in one query (for review lists)."""
    flags: dict[int, list[str]] = {}
    for item_id, phrases in ComplianceFlag.objects.filter(item_id__in=list(item_ids)).values_list(
        "item_id", "phrases"
    ):
        known = flags.setdefault(item_id, [])
        known.extend(phrase for phrase in phrases if phrase not in known)
    return flags


def compliance_flag_revision(*, revision) -> ComplianceFlag | None:
    """Flag a revision whose text holds one of its project's compliance phrases; call it where the
    revision is written, in the same transaction. Returns the flag, or None when nothing matched."""
    phrases = compliance_flags(revision.text, revision.item.project.compliance_phrases or [])
    if not phrases:
        return None
    flag, _ = ComplianceFlag.objects.update_or_create(
        item_id=revision.item_id, revision=revision, defaults={"phrases": phrases}
    )
    return flag
