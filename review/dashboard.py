"""Figures of a project's work for its dashboard: volume, speed, quality and how much drafts change.

Reads only; each function does a bounded number of queries whatever the project's size. It lives in
review because its quality figures read review decisions, and review may read annotation's tables.
"""

from collections import defaultdict
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import TruncDate
from django.utils import timezone

from annotation.models import AuditEvent, Item, ItemStatus, Project, Revision
from review.models import Decision
from review.quality.scans import answer_outcomes, draft_edit_summary, task_medians

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
    included), from each annotator revision's decisions (`review.quality.scans.answer_outcomes`)."""
    outcomes = answer_outcomes(project=project)
    names = dict(get_user_model().objects.filter(pk__in=outcomes).values_list("pk", "username"))
    return [
        {
            "annotator": names[author],
            **row,
            "acceptance_rate": row["accepted"] / row["reviewed"] if row["reviewed"] else None,
            "rework_rate": row["rework"] / row["reviewed"] if row["reviewed"] else None,
        }
        for author, row in sorted(outcomes.items(), key=lambda pair: names[pair[0]])
    ]


def median_task_seconds(*, project: Project, days: int = 30) -> dict[str, float | None]:
    """Median seconds from claim to the holder's next action, per stage, over recent work (on a large
    project, over a sample of its items: `review.quality.scans.task_medians`)."""
    return task_medians(project=project, since=timezone.now() - timedelta(days=days), by="stage")


def draft_edit_distances(*, project: Project, limit: int = 2000) -> dict:
    """How much people change model drafts: character edit distance between the draft an approved
    answer started from and the answer, absolute and relative to the draft's length."""
    revisions = (
        Revision.objects.filter(item__project=project, item__status=ItemStatus.APPROVED, draft__isnull=False)
        .filter(pk__in=Item.objects.filter(project=project).values("current_revision"))
        .order_by("-pk")
        .values_list("draft__text", "text")[:limit]
    )
    return draft_edit_summary(list(revisions))


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
