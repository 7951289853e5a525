"""Stage 4 of a run: the blind rubric round, and its conclusion (promote, or wait for the admin).

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
from annotation.models import Project
from annotation.services import audit_record
from core.errors import ApplicationError

from ..models import (
    HumanEvalPair,
    HumanEvalRound,
    RunStatus,
    SnapshotSample,
    TrainingRun,
)
from ..registry import model_version_deploy
from .status import _run_lock, _run_write

BASE_MODEL_LABEL = "base model"


def _human_eval_open(
    run: TrainingRun, samples: list[dict], rows: dict[int, SnapshotSample]
) -> HumanEvalRound:
    """K eval prompts; the candidate's and the baseline's outputs become blind Responses, created in a
    shuffled order (the `rate` queue serves responses by id), so position never tells which is which.
    Each response carries the conversation it answers (the frozen sample's system prompt and turns), so
    raters judge it in its context."""
    from review.models import Response, ResponseOrigin

    rng = random.Random(run.pk)
    chosen = rng.sample(samples, min(run.project.human_eval_size, len(samples)))
    round_ = HumanEvalRound.objects.create(run=run, size=len(chosen))
    texts = []
    for sample in chosen:
        texts.append((sample, "candidate", sample["candidate"]))
        texts.append((sample, "baseline", sample["baseline"]))
    rng.shuffle(texts)
    made: dict[tuple[int, str], Response] = {}
    for sample, side, text in texts:
        version = run.candidate if side == "candidate" else run.baseline
        row = rows[sample["item"]]
        made[(sample["item"], side)] = Response.objects.create(
            project=run.project,
            input=sample["input"],
            system=row.system,
            messages=row.messages or single_turn(row.input),
            text=text,
            origin=ResponseOrigin.CANDIDATE if side == "candidate" else ResponseOrigin.DRAFT,
            model=version.name if version else BASE_MODEL_LABEL,
            model_version=version,
            item_id=sample["item"],
        )
    HumanEvalPair.objects.bulk_create(
        HumanEvalPair(
            round=round_,
            item_id=s["item"],
            candidate_response=made[(s["item"], "candidate")],
            baseline_response=made[(s["item"], "baseline")],
        )
        for s in chosen
    )
    audit_record(
        actor=None,
        action="human_eval.open",
        target=round_,
        project=run.project,
        data={"run": run.pk, "size": len(chosen), "responses": [r.pk for r in made.values()]},
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


def human_eval_conclude(*, run_id: int) -> str | None:
    """When every response of the round has the project's overlap of ratings: the result, then either
    automatic promotion (candidate at least as good, alpha at or above the project minimum) or the
    admin's decision. Returns the run's new status, or None when the round is not complete."""
    from review.models import Rating

    run = TrainingRun.objects.filter(pk=run_id).only("project_id").first()
    if run is None:
        return None
    with transaction.atomic():
        project = Project.objects.select_for_update(no_key=True).get(pk=run.project_id)
        run = _run_lock(run_id)
        if run.status != RunStatus.HUMAN_EVAL:
            return None
        round_ = run.human_eval
        pairs = list(round_.pairs.all())
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
            pairs=[
                (by_response[p.candidate_response_id], by_response[p.baseline_response_id]) for p in pairs
            ],
            ratings=ratings,
            seed=run.pk,
        )
        alpha = result["alpha"]
        better = result["candidate"]["mean"] >= result["baseline"]["mean"]
        agreed = alpha is not None and alpha >= project.human_eval_min_alpha
        result |= {
            "min_alpha": project.human_eval_min_alpha,
            "at_least_as_good": better,
            "agreed": agreed,
            "auto_promote": better and agreed,
        }
        round_.result, round_.concluded_at = result, timezone.now()
        round_.save(update_fields=["result", "concluded_at"])
        audit_record(actor=None, action="human_eval.conclude", target=round_, project=project, data=result)
        why = [] if better else ["the candidate scored lower than the deployed model"]
        if better and agreed:
            try:
                model_version_deploy(version_id=run.candidate_id, actor=None, action="model_version.promote")
                return RunStatus.PROMOTED  # model_version_deploy ended the run through runs_mark_promoted
            except ApplicationError as exc:  # e.g. its server cannot load the adapter: the admin decides
                why.append(f"it could not be deployed: {exc.message}")
        if not agreed:
            why.append(
                "raters agreed too little (alpha "
                + (f"{alpha:.2f}" if alpha is not None else f"undefined: {result['alpha_reason']}")
                + f" < {project.human_eval_min_alpha:.2f})"
            )
        _run_write(run, actor=None, to_status=RunStatus.AWAITING_DECISION, reason="; ".join(why))
        return run.status


def human_eval_check_all() -> list[int]:
    """Conclude every round whose ratings are in (beat); returns the runs that moved on."""
    moved = []
    for run_id in TrainingRun.objects.filter(status=RunStatus.HUMAN_EVAL).values_list("pk", flat=True):
        if human_eval_conclude(run_id=run_id) is not None:
            moved.append(run_id)
    return moved
