"""Reads of model judges: a project's judges and what they judged, and a judge's report against people."""

from collections import defaultdict

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q

from annotation.models import Project
from annotation.permissions import check_project_admin
from review.models import Judgement, Rating, Rubric
from review.rating.services import rubric_current
from training.models import JudgePick, JudgeRating, ModelJudge

from . import report
from .services import unjudged_responses, unpicked_pairs


def judges_of(*, project: Project, actor: AbstractBaseUser) -> list[ModelJudge]:
    check_project_admin(user=actor, project=project)
    return list(
        ModelJudge.objects.filter(project=project)
        .select_related("model_version")
        .annotate(
            n_judged=Count("ratings", filter=Q(ratings__error=""), distinct=True),
            n_failed=Count("ratings", filter=~Q(ratings__error=""), distinct=True),
        )
        .order_by("pk")
    )


def judge_data(judge: ModelJudge) -> dict:
    version = judge.model_version
    return {
        "id": judge.pk,
        "project": judge.project_id,
        "model_version": version.pk,
        "model_version_name": version.name,
        "backend": version.backend,
        "prompt_template": judge.prompt_template,
        "enabled": judge.enabled,
        "judge_pairs": judge.judge_pairs,
        "prescore": judge.prescore,
        "prescore_min_confidence": judge.prescore_min_confidence,
        "prescore_min_score": judge.prescore_min_score,
        "created_at": judge.created_at,
    }


def judge_rating_data(rating: JudgeRating) -> dict:
    return {
        "response": rating.response_id,
        "rubric_version": rating.rubric.version if rating.rubric else None,
        "scores": rating.scores,
        "weighted_score": rating.weighted_score,
        "normalised_score": rating.normalised_score,
        "confidence": rating.confidence,
        "details": rating.details,
        "error": rating.error,
        "created_at": rating.created_at,
    }


def judge_ratings_of(*, judge: ModelJudge):
    return JudgeRating.objects.filter(judge=judge).select_related("rubric").order_by("response_id")


def _scales(rubric_ids) -> dict[int, dict[str, tuple]]:
    """{rubric id: {dimension key: (scale_min, scale_max, weight)}}."""
    out: dict[int, dict[str, tuple]] = {}
    for rubric in Rubric.objects.filter(pk__in=set(rubric_ids)).prefetch_related("dimensions"):
        out[rubric.pk] = {d.key: (d.scale_min, d.scale_max, d.weight) for d in rubric.dimensions.all()}
    return out


def judge_report(*, judge: ModelJudge, actor: AbstractBaseUser) -> dict:
    """The judge as one more rater (report.py): per dimension of the current rubric and for the
    weighted score, agreement with the human consensus (alpha, kappa), bias and n; judgements made,
    failed (with the commonest reasons) and waiting; and, for picks, agreement with the human majority.

    A dimension pools scores (the judge's and people's) from every rubric version whose dimension of
    the same key has the same scale, as the agreement report does; the weighted score only those on a
    version with the current one's dimensions, weights and scales."""
    check_project_admin(user=actor, project=judge.project)
    rubric = rubric_current(project=judge.project)
    dimensions = sorted(rubric.dimensions.all(), key=lambda d: (d.position, d.pk))
    current = {d.key: (d.scale_min, d.scale_max, d.weight) for d in dimensions}
    judged = list(JudgeRating.objects.filter(judge=judge, error="").values_list(
        "response_id", "rubric_id", "scores", "weighted_score"
    ))  # fmt: skip
    human = list(
        Rating.objects.filter(response_id__in=[r[0] for r in judged]).values_list(
            "response_id", "rubric_id", "scores", "weighted_score"
        )
    )
    scales = _scales({r[1] for r in judged} | {r[1] for r in human})

    def same_scale(rubric_id, key) -> bool:
        found = scales.get(rubric_id, {}).get(key)
        return found is not None and found[:2] == current[key][:2]

    rows = []
    for d in dimensions:
        mine = {r: s[d.key] for r, rub, s, _w in judged if d.key in s and same_scale(rub, d.key)}
        people = defaultdict(list)
        for r, rub, s, _w in human:
            if d.key in s and same_scale(rub, d.key):
                people[r].append(float(s[d.key]))
        figures = report.rater_against_consensus(mine, people, scale_min=d.scale_min, scale_max=d.scale_max)
        rows.append({"key": d.key, "label": d.label, "scale": [d.scale_min, d.scale_max], **figures})

    same_rubric = {rid for rid, dims in scales.items() if dims == current}
    mine = {r: w for r, rub, _s, w in judged if rub in same_rubric}
    people = defaultdict(list)
    for r, rub, _s, w in human:
        if rub in same_rubric:
            people[r].append(float(w))
    lows, highs = {v[0] for v in current.values()}, {v[1] for v in current.values()}
    weighted = {"key": "weighted", "label": "Weighted score", "scale": None}
    if len(lows) == 1 and len(highs) == 1:
        low, high = lows.pop(), highs.pop()
        weighted |= {"scale": [low, high]}
        weighted |= report.rater_against_consensus(mine, people, scale_min=low, scale_max=high)
    else:
        weighted |= report.rater_against_consensus(mine, people, scale_min=0, scale_max=1)
        weighted |= {"kappa": None, "kappa_reason": "the dimensions have different scales"}

    failures = (
        JudgeRating.objects.filter(judge=judge).exclude(error="").values("error").annotate(n=Count("pk"))
    )
    picks = dict(JudgePick.objects.filter(judge=judge, error="").values_list("pair_id", "choice"))
    votes = defaultdict(list)
    for pair_id, choice in Judgement.objects.filter(pair_id__in=list(picks)).values_list("pair_id", "choice"):
        votes[pair_id].append(choice)
    return {
        "judge": judge_data(judge),
        "rubric_version": rubric.version,
        "dimensions": rows,
        "weighted": weighted,
        "judged": len(judged),
        "failed": sum(f["n"] for f in failures),
        "failure_reasons": sorted(
            ({"reason": f["error"], "n": f["n"]} for f in failures), key=lambda f: -f["n"]
        )[:5],
        "waiting": unjudged_responses(judge).count(),
        "picks": {
            **report.picks_against_people(picks, votes),
            "waiting": unpicked_pairs(judge).count(),
            "failed": JudgePick.objects.filter(judge=judge).exclude(error="").count(),
        },
    }
