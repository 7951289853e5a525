"""Writes of rubric scoring: rubric versions, responses to score, ratings, and the `rate` work queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from annotation.dataio.conversation import TurnError, conversation_split, last_user_text, single_turn
from annotation.models import Item, Project, Role
from annotation.permissions import check_project_role
from annotation.services import audit_record
from core.errors import ApplicationError, Conflict, NotFound
from core.hooks import task_send_on_commit
from review.adjudication.opening import adjudication_open_for_ratings
from review.math.overlap import overlap_maximum, overlap_wanted, ratings_disagree, scores_spread
from review.math.scoring import (
    DEFAULT_RUBRIC,
    Dimension,
    rating_normalised_score,
    rating_weighted_score,
    rubric_validate,
    scores_validate,
)
from review.models import Rating, RatingAssignment, Response, ResponseOrigin, Rubric, RubricDimension

RATER_ROLES = frozenset({Role.EXPERT, Role.DOMAIN_REVIEWER, Role.ADMIN})
RESPONSE_CREATOR_ROLES = frozenset({Role.ADMIN})
# Sent by name when a response is added: a pre-scoring model judge of the project scores it (training).
JUDGES_PRESCORE = "training.judging.dispatch.judges_prescore_request"
# How long a response claimed from the `rate` queue stays reserved for its rater.
RATING_LEASE = timedelta(minutes=30)

DEFAULT_LABELS = {
    "accuracy": ("Accuracy", "准确性", "Is the answer factually and procedurally correct?"),
    "politeness": ("Politeness", "礼貌", "Is the tone courteous and appropriate for a customer?"),
    "usefulness": ("Usefulness", "有用性", "Does the answer solve the asker's problem?"),
}


@dataclass(frozen=True)
class DimensionSpec:
    """A dimension as an admin writes it: the scoring fields plus its labels."""

    key: str
    weight: float
    scale_min: int = 1
    scale_max: int = 5
    level: str = "ordinal"
    label: str = ""
    label_zh: str = ""
    description: str = ""

    def scoring(self) -> Dimension:
        return Dimension(self.key, self.weight, self.scale_min, self.scale_max, self.level)


def default_rubric_specs() -> list[DimensionSpec]:
    specs = []
    for dimension in DEFAULT_RUBRIC:
        label, label_zh, description = DEFAULT_LABELS[dimension.key]
        specs.append(
            DimensionSpec(**dimension.as_dict(), label=label, label_zh=label_zh, description=description)
        )
    return specs


def rubric_dimensions(rubric: Rubric) -> tuple[Dimension, ...]:
    """The scoring view of a stored rubric version (uses the prefetched dimensions when present)."""
    return tuple(
        Dimension(d.key, d.weight, d.scale_min, d.scale_max, d.level)
        for d in sorted(rubric.dimensions.all(), key=lambda d: (d.position, d.pk))
    )


def _dimensions_write(rubric: Rubric, specs: list[DimensionSpec]) -> None:
    RubricDimension.objects.bulk_create(
        RubricDimension(
            rubric=rubric,
            position=position,
            key=spec.key,
            label=spec.label or spec.key.replace("_", " ").capitalize(),
            label_zh=spec.label_zh,
            description=spec.description,
            weight=spec.weight,
            scale_min=spec.scale_min,
            scale_max=spec.scale_max,
            level=spec.level,
        )
        for position, spec in enumerate(specs)
    )


def rubric_current(*, project: Project) -> Rubric:
    """The project's current rubric version, creating the default one (version 1) on first use."""
    rubric = (
        Rubric.objects.filter(project=project).order_by("-version").prefetch_related("dimensions").first()
    )
    if rubric is not None:
        return rubric
    try:
        with transaction.atomic():
            rubric = Rubric.objects.create(project=project, version=1)
            _dimensions_write(rubric, default_rubric_specs())
    except IntegrityError:
        pass  # a concurrent first use created it; read theirs
    return Rubric.objects.filter(project=project).order_by("-version").prefetch_related("dimensions").first()


def rubric_update(
    *, project: Project, actor: AbstractBaseUser, dimensions: list[DimensionSpec], blind: bool | None = None
) -> Rubric:
    """Set the project's rubric. A version nobody has rated on is edited in place; once ratings exist,
    the change becomes a new version and the old ratings keep theirs. Locks the project's rubric rows."""
    check_project_role(user=actor, project=project, roles={Role.ADMIN})
    try:
        rubric_validate([spec.scoring() for spec in dimensions])
    except ValueError as exc:
        raise ApplicationError(f"rubric: {exc}", code="invalid_rubric") from None
    rubric_current(project=project)
    with transaction.atomic():
        current = Rubric.objects.select_for_update().filter(project=project).order_by("-version").first()
        blind = current.blind if blind is None else blind
        if Rating.objects.filter(rubric=current).exists():
            rubric = Rubric.objects.create(
                project=project, version=current.version + 1, blind=blind, created_by=actor
            )
            action = "rubric.version_created"
        else:
            rubric = current
            rubric.blind, rubric.created_by = blind, actor
            rubric.save(update_fields=["blind", "created_by"])
            rubric.dimensions.all().delete()
            action = "rubric.updated"
        _dimensions_write(rubric, dimensions)
        audit_record(
            actor=actor,
            action=action,
            target=rubric,
            project=project,
            to_state=f"v{rubric.version}",
            data={"dimensions": [spec.scoring().as_dict() for spec in dimensions], "blind": blind},
        )
    return Rubric.objects.prefetch_related("dimensions").get(pk=rubric.pk)


def response_create(
    *,
    project: Project,
    actor: AbstractBaseUser,
    text: str,
    origin: str,
    input: str = "",
    system: str = "",
    messages: list | None = None,
    model: str = "",
    model_version=None,
    item: Item | None = None,
    author: AbstractBaseUser | None = None,
) -> Response:
    """Add a response to be scored. A human answer sent by API is taken to be the sender's own unless an
    author is given, so its sender cannot rate it.

    The response answers a conversation: `messages` (the turns before it, ending with the user or tool
    turn it answers) and `system`, or just `input`, a single user turn."""
    check_project_role(user=actor, project=project, roles=RESPONSE_CREATOR_ROLES)
    input, system, messages = _response_conversation(input=input, system=system, messages=messages)
    if origin not in ResponseOrigin.values:
        raise ApplicationError(f"origin: {origin!r} is not one of {', '.join(ResponseOrigin.values)}")
    if model_version is not None:
        if model_version.project_id != project.pk:
            raise ApplicationError("model_version: not a model version of this project")
        model = model or model_version.name
    if item is not None and item.project_id != project.pk:
        raise ApplicationError("item: not an item of this project")
    if author is None and origin == ResponseOrigin.HUMAN:
        author = actor
    with transaction.atomic():
        response = Response.objects.create(
            project=project,
            input=input,
            system=system,
            messages=messages,
            text=text,
            origin=origin,
            model=model,
            model_version=model_version,
            item=item,
            author=author,
            created_by=actor,
        )
        audit_record(
            actor=actor, action="response.created", target=response, project=project, to_state=origin
        )
        task_send_on_commit(JUDGES_PRESCORE, project.pk)
    return response


def _response_conversation(*, input: str, system: str, messages: list | None) -> tuple[str, str, list]:
    """(input, system, messages) of a response: the turns checked as an item's are (an error names the
    turn; a leading system turn becomes `system`), or one user turn of `input`. A conversation that
    ends with an assistant turn is refused rather than cut: the response is that turn."""
    if not messages:
        if not input.strip():
            raise ApplicationError(
                "input: a response answers a question; send input or messages.",
                details={"input": ["This field is required when messages are not given."]},
            )
        return input, system, single_turn(input)
    try:
        split = conversation_split(messages, system=system)
    except TurnError as exc:
        raise ApplicationError(f"messages: {exc}", details={"messages": [str(exc)]}) from None
    if split.reply or split.reply_extra:
        raise ApplicationError(
            "messages: the conversation must end with the user (or tool) turn the response answers; "
            f"turn {len(messages)} is an assistant turn.",
            details={"messages": ["Ends with an assistant turn."]},
        )
    asked = last_user_text(split.messages)
    if input and input != asked:
        raise ApplicationError(
            "input: it differs from the last user turn of messages; send one or the other.",
            details={"input": ["Differs from the last user turn of messages."]},
        )
    return asked, split.system, split.messages


def rating_submit(*, response_id: int, rater: AbstractBaseUser, scores: dict) -> Rating:
    """Record one rater's scores of a response on the current rubric version.

    Locks the response row, so the overlap check and the insert see every concurrent rating of it.
    """
    from annotation.selectors import project_visible_to

    response = Response.objects.select_related("project").filter(pk=response_id).first()
    if response is None or not project_visible_to(user=rater, project_id=response.project_id):
        raise NotFound("Response not found.")
    project = response.project
    check_project_role(user=rater, project=project, roles=RATER_ROLES)
    if response.author_id is not None and response.author_id == rater.pk:
        raise ApplicationError("You cannot rate a response you wrote.", code="own_response")
    if response.closed_at is not None:
        raise Conflict(
            "This response takes no more ratings: the evaluation round it belonged to has ended.",
            code="response_closed",
        )
    rubric = rubric_current(project=project)
    dimensions = rubric_dimensions(rubric)
    problems = scores_validate(dimensions, scores)
    if problems:
        message = "; ".join(f"scores.{key}: {problem}" for key, problem in problems.items())
        raise ApplicationError(message, code="invalid_scores", details={"scores": problems})
    weighted = rating_weighted_score(dimensions, scores)
    now = timezone.now()
    if hasattr(response, "gold_task"):
        return _gold_rating(
            response=response,
            rater=rater,
            rubric=rubric,
            dimensions=dimensions,
            scores=scores,
            weighted=weighted,
            now=now,
        )
    with transaction.atomic():
        locked = Response.objects.select_for_update().filter(pk=response.pk).first()
        if Rating.objects.filter(response=response, rater=rater).exists():
            raise ApplicationError("You have already rated this response.", code="already_rated")
        mine = RatingAssignment.objects.filter(response=response, rater=rater, expires_at__gt=now).exists()
        if not mine:
            held = response.ratings.count() + response.assignments.filter(expires_at__gt=now).count()
            wanted = response_overlap(project=project, spread=locked.rating_spread)
            if held >= wanted:
                raise Conflict(
                    f"This response already has its {wanted} ratings (or raters holding it).",
                    code="enough_ratings",
                )
        try:
            with transaction.atomic():
                rating = Rating.objects.create(
                    project=project,
                    response=response,
                    rater=rater,
                    rubric=rubric,
                    scores={key: scores[key] for key in (d.key for d in dimensions)},
                    weighted_score=weighted,
                )
        except IntegrityError:
            raise ApplicationError("You have already rated this response.", code="already_rated") from None
        RatingAssignment.objects.filter(response=response, rater=rater).delete()
        spread, count = _spread_store(response=response)
        audit_record(
            actor=rater,
            action="rating.submitted",
            target=response,
            project=project,
            data={
                "rating": rating.pk,
                "rubric_version": rubric.version,
                "weighted_score": weighted,
                "spread": spread,
            },
        )
        maximum = overlap_maximum(base=project.ratings_per_response, maximum=project.ratings_max_per_response)
        if (
            project.adjudicate_disagreements
            and count >= maximum
            and ratings_disagree(spread, project.rating_disagreement_threshold)
        ):
            adjudication_open_for_ratings(
                project=project, response=response, ratings=count, spread=spread, actor=rater
            )
    return rating


def _gold_rating(
    *, response: Response, rater, rubric, dimensions, scores: dict, weighted: float, now
) -> Rating:
    """Scores of a gold response: kept as the rater's gold attempt, never as a rating, so they count in
    no figure; the answer is the rating as it would have been (its id the attempt's)."""
    from review.gold.services import gold_answer_rating

    kept = {key: scores[key] for key in (d.key for d in dimensions)}
    with transaction.atomic():
        Response.objects.select_for_update().filter(pk=response.pk).first()
        attempt = gold_answer_rating(response=response, user=rater, scores=kept, weighted=weighted)
        RatingAssignment.objects.filter(response=response, rater=rater).delete()
    return Rating(
        pk=attempt.pk,
        project=response.project,
        response=response,
        rater=rater,
        rubric=rubric,
        scores=kept,
        weighted_score=weighted,
        created_at=attempt.created_at,
    )


def response_overlap(*, project: Project, spread: float | None) -> int:
    """How many ratings a response with this spread wants: the project's maximum while its ratings
    disagree beyond the threshold, else the base overlap (review.math.overlap)."""
    return overlap_wanted(
        base=project.ratings_per_response,
        maximum=project.ratings_max_per_response,
        disagree=ratings_disagree(spread, project.rating_disagreement_threshold),
    )


def _spread_store(*, response: Response) -> tuple[float | None, int]:
    """Recompute how far the response's ratings disagree (each on its own rubric version, rescaled to
    0–1) and store it on the response; returns (spread, number of ratings). Under the response lock."""
    ratings = list(Rating.objects.filter(response=response).only("rubric_id", "scores"))
    dimensions: dict[int, tuple[Dimension, ...]] = {}
    for rubric in Rubric.objects.filter(pk__in={r.rubric_id for r in ratings}).prefetch_related("dimensions"):
        dimensions[rubric.pk] = rubric_dimensions(rubric)
    spread = scores_spread([rating_normalised_score(dimensions[r.rubric_id], r.scores) for r in ratings])
    Response.objects.filter(pk=response.pk).update(rating_spread=spread)
    response.rating_spread = spread
    return spread, len(ratings)


def _claimable(*, project: Project, user: AbstractBaseUser, now, skip: set[int]):
    held = Count("ratings", distinct=True) + Count(
        "assignments", filter=Q(assignments__expires_at__gt=now), distinct=True
    )
    base = project.ratings_per_response
    maximum = overlap_maximum(base=base, maximum=project.ratings_max_per_response)
    # Agreement-driven overlap: the base for all, up to the maximum for those whose ratings disagree.
    wanted = Q(held__lt=base)
    if maximum > base:
        wanted |= Q(held__lt=maximum, rating_spread__gt=project.rating_disagreement_threshold)
    return (
        Response.objects.filter(project=project, closed_at__isnull=True, gold_task__isnull=True)
        .exclude(pk__in=skip)
        .exclude(author=user)
        .exclude(ratings__rater=user)
        .exclude(assignments__rater=user, assignments__expires_at__gt=now)
        .annotate(held=held)
        .filter(wanted)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def rating_claim_next(*, project: Project, user: AbstractBaseUser) -> Response | None:
    """The next response for `user` to rate, held for them by a RatingAssignment lease; None when done.

    A response goes to a rater who has not rated it, did not write it, and only while its ratings plus
    live leases are below the overlap it wants (`response_overlap`: the project's base, or its maximum
    while the ratings disagree). Candidates are locked with SKIP LOCKED and the count
    re-checked under the lock, so concurrent claimers never exceed the overlap.
    """
    from review.gold.services import gold_check_not_paused, gold_response_candidates

    check_project_role(user=user, project=project, roles=RATER_ROLES)
    gold_check_not_paused(project=project, user=user)
    now = timezone.now()
    held = (
        RatingAssignment.objects.filter(
            rater=user, response__project=project, response__closed_at__isnull=True, expires_at__gt=now
        )
        .order_by("pk")
        .select_related("response")
        .first()
    )
    if held is not None:
        return held.response
    gold = gold_response_candidates(project=project, user=user)
    if gold:
        # A gold response is leased as any other; it has no overlap (each person answers it once).
        response = Response.objects.filter(pk__in=gold).order_by("?").first()
        if response is not None:
            RatingAssignment.objects.update_or_create(
                response=response, rater=user, defaults={"expires_at": now + RATING_LEASE}
            )
            return response
    seen: set[int] = set()
    for _attempt in range(20):
        candidates = list(_claimable(project=project, user=user, now=now, skip=seen)[:20])
        if not candidates:
            return None
        with transaction.atomic():
            response = (
                Response.objects.select_for_update(skip_locked=True)
                .filter(pk__in=candidates)
                .order_by("pk")
                .first()
            )
            if response is None:
                seen.update(candidates)
                continue
            seen.add(response.pk)
            # Re-count under the row lock: the candidate query ran before we held it.
            taken = (
                response.ratings.count()
                + response.assignments.filter(expires_at__gt=now).exclude(rater=user).count()
            )
            wanted = response_overlap(project=project, spread=response.rating_spread)
            if taken >= wanted or response.ratings.filter(rater=user).exists():
                continue
            RatingAssignment.objects.update_or_create(
                response=response, rater=user, defaults={"expires_at": now + RATING_LEASE}
            )
            return response
    return None
