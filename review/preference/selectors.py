"""Reads of preference data: the leaderboard, agreement on judgements, the pairs they decide, task views.

Every figure counts judgements (a ranking of n responses counts as its n(n-1)/2 pairwise judgements).
The leaderboard is grouped by the database (one pass over the judgements, joined to their pairs, which
carry both contestants' labels) and fitted in Python on at most models² counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Min, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform

from annotation.models import Project, Role
from annotation.selectors import user_roles
from review.math.preference import (
    Games,
    head_to_head,
    judgement_agreement,
    pair_outcome,
    position_bias,
    standings,
    win_rate,
)
from review.models import Judgement, Pair, PairSource, RankSet, Response
from review.rating.selectors import rubric_current_read

_COUNTS = {
    "wins_a": Count("pk", filter=Q(choice="a")),
    "wins_b": Count("pk", filter=Q(choice="b")),
    "ties": Count("pk", filter=Q(choice="tie")),
}


@dataclass(frozen=True)
class PreferenceFilters:
    """Which judgements a report covers; empty means no restriction."""

    since: datetime | None = None
    until: datetime | None = None
    sources: tuple[str, ...] = ()
    models: tuple[str, ...] = ()  # pairs where either contestant is one of these
    raters: tuple[int, ...] = ()
    pair_ids: tuple[int, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()  # pairs whose metadata holds key = value (as text)

    def as_dict(self) -> dict:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "source": list(self.sources),
            "model": list(self.models),
            "rater": list(self.raters),
            "metadata": dict(self.metadata),
        }


def judgements_for(
    *, project: Project, filters: PreferenceFilters = PreferenceFilters()
) -> QuerySet[Judgement]:
    judgements = Judgement.objects.filter(project=project)
    if filters.since:
        judgements = judgements.filter(created_at__gte=filters.since)
    if filters.until:
        judgements = judgements.filter(created_at__lt=filters.until)
    if filters.sources:
        judgements = judgements.filter(pair__source__in=filters.sources)
    if filters.models:
        judgements = judgements.filter(
            Q(pair__model_a__in=filters.models) | Q(pair__model_b__in=filters.models)
        )
    if filters.raters:
        judgements = judgements.filter(rater_id__in=filters.raters)
    if filters.pair_ids:
        judgements = judgements.filter(pair_id__in=filters.pair_ids)
    for key, value in filters.metadata:
        judgements = judgements.annotate(**{f"_m_{key}": KeyTextTransform(key, "pair__metadata")}).filter(
            **{f"_m_{key}": value}
        )
    return judgements


def _games(rows) -> list[Games]:
    return [Games(r["pair__model_a"], r["pair__model_b"], r["wins_a"], r["wins_b"], r["ties"]) for r in rows]


def leaderboard(
    *, project: Project, filters: PreferenceFilters = PreferenceFilters(), metadata_key: str = ""
) -> dict:
    """Bradley–Terry strengths, win rates with Wilson 95 % intervals and judgement counts per contestant
    (model label, else "(origin)") from every judgement; ties count half a win to each side. With
    `metadata_key`, the same per value of that key of the pairs' metadata (the item's, e.g. category);
    pairs without the key are under `null`."""
    judgements = judgements_for(project=project, filters=filters)
    fields = ["pair__model_a", "pair__model_b"]
    if metadata_key:
        judgements = judgements.annotate(group=KeyTextTransform(metadata_key, "pair__metadata"))
        fields = ["group", *fields]
    rows = list(judgements.order_by().values(*fields).annotate(**_COUNTS))
    games = _games(rows)
    board = standings(games)
    board.update(
        filters=filters.as_dict(), head_to_head=head_to_head(games), metadata_key=metadata_key or None
    )
    if metadata_key:
        groups: dict[str | None, list] = {}
        for row, game in zip(rows, games, strict=True):
            groups.setdefault(row["group"], []).append(game)
        board["groups"] = [
            {"value": value, **standings(group)}
            for value, group in sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
        ]
    return board


def preference_agreement(
    *,
    project: Project,
    filters: PreferenceFilters = PreferenceFilters(),
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """Krippendorff's alpha of the judgements (nominal: A, B, tie) with its bootstrap 95 % interval over
    pairs, raw percent agreement, the choices' counts, and how often the response shown first won."""
    rows = list(
        judgements_for(project=project, filters=filters).values_list(
            "pair_id", "rater_id", "choice", "swapped"
        )
    )
    agreement = judgement_agreement(((p, r, c) for p, r, c, _s in rows), bootstrap=bootstrap, seed=seed)
    counts = {"a": 0, "b": 0, "tie": 0}
    first_won = 0
    for _pair, _rater, choice, swapped in rows:
        counts[choice] += 1
        first_won += (choice == "a" and not swapped) or (choice == "b" and swapped)
    raters = {r for _p, r, _c, _s in rows}
    names = dict(get_user_model().objects.filter(pk__in=raters).values_list("pk", "username"))
    return {
        "project": project.pk,
        "filters": filters.as_dict(),
        "n_judgements": len(rows),
        "n_pairs": len({p for p, _r, _c, _s in rows}),
        "raters": sorted(names.get(r, str(r)) for r in raters),
        "choices": counts,
        "position_bias": position_bias(first_won, counts["a"] + counts["b"]),
        **agreement.as_dict(),
    }


def pairs_head_to_head(*, pair_ids, model_a: str, model_b: str) -> dict:
    """`model_a`'s record against `model_b` on these pairs (ties half), with its win rate's Wilson 95 %
    interval: what a pairwise round of a training run reads (candidate vs deployed)."""
    won = lost = tied = 0
    for row in (
        Judgement.objects.filter(pair_id__in=list(pair_ids))
        .order_by()
        .values("pair__model_a", "pair__model_b")
        .annotate(**_COUNTS)
    ):
        if (row["pair__model_a"], row["pair__model_b"]) == (model_a, model_b):
            won, lost = won + row["wins_a"], lost + row["wins_b"]
        elif (row["pair__model_a"], row["pair__model_b"]) == (model_b, model_a):
            won, lost = won + row["wins_b"], lost + row["wins_a"]
        else:
            continue
        tied += row["ties"]
    return {"model": model_a, "against": model_b, **win_rate(won, lost, tied)}


def pairs_progress(*, pair_ids) -> dict[int, int]:
    """Judgements so far per pair (a round concludes once each has the overlap)."""
    counts = dict.fromkeys(pair_ids, 0)
    counts.update(
        Pair.objects.filter(pk__in=list(pair_ids)).annotate(n=Count("judgements")).values_list("pk", "n")
    )
    return counts


@dataclass(frozen=True)
class DecidedPair:
    pair_id: int
    system: str
    messages: list
    chosen: str
    rejected: str
    votes: dict


def decided_pairs(
    *, project: Project, filters: PreferenceFilters = PreferenceFilters()
) -> tuple[Iterator[DecidedPair], dict]:
    """The pairs the judgements decide, as chosen / rejected, and counts of those left out.

    The votes on the same two responses are pooled (a compare pair and a rank set may share them); a
    side wins with strictly more votes than each of the others (`pair_outcome`); a pair most raters
    called a tie, or on which they split evenly, is left out. Returns the iterator and a dict the
    iterator fills in as it goes: decided, ties, split."""
    rows = (
        judgements_for(project=project, filters=filters)
        .order_by()
        .values("pair__response_a_id", "pair__response_b_id")
        .annotate(first_pair=Min("pair_id"), **_COUNTS)
        .order_by("pair__response_a_id", "pair__response_b_id")
    )
    counts = {"decided": 0, "tie": 0, "split": 0}

    def pairs() -> Iterator[DecidedPair]:
        chunk: list[tuple[int, int, int, str, dict]] = []
        for row in rows.iterator(chunk_size=2000):
            votes = {"a": row["wins_a"], "b": row["wins_b"], "tie": row["ties"]}
            outcome = pair_outcome(votes["a"], votes["b"], votes["tie"])
            if outcome is None:
                top = max(votes.values())
                counts[
                    "tie" if votes["tie"] == top and votes["a"] < top and votes["b"] < top else "split"
                ] += 1
                continue
            counts["decided"] += 1
            chunk.append(
                (row["first_pair"], row["pair__response_a_id"], row["pair__response_b_id"], outcome, votes)
            )
            if len(chunk) == 500:
                yield from _decided(chunk)
                chunk.clear()
        yield from _decided(chunk)

    return pairs(), counts


def _decided(chunk) -> Iterator[DecidedPair]:
    ids = {i for _p, a, b, _o, _v in chunk for i in (a, b)}
    texts = {
        r["pk"]: r for r in Response.objects.filter(pk__in=ids).values("pk", "system", "messages", "text")
    }
    for pair_id, a, b, outcome, votes in chunk:
        winner, loser = (texts[a], texts[b]) if outcome == "a" else (texts[b], texts[a])
        yield DecidedPair(
            pair_id=pair_id,
            system=texts[a]["system"],
            messages=texts[a]["messages"],
            chosen=winner["text"],
            rejected=loser["text"],
            votes=votes,
        )


# --- what a rater may see -----------------------------------------------------------------------------


def preference_blind(*, project: Project, user: AbstractBaseUser) -> bool:
    """Blind as rating is (`Rubric.blind`, on by default): raters see neither origin nor model; admins
    see all."""
    rubric, _dimensions = rubric_current_read(project=project)
    return (rubric.blind if rubric else True) and Role.ADMIN not in user_roles(user=user, project=project)


def response_shown(response: Response, *, blind: bool) -> dict:
    data = {"text": response.text}
    if not blind:
        data.update(origin=response.origin, model=response.model, model_version=response.model_version_id)
    return data


def pair_task(*, pair: Pair, assignment, user: AbstractBaseUser) -> dict:
    """A pair as its rater sees it: the conversation, then "A" and "B" in the lease's order."""
    blind = preference_blind(project=pair.project, user=user)
    first, second = (
        (pair.response_b, pair.response_a)
        if assignment and assignment.swapped
        else (pair.response_a, pair.response_b)
    )
    return {
        "id": pair.pk,
        "project": pair.project_id,
        "input": first.input,
        "system": first.system,
        "messages": first.messages,
        "blind": blind,
        "A": response_shown(first, blind=blind),
        "B": response_shown(second, blind=blind),
        "lease_expires_at": assignment.expires_at if assignment else None,
        **({} if blind else {"source": pair.source}),
    }


def rank_task(*, rank_set: RankSet, assignment, user: AbstractBaseUser) -> dict:
    """A rank set as its rater sees it: the conversation and the candidates in the lease's order (each
    with the response id the order names)."""
    blind = preference_blind(project=rank_set.project, user=user)
    responses = {r.pk: r for r in rank_set.responses.all()}
    shown = assignment.shown if assignment else sorted(responses)
    first = responses[shown[0]]
    return {
        "id": rank_set.pk,
        "project": rank_set.project_id,
        "input": first.input,
        "system": first.system,
        "messages": first.messages,
        "blind": blind,
        "candidates": [{"id": pk, **response_shown(responses[pk], blind=blind)} for pk in shown],
        "lease_expires_at": assignment.expires_at if assignment else None,
        **({} if blind else {"source": rank_set.source}),
    }


def pair_metadata_keys(*, project: Project, sample: int = 5000) -> list[str]:
    """The metadata keys of the project's latest pairs (files and items give every row the same keys)."""
    keys: set[str] = set()
    for value in (
        Pair.objects.filter(project=project).order_by("-pk").values_list("metadata", flat=True)[:sample]
    ):
        if isinstance(value, dict):
            keys.update(value)
    return sorted(keys)


def preference_counts(*, project: Project) -> dict:
    """How much there is to judge and how much is judged, for the pages."""
    return {
        "pairs": Pair.objects.filter(project=project, rank_set__isnull=True).count(),
        "rank_sets": RankSet.objects.filter(project=project).count(),
        "judgements": Judgement.objects.filter(project=project).count(),
        "sources": dict(
            Pair.objects.filter(project=project).order_by().values_list("source").annotate(n=Count("pk"))
        ),
        "source_labels": dict(PairSource.choices),
    }
