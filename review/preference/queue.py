"""The `compare` and `rank` work queues: the next pair or rank set for a rater, held by a short lease.

As the `rate` queue does (review/rating/services.py): a task goes to a rater who has not judged it and
wrote none of its responses, only while its judgements plus live leases are below the project's overlap
(`Project.ratings_per_response`; for a pair judged more than one way, up to
`Project.ratings_max_per_response`: `pair_overlap`); candidates are locked with SKIP LOCKED and the
count re-checked under the lock, so concurrent claimers never exceed the overlap. The order the
responses are shown in is drawn at random per lease and kept on it, so a judgement can be read back in
the pair's stored order.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from annotation.models import Project
from annotation.permissions import check_project_role
from review.math.overlap import choices_disagree, overlap_maximum, overlap_wanted
from review.models import Pair, PairAssignment, RankAssignment, RankSet
from review.rating.services import RATER_ROLES

PREFERENCE_LEASE = timedelta(minutes=30)
_CANDIDATES_PER_TRY = 20

_random = random.SystemRandom()


def open_pairs(*, project: Project) -> QuerySet[Pair]:
    """Pairs the compare queue serves: open, not part of a rank set, neither response closed."""
    return Pair.objects.filter(
        project=project,
        closed_at__isnull=True,
        rank_set__isnull=True,
        response_a__closed_at__isnull=True,
        response_b__closed_at__isnull=True,
    )


def open_rank_sets(*, project: Project) -> QuerySet[RankSet]:
    return RankSet.objects.filter(project=project, closed_at__isnull=True).exclude(
        responses__closed_at__isnull=False
    )


def _claim(
    *,
    candidates: QuerySet,
    model,
    has_room: Callable,
    lease: Callable,
):
    """Lock the first free candidate (SKIP LOCKED), re-count what holds it, and lease it; None if none."""
    seen: set[int] = set()
    for _attempt in range(20):
        ids = list(candidates.exclude(pk__in=seen).values_list("pk", flat=True)[:_CANDIDATES_PER_TRY])
        if not ids:
            return None
        with transaction.atomic():
            task = model.objects.select_for_update(skip_locked=True).filter(pk__in=ids).order_by("pk").first()
            if task is None:
                seen.update(ids)
                continue
            seen.add(task.pk)
            # Re-count under the row lock: the candidate query ran before we held it.
            if not has_room(task):
                continue
            lease(task)
            return task
    return None


def pair_overlap(*, project: Project, pair: Pair) -> int:
    """How many judgements a pair wants: the project's maximum while they are not all the same
    choice, else the base overlap (review.math.overlap)."""
    choices = pair.judgements.values_list("choice", flat=True).distinct()
    return overlap_wanted(
        base=project.ratings_per_response,
        maximum=project.ratings_max_per_response,
        disagree=choices_disagree(choices),
    )


def compare_claim_next(*, project: Project, user: AbstractBaseUser) -> tuple[Pair, PairAssignment] | None:
    """The next pair for `user` to judge and their lease on it (the one they hold, if any)."""
    from review.gold.services import gold_check_not_paused, gold_pair_candidates

    check_project_role(user=user, project=project, roles=RATER_ROLES)
    gold_check_not_paused(project=project, user=user)
    now = timezone.now()
    held = (
        PairAssignment.objects.filter(rater=user, expires_at__gt=now, pair__in=open_pairs(project=project))
        .select_related("pair")
        .order_by("pk")
        .first()
    )
    if held is not None:
        return held.pair, held
    gold = gold_pair_candidates(project=project, user=user)
    pair = Pair.objects.filter(pk__in=gold).order_by("?").first() if gold else None
    if pair is not None:
        # A gold pair is leased as any other, its order drawn the same way; it has no overlap.
        assignment, _ = PairAssignment.objects.update_or_create(
            pair=pair,
            rater=user,
            defaults={"expires_at": now + PREFERENCE_LEASE, "swapped": _random.random() < 0.5},
        )
        return pair, assignment
    live = Q(assignments__expires_at__gt=now)
    base = project.ratings_per_response
    maximum = overlap_maximum(base=base, maximum=project.ratings_max_per_response)
    # Agreement-driven overlap: the base for all, up to the maximum for pairs judged more than one way.
    wanted = Q(held__lt=base)
    if maximum > base:
        wanted |= Q(held__lt=maximum, choices__gt=1)
    candidates = (
        open_pairs(project=project)
        .filter(gold_task__isnull=True)
        .exclude(response_a__author=user)
        .exclude(response_b__author=user)
        .exclude(judgements__rater=user)
        .exclude(assignments__rater=user, assignments__expires_at__gt=now)
        .annotate(
            held=Count("judgements", distinct=True) + Count("assignments", filter=live, distinct=True),
            choices=Count("judgements__choice", distinct=True),
        )
        .filter(wanted)
        .order_by("pk")
    )

    def has_room(pair: Pair) -> bool:
        if pair.judgements.filter(rater=user).exists():
            return False
        others = pair.assignments.filter(expires_at__gt=now).exclude(rater=user).count()
        return pair.judgements.count() + others < pair_overlap(project=project, pair=pair)

    def lease(pair: Pair) -> None:
        PairAssignment.objects.update_or_create(
            pair=pair,
            rater=user,
            defaults={"expires_at": now + PREFERENCE_LEASE, "swapped": _random.random() < 0.5},
        )

    pair = _claim(candidates=candidates, model=Pair, has_room=has_room, lease=lease)
    if pair is None:
        return None
    return pair, PairAssignment.objects.get(pair=pair, rater=user)


def rank_claim_next(*, project: Project, user: AbstractBaseUser) -> tuple[RankSet, RankAssignment] | None:
    """The next rank set for `user` to order and their lease on it (the one they hold, if any)."""
    check_project_role(user=user, project=project, roles=RATER_ROLES)
    now = timezone.now()
    held = (
        RankAssignment.objects.filter(
            rater=user, expires_at__gt=now, rank_set__in=open_rank_sets(project=project)
        )
        .select_related("rank_set")
        .order_by("pk")
        .first()
    )
    if held is not None:
        return held.rank_set, held
    live = Q(assignments__expires_at__gt=now)
    candidates = (
        open_rank_sets(project=project)
        .exclude(responses__author=user)
        .exclude(rankings__rater=user)
        .exclude(assignments__rater=user, assignments__expires_at__gt=now)
        .annotate(held=Count("rankings", distinct=True) + Count("assignments", filter=live, distinct=True))
        .filter(held__lt=project.ratings_per_response)
        .order_by("pk")
    )

    def has_room(rank_set: RankSet) -> bool:
        if rank_set.rankings.filter(rater=user).exists():
            return False
        others = rank_set.assignments.filter(expires_at__gt=now).exclude(rater=user).count()
        return rank_set.rankings.count() + others < project.ratings_per_response

    def lease(rank_set: RankSet) -> None:
        shown = list(rank_set.responses.values_list("pk", flat=True))
        _random.shuffle(shown)
        RankAssignment.objects.update_or_create(
            rank_set=rank_set, rater=user, defaults={"expires_at": now + PREFERENCE_LEASE, "shown": shown}
        )

    rank_set = _claim(candidates=candidates, model=RankSet, has_room=has_room, lease=lease)
    if rank_set is None:
        return None
    return rank_set, RankAssignment.objects.get(rank_set=rank_set, rater=user)
