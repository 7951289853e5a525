"""The item workflow: claiming work, skipping, submitting, flagging, lease expiry.

One service per transition. Each locks the item row (FOR NO KEY UPDATE), re-checks its guard under
the lock, writes, bumps the version and appends the audit event, in one transaction. Review
decisions (approve / edit / reject) live in review.services and use the same helpers.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from annotation.dataio import conversation
from annotation.models import (
    AuditEvent,
    Autosave,
    Draft,
    Item,
    ItemStatus,
    Project,
    Revision,
    Role,
    Skip,
    Stage,
)
from annotation.permissions import check_project_role
from annotation.services import audit_record
from annotation.workflow.live_counts import project_counts_changed
from core.errors import ApplicationError, Conflict, NotAllowed, NotFound
from core.hooks import WORK_QUEUE_GOLD, hook, task_send_on_commit

logger = logging.getLogger(__name__)

# Work of the training layer that the workflow starts (core.hooks: sent by name, never imported).
TRAINING_TRIGGER_CHECK = "training.trigger.training_trigger_check"


@dataclass(frozen=True)
class StageRule:
    roles: frozenset[str]
    claimable: tuple[str, ...]  # statuses waiting in this queue
    held_status: str | None  # the status while someone holds it; None keeps the status


STAGES: dict[str, StageRule] = {
    Stage.ANNOTATE: StageRule(
        frozenset({Role.ANNOTATOR}), (ItemStatus.NEW, ItemStatus.DRAFTED), ItemStatus.ANNOTATING
    ),
    Stage.EXPERT: StageRule(frozenset({Role.EXPERT}), (ItemStatus.SUBMITTED,), ItemStatus.EXPERT_REVIEW),
    Stage.DOMAIN: StageRule(frozenset({Role.DOMAIN_REVIEWER}), (ItemStatus.DOMAIN_REVIEW,), None),
    Stage.SPOT_CHECK: StageRule(frozenset({Role.DOMAIN_REVIEWER}), (ItemStatus.SPOT_CHECK,), None),
}


def lease_duration() -> timedelta:
    return timedelta(minutes=settings.HANDOVER_LEASE_MINUTES)


# --- helpers shared by every transition ---------------------------------------------------------------


def item_lock(item_id: int) -> Item:
    """The item row, locked until the transaction ends. Call inside transaction.atomic()."""
    try:
        return (
            Item.objects.select_for_update(no_key=True, of=("self",))
            .select_related("project")
            .get(pk=item_id)
        )
    except Item.DoesNotExist:
        raise NotFound("Item not found.") from None


def check_item_member(*, user: AbstractBaseUser, item: Item) -> None:
    """Non-members get 404, as if the item did not exist."""
    from annotation.selectors import project_visible_to

    if not project_visible_to(user=user, project_id=item.project_id):
        raise NotFound("Item not found.")


def check_version(item: Item, version: int | None) -> None:
    """A write based on an older version is refused, saying who changed the item since."""
    if version is None:
        raise ApplicationError(
            "version: this field is required.", details={"version": ["This field is required."]}
        )
    if version == item.version:
        return
    last = (
        AuditEvent.objects.filter(target_type="item", target_id=str(item.pk))
        .select_related("actor")
        .order_by("-created_at", "-pk")
        .first()
    )
    who = last.actor.username if last and last.actor else "the system"
    when = f" at {timezone.localtime(last.created_at):%Y-%m-%d %H:%M:%S}" if last else ""
    raise Conflict(
        f"Item #{item.pk} was changed by {who}{when} (now version {item.version}, you sent {version}). "
        "Reload it; your text was not saved over theirs.",
        code="stale_version",
        details={"current_version": item.version, "your_version": version, "changed_by": who},
    )


def item_lock_held(
    *,
    item_id: int,
    user: AbstractBaseUser,
    stages: set[str],
    version: int | None = None,
    check_stale: bool = True,
) -> Item:
    """The item, locked, after the checks every holder's action needs: the user may see it, their
    version is current (when `check_stale`), and they hold it in one of `stages`."""
    item = item_lock(item_id)
    check_item_member(user=user, item=item)
    if check_stale:
        check_version(item, version)
    check_lease_holder(user=user, item=item, stages=stages)
    return item


def check_lease_holder(*, user: AbstractBaseUser, item: Item, stages: set[str]) -> None:
    if item.leased_by_id != user.pk or item.lease_stage not in stages:
        raise Conflict(
            f"You do not hold item #{item.pk} for this step; take it from the queue first.", code="not_leased"
        )


def check_not_author(*, user: AbstractBaseUser, item: Item) -> None:
    if Revision.objects.filter(item=item, author=user).exists():
        raise NotAllowed("You wrote a revision of this item; someone else must review it.", code="own_work")


def item_write(
    item: Item,
    *,
    actor: AbstractBaseUser | None,
    action: str,
    to_status: str | None = None,
    data: dict | None = None,
    **fields,
) -> Item:
    """Apply a transition to a locked item: fields, status, version, audit, live counts on commit."""
    from_status = item.status
    if to_status is not None:
        item.status = to_status
    for name, value in fields.items():
        setattr(item, name, value)
    item.version += 1
    item.save(update_fields=["status", "version", "updated_at", *fields])
    audit_record(
        actor=actor,
        action=action,
        target=item,
        project=item.project,
        from_state=from_status,
        to_state=item.status,
        data=data,
    )
    if item.status != from_status:
        project_counts_changed(item.project_id)
    if item.status == ItemStatus.APPROVED and from_status not in (ItemStatus.APPROVED, ItemStatus.SPOT_CHECK):
        # The training layer counts approvals against the threshold; it is reached by its task's name.
        task_send_on_commit(TRAINING_TRIGGER_CHECK, item.project_id)
    return item


def lease_cleared() -> dict:
    return {"leased_by": None, "lease_stage": "", "lease_expires_at": None, "status_before_lease": ""}


def gold_answer_settle(item: Item, *, user: AbstractBaseUser, stage: str, answer: dict, shown: dict) -> Item:
    """An answer to a gold item (Item.is_gold), under its lock: review scores it (core.hooks
    WORK_QUEUE_GOLD "answer"), and the item goes back to where it rests for the next person, with no
    revision, so the answer never becomes data. Returns the item as the answer shows it: as a normal
    item would be after this step (`shown`: the fields that step would set), so nothing tells it apart."""
    scorer = (hook(WORK_QUEUE_GOLD) or {}).get("answer")
    if scorer is None:
        raise Conflict("Gold checks are not available.", code="gold_unavailable")
    scorer(item=item, user=user, stage=stage, answer=answer)
    Autosave.objects.filter(item=item, user=user).delete()
    resting = item.status_before_lease or item.status
    item_write(
        item,
        actor=user,
        action="gold.answer",
        to_status=resting,
        data={"stage": stage},
        **lease_cleared(),
    )
    shown_item = Item.objects.select_related("project", "current_revision").get(pk=item.pk)
    for name, value in shown.items():
        setattr(shown_item, name, value)
    return shown_item


def under_extra_review(project: Project, user: AbstractBaseUser) -> bool:
    """Whether review's gold checks send this person's work to an extra review (core.hooks)."""
    check = (hook(WORK_QUEUE_GOLD) or {}).get("extra_review") if project.gold_rate else None
    return bool(check and check(project=project, user=user))


# --- claiming ----------------------------------------------------------------------------------------


def _claimable(*, project: Project, user: AbstractBaseUser, stage: str) -> QuerySet[Item]:
    rule = STAGES[stage]
    queue = Item.objects.select_for_update(skip_locked=True, no_key=True).filter(
        project=project, leased_by__isnull=True, status__in=rule.claimable
    )
    # What the user skipped is left for others; gold items come only through the gold draw.
    queue = queue.filter(is_gold=False).exclude(Exists(Skip.objects.filter(item=OuterRef("pk"), user=user)))
    if stage != Stage.ANNOTATE:
        # Nobody reviews an item they wrote any revision of, at any tier.
        queue = queue.exclude(Exists(Revision.objects.filter(item=OuterRef("pk"), author=user)))
    return queue.order_by("-priority", "pk")


def item_claim_next(*, project: Project, user: AbstractBaseUser, stage: str) -> Item | None:
    """Lease the next item of `stage` to the user, or None when the queue is empty.

    Someone who already holds an item in this stage gets it back (lease renewed), so pressing
    "next" twice never hoards items. Annotators get their own rework before new work; within a
    queue, higher priority first (hand-overs from `ask`), then oldest. On PostgreSQL concurrent
    claims skip each other's locked rows (SKIP LOCKED), so no item is leased twice.
    """
    if stage not in STAGES:
        raise ApplicationError(
            f"stage: unknown stage '{stage}'; one of: {', '.join(STAGES)}.", details={"stage": [stage]}
        )
    rule = STAGES[stage]
    check_project_role(user=user, project=project, roles=rule.roles)
    now = timezone.now()
    # Gold checks (review/gold/, asked through core.hooks): a paused person is refused here, and a draw
    # at the project's gold rate names the gold items this claim may serve instead of the queue's next.
    gold = (hook(WORK_QUEUE_GOLD) or {}).get("claim") if project.gold_rate else None
    gold_ids = gold(project=project, user=user, stage=stage) if gold else None
    with transaction.atomic():
        # First what is already theirs: the item they hold here, else (annotators) their own rework.
        theirs = Q(leased_by=user, lease_stage=stage)
        if stage == Stage.ANNOTATE:
            theirs |= Q(leased_by__isnull=True, status=ItemStatus.REWORK, annotator=user)
        item = (
            Item.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(theirs, project=project)
            .order_by(F("leased_by").asc(nulls_last=True), "-priority", "pk")
            .first()
        )
        if item is not None and item.leased_by_id == user.pk:
            item.lease_expires_at = now + lease_duration()
            item.save(update_fields=["lease_expires_at", "updated_at"])
            return item
        if item is None and gold_ids:
            item = (
                Item.objects.select_for_update(skip_locked=True, no_key=True)
                .filter(pk__in=gold_ids, project=project, is_gold=True, leased_by__isnull=True)
                .filter(status__in=rule.claimable)
                .order_by("?")
                .first()
            )
        if item is None:
            item = _claimable(project=project, user=user, stage=stage).first()
        if item is None:
            return None
        item.project = project
        return item_write(
            item,
            actor=user,
            # Gold work has its own actions, so no figure read from the audit log counts it.
            action="gold.claim" if item.is_gold else "item.claim",
            to_status=rule.held_status or item.status,
            data={"stage": stage},
            leased_by=user,
            lease_stage=stage,
            lease_expires_at=now + lease_duration(),
            status_before_lease=item.status,
        )


def item_lease_renew(*, item_id: int, user: AbstractBaseUser) -> Item:
    """Extend the holder's lease while they work (the page calls this periodically)."""
    with transaction.atomic():
        item = item_lock_held(item_id=item_id, user=user, stages=set(STAGES), check_stale=False)
        item.lease_expires_at = timezone.now() + lease_duration()
        item.save(update_fields=["lease_expires_at", "updated_at"])
        return item


def item_release(*, item_id: int, user: AbstractBaseUser) -> Item:
    """Skip: give the item back to its queue as it was before the claim; it is not offered to this
    person again (their own rework excepted: that stays theirs)."""
    with transaction.atomic():
        item = item_lock_held(item_id=item_id, user=user, stages=set(STAGES), check_stale=False)
        Autosave.objects.filter(item=item, user=user).delete()
        Skip.objects.get_or_create(item=item, user=user)
        return item_write(
            item,
            actor=user,
            action="item.skip",
            to_status=item.status_before_lease or item.status,
            data={"stage": item.lease_stage},
            **lease_cleared(),
        )


def leases_expire(*, now: datetime | None = None) -> int:
    """Return every item whose lease has run out to its queue; beat runs this every minute."""
    now = now or timezone.now()
    expired = 0
    while True:
        with transaction.atomic():
            batch = list(
                Item.objects.select_for_update(skip_locked=True, no_key=True, of=("self",))
                .select_related("project")
                .filter(leased_by__isnull=False, lease_expires_at__lt=now)
                .order_by("pk")[:500]
            )
            for item in batch:
                item_write(
                    item,
                    actor=None,
                    action="item.lease_expired",
                    to_status=item.status_before_lease or item.status,
                    data={"stage": item.lease_stage, "held_by": item.leased_by_id},
                    **lease_cleared(),
                )
        expired += len(batch)
        if len(batch) < 500:
            return expired


# --- the annotator's transitions ----------------------------------------------------------------------


def revision_create(
    *,
    item: Item,
    author: AbstractBaseUser,
    stage: str,
    text: str,
    draft: Draft | None,
    turns: dict | None = None,
) -> Revision:
    """A person's text for the item, on top of its current revision; flagged when it holds one of the
    project's compliance phrases. Call inside the transition's transaction.

    `turns` edits earlier assistant turns (see turn_edits_for); the revision keeps its parent's edits
    with these applied, so it stands for the whole conversation."""
    from annotation.compliance import compliance_flag_revision

    parent = item.current_revision
    revision = Revision.objects.create(
        item=item,
        author=author,
        stage=stage,
        text=text,
        turn_edits=turn_edits_for(item, carried=parent.turn_edits if parent else {}, turns=turns),
        parent=parent,
        draft=draft,
    )
    compliance_flag_revision(revision=revision)
    return revision


def turn_edits_for(item: Item, *, carried: dict, turns: dict | None) -> dict[str, str]:
    """The cumulative edits of earlier assistant turns once `turns` ({index: text}) is applied on
    `carried`. Edits are refused unless the project lets people edit every assistant turn; a turn that
    is not an earlier assistant turn, or an empty text, is refused naming the turn."""
    if not turns:
        return dict(carried or {})
    if not item.project.edit_all_assistant_turns:
        raise ApplicationError(
            "turns: this project lets people write only the last assistant turn; "
            "earlier turns cannot be edited (see the project setting edit_all_assistant_turns).",
            code="turns_not_editable",
            details={"turns": ["Earlier turns are not editable in this project."]},
        )
    try:
        return conversation.turn_edits_merge(item.messages, carried, turns)
    except ValueError as exc:
        raise ApplicationError(f"turns: {exc}.", details={"turns": [str(exc)]}) from None


def status_after_annotation(project: Project) -> str:
    """Where a submitted answer goes: expert review (3 tiers), final review (2), or approved (1)."""
    return {3: ItemStatus.SUBMITTED, 2: ItemStatus.DOMAIN_REVIEW}.get(
        project.review_tiers, ItemStatus.APPROVED
    )


def _draft_of(item: Item, draft_id: int | None) -> Draft | None:
    if draft_id is None:
        return None
    draft = Draft.objects.filter(item=item, pk=draft_id).first()
    if draft is None:
        raise ApplicationError(
            f"draft_id: draft {draft_id} is not a draft of this item.", details={"draft_id": [draft_id]}
        )
    return draft


def item_submit(
    *,
    item_id: int,
    user: AbstractBaseUser,
    text: str,
    version: int | None,
    draft_id: int | None = None,
    turns: dict | None = None,
) -> Item:
    """The annotator's answer: a new revision, then on to the next tier (or approved with one tier).
    `turns` edits earlier assistant turns where the project allows it (turn_edits_for)."""
    with transaction.atomic():
        item = item_lock_held(item_id=item_id, user=user, stages={Stage.ANNOTATE}, version=version)
        text = (text or "").strip()
        if not text:
            raise ApplicationError(
                "text: the answer must not be empty.", details={"text": ["This field may not be blank."]}
            )
        if item.is_gold:
            shown_revision = Revision(item=item, author=user, stage=Stage.ANNOTATE, text=text)
            return gold_answer_settle(
                item,
                user=user,
                stage=Stage.ANNOTATE,
                answer={"text": text},
                shown={
                    "status": status_after_annotation(item.project),
                    "current_revision": shown_revision,
                    **lease_cleared(),
                },
            )
        parent = item.current_revision
        revision = revision_create(
            item=item,
            author=user,
            stage=Stage.ANNOTATE,
            text=text,
            # A resubmission keeps the draft its lineage started from, unless another is chosen.
            draft=_draft_of(item, draft_id) or (parent.draft if parent else None),
            turns=turns,
        )
        Autosave.objects.filter(item=item, user=user).delete()
        to_status = status_after_annotation(item.project)
        if to_status != ItemStatus.SUBMITTED and under_extra_review(item.project, user):
            # Their gold accuracy is low: an expert looks at their work before the usual tiers do.
            to_status = ItemStatus.SUBMITTED
        item = item_write(
            item,
            actor=user,
            action="item.submit",
            to_status=to_status,
            data={"revision": revision.pk},
            current_revision=revision,
            annotator=user,
            needs_expert=False,
            approved_at=timezone.now() if to_status == ItemStatus.APPROVED else None,
            **lease_cleared(),
        )
        return item


def item_flag_needs_expert(
    *, item_id: int, user: AbstractBaseUser, version: int | None, comment: str = ""
) -> Item:
    """The annotator cannot answer: the item goes to the expert queue, flagged, with their note."""
    with transaction.atomic():
        item = item_lock_held(item_id=item_id, user=user, stages={Stage.ANNOTATE}, version=version)
        if item.is_gold:
            # No answer to a check is not the right answer; it stays a check for the next person.
            return gold_answer_settle(
                item,
                user=user,
                stage=Stage.ANNOTATE,
                answer={"text": "", "flag": comment.strip()},
                shown={"status": ItemStatus.SUBMITTED, "needs_expert": True, **lease_cleared()},
            )
        Autosave.objects.filter(item=item, user=user).delete()
        return item_write(
            item,
            actor=user,
            action="item.flag_needs_expert",
            to_status=ItemStatus.SUBMITTED,
            data={"comment": comment.strip()},
            needs_expert=True,
            annotator=user,
            **lease_cleared(),
        )


def autosave_store(
    *,
    item_id: int,
    user: AbstractBaseUser,
    text: str,
    draft_id: int | None = None,
    turns: dict | None = None,
) -> Autosave:
    """Keep the holder's unsubmitted text; it does not change the item, so no version is needed.
    Edited earlier turns are kept as the revision would keep them: on top of the current revision's."""
    with transaction.atomic():
        item = item_lock_held(item_id=item_id, user=user, stages=set(STAGES), check_stale=False)
        current = item.current_revision
        turn_edits = turn_edits_for(item, carried=current.turn_edits if current else {}, turns=turns)
        autosave, _ = Autosave.objects.update_or_create(
            item=item,
            user=user,
            defaults={"text": text, "turn_edits": turn_edits, "draft": _draft_of(item, draft_id)},
        )
        return autosave


# --- model drafts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DraftCandidate:
    text: str
    confidence: float


def item_drafts_store(
    *,
    item_id: int,
    model_version_id: int | None,
    candidates: list[DraftCandidate],
    low_confidence: bool | None = None,
) -> Item | None:
    """Store a model's candidates (best first) for an item waiting for annotation: new → drafted.

    Idempotent: an item that already has drafts, or has moved on, is left alone (returns None).
    The item is marked low-confidence as `low_confidence` says: the training layer judges it as `ask`
    would (calibrated confidence, per-value thresholds). None: a best draft under the project's
    confidence threshold, what this layer can tell on its own.
    """
    if not candidates:
        raise ApplicationError("candidates: at least one draft is needed.")
    with transaction.atomic():
        item = item_lock(item_id)
        if item.status != ItemStatus.NEW or item.drafts.exists():
            return None
        ranked = sorted(candidates, key=lambda c: -c.confidence)
        Draft.objects.bulk_create(
            Draft(
                item=item, model_version_id=model_version_id, text=c.text, confidence=c.confidence, rank=rank
            )
            for rank, c in enumerate(ranked)
        )
        low = (
            ranked[0].confidence < item.project.confidence_threshold
            if low_confidence is None
            else low_confidence
        )
        return item_write(
            item,
            actor=None,
            action="item.drafted",
            to_status=ItemStatus.DRAFTED,
            data={
                "model_version": model_version_id,
                "confidence": ranked[0].confidence,
                "candidates": len(ranked),
            },
            low_confidence=low,
        )
