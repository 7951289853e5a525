"""Deciding adjudication cases: the final word on a disagreement, audited, moving the item on.

A review case moves its item as the last tier would: approve → approved (the answer as approved),
reject → rework, back to its annotator with the adjudicator's comment. A ratings case records the
adjudicator's final scores of the response. Nobody decides a case about their own work.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import ItemStatus, Revision, Role
from annotation.permissions import check_project_role
from annotation.selectors import project_visible_to
from annotation.services import audit_record
from annotation.workflow.transitions import item_lock, item_write
from core.errors import ApplicationError, Conflict, NotAllowed, NotFound
from review.math.scoring import rating_weighted_score, scores_validate
from review.models import Adjudication, AdjudicationDecision, AdjudicationKind, Rating, ReviewDecision
from review.rating.services import rubric_current, rubric_dimensions

ADJUDICATOR_ROLES = frozenset({Role.ADMIN, Role.DOMAIN_REVIEWER})
REVIEW_DECISIONS = (AdjudicationDecision.APPROVE, AdjudicationDecision.REJECT)


def adjudication_own_work(*, adjudication: Adjudication, user: AbstractBaseUser) -> bool:
    """Whether the case is about `user`'s own work: for an item, they wrote a revision of it or
    decided on it at any tier; for a response, they wrote it or rated it."""
    if adjudication.kind == AdjudicationKind.REVIEW:
        return (
            Revision.objects.filter(item_id=adjudication.item_id, author=user).exists()
            or ReviewDecision.objects.filter(item_id=adjudication.item_id, reviewer=user).exists()
        )
    response = adjudication.response
    return response.author_id == user.pk or Rating.objects.filter(response=response, rater=user).exists()


def adjudication_decide(
    *,
    adjudication_id: int,
    project_id: int,
    user: AbstractBaseUser,
    decision: str = "",
    comment: str = "",
    scores: dict | None = None,
) -> Adjudication:
    """Decide an open case once: `decision` approve | reject for a review case (reject needs a
    comment, which goes to the annotator), `scores` on the current rubric for a ratings case.

    Locks the case row, then the item's; a second decision gets 409 `already_decided`."""
    adjudication = Adjudication.objects.select_related("project").filter(pk=adjudication_id).first()
    if (
        adjudication is None
        or adjudication.project_id != project_id
        or not project_visible_to(user=user, project_id=adjudication.project_id)
    ):
        raise NotFound("Adjudication not found.")
    project = adjudication.project
    check_project_role(user=user, project=project, roles=ADJUDICATOR_ROLES)
    comment = (comment or "").strip()
    with transaction.atomic():
        adjudication = (
            Adjudication.objects.select_for_update(of=("self",))
            .select_related("project", "response")
            .get(pk=adjudication.pk)
        )
        if adjudication.decided_at is not None:
            raise Conflict("This disagreement has already been decided.", code="already_decided")
        if adjudication_own_work(adjudication=adjudication, user=user):
            raise NotAllowed(
                "This disagreement is about your own work; someone else must decide it.", code="own_work"
            )
        if adjudication.kind == AdjudicationKind.REVIEW:
            if scores is not None:
                raise ApplicationError(
                    "scores: a disagreement of reviewers is decided by approve or reject.",
                    details={"scores": ["Only for a disagreement of ratings."]},
                )
            _decide_review(adjudication, user=user, decision=decision, comment=comment)
        else:
            if decision not in ("", AdjudicationDecision.SCORES):
                raise ApplicationError(
                    "decision: a disagreement of ratings is decided by final scores; send scores.",
                    details={"decision": [decision]},
                )
            _decide_ratings(adjudication, user=user, scores=scores)
        adjudication.comment = comment
        adjudication.decided_by = user
        adjudication.decided_at = timezone.now()
        adjudication.save()
        audit_record(
            actor=user,
            action="adjudication.decide",
            target=adjudication,
            project=project,
            from_state="open",
            to_state=adjudication.decision,
            data={
                "kind": adjudication.kind,
                "item": adjudication.item_id,
                "response": adjudication.response_id,
                "comment": comment,
                "scores": adjudication.scores,
                "weighted_score": adjudication.weighted_score,
            },
        )
    return adjudication


def _decide_review(adjudication: Adjudication, *, user, decision: str, comment: str) -> None:
    if decision not in REVIEW_DECISIONS:
        raise ApplicationError(
            f"decision: {decision!r} is not one of approve, reject.", details={"decision": [decision]}
        )
    item = item_lock(adjudication.item_id)
    if item.status != ItemStatus.ADJUDICATION:
        raise Conflict(f"Item #{item.pk} is not waiting for adjudication.", code="not_in_adjudication")
    revision = item.current_revision
    data = {"adjudication": adjudication.pk, "revision": revision.pk if revision else None}
    if decision == AdjudicationDecision.APPROVE:
        item_write(
            item,
            actor=user,
            action="item.adjudicate",
            to_status=ItemStatus.APPROVED,
            data={**data, "decision": decision, "comment": comment},
            approved_at=timezone.now(),
        )
    else:
        if not comment:
            raise ApplicationError(
                "comment: a rejection needs a comment for the annotator.",
                details={"comment": ["This field is required when rejecting."]},
            )
        # Recorded as a reject so the annotator's workbench shows this comment with the rework.
        item_write(
            item,
            actor=user,
            action="item.reject",
            to_status=ItemStatus.REWORK,
            data={**data, "stage": "adjudication", "comment": comment},
            approved_at=None,
        )
    adjudication.decision = decision


def _decide_ratings(adjudication: Adjudication, *, user, scores: dict | None) -> None:
    if scores is None:
        raise ApplicationError(
            "scores: the final scores of the response, one per dimension of the rubric.",
            details={"scores": ["This field is required."]},
        )
    dimensions = rubric_dimensions(rubric_current(project=adjudication.project))
    problems = scores_validate(dimensions, scores)
    if problems:
        message = "; ".join(f"scores.{key}: {problem}" for key, problem in problems.items())
        raise ApplicationError(message, code="invalid_scores", details={"scores": problems})
    adjudication.scores = {d.key: scores[d.key] for d in dimensions}
    adjudication.weighted_score = rating_weighted_score(dimensions, scores)
    adjudication.decision = AdjudicationDecision.SCORES
