"""Writes of judging: a rater's verdict on a pair, and a rater's order of a rank set.

A rater answers in the order they were shown ("A" is the response shown first); the verdict is stored in
the pair's own order with the order seen beside it. Both writes lock the task's row, so the overlap
check and the insert see every concurrent judgement of it.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.permissions import check_project_role
from annotation.selectors import project_visible_to
from annotation.services import audit_record
from core.errors import ApplicationError, Conflict, NotFound
from review.math.preference import implied_choices
from review.models import Choice, Judgement, Pair, PairAssignment, RankAssignment, Ranking, RankSet, Strength
from review.preference.queue import pair_overlap
from review.rating.services import RATER_ROLES

SHOWN_CHOICES = ("A", "B", "tie")  # as the rater saw the pair: A first, B second


def _check_rater(*, rater, project, authors: Sequence[int | None]) -> None:
    check_project_role(user=rater, project=project, roles=RATER_ROLES)
    if rater.pk in authors:
        raise ApplicationError("You cannot judge a response you wrote.", code="own_response")


def _check_overlap(*, overlap: int, held_by_me: bool, judged: int, leased_to_others: int) -> None:
    if not held_by_me and judged + leased_to_others >= overlap:
        raise Conflict(
            f"This task already has its {overlap} judgements (or raters holding it).",
            code="enough_judgements",
        )


def judgement_submit(
    *, pair_id: int, rater: AbstractBaseUser, choice: str, strength: str = "", reason: str = ""
) -> Judgement:
    """Record `rater`'s verdict on a pair: `choice` "A", "B" (the response shown first, second) or "tie",
    `strength` "", "slightly" or "clearly" (not for a tie), an optional `reason`."""
    pair = Pair.objects.select_related("project", "response_a", "response_b").filter(pk=pair_id).first()
    if pair is None or not project_visible_to(user=rater, project_id=pair.project_id):
        raise NotFound("Pair not found.")
    project = pair.project
    _check_rater(rater=rater, project=project, authors=[pair.response_a.author_id, pair.response_b.author_id])
    if choice not in SHOWN_CHOICES:
        raise ApplicationError(f"choice: {choice!r} is not one of A, B, tie", details={"choice": [choice]})
    if strength not in Strength.values:
        raise ApplicationError(f"strength: {strength!r} is not one of slightly, clearly")
    if strength and choice == "tie":
        raise ApplicationError("strength: a tie has no strength; leave it out", code="tie_strength")
    if pair.rank_set_id is not None:
        raise ApplicationError(
            "This pair belongs to a rank set; it is judged by ranking the set.", code="ranked_pair"
        )
    if pair.closed_at or pair.response_a.closed_at or pair.response_b.closed_at:
        raise Conflict("This pair takes no more judgements: its round has ended.", code="pair_closed")
    now = timezone.now()
    if hasattr(pair, "gold_task"):
        return _gold_judgement(
            pair=pair, rater=rater, choice=choice, strength=strength, reason=reason, now=now
        )
    with transaction.atomic():
        Pair.objects.select_for_update().filter(pk=pair.pk).first()
        if Judgement.objects.filter(pair=pair, rater=rater).exists():
            raise ApplicationError("You have already judged this pair.", code="already_judged")
        mine = PairAssignment.objects.filter(pair=pair, rater=rater, expires_at__gt=now).first()
        _check_overlap(
            overlap=pair_overlap(project=project, pair=pair),
            held_by_me=mine is not None,
            judged=pair.judgements.count(),
            leased_to_others=pair.assignments.filter(expires_at__gt=now).exclude(rater=rater).count(),
        )
        # Without a lease the rater was shown the stored order (an API client that read the pair).
        swapped = mine.swapped if mine is not None else False
        stored = {"A": "b" if swapped else "a", "B": "a" if swapped else "b", "tie": Choice.TIE}[choice]
        try:
            with transaction.atomic():
                judgement = Judgement.objects.create(
                    project=project,
                    pair=pair,
                    rater=rater,
                    choice=stored,
                    strength=strength,
                    reason=reason,
                    swapped=swapped,
                )
        except IntegrityError:
            raise ApplicationError("You have already judged this pair.", code="already_judged") from None
        PairAssignment.objects.filter(pair=pair, rater=rater).delete()
        audit_record(
            actor=rater,
            action="judgement.submitted",
            target=pair,
            project=project,
            to_state=stored,
            data={"judgement": judgement.pk, "strength": strength, "swapped": swapped},
        )
    return judgement


def _gold_judgement(*, pair: Pair, rater, choice: str, strength: str, reason: str, now) -> Judgement:
    """A verdict on a gold pair: kept as the rater's gold attempt, never as a judgement, so it counts in
    no figure or export; the answer is the judgement as it would have been (its id the attempt's)."""
    from review.gold.services import gold_answer_judgement

    with transaction.atomic():
        Pair.objects.select_for_update().filter(pk=pair.pk).first()
        mine = PairAssignment.objects.filter(pair=pair, rater=rater, expires_at__gt=now).first()
        swapped = mine.swapped if mine is not None else False
        stored = {"A": "b" if swapped else "a", "B": "a" if swapped else "b", "tie": Choice.TIE}[choice]
        attempt = gold_answer_judgement(
            pair=pair,
            user=rater,
            choice=stored,
            answer={"strength": strength, "reason": reason, "swapped": swapped},
        )
        PairAssignment.objects.filter(pair=pair, rater=rater).delete()
    return Judgement(
        pk=attempt.pk,
        project=pair.project,
        pair=pair,
        rater=rater,
        choice=stored,
        strength=strength,
        reason=reason,
        swapped=swapped,
        created_at=attempt.created_at,
    )


def _order_check(order, members: set[int]) -> list[int]:
    if not isinstance(order, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in order):
        raise ApplicationError("order: a list of the set's response ids, best first")
    problems = []
    if len(set(order)) != len(order):
        problems.append("a response is listed twice")
    unknown = sorted(set(order) - members)
    if unknown:
        problems.append(f"{', '.join(map(str, unknown))} not in this set")
    missing = sorted(members - set(order))
    if missing:
        problems.append(f"{', '.join(map(str, missing))} missing")
    if problems:
        raise ApplicationError(
            f"order: {'; '.join(problems)}", code="invalid_order", details={"order": problems}
        )
    return order


def ranking_submit(*, rank_set_id: int, rater: AbstractBaseUser, order: list, reason: str = "") -> Ranking:
    """Record `rater`'s order of a rank set (response ids, best first) and the judgement it implies on
    each pair of the set (the better placed response wins; a ranking has no ties)."""
    rank_set = RankSet.objects.select_related("project").filter(pk=rank_set_id).first()
    if rank_set is None or not project_visible_to(user=rater, project_id=rank_set.project_id):
        raise NotFound("Rank set not found.")
    project = rank_set.project
    members = dict(rank_set.responses.values_list("pk", "author_id"))
    _check_rater(rater=rater, project=project, authors=list(members.values()))
    order = _order_check(order, set(members))
    if rank_set.closed_at or rank_set.responses.filter(closed_at__isnull=False).exists():
        raise Conflict("This rank set takes no more rankings: its round has ended.", code="rank_set_closed")
    now = timezone.now()
    with transaction.atomic():
        RankSet.objects.select_for_update().filter(pk=rank_set.pk).first()
        if Ranking.objects.filter(rank_set=rank_set, rater=rater).exists():
            raise ApplicationError("You have already ranked this set.", code="already_ranked")
        mine = RankAssignment.objects.filter(rank_set=rank_set, rater=rater, expires_at__gt=now).first()
        _check_overlap(
            overlap=project.ratings_per_response,
            held_by_me=mine is not None,
            judged=rank_set.rankings.count(),
            leased_to_others=rank_set.assignments.filter(expires_at__gt=now).exclude(rater=rater).count(),
        )
        shown = mine.shown if mine is not None else sorted(members)
        try:
            with transaction.atomic():
                ranking = Ranking.objects.create(
                    project=project, rank_set=rank_set, rater=rater, order=order, shown=shown, reason=reason
                )
        except IntegrityError:
            raise ApplicationError("You have already ranked this set.", code="already_ranked") from None
        pairs = list(rank_set.pairs.order_by("pk").values_list("pk", "response_a_id", "response_b_id"))
        choices = implied_choices(order, [(a, b) for _pk, a, b in pairs])
        seen_at = {response: position for position, response in enumerate(shown)}
        Judgement.objects.bulk_create(
            Judgement(
                project=project,
                pair_id=pk,
                rater=rater,
                choice=choice,
                ranking=ranking,
                reason=reason,
                swapped=seen_at.get(b, 0) < seen_at.get(a, 0),
            )
            for (pk, a, b), choice in zip(pairs, choices, strict=True)
        )
        RankAssignment.objects.filter(rank_set=rank_set, rater=rater).delete()
        audit_record(
            actor=rater,
            action="ranking.submitted",
            target=rank_set,
            project=project,
            data={"ranking": ranking.pk, "order": order},
        )
    return ranking
