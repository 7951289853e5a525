"""Writes of model judges: adding and changing a judge, asking it to run, judging the next chunk of
responses (and pairs), and pre-scoring's decision on each response it judged.

Judging holds no lock while the model works: it reads the chunk, asks the model, then inserts with
`ignore_conflicts` on the (judge, response) and (judge, pair) constraints, so a redelivered or
concurrent task never stores a judgement twice and a re-run skips what is judged. Pre-scoring locks
the response row (as `rating_submit` and the rate queue's claim do) and re-checks it before closing.
"""

import logging
import math
from dataclasses import asdict, dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from annotation.models import Project
from annotation.permissions import check_project_admin
from annotation.services import audit_record
from core.errors import ApplicationError, Conflict, NotFound
from core.hooks import task_send_on_commit
from review.math.scoring import Dimension, rating_normalised_score, rating_weighted_score
from review.models import Pair, RatingAssignment, Response
from review.rating.services import rubric_current
from training.engine import judge as judge_math
from training.engine import remote
from training.models import HumanEvalPair, JudgePick, JudgeRating, ModelJudge, ModelVersion

from . import model, prompts

logger = logging.getLogger(__name__)

JUDGE_RUN = "training.tasks.judge_run"
CHUNK = 32  # responses (each asked once per dimension) or pairs (asked twice) per task
SETTINGS = ("prompt_template", "enabled", "judge_pairs", "prescore", "prescore_min_confidence",
            "prescore_min_score")  # fmt: skip


def _settings_check(values: dict) -> dict:
    """The settings an admin sent, checked; each problem names its field (400)."""
    unknown = sorted(set(values) - set(SETTINGS))
    if unknown:
        raise ApplicationError(f"{unknown[0]}: not a setting of a judge.", details={k: [] for k in unknown})
    checked = dict(values)
    if "prompt_template" in checked:
        text = str(checked["prompt_template"] or "").strip()
        if not text or len(text) > 10_000:
            raise ApplicationError(
                "prompt_template: the judging instructions, 1 to 10,000 characters.",
                details={"prompt_template": []},
            )
        checked["prompt_template"] = text
    for name in ("enabled", "judge_pairs", "prescore"):
        if name in checked and not isinstance(checked[name], bool):
            raise ApplicationError(f"{name}: true or false.", details={name: []})
    for name in ("prescore_min_confidence", "prescore_min_score"):
        if name in checked:
            value = checked[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ApplicationError(f"{name}: a number from 0 to 1.", details={name: []})
            checked[name] = float(value)
    return checked


def _save(judge: ModelJudge, fields: list[str]) -> None:
    try:
        with transaction.atomic():
            judge.save() if not fields else judge.save(update_fields=fields)
    except IntegrityError:
        raise Conflict(
            "prescore: another judge of this project pre-scores already; turn it off there first.",
            code="prescore_taken",
        ) from None


def judge_create(*, project: Project, actor: AbstractBaseUser, model_version_id, **settings) -> ModelJudge:
    """A new judge of `project` on one of its model versions (project admins), audited."""
    check_project_admin(user=actor, project=project)
    version = ModelVersion.objects.filter(pk=model_version_id, project=project).first()
    if version is None or isinstance(model_version_id, bool):
        raise ApplicationError(
            "model_version: not a model version of this project.", details={"model_version": []}
        )
    checked = _settings_check({"prompt_template": prompts.DEFAULT_PROMPT_TEMPLATE, **settings})
    judge = ModelJudge(project=project, model_version=version, created_by=actor, **checked)
    with transaction.atomic():
        _save(judge, [])
        audit_record(
            actor=actor, action="judge.created", target=judge, project=project,
            data={"model_version": version.pk, **{k: getattr(judge, k) for k in SETTINGS}},
        )  # fmt: skip
    return judge


def judge_update(*, judge: ModelJudge, actor: AbstractBaseUser, **settings) -> ModelJudge:
    """Change a judge's settings (project admins), audited with before and after."""
    check_project_admin(user=actor, project=judge.project)
    checked = _settings_check(settings)
    before = {k: getattr(judge, k) for k in checked}
    with transaction.atomic():
        for name, value in checked.items():
            setattr(judge, name, value)
        _save(judge, list(checked))
        audit_record(
            actor=actor, action="judge.updated", target=judge, project=judge.project,
            data={"before": before, "after": checked},
        )  # fmt: skip
    return judge


def judge_run_request(*, judge: ModelJudge, actor: AbstractBaseUser) -> dict:
    """Ask the gpu worker to judge the project's open responses this judge has not judged (project
    admins); 409 `judge_disabled` for a disabled judge. Returns how many wait."""
    check_project_admin(user=actor, project=judge.project)
    if not judge.enabled:
        raise Conflict("This judge is disabled; enable it to run it.", code="judge_disabled")
    pending = {"responses": unjudged_responses(judge).count(), "pairs": unpicked_pairs(judge).count()}
    with transaction.atomic():
        audit_record(actor=actor, action="judge.run", target=judge, project=judge.project, data=pending)
        task_send_on_commit(JUDGE_RUN, judge.pk)
    return pending


def judges_prescore_request(*, project_id: int) -> list[int]:
    """New responses in a project: its enabled pre-scoring judge (at most one) judges them."""
    ids = list(
        ModelJudge.objects.filter(project_id=project_id, enabled=True, prescore=True).values_list(
            "pk", flat=True
        )
    )
    for judge_id in ids:
        task_send_on_commit(JUDGE_RUN, judge_id)
    return ids


def unjudged_responses(judge: ModelJudge):
    """The project's open responses the judge has no judgement of (a failed one counts as judged)."""
    judged = JudgeRating.objects.filter(judge=judge, response=OuterRef("pk"))
    return Response.objects.filter(project_id=judge.project_id, closed_at__isnull=True).filter(
        ~Exists(judged)
    )


def unpicked_pairs(judge: ModelJudge):
    if not judge.judge_pairs:
        return Pair.objects.none()
    picked = JudgePick.objects.filter(judge=judge, pair=OuterRef("pk"))
    return Pair.objects.filter(project_id=judge.project_id, closed_at__isnull=True).filter(~Exists(picked))


@dataclass(frozen=True)
class JudgingProgress:
    judged: int = 0
    failed: int = 0
    picked: int = 0
    closed: int = 0
    remaining: int = 0
    # The server failed (down, overloaded): come back after this many seconds; nothing was stored.
    retry_after: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _as_interval(dimensions) -> tuple[Dimension, ...]:
    # The judge's scores are expected values, fractional on an ordinal scale: the same weights and
    # scales, checked as interval scores (review.math.scoring refuses fractions on ordinal dimensions).
    return tuple(Dimension(d.key, d.weight, d.scale_min, d.scale_max, "interval") for d in dimensions)


def judge_run_next(*, judge_id: int, limit: int = CHUNK) -> JudgingProgress:
    """Judge the next `limit` open responses (lowest id first) the judge has not judged, on the
    project's current rubric; then, with `judge_pairs`, the next `limit` open pairs. Safe to run twice
    at once or again after a crash (module docstring)."""
    judge = ModelJudge.objects.select_related("project", "model_version").filter(pk=judge_id).first()
    if judge is None or not judge.enabled:
        return JudgingProgress()
    rubric = rubric_current(project=judge.project)
    dimensions = sorted(rubric.dimensions.all(), key=lambda d: (d.position, d.pk))
    responses = list(unjudged_responses(judge).order_by("pk")[:limit])
    outcomes: dict[str, list] = {}
    for d in dimensions:
        asked = [
            prompts.score_prompt(template=judge.prompt_template, response=r, dimension=d) for r in responses
        ]
        labels = judge_math.scale_labels(d.scale_min, d.scale_max)
        outcomes[d.key] = model.label_log_probs(judge.model_version, asked, labels)
    scoring = _as_interval(dimensions)
    rows, unavailable = [], None
    for n, response in enumerate(responses):
        row = JudgeRating(judge=judge, response=response, rubric=rubric)
        failures = []
        for d in dimensions:
            outcome = outcomes[d.key][n]
            if isinstance(outcome, remote.ServerUnavailable):
                unavailable = unavailable or outcome
                break
            if isinstance(outcome, remote.RemoteError):
                failures.append(f"{d.key}: {outcome}")
                continue
            verdict = judge_math.scale_judgement(outcome, d.scale_min, d.scale_max)
            if verdict.error:
                failures.append(f"{d.key}: {verdict.error}")
                continue
            row.scores[d.key] = verdict.score
            row.details[d.key] = {
                "confidence": verdict.confidence,
                "probabilities": verdict.probabilities,
                "mass": verdict.mass,
            }
        else:
            if failures:
                row.scores, row.details, row.error = {}, {}, "; ".join(failures)
            else:
                row.weighted_score = rating_weighted_score(scoring, row.scores)
                row.normalised_score = rating_normalised_score(scoring, row.scores)
                # A judgement is as sure as its least sure dimension.
                row.confidence = min(row.details[d.key]["confidence"] for d in dimensions)
            rows.append(row)
    JudgeRating.objects.bulk_create(rows, ignore_conflicts=True)
    closed = 0
    if judge.prescore:
        for row in rows:
            # a failed judgement is decided too: it goes to people, and the audit says why
            closed += response_prescore_decide(judge=judge, response_id=row.response_id, rating=row)
    picked, pick_unavailable = _pairs_judge_next(judge, limit)
    unavailable = unavailable or pick_unavailable
    remaining = unjudged_responses(judge).count() + unpicked_pairs(judge).count()
    progress = JudgingProgress(
        judged=sum(1 for r in rows if not r.error),
        failed=sum(1 for r in rows if r.error),
        picked=picked,
        closed=closed,
        remaining=remaining,
    )
    if unavailable is not None:
        logger.warning("judge %s: the model server failed: %s", judge.pk, unavailable)
        return JudgingProgress(**{**progress.as_dict(), "retry_after": unavailable.retry_after})
    return progress


def _pairs_judge_next(judge: ModelJudge, limit: int) -> tuple[int, remote.ServerUnavailable | None]:
    pairs = list(unpicked_pairs(judge).select_related("response_a", "response_b").order_by("pk")[:limit])
    if not pairs:
        return 0, None
    template = judge.prompt_template
    asked = [prompts.pick_prompt(template=template, first=p.response_a, second=p.response_b) for p in pairs]
    asked += [prompts.pick_prompt(template=template, first=p.response_b, second=p.response_a) for p in pairs]
    outcomes = model.label_log_probs(judge.model_version, asked, list(judge_math.PICK_LABELS))
    rows, unavailable = [], None
    for n, pair in enumerate(pairs):
        in_order, swapped = outcomes[n], outcomes[n + len(pairs)]
        down = next((o for o in (in_order, swapped) if isinstance(o, remote.ServerUnavailable)), None)
        if down is not None:
            unavailable = unavailable or down
            continue
        failed = next((o for o in (in_order, swapped) if isinstance(o, remote.RemoteError)), None)
        if failed is not None:
            rows.append(JudgePick(judge=judge, pair=pair, error=str(failed)))
            continue
        verdict = judge_math.pick_judgement(in_order, swapped)
        rows.append(
            JudgePick(
                judge=judge, pair=pair, choice=verdict.choice, p_first=verdict.p_first,
                confidence=verdict.confidence, position_bias=verdict.position_bias, error=verdict.error,
            )
        )  # fmt: skip
    JudgePick.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows), unavailable


def _kept_reason(*, judge: ModelJudge, rating: JudgeRating, response: Response, now) -> str:
    """Why a judged response still goes to people ("" when the judge may close it)."""
    if rating.confidence is None or not math.isfinite(rating.confidence):
        return "no_judgement"
    if rating.confidence < judge.prescore_min_confidence:
        return "uncertain"
    if rating.normalised_score < judge.prescore_min_score:
        return "low_score"
    if (
        response.ratings.exists()
        or RatingAssignment.objects.filter(response=response, expires_at__gt=now).exists()
    ):
        return "people_started"  # someone rates or has rated it: their rating is not taken away
    if hasattr(response, "gold_task"):
        return "gold"  # a gold check is for people (review.gold), whatever the judge thinks of it
    if HumanEvalPair.objects.filter(Q(candidate_response=response) | Q(baseline_response=response)).exists():
        return "human_evaluation"  # a run's promotion waits for people's ratings of it
    return ""


def response_prescore_decide(*, judge: ModelJudge, response_id: int, rating: JudgeRating) -> bool:
    """Pre-scoring's decision on one judged response, audited either way: closed for human rating
    when the judge is confident (≥ prescore_min_confidence) and scores it high (normalised ≥
    prescore_min_score) and nobody has started rating it; else it stays open for people, with the
    reason. Locks the response row and re-checks it is open. True when it closed the response."""
    now = timezone.now()
    with transaction.atomic():
        response = Response.objects.select_for_update().filter(pk=response_id).first()
        if response is None or response.closed_at is not None:
            return False
        reason = _kept_reason(judge=judge, rating=rating, response=response, now=now)
        data = {
            "judge": judge.pk, "confidence": rating.confidence, "normalised_score": rating.normalised_score,
            "min_confidence": judge.prescore_min_confidence, "min_score": judge.prescore_min_score,
        }  # fmt: skip
        if reason:
            audit_record(
                actor=None, action="response.prescore_kept", target=response, project=judge.project,
                to_state="open", data={**data, "reason": reason},
            )  # fmt: skip
            return False
        Response.objects.filter(pk=response.pk).update(closed_at=now)
        audit_record(
            actor=None, action="response.prescore_closed", target=response, project=judge.project,
            from_state="open", to_state="closed", data=data,
        )  # fmt: skip
    return True


def judge_get(*, project: Project, judge_id: int) -> ModelJudge:
    judge = (
        ModelJudge.objects.select_related("project", "model_version")
        .filter(pk=judge_id, project=project)
        .first()
    )
    if judge is None:
        raise NotFound("Judge not found.")
    return judge
