"""The two hottest transitions, claim and submit, each as one PostgreSQL statement.

An annotator's day is claim, submit, claim, submit. Through the ORM each pair cost about twenty
queries and 10 ms of CPU, which capped a two-core server near 60 claims/s (docs/PERFORMANCE.md).
Here each is a single statement: lock, guard, write and audit happen in one round trip and one
implicit transaction, and the statement returns the response body.

These functions only handle the common, successful case and return None for anything else: the
caller then runs the ORM service in workflow.py, which stays the reference implementation and
decides every other outcome (a held item or rework to hand back, an empty queue, a missing role, a
stale version, compliance phrases to flag, a one-tier project's approval, a project that mixes in gold
checks, a gold item). So the rules live in
one place, and tests check that both paths write the same rows and answer the same JSON.
"""

import json
from datetime import datetime

import psycopg
from django.contrib.auth import get_user_model
from django.db import connection, models
from django.utils import timezone
from psycopg.rows import dict_row
from rest_framework.fields import DateTimeField

from annotation.models import Item, ItemStatus, Stage
from annotation.workflow.live_counts import project_counts_changed
from annotation.workflow.serializers import ItemSerializer

_datetime = DateTimeField()  # renders datetimes exactly as the serializers do

# What every answer carries of the item: ItemSerializer's fields, read from these columns.
_COLUMN = {"project": "project_id"}
# ("answer" is the current revision's text, not a column.)
ITEM_COLUMNS = [_COLUMN.get(name, name) for name in ItemSerializer.Meta.fields if name != "answer"]
_TIMESTAMPS = {f.name for f in Item._meta.fields if isinstance(f, models.DateTimeField)}
_JSON_FIELDS = {f.name for f in Item._meta.fields if isinstance(f, models.JSONField)}
_RETURNING = ", ".join(f"i.{column}" for column in ITEM_COLUMNS)


def available() -> bool:
    return connection.vendor == "postgresql"


def _task_parts_sql() -> str:
    """Subqueries for what a task carries besides the item: drafts, the answer so far, the user's
    autosave and compliance flags; they read `claimed` and the user id parameter."""
    users = get_user_model()._meta.db_table
    return f"""
      (SELECT coalesce(json_agg(json_build_object(
                 'id', d.id, 'text', d.text, 'confidence', d.confidence, 'rank', d.rank,
                 'model_version', mv.name) ORDER BY d.rank, d.id), '[]')
         FROM annotation_draft d LEFT JOIN training_modelversion mv ON mv.id = d.model_version_id
        WHERE d.item_id = claimed.id) AS drafts,
      (SELECT json_build_object('id', r.id, 'text', r.text, 'turn_edits', r.turn_edits,
                                'author', u.username, 'stage', r.stage, 'draft', r.draft_id,
                                'created_at', r.created_at)
         FROM annotation_revision r JOIN {users} u ON u.id = r.author_id
        WHERE r.id = claimed.current_revision_id) AS revision,
      (SELECT json_build_object('text', a.text, 'turn_edits', a.turn_edits, 'draft', a.draft_id,
                                'updated_at', a.updated_at)
         FROM annotation_autosave a WHERE a.item_id = claimed.id AND a.user_id = %(user)s) AS autosave,
      (SELECT coalesce(json_agg(f.phrases ORDER BY f.id), '[]')
         FROM annotation_complianceflag f WHERE f.item_id = claimed.id) AS compliance,
      claimed.guidelines"""


def task_claim_from_queue(*, project_id: int, user_id: int, stage: str) -> dict | None:
    """Lease the next queued item of `stage` to the user and return the task, as TaskSerializer
    renders it; None when this path does not apply (see the module docstring)."""
    statement = claim_statement(project_id=project_id, user_id=user_id, stage=stage)
    row = statement and _fetch_one(*statement)
    if not row:
        return None
    task, status_changed = claim_result(row)
    if status_changed:
        project_counts_changed(project_id)
    return task


def claim_statement(*, project_id: int, user_id: int, stage: str) -> tuple[str, dict] | None:
    """The claim as (sql, params), or None when no statement serves this stage."""
    from annotation.workflow.transitions import STAGES, lease_duration

    rule = STAGES.get(stage)
    if rule is None or not available():
        return None
    own_work = (
        "OR (h.leased_by_id IS NULL AND h.status = 'rework' AND h.annotator_id = %(user)s)"
        if stage == Stage.ANNOTATE
        else ""
    )
    # Nobody reviews an item they wrote any revision of, at any tier.
    not_author = (
        ""
        if stage == Stage.ANNOTATE
        else "AND NOT EXISTS (SELECT 1 FROM annotation_revision r"
        " WHERE r.item_id = q.id AND r.author_id = %(user)s)"
    )
    now = timezone.now()
    sql = f"""
    WITH member AS (
      SELECT p.guidelines FROM annotation_project p
        JOIN annotation_membership m ON m.project_id = p.id
       WHERE p.id = %(project)s AND m.user_id = %(user)s AND m.role IN ({_listed(rule.roles)})
         AND p.gold_rate = 0
       LIMIT 1
    ), next AS (
      SELECT q.id, q.status FROM annotation_item q
       WHERE EXISTS (SELECT 1 FROM member)
         AND NOT EXISTS (
           SELECT 1 FROM annotation_item h
            WHERE h.project_id = %(project)s
              AND ((h.leased_by_id = %(user)s AND h.lease_stage = %(stage)s) {own_work}))
         AND q.project_id = %(project)s AND q.leased_by_id IS NULL AND q.status IN ({_listed(rule.claimable)})
         AND NOT q.is_gold
         AND NOT EXISTS (SELECT 1 FROM annotation_skip s WHERE s.item_id = q.id AND s.user_id = %(user)s)
         {not_author}
       ORDER BY q.priority DESC, q.id
       LIMIT 1
       FOR NO KEY UPDATE OF q SKIP LOCKED
    ), updated AS (
      UPDATE annotation_item i
         SET status = coalesce(%(held_status)s, next.status), version = i.version + 1,
             leased_by_id = %(user)s, lease_stage = %(stage)s, lease_expires_at = %(expires)s,
             status_before_lease = next.status, updated_at = %(now)s
        FROM next WHERE i.id = next.id
      RETURNING {_RETURNING}, i.current_revision_id, next.status AS from_status
    ), claimed AS (
      SELECT updated.*, member.guidelines FROM updated, member
    ), audit AS (
      INSERT INTO annotation_auditevent
             (project_id, actor_id, action, target_type, target_id, from_state, to_state, data, created_at)
      SELECT claimed.project_id, %(user)s, 'item.claim', 'item', claimed.id::text, claimed.from_status,
             claimed.status, %(data)s::jsonb, %(now)s
        FROM claimed
    )
    SELECT claimed.*, {_task_parts_sql()} FROM claimed
    """
    params = {
        "project": project_id,
        "user": user_id,
        "stage": str(stage),
        "held_status": rule.held_status and str(rule.held_status),
        "expires": now + lease_duration(),
        "now": now,
        "data": json.dumps({"stage": stage}),
    }
    return sql, params


def claim_result(row: dict) -> tuple[dict, bool]:
    """The task as TaskSerializer renders it, and whether the item's state changed (which the live
    counts must hear of)."""
    revision = _json(row["revision"])
    task = {
        "item": _item_data(row, answer=(revision or {}).get("text")),
        "drafts": _json(row["drafts"]),
        "revision": _revision_data(revision),
        "autosave": _autosave_data(_json(row["autosave"])),
        "rejection": None,  # an item fresh from a queue did not come back from a reject
        "guidelines": row["guidelines"],
        "compliance_flags": _flattened(_json(row["compliance"])),
    }
    return task, row["status"] != row["from_status"]


def item_submit(
    *,
    item_id: int,
    user_id: int,
    text: str,
    version: int,
    draft_id: int | None = None,
    turns: dict | None = None,
) -> dict | None:
    """The annotator's answer to the item they hold, as ItemSerializer renders the item afterwards;
    None when this path does not apply (see the module docstring)."""
    statement = submit_statement(
        item_id=item_id, user_id=user_id, text=text, version=version, draft_id=draft_id, turns=turns
    )
    row = statement and _fetch_one(*statement)
    if not row:
        return None
    item, _ = submit_result(row)
    project_counts_changed(row["project_id"])
    return item


def submit_statement(
    *,
    item_id: int,
    user_id: int,
    text: str,
    version: int,
    draft_id: int | None = None,
    turns: dict | None = None,
) -> tuple[str, dict] | None:
    """The submission as (sql, params), or None when there is nothing to submit, or when it edits
    earlier turns: those are checked against the project's setting and the conversation by the
    service. A plain submission carries its parent's turn edits forward, as the service does."""
    text = (text or "").strip()
    if not text or turns or not available():
        return None
    now = timezone.now()
    sql = f"""
    WITH held AS (
      SELECT i.id, i.project_id, i.status, i.current_revision_id, p.review_tiers,
             coalesce(%(draft)s, parent.draft_id) AS draft_id,
             coalesce(parent.turn_edits, '{{}}'::jsonb) AS turn_edits
        FROM annotation_item i
        JOIN annotation_project p ON p.id = i.project_id
        LEFT JOIN annotation_revision parent ON parent.id = i.current_revision_id
       WHERE i.id = %(item)s AND i.version = %(version)s
         AND i.leased_by_id = %(user)s AND i.lease_stage = %(stage)s
         AND p.review_tiers IN (2, 3)
         AND p.gold_rate = 0 AND NOT i.is_gold
         AND coalesce(p.compliance_phrases, '[]'::jsonb) = '[]'::jsonb
         AND EXISTS (SELECT 1 FROM annotation_membership m WHERE m.project_id = p.id AND m.user_id = %(user)s)
         AND (%(draft)s::bigint IS NULL
              OR EXISTS (SELECT 1 FROM annotation_draft d WHERE d.id = %(draft)s AND d.item_id = i.id))
         FOR NO KEY UPDATE OF i
    ), revision AS (
      INSERT INTO annotation_revision
             (item_id, author_id, stage, text, turn_edits, parent_id, draft_id, created_at)
      SELECT held.id, %(user)s, %(stage)s, %(text)s, held.turn_edits, held.current_revision_id,
             held.draft_id, %(now)s
        FROM held
      RETURNING id, item_id
    ), autosave AS (
      DELETE FROM annotation_autosave a USING held WHERE a.item_id = held.id AND a.user_id = %(user)s
    ), updated AS (
      UPDATE annotation_item i
         SET status = CASE WHEN held.review_tiers = 3 THEN %(expert)s ELSE %(domain)s END,
             version = i.version + 1, current_revision_id = revision.id, annotator_id = %(user)s,
             needs_expert = false, leased_by_id = NULL, lease_stage = '', lease_expires_at = NULL,
             status_before_lease = '', approved_at = NULL, updated_at = %(now)s
        FROM held, revision
       WHERE i.id = held.id
      RETURNING {_RETURNING}, held.status AS from_status, revision.id AS revision_id,
                %(text)s::text AS answer
    ), audit AS (
      INSERT INTO annotation_auditevent
             (project_id, actor_id, action, target_type, target_id, from_state, to_state, data, created_at)
      SELECT updated.project_id, %(user)s, 'item.submit', 'item', updated.id::text, updated.from_status,
             updated.status, json_build_object('revision', updated.revision_id)::jsonb, %(now)s
        FROM updated
    )
    SELECT * FROM updated
    """
    params = {
        "item": item_id,
        "user": user_id,
        "version": version,
        "stage": str(Stage.ANNOTATE),
        "draft": draft_id,
        "text": text,
        "now": now,
        "expert": str(ItemStatus.SUBMITTED),
        "domain": str(ItemStatus.DOMAIN_REVIEW),
    }
    return sql, params


def submit_result(row: dict) -> tuple[dict, bool]:
    """The item after the submission, as ItemSerializer renders it, and whether its state changed
    (always: a submission moves it on to review)."""
    return _item_data(row, answer=row["answer"]), True


# --- rendering rows as the serializers do -----------------------------------------------------------


def _fetch_one(sql: str, params: dict) -> dict | None:
    """Run a statement as a server-side prepared statement (Django binds parameters client-side and
    never prepares): each pooled connection plans it once, not on every claim."""
    connection.ensure_connection()
    with (
        connection.wrap_database_errors,
        psycopg.Cursor(connection.connection, row_factory=dict_row) as cursor,
    ):
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchone()


def _listed(values) -> str:
    """Constant statuses or roles from the code, written into the SQL so that the planner matches
    the queue's partial index."""
    return ", ".join(f"'{value}'" for value in sorted(values))


def _json(value):
    """json columns come back parsed or as text, depending on the connection's loaders."""
    return json.loads(value) if isinstance(value, str) else value


def _when(value) -> str | None:
    """A timestamp, from a column (datetime) or from json_build_object (ISO text), as DRF writes it."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return _datetime.to_representation(value)


def _item_data(row: dict, *, answer: str | None) -> dict:
    data = {}
    for name in ItemSerializer.Meta.fields:
        value = answer if name == "answer" else row[_COLUMN.get(name, name)]
        if name in _TIMESTAMPS:
            value = _when(value)
        elif name in _JSON_FIELDS:
            value = _json(value)
        data[name] = value
    return data


def _revision_data(revision: dict | None) -> dict | None:
    return {**revision, "created_at": _when(revision["created_at"])} if revision else None


def _autosave_data(autosave: dict | None) -> dict | None:
    return {**autosave, "updated_at": _when(autosave["updated_at"])} if autosave else None


def _flattened(phrase_lists: list[list[str]]) -> list[str]:
    """compliance_flags_for_items' order: each phrase once, as first flagged."""
    seen: list[str] = []
    for phrases in phrase_lists:
        seen.extend(phrase for phrase in phrases if phrase not in seen)
    return seen
