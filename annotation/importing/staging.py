"""The staging table of one import, and a parsed row as the columns it stages."""

from __future__ import annotations

import json

from django.db import connection
from django.utils import timezone

from annotation.dataio.conversation import content_hash_with_json, question_key
from annotation.dataio.parsers import ParsedRow
from annotation.dataio.records import row_redacted
from annotation.dataio.redaction import compliance_flags, redact
from annotation.models import ComplianceFlag, Item, ItemSource

STAGING_TABLE = "hv_import_staging"
# First key of pg_advisory_xact_lock(int, int): serialises imports into one project, so two concurrent
# imports of the same rows cannot both pass the content-hash check.
ADVISORY_LOCK_NAMESPACE = 3_000_003


class Staging:
    """A temporary table on the current connection holding the valid rows of one import."""

    COLUMNS = ("line", "input", "system", "messages", "tools", "reference_output", "reference_extra",
               "metadata", "external_id", "content_hash", "question_key", "flags")  # fmt: skip
    JSON_COLUMNS = ("messages", "tools", "reference_extra", "metadata")

    def __init__(self):
        self.postgres = connection.vendor == "postgresql"
        self.table = f"pg_temp.{STAGING_TABLE}" if self.postgres else f"temp.{STAGING_TABLE}"

    def create(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {STAGING_TABLE} (line integer NOT NULL, input text NOT NULL, "
                "system text NOT NULL, messages text NOT NULL, tools text NOT NULL, "
                "reference_output text NOT NULL, reference_extra text NOT NULL, metadata text NOT NULL, "
                "external_id text NOT NULL, content_hash varchar(64) NOT NULL, "
                "question_key varchar(64) NOT NULL, flags text)"
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

    def insert_items(self, *, project_id: int, source: str = ItemSource.IMPORT) -> tuple[int, int]:
        """Insert the staged rows as items (of `source`) in file order, skipping duplicates; returns
        (created, flagged)."""
        now = timezone.now()
        item_table = Item._meta.db_table
        staged = {"input", "system", "reference_output", "external_id", "content_hash", "question_key"}
        staged_json = set(self.JSON_COLUMNS)
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
                value = source
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
            # A staged row is its item by external id or, without one, by content hash: one equi-join
            # each, which can be hashed (a join on "one OR the other" cannot). Nested loops are off for
            # them: the item table's statistics predate the rows just inserted (after a first import
            # they say "empty"), and a nested loop then scans the new items once per flagged row.
            if self.postgres:
                cursor.execute("SET LOCAL enable_nestloop = off")
            flagged = 0
            for match in (
                "s.external_id <> '' AND i.external_id = s.external_id",
                "s.external_id = '' AND i.external_id = '' AND i.content_hash = s.content_hash",
            ):
                cursor.execute(
                    f"""
                    INSERT INTO {flag_table} (item_id, revision_id, phrases, created_at)
                    SELECT i.id, NULL, {flags}, %s
                    FROM {self.table} s JOIN {item_table} i ON i.project_id = %s AND {match}
                    WHERE s.flags IS NOT NULL AND i.id > %s
                    ON CONFLICT DO NOTHING
                    """,
                    [now, project_id, last_id_before],
                )
                flagged += cursor.rowcount
            if self.postgres:
                cursor.execute("SET LOCAL enable_nestloop = on")
        return created, flagged


_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def json_text(value) -> str:
    # Most rows have no tools, reply keys or metadata: skip the encoder for the empty ones.
    if not value:
        return "[]" if isinstance(value, list) else "{}"
    return _compact(value)


def stage_row(row: ParsedRow, *, redactors, phrases, log_flags: bool = False) -> tuple:
    """The staging columns of one row (see Staging.COLUMNS), redacted and flagged as the job says.

    With `log_flags` (a chat log) the phrases its reader found in the user's turns (metadata
    `flag_phrases`) flag the item too, beside the compliance phrases."""
    found: list[str] = []
    if log_flags:
        for listed in row.metadata.get("flag_phrases", {}).values():
            found.extend(phrase for phrase in listed if phrase not in found)
    if redactors:
        row = row_redacted_all(row, redactors)
    messages = row.messages
    if phrases:
        texts = [row.system, *(turn["content"] for turn in messages), row.reference_output]
        found.extend(phrase for phrase in compliance_flags("\n".join(texts), phrases) if phrase not in found)
    flags = json.dumps(found, ensure_ascii=False) if found else None
    # The hash's canonical JSON of the turns is what gets stored: each conversation is encoded once.
    digest, messages_json = content_hash_with_json(system=row.system, messages=messages, tools=row.tools)
    return (
        row.line,
        row.input,
        row.system,
        messages_json,
        json_text(row.tools),
        row.reference_output,
        json_text(row.reference_extra),
        json_text(row.metadata),
        row.external_id,
        digest,
        question_key(system=row.system, messages=messages, tools=row.tools),
        flags,
    )


def row_redacted_all(row: ParsedRow, redactors) -> ParsedRow:
    return row_redacted(row, lambda text: redact(text, redactors).text if text else text)
