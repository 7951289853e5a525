"""Stage 4 of a run: the blind human round (rubric scores, pairwise judgements, or both), and its
conclusion (promote, or wait for the admin).

Deciding a round locks the project first, then the run (the order a deploy uses), so the two never
deadlock.
"""

from __future__ import annotations

import math
import random

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from annotation.dataio.conversation import single_turn
from annotation.models import Item, Project
from annotation.services import audit_record
from core.errors import ApplicationError
from review.math.preference import win_rate

from ..models import (
    HumanEvalMode,
    HumanEvalPair,
    HumanEvalRound,
    RunStatus,
    SnapshotSample,
    TrainingRun,
)
from ..registry import model_version_deploy
from .status import _run_lock, _run_write

BASE_MODEL_LABEL = "base model"
RUBRIC_MODES = (HumanEvalMode.RUBRIC, HumanEvalMode.BOTH)
PAIRWISE_MODES = (HumanEvalMode.PAIRWISE, HumanEvalMode.BOTH)


def _creation_order(rng: random.Random, chosen: list[dict]) -> list[tuple[dict, str]]:
    """The round's 2K responses in the order they are created (so by id): shuffled, so position in the
    rate queue never tells which is which, and with the candidate first in exactly half of the prompts
    (which half is drawn). A Pair stores its lower id first, so its judgements are then split evenly
    between the stored choices "a" and "b" whenever one side wins throughout; nominal alpha over a
    single value is undefined, and a unanimous round would otherwise fail its agreement check by the
    luck of the draw."""
    slots = list(range(2 * len(chosen)))
    rng.shuffle(slots)
    first = [True] * ((len(chosen) + 1) // 2) + [False] * (len(chosen) // 2)
    rng.shuffle(first)
    order: list[tuple[dict, str] | None] = [None] * len(slots)
    for i, sample in enumerate(chosen):
        low, high = sorted(slots[2 * i : 2 * i + 2])
        sides = ("candidate", "baseline") if first[i] else ("baseline", "candidate")
        order[low], order[high] = (sample, sides[0]), (sample, sides[1])
    return order  # type: ignore[return-value]


def _human_eval_open(
    run: TrainingRun, samples: list[dict], rows: dict[int, SnapshotSample]
) -> HumanEvalRound:
    """K eval prompts; the candidate's and the baseline's outputs become blind Responses (`_creation_order`).
    Each response carries the conversation it answers (the frozen sample's system prompt and turns), so
    raters judge it in its context. The project's `human_eval_mode` decides how they are judged: rated
    on the rubric in the `rate` queue, and / or (pairwise, both) as one review Pair per prompt, source
    `model_versions`, in the `compare` queue, where the order shown is drawn per lease and the models'
    names (their `model` labels, which the leaderboard counts too) are hidden in blind projects."""
    from review.models import PairSource, Response, ResponseOrigin
    from review.preference.services import pair_register

    rng = random.Random(run.pk)
    mode = run.project.human_eval_mode
    chosen = rng.sample(samples, min(run.project.human_eval_size, len(samples)))
    round_ = HumanEvalRound.objects.create(run=run, size=len(chosen), mode=mode)
    made: dict[tuple[int, str], Response] = {}
    for sample, side in _creation_order(rng, chosen):
        version = run.candidate if side == "candidate" else run.baseline
        row = rows[sample["item"]]
        made[(sample["item"], side)] = Response.objects.create(
            project=run.project,
            input=sample["input"],
            system=row.system,
            messages=row.messages or single_turn(row.input),
            text=sample[side],
            origin=ResponseOrigin.CANDIDATE if side == "candidate" else ResponseOrigin.DRAFT,
            model=version.name if version else BASE_MODEL_LABEL,
            model_version=version,
            item_id=sample["item"],
        )
    items = Item.objects.in_bulk([s["item"] for s in chosen]) if mode in PAIRWISE_MODES else {}
    pairs = []
    for s in chosen:
        candidate, baseline = made[(s["item"], "candidate")], made[(s["item"], "baseline")]
        pair = None
        if mode in PAIRWISE_MODES:
            pair = pair_register(
                project=run.project,
                response_a=candidate,
                response_b=baseline,
                source=PairSource.MODEL_VERSIONS,
                item=items.get(s["item"]),
            )
        pairs.append(
            HumanEvalPair(
                round=round_,
                item_id=s["item"],
                candidate_response=candidate,
                baseline_response=baseline,
                pair=pair,
            )
        )
    HumanEvalPair.objects.bulk_create(pairs)
    audit_record(
        actor=None,
        action="human_eval.open",
        target=round_,
        project=run.project,
        data={
            "run": run.pk,
            "size": len(chosen),
            "mode": mode,
            "responses": [r.pk for r in made.values()],
            "pairs": [p.pair_id for p in pairs if p.pair_id],
        },
    )
    return round_


def _mean_ci(values: list[float]) -> dict:
    n = len(values)
    mean = sum(values) / n if n else None
    if n < 2:
        return {"mean": mean, "ci_low": None, "ci_high": None, "n": n}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = 1.96 * sd / math.sqrt(n)
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def human_eval_result(
    *, pairs: list[tuple[list[float], list[float]]], ratings: list[tuple], bootstrap: int = 500, seed: int = 0
) -> dict:
    """Per version the mean weighted score (each response averaged over its raters first) with a 95 %
    normal interval, the candidate's win rate over pairs (a tie counts half), and Krippendorff's alpha of
    the weighted scores (interval level) over the round's responses. Plain, for unit tests.

    `pairs`: per prompt (candidate ratings, baseline ratings); `ratings`: (response, rater, score).
    """
    from review.math.agreement import dimension_agreement

    cand = [sum(c) / len(c) for c, _ in pairs]
    base = [sum(b) / len(b) for _, b in pairs]
    wins = sum(1.0 if c > b else 0.5 if c == b else 0.0 for c, b in zip(cand, base, strict=True))
    agreement = dimension_agreement(ratings, "interval", bootstrap=bootstrap, seed=seed)
    return {
        "candidate": _mean_ci(cand),
        "baseline": _mean_ci(base),
        "win_rate": wins / len(pairs) if pairs else None,
        "alpha": agreement.alpha,
        "alpha_ci_low": agreement.alpha_ci_low,
        "alpha_ci_high": agreement.alpha_ci_high,
        "alpha_reason": agreement.reason,
        "n_pairs": len(pairs),
        "n_ratings": len(ratings),
    }


def pairwise_result(*, record: dict, agreement: dict, min_win_rate: float, min_alpha: float) -> dict:
    """The pairwise gate on the candidate's record against the deployed model (`win_rate`: wins, losses,
    ties, the win rate with ties half and its Wilson 95 % interval) and the raters' agreement (nominal
    alpha over A / B / tie). Plain, for unit tests.

    The candidate wins when its win rate reaches `min_win_rate` and the interval's lower bound exceeds
    0.5, i.e. raters prefer it beyond chance; where the project accepts a candidate that loses slightly
    (`min_win_rate` under 0.5), the bound must exceed that minimum instead. The bound guards against a
    round too small, or too close, to tell. Each judgement is a trial, as on the leaderboard and in
    `pairs_head_to_head`, so the figures agree (raters of one prompt are not independent: counting
    prompts would be stricter)."""
    floor = min(0.5, min_win_rate)
    rate, low = record["win_rate"], record["ci_low"]
    reasons = []
    if rate is None:
        reasons.append("the pairs have no judgements")
    else:
        if rate < min_win_rate:
            reasons.append(f"the candidate's win rate, {rate:.2f}, is under the minimum {min_win_rate:.2f}")
        if low <= floor:
            reasons.append(
                f"the lower bound of its 95 % interval, {low:.2f}, does not exceed {floor:.2f}"
                + (" (not preferred beyond chance)" if floor == 0.5 else "")
            )
    alpha = agreement["alpha"]
    agreed = alpha is not None and alpha >= min_alpha
    if not agreed:
        reasons.append(
            "raters agreed too little on the pairs (alpha "
            + (f"{alpha:.2f}" if alpha is not None else f"undefined: {agreement['reason']}")
            + f" < {min_alpha:.2f})"
        )
    won = rate is not None and rate >= min_win_rate and low > floor
    return {
        **{k: record[k] for k in ("wins", "losses", "ties", "n_judgements", "win_rate", "ci_low", "ci_high")},
        "alpha": alpha,
        "alpha_ci_low": agreement["alpha_ci_low"],
        "alpha_ci_high": agreement["alpha_ci_high"],
        "alpha_reason": agreement["reason"],
        "percent_agreement": agreement.get("percent_agreement"),
        "min_win_rate": min_win_rate,
        "lower_bound_floor": floor,
        "min_alpha": min_alpha,
        "won": won,
        "agreed": agreed,
        "passed": won and agreed,
        "reasons": reasons,
    }


def _rubric_conclude(project: Project, run: TrainingRun, pairs: list[HumanEvalPair]) -> dict | None:
    """The rubric part of a round once every response has the overlap of ratings; else None."""
    from review.models import Rating

    response_ids = [p.candidate_response_id for p in pairs] + [p.baseline_response_id for p in pairs]
    counts = dict(
        Rating.objects.filter(response_id__in=response_ids)
        .values("response_id")
        .annotate(n=Count("pk"))
        .values_list("response_id", "n")
    )
    if any(counts.get(r, 0) < project.ratings_per_response for r in response_ids):
        return None
    ratings = list(
        Rating.objects.filter(response_id__in=response_ids).values_list(
            "response_id", "rater_id", "weighted_score"
        )
    )
    by_response: dict[int, list[float]] = {}
    for response_id, _rater, score in ratings:
        by_response.setdefault(response_id, []).append(score)
    result = human_eval_result(
        pairs=[(by_response[p.candidate_response_id], by_response[p.baseline_response_id]) for p in pairs],
        ratings=ratings,
        seed=run.pk,
    )
    alpha = result["alpha"]
    better = result["candidate"]["mean"] >= result["baseline"]["mean"]
    agreed = alpha is not None and alpha >= project.human_eval_min_alpha
    reasons = [] if better else ["the candidate scored lower than the deployed model"]
    if not agreed:
        reasons.append(
            "raters agreed too little (alpha "
            + (f"{alpha:.2f}" if alpha is not None else f"undefined: {result['alpha_reason']}")
            + f" < {project.human_eval_min_alpha:.2f})"
        )
    return result | {
        "min_alpha": project.human_eval_min_alpha,
        "at_least_as_good": better,
        "agreed": agreed,
        "passed": better and agreed,
        "reasons": reasons,
    }


def _pairwise_conclude(project: Project, run: TrainingRun, pairs: list[HumanEvalPair]) -> dict | None:
    """The pairwise part once every pair has the overlap of judgements; else None. The record is read
    by which response is the candidate's, not by model label, so two versions of one name still count."""
    from review.models import Judgement
    from review.preference.selectors import PreferenceFilters, pairs_progress, preference_agreement

    pair_ids = [p.pair_id for p in pairs]
    if None in pair_ids or any(
        n < project.ratings_per_response for n in pairs_progress(pair_ids=pair_ids).values()
    ):
        return None
    candidate_side = {
        p.pair_id: "a" if p.pair.response_a_id == p.candidate_response_id else "b" for p in pairs
    }
    won = lost = tied = 0
    for pair_id, choice in Judgement.objects.filter(pair_id__in=pair_ids).values_list("pair_id", "choice"):
        if choice == "tie":
            tied += 1
        elif choice == candidate_side[pair_id]:
            won += 1
        else:
            lost += 1
    agreement = preference_agreement(
        project=project, filters=PreferenceFilters(pair_ids=tuple(pair_ids)), seed=run.pk
    )
    return {
        **pairwise_result(
            record=win_rate(won, lost, tied),
            agreement=agreement,
            min_win_rate=project.human_eval_min_win_rate,
            min_alpha=project.human_eval_min_alpha,
        ),
        "n_pairs": len(pairs),
        "position_bias": agreement["position_bias"],
    }


def human_eval_conclude(*, run_id: int) -> str | None:
    """When the round has its judgements (rubric: every response the project's overlap of ratings;
    pairwise: every pair the overlap of judgements; both: both): the result, then either automatic
    promotion (every gate of the round's mode passed) or the admin's decision. Returns the run's new
    status, or None when the round is not complete."""
    run = TrainingRun.objects.filter(pk=run_id).only("project_id").first()
    if run is None:
        return None
    with transaction.atomic():
        project = Project.objects.select_for_update(no_key=True).get(pk=run.project_id)
        run = _run_lock(run_id)
        if run.status != RunStatus.HUMAN_EVAL:
            return None
        round_ = run.human_eval
        pairs = list(round_.pairs.select_related("pair"))
        result: dict = {"mode": round_.mode}
        gates = []
        if round_.mode in RUBRIC_MODES:
            rubric = _rubric_conclude(project, run, pairs)
            if rubric is None:
                return None
            result |= rubric  # at the top level, as rubric rounds have always recorded it
            gates.append(rubric)
        if round_.mode in PAIRWISE_MODES:
            pairwise = _pairwise_conclude(project, run, pairs)
            if pairwise is None:
                return None
            result["pairwise"] = pairwise
            gates.append(pairwise)
        passed = all(g["passed"] for g in gates)
        why = [reason for g in gates for reason in g["reasons"]]
        result |= {"passed": passed, "reasons": why, "auto_promote": passed}
        round_.result, round_.concluded_at = result, timezone.now()
        round_.save(update_fields=["result", "concluded_at"])
        audit_record(actor=None, action="human_eval.conclude", target=round_, project=project, data=result)
        if passed:
            try:
                model_version_deploy(version_id=run.candidate_id, actor=None, action="model_version.promote")
                return RunStatus.PROMOTED  # model_version_deploy ended the run through runs_mark_promoted
            except ApplicationError as exc:  # e.g. its server cannot load the adapter: the admin decides
                why.append(f"it could not be deployed: {exc.message}")
        _run_write(run, actor=None, to_status=RunStatus.AWAITING_DECISION, reason="; ".join(why))
        return run.status


def human_eval_check_all() -> list[int]:
    """Conclude every round whose ratings are in (beat); returns the runs that moved on."""
    moved = []
    for run_id in TrainingRun.objects.filter(status=RunStatus.HUMAN_EVAL).values_list("pk", flat=True):
        if human_eval_conclude(run_id=run_id) is not None:
            moved.append(run_id)
    return moved
