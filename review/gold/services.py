"""Writes of gold checks: drawing gold tasks into a claim, scoring answers, standings (marking: marking.py).

A gold task is served exactly as its queue serves other work (the same lease, the same answer), only
drawn by `gold_draw` at the project's `gold_rate` among the gold tasks the person has not answered.
An answer to it is kept as a GoldAttempt and nowhere else: no revision, rating or judgement, so it never
reaches the data or the figures. After each attempt the person's rolling accuracy decides their
standing (warned, paused, extra review), which only a project admin lifts.
"""

from __future__ import annotations

import random

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from annotation.models import Item, ItemStatus, Project, Revision, Skip, Stage
from annotation.permissions import check_project_admin
from annotation.services import audit_record
from core.errors import ApplicationError, Conflict, NotAllowed
from review.math import gold as gold_math
from review.models import (
    GoldAttempt,
    GoldKind,
    GoldStanding,
    GoldStandingState,
    GoldTask,
    Pair,
    Response,
)

# Which gold kind each queue mixes in, and the status its gold items rest at.
ITEM_STAGE_KIND = {
    Stage.ANNOTATE: (GoldKind.ANNOTATE, (ItemStatus.NEW, ItemStatus.DRAFTED)),
    Stage.EXPERT: (GoldKind.REVIEW, (ItemStatus.SUBMITTED,)),
    Stage.DOMAIN: (GoldKind.REVIEW, (ItemStatus.DOMAIN_REVIEW,)),
}
ACTION_STATE = {
    "warn": GoldStandingState.WARNED,
    "pause": GoldStandingState.PAUSED,
    "extra_review": GoldStandingState.EXTRA_REVIEW,
}

_random = random.Random()


# --- drawing gold into a claim --------------------------------------------------------------------------


def gold_check_not_paused(*, project: Project, user: AbstractBaseUser) -> None:
    """A paused person gets nothing from this project's queues: 403 gold_paused, saying why."""
    if not project.gold_rate:
        return
    standing = GoldStanding.objects.filter(project=project, user=user, state=GoldStandingState.PAUSED).first()
    if standing is not None:
        raise NotAllowed(
            f"Your work in this project is paused: {standing.reason} A project admin can lift the pause.",
            code="gold_paused",
            details={
                "accuracy": standing.accuracy,
                "since": standing.since.isoformat() if standing.since else None,
            },
        )


def gold_draw(*, project: Project) -> bool:
    """Whether this claim serves gold: a draw at the project's rate."""
    return bool(project.gold_rate) and _random.random() < project.gold_rate


def _unanswered(tasks, user):
    return tasks.exclude(Exists(GoldAttempt.objects.filter(gold_task=OuterRef("pk"), user=user)))


def gold_item_candidates(*, project: Project, user: AbstractBaseUser, stage: str) -> list[int] | None:
    """The work queue's question (core.hooks WORK_QUEUE_GOLD "claim"): the gold items this claim may
    serve (free, unanswered by the person, not their own writing), or None when it draws no gold."""
    gold_check_not_paused(project=project, user=user)
    if stage not in ITEM_STAGE_KIND or not gold_draw(project=project):
        return None
    kind, resting = ITEM_STAGE_KIND[stage]
    tasks = _unanswered(GoldTask.objects.filter(project=project, kind=kind, active=True), user).filter(
        item__status__in=resting, item__leased_by__isnull=True
    )
    tasks = tasks.exclude(Exists(Skip.objects.filter(item=OuterRef("item_id"), user=user)))
    if stage != Stage.ANNOTATE:
        tasks = tasks.exclude(Exists(Revision.objects.filter(item=OuterRef("item_id"), author=user)))
    return list(tasks.values_list("item_id", flat=True)[:50])


def gold_response_candidates(*, project: Project, user: AbstractBaseUser) -> list[int] | None:
    """For the rate queue: gold responses this claim may serve, or None when it draws no gold."""
    if not gold_draw(project=project):
        return None
    tasks = _unanswered(GoldTask.objects.filter(project=project, kind=GoldKind.RATE, active=True), user)
    tasks = tasks.exclude(response__author=user).filter(response__closed_at__isnull=True)
    return list(tasks.values_list("response_id", flat=True)[:50])


def gold_pair_candidates(*, project: Project, user: AbstractBaseUser) -> list[int] | None:
    """For the compare queue: gold pairs this claim may serve, or None when it draws no gold."""
    if not gold_draw(project=project):
        return None
    tasks = _unanswered(GoldTask.objects.filter(project=project, kind=GoldKind.COMPARE, active=True), user)
    tasks = tasks.exclude(pair__response_a__author=user).exclude(pair__response_b__author=user)
    return list(tasks.filter(pair__closed_at__isnull=True).values_list("pair_id", flat=True)[:50])


# --- answers ----------------------------------------------------------------------------------------------


def gold_answer_item(*, item: Item, user: AbstractBaseUser, stage: str, answer: dict) -> GoldAttempt:
    """Score an answer to a gold item (the work queue's "answer" hook): {"text"} for an annotation,
    {"decision", "text"?} for a review. Call in the transaction that holds the item's lock."""
    task = GoldTask.objects.select_related("project").get(item=item)
    if task.kind == GoldKind.ANNOTATE:
        threshold = (
            task.min_similarity if task.min_similarity is not None else task.project.gold_min_similarity
        )
        correct, score = gold_math.annotation_score(
            answer.get("text", ""), task.expected_text, min_similarity=threshold
        )
    else:
        correct, score = gold_math.decision_correct(answer.get("decision", ""), task.expected_decision), None
    return gold_attempt_record(task=task, user=user, stage=stage, answer=answer, correct=correct, score=score)


def gold_answer_rating(
    *, response: Response, user: AbstractBaseUser, scores: dict, weighted: float
) -> GoldAttempt:
    task = GoldTask.objects.select_related("project").get(response=response)
    correct = gold_math.rating_correct(
        scores, weighted, expected_scores=task.expected_scores, expected_weighted=task.expected_weighted
    )
    return gold_attempt_record(
        task=task,
        user=user,
        stage="rate",
        answer={"scores": scores, "weighted_score": weighted},
        correct=correct,
        already=("You have already rated this response.", "already_rated"),
    )


def gold_answer_judgement(*, pair: Pair, user: AbstractBaseUser, choice: str, answer: dict) -> GoldAttempt:
    """`choice` in the pair's stored order (a | b | tie)."""
    task = GoldTask.objects.select_related("project").get(pair=pair)
    return gold_attempt_record(
        task=task,
        user=user,
        stage="compare",
        answer={**answer, "choice": choice},
        correct=choice == task.expected_choice,
        already=("You have already judged this pair.", "already_judged"),
    )


def gold_attempt_record(
    *,
    task: GoldTask,
    user: AbstractBaseUser,
    stage: str,
    answer: dict,
    correct: bool,
    score: float | None = None,
    already: tuple[str, str] = ("You have already answered this task.", "already_answered"),
) -> GoldAttempt:
    """Keep one person's scored answer (the error a second one gets is the queue's own)."""
    try:
        with transaction.atomic():
            attempt = GoldAttempt.objects.create(
                project=task.project,
                gold_task=task,
                user=user,
                stage=stage,
                answer=answer,
                correct=correct,
                score=score,
            )
    except IntegrityError:
        raise ApplicationError(already[0], code=already[1]) from None
    gold_standing_update(project=task.project, user=user)
    return attempt


# --- standings -----------------------------------------------------------------------------------------


def gold_standing_update(*, project: Project, user: AbstractBaseUser) -> GoldStanding:
    """Recompute the person's rolling gold accuracy and apply the project's action when it is under the
    threshold: warned (a notice on their next page), paused (until an admin lifts it) or extra review.
    A warning or an extra review ends by itself once the accuracy is back; a pause does not."""
    with transaction.atomic():
        standing, _ = GoldStanding.objects.get_or_create(project=project, user=user)
        standing = GoldStanding.objects.select_for_update().get(pk=standing.pk)
        attempts = GoldAttempt.objects.filter(project=project, user=user)
        if standing.counted_since is not None:
            attempts = attempts.filter(created_at__gt=standing.counted_since)
        outcomes = list(attempts.order_by("-pk").values_list("correct", flat=True)[: project.gold_window])
        accuracy, counted = gold_math.rolling_accuracy(outcomes, window=project.gold_window)
        standing.accuracy, standing.counted = accuracy, counted
        before = standing.state
        low = accuracy is not None and accuracy < project.gold_min_accuracy
        if before != GoldStandingState.PAUSED:
            if low:
                standing.state = ACTION_STATE[project.gold_action]
            elif accuracy is not None:
                standing.state = GoldStandingState.OK
        if standing.state != before:
            standing.since = timezone.now()
            standing.notice_pending = standing.state != GoldStandingState.OK
            standing.reason = (
                f"your accuracy on check tasks is {accuracy:.0%} over your last {counted}, "
                f"under the project's {project.gold_min_accuracy:.0%}."
                if low
                else ""
            )
            audit_record(
                actor=None,
                action="gold.standing",
                target=standing,
                project=project,
                from_state=before,
                to_state=standing.state,
                data={"user": user.pk, "accuracy": accuracy, "counted": counted},
            )
        standing.save()
        return standing


def gold_standing_lift(
    *, project: Project, actor: AbstractBaseUser, user_id: int, comment: str = ""
) -> GoldStanding:
    """A project admin lifts a pause, a warning or an extra review: the person is in good standing and
    their rolling accuracy starts afresh from now. Audited."""
    check_project_admin(user=actor, project=project)
    with transaction.atomic():
        standing = GoldStanding.objects.select_for_update().filter(project=project, user_id=user_id).first()
        if standing is None or standing.state == GoldStandingState.OK:
            raise Conflict(
                "This person is in good standing; there is nothing to lift.", code="nothing_to_lift"
            )
        before = standing.state
        now = timezone.now()
        standing.state = GoldStandingState.OK
        standing.counted_since, standing.lifted_at, standing.lifted_by = now, now, actor
        standing.accuracy, standing.counted, standing.notice_pending = None, 0, False
        standing.since = now
        reason, standing.reason = standing.reason, ""
        standing.save()
        audit_record(
            actor=actor,
            action="gold.lift",
            target=standing,
            project=project,
            from_state=before,
            to_state=standing.state,
            data={"user": user_id, "reason": reason, "comment": comment.strip()},
        )
        return standing


def gold_under_extra_review(*, project: Project, user: AbstractBaseUser | None) -> bool:
    """Whether the person's work goes to an extra review (the work queue's "extra_review" hook)."""
    if user is None or not project.gold_rate:
        return False
    return GoldStanding.objects.filter(
        project=project, user=user, state=GoldStandingState.EXTRA_REVIEW
    ).exists()


def gold_notices(request) -> None:
    """The page notices hook: a person who was warned, paused or sent to extra review hears it once, on
    their next page."""
    from django.contrib import messages

    pending = list(
        GoldStanding.objects.filter(user=request.user, notice_pending=True).select_related("project")
    )
    for standing in pending:
        text = {
            GoldStandingState.WARNED: "Please take more care in {project}: {reason}",
            GoldStandingState.PAUSED: "Your work in {project} is paused: {reason} An admin can lift it.",
            GoldStandingState.EXTRA_REVIEW: "Your work in {project} goes to an extra review: {reason}",
        }.get(standing.state)
        if text:
            messages.warning(request, text.format(project=standing.project.name, reason=standing.reason))
    if pending:
        GoldStanding.objects.filter(pk__in=[s.pk for s in pending]).update(notice_pending=False)
