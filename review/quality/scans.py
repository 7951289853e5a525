"""The scans behind per-person quality, each one grouped query over one table's period, whatever the
number of people: what the next tier made of people's work (decisions), the answers they wrote (and
how much they changed drafts), and how long their tasks took (the audit log). The dashboard reads its
per-annotator and per-stage figures from here too.

PostgreSQL does the work (window functions, `percentile_cont`); on the embedded SQLite the same
queries run and the medians are taken in Python.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime

from django.db import connection, transaction

from annotation.models import AuditEvent, Draft, Item, Project, Revision, Stage
from annotation.workflow.diffing import edit_distance
from review.models import Decision, Judgement, Ranking, Rating, ReviewDecision

# Edit distances are computed in Python (diff-match-patch, ~0.2 ms a pair): at most this many pairs per
# page, the most recent answers of each person, at least MIN_EDIT_SAMPLE each.
EDIT_SAMPLE_BUDGET = 2000
MIN_EDIT_SAMPLE = 3
MAX_EDIT_SAMPLE = 50
# Tasks are timed on every item up to this many items in the project, on a uniform sample above.
TIMING_ITEMS = 25_000
# The tier a decision at each stage is checked by next: an approval is overturned when the next
# decision on the item, at a later tier, rejects it.
LATER_TIERS = {Stage.EXPERT: (Stage.DOMAIN, Stage.SPOT_CHECK), Stage.DOMAIN: (Stage.SPOT_CHECK,)}


def postgres() -> bool:
    return connection.vendor == "postgresql"


def fetch(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def tables() -> dict[str, str]:
    return {
        "item": Item._meta.db_table,
        "revision": Revision._meta.db_table,
        "draft": Draft._meta.db_table,
        "decision": ReviewDecision._meta.db_table,
        "rating": Rating._meta.db_table,
        "judgement": Judgement._meta.db_table,
        "ranking": Ranking._meta.db_table,
        "audit": AuditEvent._meta.db_table,
    }


@contextmanager
def sorting_in_memory(*, snapshot: str | None = None):
    """A transaction for the scans: on PostgreSQL their sorts stay in memory rather than in temporary
    files, without JIT compilation (it costs more than it saves on queries this size), and, given an
    exported `snapshot`, they see the database as the transaction that exported it does."""
    if not postgres():
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        if snapshot:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("SET TRANSACTION SNAPSHOT %s", [snapshot])
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SET LOCAL jit = off")
        yield


def _later_tier_sql(next_stage: str) -> str:
    """SQL: the decision's next decision on the item (its stage is `next_stage`) is at a later tier."""
    return " OR ".join(
        f"(d.stage = '{stage}' AND {next_stage} IN ({', '.join(repr(str(s)) for s in tiers)}))"
        for stage, tiers in LATER_TIERS.items()
    )


def decision_outcomes(*, project: Project, since: datetime | None = None) -> tuple[dict, dict, dict]:
    """What the next tier made of people's work, since `since` (all time when None):

    - answers, per annotator (user id): their answers that a review decided (`reviewed`), how many the
      first review accepted or sent back (`accepted`, `rework`), how many failed a spot check;
    - approvals, per reviewer: their approvals (approve or edit) that a later tier decided on
      (`checked`), and how many it rejected (`overturned`);
    - reviews, per reviewer: their decisions (every tier and spot checks).

    One query, one pass over the project's decisions in time order per item, each turned into a few
    flags: an item's revisions only move forward, so a decision whose predecessor on the item was on
    another revision is the first decision on its revision, and the decision after an approval is the
    later tier's verdict on it.
    """
    t = tables()
    in_window = "d.created_at >= %s" if since else "true"
    answer_window = "AND r.created_at >= %s" if since else ""
    sql = f"""
        WITH d AS MATERIALIZED (
            SELECT d.revision_id, d.reviewer_id, {in_window} AS in_window,
                   coalesce(lag(d.revision_id) OVER w, -1) <> d.revision_id AS first,
                   d.decision = %s AS rejected,
                   d.stage = %s AND d.decision = %s AS spot_failed,
                   d.decision IN (%s, %s) AND ({_later_tier_sql("lead(d.stage) OVER w")}) AS checked,
                   lead(d.decision) OVER w = %s AS next_rejected
            FROM {t["decision"]} d JOIN {t["item"]} i ON i.id = d.item_id
            WHERE i.project_id = %s
            WINDOW w AS (PARTITION BY d.item_id ORDER BY d.created_at, d.id))
        SELECT 'answers', r.author_id, count(*) FILTER (WHERE d.first),
               count(*) FILTER (WHERE d.first AND d.rejected), count(*) FILTER (WHERE d.spot_failed)
        FROM d JOIN {t["revision"]} r ON r.id = d.revision_id
        WHERE (d.first OR d.spot_failed) AND r.stage = %s {answer_window}
        GROUP BY r.author_id
        UNION ALL
        SELECT 'reviews', d.reviewer_id, count(*) FILTER (WHERE d.in_window),
               count(*) FILTER (WHERE d.in_window AND d.checked),
               count(*) FILTER (WHERE d.in_window AND d.checked AND d.next_rejected)
        FROM d GROUP BY d.reviewer_id
    """
    params = ([since] if since else []) + [Decision.REJECT, Stage.SPOT_CHECK, Decision.REJECT]
    params += [Decision.APPROVE, Decision.EDIT, Decision.REJECT, project.pk, Stage.ANNOTATE]
    params += [since] if since else []
    answers, approvals, reviews = {}, {}, {}
    for kind, user_id, a, b, c in fetch(sql, params):
        if kind == "answers":
            answers[user_id] = {"reviewed": a, "accepted": a - b, "rework": b, "spot_check_failed": c}
            continue
        if a:
            reviews[user_id] = a
        if b:
            approvals[user_id] = {"checked": b, "overturned": c}
    return answers, approvals, reviews


def answer_outcomes(*, project: Project, since: datetime | None = None) -> dict[int, dict]:
    """Per annotator: their reviewed answers, accepted, sent back, failed spot checks (see above)."""
    return decision_outcomes(project=project, since=since)[0]


def _timing_sample(project: Project) -> int:
    """Time a task of every item whose id is a multiple of this: 1 (every item) up to TIMING_ITEMS
    items, so the per-task window below sorts a bounded share of a large project's audit log."""
    items = Item.objects.filter(project=project).count()
    return max(1, -(-items // TIMING_ITEMS))


def _task_durations_sql(t: dict[str, str], *, with_stage: bool, every: int) -> str:
    """(actor, stage, seconds) of every task: from a claim to the same person's next action on the item
    (a skip ends it unfinished). A claim's stage is in its audit data."""
    if postgres():
        stage = "data ->> 'stage'" if with_stage else "''::text"
        seconds = "extract(epoch FROM created_at - prev_at)"
        sample = f"AND target_id::bigint %% {every} = 0" if every > 1 else ""
    else:
        stage = "json_extract(data, '$.stage')" if with_stage else "''"
        seconds = "(julianday(created_at) - julianday(prev_at)) * 86400.0"
        sample = f"AND CAST(target_id AS INTEGER) %% {every} = 0" if every > 1 else ""
    return f"""
        SELECT actor_id, prev_stage AS stage, {seconds} AS seconds
        FROM (SELECT actor_id, action, created_at,
                     lag(action) OVER w AS prev_action, lag(created_at) OVER w AS prev_at,
                     lag({stage}) OVER w AS prev_stage
              FROM {t["audit"]}
              WHERE project_id = %s AND target_type = 'item' AND actor_id IS NOT NULL AND created_at >= %s
                    {sample}
              WINDOW w AS (PARTITION BY target_id, actor_id ORDER BY created_at, id)) e
        WHERE prev_action = 'item.claim' AND action NOT IN ('item.claim', 'item.skip')
    """


def task_medians(*, project: Project, since: datetime, by: str) -> dict:
    """Median seconds from claim to the holder's next action since `since`, by "actor" (user id ->
    (tasks timed, median)) or by "stage" (stage -> median).

    On a project of more than TIMING_ITEMS items, the tasks of a uniform sample of items (ids that
    are multiples of `_timing_sample`): a median needs hundreds of tasks, not every one, and the
    sort of every claim in the period is what would cost. PostgreSQL takes the medians in the query;
    another database hands over the durations and Python takes them.
    """
    key = {"actor": "actor_id", "stage": "stage"}[by]
    durations = _task_durations_sql(tables(), with_stage=by == "stage", every=_timing_sample(project))
    params = [project.pk, since]
    if postgres():
        sql = (
            f"SELECT {key}, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)"
            f" FROM ({durations}) tasks GROUP BY {key}"
        )
        rows = fetch(sql, params)
    else:
        values = defaultdict(list)
        for actor, stage, seconds in fetch(durations, params):
            values[actor if by == "actor" else stage].append(seconds)
        rows = [(k, len(v), statistics.median(v)) for k, v in values.items()]
    if by == "stage":
        return {stage: median for stage, _n, median in rows}
    return {actor: (n, median) for actor, n, median in rows}


def answers_written(*, project: Project, since: datetime) -> dict[int, dict]:
    """Per annotator (user id): the answers they submitted since `since` (`answers`, rework
    included), those that started from a draft (`from_drafts`), those equal to it (`kept`), and the
    (draft, answer) texts of their most recent answers from drafts (`sample`): each person's
    share of EDIT_SAMPLE_BUDGET, from MIN_EDIT_SAMPLE to MAX_EDIT_SAMPLE.

    Two queries: the answers numbered per person, newest first, sorting only ids and dates; then the
    texts of the sampled ones alone.
    """
    t = tables()
    greatest, least = ("greatest", "least") if postgres() else ("max", "min")
    # OFFSET 0 keeps the inner query apart, so the sort for the numbering carries no texts.
    sql = f"""
        WITH ranked AS MATERIALIZED (
            SELECT id, author_id, draft_id, kept,
                   row_number() OVER (
                       PARTITION BY author_id, draft_id IS NULL ORDER BY created_at DESC, id DESC
                   ) AS nth
            FROM (SELECT r.id, r.author_id, r.draft_id, r.created_at,
                         r.draft_id IS NOT NULL AND r.text = dr.text AS kept
                  FROM {t["revision"]} r JOIN {t["item"]} i ON i.id = r.item_id
                  LEFT JOIN {t["draft"]} dr ON dr.id = r.draft_id
                  WHERE i.project_id = %s AND r.stage = %s AND r.created_at >= %s
                  OFFSET 0) answers),
        counts AS (
            SELECT author_id, count(*) AS answers, count(draft_id) AS from_drafts,
                   count(*) FILTER (WHERE kept) AS kept
            FROM ranked GROUP BY author_id),
        budget AS (
            SELECT {greatest}(%s, {least}(%s, %s / {greatest}(1, count(*)))) AS k
            FROM counts WHERE from_drafts > 0)
        SELECT c.author_id, c.answers, c.from_drafts, c.kept, NULL FROM counts c
        UNION ALL
        SELECT author_id, NULL, NULL, NULL, id FROM ranked
        WHERE draft_id IS NOT NULL AND nth <= (SELECT k FROM budget)
    """
    params = [project.pk, Stage.ANNOTATE, since, MIN_EDIT_SAMPLE, MAX_EDIT_SAMPLE, EDIT_SAMPLE_BUDGET]
    answers: dict[int, dict] = {}
    sampled: list[int] = []
    for author, n, from_drafts, kept, revision in fetch(sql, params):
        if n is None:
            sampled.append(revision)
        else:
            answers[author] = {"answers": n, "from_drafts": from_drafts, "kept": kept, "sample": []}
    # The sampled answers' texts by primary key: a few thousand rows, not the whole period's.
    for author, draft, text in (
        Revision.objects.filter(pk__in=sampled).values_list("author_id", "draft__text", "text").iterator()
    ):
        answers[author]["sample"].append((draft, text))
    return answers


def draft_edit_summary(pairs: list[tuple[str, str]]) -> dict:
    """How much people changed model drafts, from (draft text, answer) pairs: the median character
    edit distance, absolute and relative to the draft's length, and the share left unchanged."""
    distances, relative = [], []
    for draft, text in pairs:
        d = edit_distance(draft, text)
        distances.append(d)
        relative.append(d / max(1, len(draft)))
    return {
        "n": len(distances),
        "median": statistics.median(distances) if distances else None,
        "median_relative": statistics.median(relative) if relative else None,
        "unchanged_share": sum(1 for d in distances if d == 0) / len(distances) if distances else None,
        "relative": relative,
    }
