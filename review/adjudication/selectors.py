"""Reads of adjudication: the queue of a project's disagreements, shaped for the page and the API."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from annotation.models import Project, Revision
from review.models import Adjudication, AdjudicationKind, Rating, ReviewDecision

STATES = ("open", "decided", "all")


def adjudications_list(
    *, project: Project, user: AbstractBaseUser, state: str = "open", limit: int = 200, pk: int | None = None
) -> list[dict]:
    """The project's cases, oldest first (open) or latest first (decided, all), each with what
    disagreed and whether `user` may decide it (`can_decide`: open and not about their own work)."""
    cases = Adjudication.objects.filter(project=project).select_related(
        "item__current_revision",
        "approval__reviewer",
        "rejection__reviewer",
        "response",
        "decided_by",
    )
    if pk is not None:
        cases = cases.filter(pk=pk)
    if state == "open":
        cases = cases.filter(decided_at__isnull=True).order_by("pk")
    elif state == "decided":
        cases = cases.filter(decided_at__isnull=False).order_by("-decided_at", "-pk")
    else:
        cases = cases.order_by("-pk")
    cases = list(cases[:limit])
    response_ids = [c.response_id for c in cases if c.response_id]
    ratings: dict[int, list[dict]] = {}
    for rating in Rating.objects.filter(response_id__in=response_ids).select_related("rater").order_by("pk"):
        ratings.setdefault(rating.response_id, []).append(
            {
                "rater": rating.rater.username,
                "scores": rating.scores,
                "weighted_score": round(rating.weighted_score, 3),
            }
        )
    # Own work as adjudication_own_work decides it, for the whole page in four queries.
    item_ids = [c.item_id for c in cases if c.item_id]
    own_items = set(
        Revision.objects.filter(item_id__in=item_ids, author=user).values_list("item_id", flat=True)
    ) | set(
        ReviewDecision.objects.filter(item_id__in=item_ids, reviewer=user).values_list("item_id", flat=True)
    )
    own_responses = {c.response_id for c in cases if c.response_id and c.response.author_id == user.pk}
    own_responses |= set(
        Rating.objects.filter(response_id__in=response_ids, rater=user).values_list("response_id", flat=True)
    )
    return [
        _case(
            case,
            own=(case.item_id in own_items) if case.item_id else (case.response_id in own_responses),
            ratings=ratings.get(case.response_id, []),
        )
        for case in cases
    ]


def _decision(decision) -> dict | None:
    if decision is None:
        return None
    return {
        "id": decision.pk,
        "stage": decision.stage,
        "decision": decision.decision,
        "reviewer": decision.reviewer.username,
        "comment": decision.comment,
        "at": decision.created_at,
    }


def _case(case: Adjudication, *, own: bool, ratings: list[dict]) -> dict:
    entry = {
        "id": case.pk,
        "kind": case.kind,
        "state": "open" if case.decided_at is None else "decided",
        "created_at": case.created_at,
        "evidence": case.evidence,
        "decision": case.decision or None,
        "comment": case.comment,
        "scores": case.scores,
        "weighted_score": case.weighted_score,
        "decided_by": case.decided_by.username if case.decided_by else None,
        "decided_at": case.decided_at,
    }
    entry["own_work"] = own
    entry["can_decide"] = case.decided_at is None and not own
    if case.kind == AdjudicationKind.REVIEW:
        item = case.item
        revision = item.current_revision
        entry["item"] = {
            "id": item.pk,
            "input": item.input,
            "status": item.status,
            "version": item.version,
            "answer": revision.text if revision else "",
        }
        entry["approval"] = _decision(case.approval)
        entry["rejection"] = _decision(case.rejection)
    else:
        response = case.response
        entry["response"] = {
            "id": response.pk,
            "input": response.input,
            "text": response.text,
            "spread": response.rating_spread,
        }
        entry["ratings"] = ratings
    return entry


def adjudication_get(*, project: Project, user: AbstractBaseUser, pk: int) -> dict | None:
    found = adjudications_list(project=project, user=user, state="all", pk=pk)
    return found[0] if found else None
