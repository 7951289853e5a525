"""Reads of gold checks: accuracy per person, standings, and the gold tasks with how they were answered."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Count, Q

from annotation.models import Project
from review.models import GoldAttempt, GoldStanding, GoldStandingState, GoldTask


def gold_accuracy_by_person(*, project: Project, since=None) -> dict[int, dict]:
    """{user id: {"correct", "total", "accuracy"}} over every gold task each person answered in the
    project (since `since`, when given; people without a gold attempt are left out). One query."""
    attempts = GoldAttempt.objects.filter(project=project)
    if since is not None:
        attempts = attempts.filter(created_at__gte=since)
    rows = attempts.values("user_id").annotate(total=Count("pk"), correct=Count("pk", filter=Q(correct=True)))
    return {
        row["user_id"]: {
            "correct": row["correct"],
            "total": row["total"],
            "accuracy": row["correct"] / row["total"] if row["total"] else None,
        }
        for row in rows
    }


def gold_people(*, project: Project) -> list[dict]:
    """Everyone with a gold attempt or a standing: overall accuracy, the rolling one, their state and
    why, who lifted it last; paused people first."""
    accuracy = gold_accuracy_by_person(project=project)
    standings = {
        s.user_id: s for s in GoldStanding.objects.filter(project=project).select_related("lifted_by")
    }
    users = get_user_model().objects.filter(pk__in=set(accuracy) | set(standings)).in_bulk()
    order = {GoldStandingState.PAUSED: 0, GoldStandingState.EXTRA_REVIEW: 1, GoldStandingState.WARNED: 2}
    people = []
    for user_id, user in users.items():
        standing = standings.get(user_id)
        figures = accuracy.get(user_id, {"correct": 0, "total": 0, "accuracy": None})
        state = standing.state if standing else GoldStandingState.OK
        people.append(
            {
                "user_id": user_id,
                "username": user.username,
                **figures,
                "rolling_accuracy": standing.accuracy if standing else None,
                "rolling_counted": standing.counted if standing else 0,
                "state": state,
                "state_label": GoldStandingState(state).label,
                "reason": standing.reason if standing else "",
                "since": standing.since if standing else None,
                "lifted_by": standing.lifted_by.username if standing and standing.lifted_by else None,
                "lifted_at": standing.lifted_at if standing else None,
            }
        )
    people.sort(key=lambda p: (order.get(p["state"], 3), p["username"]))
    return people


def gold_tasks(*, project: Project) -> list[dict]:
    """The project's gold tasks with their expectation and how often they were answered right."""
    tasks = (
        GoldTask.objects.filter(project=project)
        .annotate(answered=Count("attempts"), right=Count("attempts", filter=Q(attempts__correct=True)))
        .order_by("pk")
    )
    return [gold_task_data(task) for task in tasks]


def gold_task_data(task: GoldTask) -> dict:
    target = {"item": task.item_id, "response": task.response_id, "pair": task.pair_id}
    return {
        "id": task.pk,
        "kind": task.kind,
        **target,
        "expected_text": task.expected_text,
        "min_similarity": task.min_similarity,
        "expected_decision": task.expected_decision,
        "expected_scores": task.expected_scores,
        "expected_weighted": task.expected_weighted,
        "expected_choice": task.expected_choice,
        "active": task.active,
        "answered": getattr(task, "answered", None),
        "right": getattr(task, "right", None),
        "created_at": task.created_at,
    }
