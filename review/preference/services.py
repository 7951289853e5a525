"""Writes of preference data: pairs and rank sets of responses, from each source, and closing them.

Sources: a pair of responses registered by anyone with the right (`pair_register`, what the training
layer calls for two model versions' outputs), an item's model draft against its approved answer, the
candidates (drafts) of one item as a rank set or as pairs, and imported files (`importing.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from annotation.dataio.conversation import last_user_text, single_turn, turns_edited
from annotation.models import Item, ItemStatus, Project, Role
from annotation.permissions import check_project_role
from annotation.services import audit_record
from core.errors import ApplicationError
from review.models import Pair, PairSource, RankSet, Response, ResponseOrigin

RANK_SET_SIZES = range(2, 6)  # a rank task orders 2–5 candidates


def contestant(response: Response) -> str:
    """Who a response stands for on the leaderboard: its model label, else its origin in brackets."""
    return response.model or f"({response.origin})"


def _check_pair(project: Project, responses: Sequence[Response]) -> None:
    if len({r.pk for r in responses}) != len(responses):
        raise ApplicationError("responses: a response cannot be compared with itself", code="same_response")
    for response in responses:
        if response.project_id != project.pk:
            raise ApplicationError(f"responses: response {response.pk} is not in this project")
    first = responses[0]
    for other in responses[1:]:
        if (other.system, other.messages) != (first.system, first.messages):
            raise ApplicationError(
                f"responses: response {other.pk} answers another conversation than response {first.pk};"
                " a pair compares two answers to the same one",
                code="different_conversations",
            )


def _pair_row(
    project,
    a: Response,
    b: Response,
    *,
    source,
    item=None,
    metadata=None,
    prior="",
    actor=None,
    rank_set=None,
) -> Pair:
    """An unsaved pair with `a` and `b` in stored order (lower id first); `prior` follows the swap."""
    if a.pk > b.pk:
        a, b = b, a
        prior = {"a": "b", "b": "a"}.get(prior, prior)
    if metadata is None:
        metadata = dict(item.metadata or {}) if item is not None else {}
    return Pair(
        project=project,
        response_a=a,
        response_b=b,
        model_a=contestant(a),
        model_b=contestant(b),
        source=source,
        item=item,
        rank_set=rank_set,
        metadata=metadata,
        prior=prior,
        created_by=actor,
    )


def pair_register(
    *,
    project: Project,
    response_a: Response,
    response_b: Response,
    source: str = PairSource.MANUAL,
    item: Item | None = None,
    metadata: dict | None = None,
    actor: AbstractBaseUser | None = None,
) -> Pair:
    """Make two responses to the same conversation a pair for the `compare` queue; the pair of the same
    two responses if there already is one. With an actor, only project admins may; without one it is
    the system (the training layer registering two model versions' outputs, source `model_versions`).

    The pair takes the item's metadata (per-category leaderboards) unless `metadata` is given."""
    if actor is not None:
        check_project_role(user=actor, project=project, roles={Role.ADMIN})
    if source not in PairSource.values:
        raise ApplicationError(f"source: {source!r} is not one of {', '.join(PairSource.values)}")
    _check_pair(project, [response_a, response_b])
    row = _pair_row(project, response_a, response_b, source=source, item=item, metadata=metadata, actor=actor)
    with transaction.atomic():
        pair, created = Pair.objects.get_or_create(
            response_a=row.response_a,
            response_b=row.response_b,
            rank_set=None,
            defaults={
                f: getattr(row, f)
                for f in (
                    "project",
                    "model_a",
                    "model_b",
                    "source",
                    "item",
                    "metadata",
                    "prior",
                    "created_by",
                )
            },
        )
        if created:
            audit_record(actor=actor, action="pair.created", target=pair, project=project, to_state=source)
    return pair


def rank_set_create(
    *,
    project: Project,
    responses: Sequence[Response],
    source: str = PairSource.MANUAL,
    item: Item | None = None,
    metadata: dict | None = None,
    actor: AbstractBaseUser | None = None,
) -> RankSet:
    """A rank task of 2–5 responses to one conversation, with one pair per two of them (judged by the
    rankings, not the compare queue). Admins, or the system without an actor."""
    if actor is not None:
        check_project_role(user=actor, project=project, roles={Role.ADMIN})
    responses = list(responses)
    if len(responses) not in RANK_SET_SIZES:
        raise ApplicationError(f"responses: a rank set holds 2 to 5 responses, not {len(responses)}")
    _check_pair(project, responses)
    metadata = dict(item.metadata or {}) if metadata is None and item is not None else (metadata or {})
    with transaction.atomic():
        rank_set = _rank_set_write(
            project, responses, source=source, item=item, metadata=metadata, actor=actor
        )
        audit_record(
            actor=actor,
            action="rank_set.created",
            target=rank_set,
            project=project,
            to_state=source,
            data={"responses": [r.pk for r in responses]},
        )
    return rank_set


def _rank_set_write(project, responses, *, source, item, metadata, actor) -> RankSet:
    rank_set = RankSet.objects.create(
        project=project, source=source, item=item, metadata=metadata, created_by=actor
    )
    rank_set.responses.add(*responses)
    Pair.objects.bulk_create(
        _pair_row(project, a, b, source=source, item=item, metadata=metadata, actor=actor, rank_set=rank_set)
        for a, b in combinations(responses, 2)
    )
    return rank_set


def _item_conversation(item: Item, turn_edits) -> tuple[str, list]:
    return item.system, turns_edited(item.messages or single_turn(item.input), turn_edits)


def _response(
    project, item: Item, conversation, *, text, origin, model="", model_version=None, author=None, actor=None
) -> Response:
    system, messages = conversation
    return Response(
        project=project,
        input=last_user_text(messages) or item.input,
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


def pairs_from_drafts_vs_answers(
    *, project: Project, actor: AbstractBaseUser, item_ids: Iterable[int] | None = None
) -> dict:
    """One pair per approved item: the model draft its answer started from against the approved answer
    (origin human, its author the answer's author, who therefore never judges it). Items whose answer
    is the draft unchanged make no pair; an item that already has such a pair gets no second one."""
    check_project_role(user=actor, project=project, roles={Role.ADMIN})
    items = Item.objects.filter(
        project=project, status=ItemStatus.APPROVED, current_revision__draft__isnull=False, is_gold=False
    )
    if item_ids is not None:
        items = items.filter(pk__in=list(item_ids))
    items = items.exclude(pairs__source=PairSource.DRAFT_VS_ANSWER).select_related(
        "current_revision__draft__model_version", "current_revision"
    )
    made, unchanged = [], 0
    for item in items.order_by("pk").iterator(chunk_size=500):
        revision = item.current_revision
        draft = revision.draft
        if draft.text.strip() == revision.text.strip():
            unchanged += 1
            continue
        conversation = _item_conversation(item, revision.turn_edits)
        version = draft.model_version
        made.append(
            (
                item,
                [
                    _response(
                        project,
                        item,
                        conversation,
                        text=draft.text,
                        origin=ResponseOrigin.DRAFT,
                        model=version.name if version else "",
                        model_version=version,
                        actor=actor,
                    ),
                    _response(
                        project,
                        item,
                        conversation,
                        text=revision.text,
                        origin=ResponseOrigin.HUMAN,
                        author=revision.author,
                        actor=actor,
                    ),
                ],
            )
        )
    with transaction.atomic():
        Response.objects.bulk_create([r for _item, pair in made for r in pair])
        Pair.objects.bulk_create(
            _pair_row(project, *pair, source=PairSource.DRAFT_VS_ANSWER, item=item, actor=actor)
            for item, pair in made
        )
        audit_record(
            actor=actor,
            action="pairs.created",
            target=project,
            project=project,
            to_state=PairSource.DRAFT_VS_ANSWER,
            data={"pairs": len(made), "unchanged": unchanged},
        )
    return {"pairs_created": len(made), "rank_sets_created": 0, "items_skipped": unchanged}


def candidates_from_items(
    *, project: Project, actor: AbstractBaseUser, item_ids: Iterable[int] | None = None, as_rank: bool = True
) -> dict:
    """The candidates (drafts) of each item, up to 5 distinct texts in the model's order, as a rank set
    (`as_rank`) or as one pair per two of them. Items with fewer than 2 distinct drafts, and items that
    already have candidates from this source, are skipped."""
    check_project_role(user=actor, project=project, roles={Role.ADMIN})
    items = (
        Item.objects.filter(project=project, is_gold=False)
        .annotate(n_drafts=Count("drafts"))
        .filter(n_drafts__gte=2)
    )
    if item_ids is not None:
        items = items.filter(pk__in=list(item_ids))
    items = items.exclude(
        Q(pairs__source=PairSource.CANDIDATES) | Q(rank_sets__source=PairSource.CANDIDATES)
    ).select_related("current_revision")
    made: list[tuple[Item, list[Response]]] = []
    skipped = 0
    for item in items.order_by("pk").iterator(chunk_size=500):
        texts: dict[str, object] = {}
        for draft in item.drafts.select_related("model_version").order_by("rank", "pk"):
            if draft.text.strip() and draft.text.strip() not in texts and len(texts) < max(RANK_SET_SIZES):
                texts[draft.text.strip()] = draft
        if len(texts) < 2:
            skipped += 1
            continue
        revision = item.current_revision
        conversation = _item_conversation(item, revision.turn_edits if revision else None)
        made.append(
            (
                item,
                [
                    _response(
                        project,
                        item,
                        conversation,
                        text=d.text,
                        origin=ResponseOrigin.DRAFT,
                        model=d.model_version.name if d.model_version else "",
                        model_version=d.model_version,
                        actor=actor,
                    )
                    for d in texts.values()
                ],
            )
        )
    with transaction.atomic():
        Response.objects.bulk_create([r for _item, responses in made for r in responses])
        for item, responses in made:
            if as_rank:
                _rank_set_write(
                    project,
                    responses,
                    source=PairSource.CANDIDATES,
                    item=item,
                    metadata=dict(item.metadata or {}),
                    actor=actor,
                )
            else:
                Pair.objects.bulk_create(
                    _pair_row(project, a, b, source=PairSource.CANDIDATES, item=item, actor=actor)
                    for a, b in combinations(responses, 2)
                )
        audit_record(
            actor=actor,
            action="rank_sets.created" if as_rank else "pairs.created",
            target=project,
            project=project,
            to_state=PairSource.CANDIDATES,
            data={"items": len(made), "skipped": skipped},
        )
    return {
        "pairs_created": 0 if as_rank else sum(len(r) * (len(r) - 1) // 2 for _i, r in made),
        "rank_sets_created": len(made) if as_rank else 0,
        "items_skipped": skipped,
    }


def preference_close(*, pair_ids: Iterable[int] = (), rank_set_ids: Iterable[int] = ()) -> int:
    """Take pairs and rank sets out of their queues (a pairwise evaluation round has ended); judgements
    already given stay, later ones get 409. Pairs whose responses are closed are closed too."""
    now = timezone.now()
    closed = Pair.objects.filter(pk__in=list(pair_ids), closed_at__isnull=True).update(closed_at=now)
    closed += RankSet.objects.filter(pk__in=list(rank_set_ids), closed_at__isnull=True).update(closed_at=now)
    return closed
