"""Figures of a project's work for its dashboard: volume, speed, quality and how much drafts change.

Reads only; each function does a bounded number of queries whatever the project's size. It lives in
review because its quality figures read review decisions, and review may read annotation's tables.
"""

import statistics
from collections import defaultdict
from datetime import timedelta

from django.db.models import Count, Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import TruncDate
from django.utils import timezone

from annotation.models import AuditEvent, Item, ItemStatus, Project, Revision
from annotation.workflow.diffing import edit_distance
from review.models import Decision, ReviewDecision

SUBMIT_ACTIONS = {"item.submit"}
APPROVE_STATES = {ItemStatus.APPROVED}


def throughput_per_day(*, project: Project, days: int = 30) -> list[dict]:
    """Answers submitted and items approved per day, oldest day first, every day present."""
    since = timezone.now() - timedelta(days=days)
    events = (
        AuditEvent.objects.filter(project=project, created_at__gte=since)
        .filter(action__in=["item.submit", "item.approve", "item.edit"])
        .annotate(day=TruncDate("created_at"))
        .values("day", "action", "to_state")
        .annotate(n=Count("pk"))
    )
    per_day: dict = defaultdict(lambda: {"submitted": 0, "approved": 0})
    for row in events:
        if row["action"] == "item.submit":
            per_day[row["day"]]["submitted"] += row["n"]
        if row["to_state"] == ItemStatus.APPROVED:
            per_day[row["day"]]["approved"] += row["n"]
    today = timezone.localdate()
    return [
        {"day": (today - timedelta(days=n)).isoformat(), **per_day[today - timedelta(days=n)]}
        for n in range(days - 1, -1, -1)
    ]


def annotator_quality(*, project: Project) -> list[dict]:
    """Per annotator: answers reviewed, share accepted and share sent back (spot-check failures
    included), from each annotator revision's decisions."""
    rows: dict[str, dict] = defaultdict(
        lambda: {"reviewed": 0, "accepted": 0, "rework": 0, "spot_check_failed": 0}
    )
    decisions = ReviewDecision.objects.filter(item__project=project, revision__stage="annotate").values_list(
        "revision__author__username", "revision_id", "decision", "stage"
    )
    seen: set[int] = set()
    for author, revision_id, decision, stage in decisions.order_by("created_at", "pk"):
        row = rows[author]
        if stage == "spot_check" and decision == Decision.REJECT:
            row["spot_check_failed"] += 1
        if revision_id in seen:
            continue  # the first decision on an answer is what counts as accepted or sent back
        seen.add(revision_id)
        row["reviewed"] += 1
        row["rework" if decision == Decision.REJECT else "accepted"] += 1
    return [
        {
            "annotator": author,
            **row,
            "acceptance_rate": row["accepted"] / row["reviewed"] if row["reviewed"] else None,
            "rework_rate": row["rework"] / row["reviewed"] if row["reviewed"] else None,
        }
        for author, row in sorted(rows.items())
    ]


def median_task_seconds(*, project: Project, days: int = 30) -> dict[str, float | None]:
    """Median seconds from claim to the holder's next action, per stage, over recent work."""
    since = timezone.now() - timedelta(days=days)
    events = (
        AuditEvent.objects.filter(project=project, created_at__gte=since, target_type="item")
        .exclude(actor=None)
        .order_by("target_id", "created_at", "pk")
        .values_list("target_id", "actor_id", "action", "data", "created_at")
    )
    open_claims: dict[tuple[str, int], tuple[str, object]] = {}
    durations: dict[str, list[float]] = defaultdict(list)
    for target, actor, action, data, at in events.iterator(chunk_size=5000):
        key = (target, actor)
        if action == "item.claim":
            open_claims[key] = (data.get("stage", ""), at)
        elif key in open_claims and action != "item.skip":
            stage, claimed_at = open_claims.pop(key)
            durations[stage].append((at - claimed_at).total_seconds())
        else:
            open_claims.pop(key, None)
    return {stage: statistics.median(values) if values else None for stage, values in durations.items()}


def draft_edit_distances(*, project: Project, limit: int = 2000) -> dict:
    """How much people change model drafts: character edit distance between the draft an approved
    answer started from and the answer, absolute and relative to the draft's length."""
    revisions = (
        Revision.objects.filter(item__project=project, item__status=ItemStatus.APPROVED, draft__isnull=False)
        .filter(pk__in=Item.objects.filter(project=project).values("current_revision"))
        .select_related("draft")
        .order_by("-pk")[:limit]
    )
    distances, relative = [], []
    for revision in revisions:
        d = edit_distance(revision.draft.text, revision.text)
        distances.append(d)
        relative.append(d / max(1, len(revision.draft.text)))
    return {
        "n": len(distances),
        "median": statistics.median(distances) if distances else None,
        "median_relative": statistics.median(relative) if relative else None,
        "unchanged_share": sum(1 for d in distances if d == 0) / len(distances) if distances else None,
        "relative": relative,
    }


def metadata_breakdown(*, project: Project, key: str, limit: int = 50) -> dict:
    """Per value of metadata `key` (most items first, at most `limit` values): items per state, and the
    approval rate, the share of review decisions on those items (every tier) that approved, the answer
    as it was or edited, rather than sent it back. Items without the key count under the value None.

    One grouped query: the items with their decisions joined, grouped by the key's text value; item
    counts are distinct so that an item's several decisions count it once.
    """
    approving = [Decision.APPROVE, Decision.EDIT]
    per_state = {
        f"state_{status}": Count("pk", distinct=True, filter=Q(status=status)) for status in ItemStatus.values
    }
    rows = list(
        Item.objects.filter(project=project)
        .annotate(metadata_value=KeyTextTransform(key, "metadata"))
        .values("metadata_value")
        .annotate(
            items=Count("pk", distinct=True),
            approvals=Count("decisions", filter=Q(decisions__decision__in=approving)),
            rejections=Count("decisions", filter=Q(decisions__decision=Decision.REJECT)),
            **per_state,
        )
        .order_by("-items", "metadata_value")[: limit + 1]
    )
    values = []
    for row in rows[:limit]:
        decided = row["approvals"] + row["rejections"]
        values.append(
            {
                "value": None if row["metadata_value"] is None else str(row["metadata_value"]),
                "items": row["items"],
                "states": {status: row[f"state_{status}"] for status in ItemStatus.values},
                "approvals": row["approvals"],
                "rejections": row["rejections"],
                "approval_rate": row["approvals"] / decided if decided else None,
            }
        )
    return {"key": key, "values": values, "more": len(rows) > limit}
