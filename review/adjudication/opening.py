"""Opening adjudication cases: what review decisions and ratings call when their people disagree.

Apart from the deciding services (services.py) so that decisions and rating, which open cases, import
nothing that imports them back.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q

from annotation.models import Item, Project
from annotation.services import audit_record
from review.models import Adjudication, AdjudicationKind, Decision, Response, ReviewDecision


def disputed_approval(*, item: Item, rejection: ReviewDecision) -> ReviewDecision | None:
    """The approval, at an earlier tier, of the revision `rejection` rejects; None when there is none
    (a reject of fresh work is ordinary review, not a disagreement). An edit approves the edited text."""
    revision_id = rejection.revision_id
    # approve names the revision it approved; edit approves the revision it wrote.
    approved = Q(decision=Decision.APPROVE, revision_id=revision_id) | Q(
        decision=Decision.EDIT, edited_revision_id=revision_id
    )
    return (
        ReviewDecision.objects.filter(approved, item=item)
        .exclude(stage=rejection.stage)
        .select_related("reviewer")
        .order_by("-created_at", "-pk")
        .first()
    )


def adjudication_open_for_review(
    *, item: Item, approval: ReviewDecision, rejection: ReviewDecision, actor: AbstractBaseUser
) -> Adjudication:
    """A case for the item whose `rejection` overrules `approval`. Call inside the reject's transaction,
    with the item row locked (the item moves to status adjudication in the same transaction)."""
    adjudication = Adjudication.objects.create(
        project=item.project,
        kind=AdjudicationKind.REVIEW,
        item=item,
        approval=approval,
        rejection=rejection,
        evidence={
            "revision": rejection.revision_id,
            "approved_stage": approval.stage,
            "approved_by": approval.reviewer.username,
            "rejected_stage": rejection.stage,
            "rejected_by": actor.username,
            "comment": rejection.comment,
        },
    )
    audit_record(
        actor=actor,
        action="adjudication.open",
        target=adjudication,
        project=item.project,
        to_state="open",
        data={"kind": AdjudicationKind.REVIEW, "item": item.pk, **adjudication.evidence},
    )
    return adjudication


def adjudication_open_for_ratings(
    *, project: Project, response: Response, ratings: int, spread: float, actor: AbstractBaseUser
) -> Adjudication | None:
    """A case for the response whose ratings still disagree at its most ratings; None when it has one
    already. Call inside the rating's transaction, with the response row locked."""
    if Adjudication.objects.filter(response=response).exists():
        return None
    evidence = {"ratings": ratings, "spread": spread, "threshold": project.rating_disagreement_threshold}
    adjudication = Adjudication.objects.create(
        project=project, kind=AdjudicationKind.RATINGS, response=response, item=None, evidence=evidence
    )
    audit_record(
        actor=actor,
        action="adjudication.open",
        target=adjudication,
        project=project,
        to_state="open",
        data={"kind": AdjudicationKind.RATINGS, "response": response.pk, **evidence},
    )
    return adjudication
