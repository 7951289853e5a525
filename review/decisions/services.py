"""Review decisions: approve, edit-and-approve, reject, at the expert, domain and spot-check tiers."""

import random
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import Item, ItemStatus, Project, Revision, Stage
from annotation.workflow.transitions import (
    check_not_author,
    gold_answer_settle,
    item_lock,
    item_lock_held,
    item_write,
    lease_cleared,
    revision_create,
)
from core.errors import ApplicationError, Conflict
from review.adjudication.opening import adjudication_open_for_review, disputed_approval
from review.models import Decision, ReviewDecision

REVIEW_STAGES = {Stage.EXPERT, Stage.DOMAIN, Stage.SPOT_CHECK}


def status_after_review(*, item: Item, stage: str, reviewer: AbstractBaseUser | None = None) -> str:
    """An expert passes work on to final review (or approves it in a one-tier project); the final
    review and a passed spot check approve it. An approval by, or of the work of, someone whose gold
    accuracy sent their work to an extra review is not final: the item goes to a spot check first."""
    if stage == Stage.EXPERT and item.project.review_tiers >= 2:
        return ItemStatus.DOMAIN_REVIEW
    if stage != Stage.SPOT_CHECK and item.project.gold_rate:
        from review.gold.services import gold_under_extra_review

        people = {reviewer, item.annotator}
        if any(gold_under_extra_review(project=item.project, user=person) for person in people if person):
            return ItemStatus.SPOT_CHECK
    return ItemStatus.APPROVED


def item_review(
    *,
    item_id: int,
    user: AbstractBaseUser,
    decision: str,
    version: int | None,
    text: str = "",
    comment: str = "",
    turns: dict | None = None,
) -> Item:
    """Record the reviewer's decision on the item they hold and move it on.

    approve: the current revision goes to the next tier (or is approved);
    edit: the reviewer's text (and `turns`, edits of earlier assistant turns where the project allows
    them) becomes a new revision, then as approve;
    reject: needs a comment; back to the annotator as rework, or, where the project adjudicates
    disagreements and an earlier tier approved this answer, held for adjudication.
    Nobody decides on an item they wrote any revision of.
    """
    if decision not in Decision.values:
        raise ApplicationError(
            f"decision: '{decision}' is not one of {', '.join(Decision.values)}.",
            details={"decision": [decision]},
        )
    if turns and decision != Decision.EDIT:
        raise ApplicationError(
            f"turns: only an edit changes turns; a decision to {decision} keeps the answer as it is.",
            details={"turns": ["Only allowed with the decision 'edit'."]},
        )
    with transaction.atomic():
        item = item_lock_held(item_id=item_id, user=user, stages=REVIEW_STAGES, version=version)
        check_not_author(user=user, item=item)
        stage, current = item.lease_stage, item.current_revision
        if item.is_gold:
            return _gold_review(item=item, user=user, decision=decision, text=text, comment=comment)

        if decision == Decision.REJECT:
            comment = comment.strip()
            if not comment:
                raise ApplicationError(
                    "comment: a rejection needs a comment for the annotator.",
                    details={"comment": ["This field is required when rejecting."]},
                )
            if current is None:
                raise Conflict(
                    "There is no answer to reject yet; write one with 'edit'.", code="nothing_to_review"
                )
            rejection = ReviewDecision.objects.create(
                item=item, revision=current, stage=stage, reviewer=user, decision=decision, comment=comment
            )
            data = {"stage": stage, "comment": comment, "revision": current.pk}
            approval = (
                disputed_approval(item=item, rejection=rejection)
                if item.project.adjudicate_disagreements
                else None
            )
            if approval is not None:
                # Two tiers disagree on the same answer: it waits for an adjudicator instead of rework.
                adjudication = adjudication_open_for_review(
                    item=item, approval=approval, rejection=rejection, actor=user
                )
                return item_write(
                    item,
                    actor=user,
                    action="item.reject",
                    to_status=ItemStatus.ADJUDICATION,
                    data={**data, "adjudication": adjudication.pk},
                    approved_at=None,
                    **lease_cleared(),
                )
            return item_write(
                item,
                actor=user,
                action="item.reject",
                to_status=ItemStatus.REWORK,
                data=data,
                approved_at=None,
                **lease_cleared(),
            )

        edited = None
        if decision == Decision.EDIT:
            text = (text or "").strip()
            if not text:
                raise ApplicationError(
                    "text: an edit needs the new text.", details={"text": ["This field is required."]}
                )
            edited = revision_create(
                item=item,
                author=user,
                stage=stage,
                text=text,
                draft=current.draft if current else None,
                turns=turns,
            )
        elif current is None:
            raise Conflict(
                "There is no answer to approve yet; write one with 'edit'.", code="nothing_to_review"
            )

        ReviewDecision.objects.create(
            item=item,
            revision=current or edited,
            stage=stage,
            reviewer=user,
            decision=decision,
            comment=comment.strip(),
            edited_revision=edited,
        )
        to_status = status_after_review(item=item, stage=stage, reviewer=user)
        return item_write(
            item,
            actor=user,
            action=f"item.{decision}",
            to_status=to_status,
            data={"stage": stage, "revision": (edited or current).pk},
            current_revision=edited or current,
            needs_expert=False,
            approved_at=timezone.now() if to_status == ItemStatus.APPROVED else None,
            **lease_cleared(),
        )


def _gold_review(*, item: Item, user: AbstractBaseUser, decision: str, text: str, comment: str) -> Item:
    """A decision on a gold item: checked as any decision is, scored against the expected one, and the
    item waits for the next reviewer; the answer shows the item as the decision would have left it."""
    comment, text = comment.strip(), (text or "").strip()
    if decision == Decision.REJECT and not comment:
        raise ApplicationError(
            "comment: a rejection needs a comment for the annotator.",
            details={"comment": ["This field is required when rejecting."]},
        )
    if decision == Decision.EDIT and not text:
        raise ApplicationError(
            "text: an edit needs the new text.", details={"text": ["This field is required."]}
        )
    stage = item.lease_stage
    shown: dict = {**lease_cleared(), "needs_expert": False}
    if decision == Decision.REJECT:
        shown["status"] = ItemStatus.REWORK
    else:
        shown["status"] = status_after_review(item=item, stage=stage, reviewer=user)
        if decision == Decision.EDIT:
            shown["current_revision"] = Revision(item=item, author=user, stage=stage, text=text)
        if shown["status"] == ItemStatus.APPROVED:
            shown["approved_at"] = timezone.now()
    answer = {"decision": decision, "comment": comment, **({"text": text} if text else {})}
    return gold_answer_settle(item, user=user, stage=stage, answer=answer, shown=shown)


def spot_check_pick(item_ids: list[int], *, rate: float, rng: random.Random) -> list[int]:
    """A simple random sample of round(rate × n) ids (at least one when rate > 0 and n > 0)."""
    if rate <= 0 or not item_ids:
        return []
    k = min(len(item_ids), max(1, round(rate * len(item_ids))))
    return sorted(rng.sample(item_ids, k))


def spot_checks_sample(
    *, project: Project, now: datetime | None = None, rng: random.Random | None = None
) -> int:
    """Send the project's spot-check rate of the items approved in the last day to re-review.

    Each approved item is considered once: items already spot-checked are not sampled again.
    """
    now = now or timezone.now()
    candidates = list(
        Item.objects.filter(
            project=project,
            status=ItemStatus.APPROVED,
            leased_by__isnull=True,
            approved_at__gte=now - timedelta(days=1),
            approved_at__lt=now,
        )
        .exclude(decisions__stage=Stage.SPOT_CHECK)
        .values_list("pk", flat=True)
    )
    picked = spot_check_pick(candidates, rate=project.spot_check_rate, rng=rng or random.Random())
    moved = 0
    for item_id in picked:
        with transaction.atomic():
            item = item_lock(item_id)
            if item.status != ItemStatus.APPROVED or item.leased_by_id:
                continue
            item_write(item, actor=None, action="item.spot_check", to_status=ItemStatus.SPOT_CHECK)
            moved += 1
    return moved
