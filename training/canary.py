"""Canary rollout: a candidate version answers a sticky share of `ask` callers beside the deployed
baseline, until its reviewed answers show it not worse (promoted) or clearly worse (rolled back).

Decision (`canary_verdict`), once the canary arm has `min_outcomes` reviewed answers and the baseline at
least one, on d = acceptable rate (candidate) − acceptable rate (baseline) and Newcombe's hybrid score
interval (95 %) for d: the upper end below 0 → rolled back (clearly worse; checked first, so a candidate
known to be worse is never promoted, however slightly); else the lower end above −margin
(HANDOVER_CANARY_MARGIN) → promoted; else it keeps running and the next check sees more outcomes.

Locking: a start locks the project row (FOR NO KEY UPDATE), as a deploy does, and the partial unique
constraint `one_running_canary_per_project` is the last line of defence; an end locks the canary row and
re-checks that it still runs, so the beat task and an admin never both end it.
"""

import hashlib
import logging
import math

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.models import Project
from annotation.permissions import check_project_admin
from annotation.services import audit_record, stored_user
from core.errors import ApplicationError, Conflict, NotFound
from review.math.bradley_terry import wilson_interval

from . import backends, calibration, registry
from .models import AskAnswer, Canary, CanaryState, HandoverTicket, ModelVersion, ModelVersionStatus
from .selectors import model_version_deployed

logger = logging.getLogger(__name__)

# The canary arm's answered traffic is sampled for review at least at this rate, so outcomes come fast.
CANARY_REVIEW_RATE = 0.5
# Latency percentiles are read from the latest this many answers of an arm.
LATENCY_SAMPLE = 10_000
MAX_MIN_OUTCOMES = 100_000
ARMS = ("baseline", "canary")


# --- pure parts -----------------------------------------------------------------------------------------


def share_check(share) -> float:
    """The share of callers, strictly between 0 and 1; else 400 naming `share`."""
    try:
        value = float(share)
    except (TypeError, ValueError):
        value = math.nan
    if not (0.0 < value < 1.0):
        raise ApplicationError(
            f"share: must be a number strictly between 0 and 1 (got {share!r}).",
            details={"share": ["Must be strictly between 0 and 1."]},
        )
    return value


def min_outcomes_check(min_outcomes) -> int:
    if isinstance(min_outcomes, bool) or not isinstance(min_outcomes, int | str):
        min_outcomes = None
    try:
        value = int(min_outcomes)
    except (TypeError, ValueError):
        value = 0
    if not (1 <= value <= MAX_MIN_OUTCOMES):
        raise ApplicationError(
            f"min_outcomes: must be a whole number from 1 to {MAX_MIN_OUTCOMES} (got {min_outcomes!r}).",
            details={"min_outcomes": [f"Must be a whole number from 1 to {MAX_MIN_OUTCOMES}."]},
        )
    return value


def caller_bucket(*, canary_id: int, user_id: int) -> float:
    """Where a caller falls in [0, 1) for a canary: a hash of both, so a caller always sees one arm of
    a canary, and the next canary draws its callers afresh."""
    digest = hashlib.sha256(f"canary:{canary_id}:user:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def review_rate(*, rate: float, arm: str | None, share: float) -> float:
    """The sampling rate of an arm's answered traffic: the canary's at least CANARY_REVIEW_RATE; the
    baseline's at least enough that both arms expect about as many reviews (it has the larger share)."""
    if arm == "canary":
        return max(rate, CANARY_REVIEW_RATE)
    if arm == "baseline":
        return max(rate, min(CANARY_REVIEW_RATE, CANARY_REVIEW_RATE * share / (1.0 - share)))
    return rate


def difference_interval(k1: int, n1: int, k2: int, n2: int, z: float = 1.959963984540054):
    """(d, low, high) for d = k1/n1 − k2/n2: Newcombe's hybrid score interval (his method 10) from the
    two Wilson intervals; None when either arm has no outcome."""
    if n1 == 0 or n2 == 0:
        return None
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, low, high


def canary_verdict(report: dict, *, margin: float) -> tuple[str | None, str]:
    """(state to end in or None to keep running, why) from a `canary_report`."""
    c, b = report["arms"]["canary"], report["arms"]["baseline"]
    if c["outcomes"] < report["min_outcomes"]:
        return None, f"waiting: the canary has {c['outcomes']} of {report['min_outcomes']} outcomes"
    if b["outcomes"] == 0:
        return None, "waiting: the baseline has no outcome in the canary's window yet"
    diff = report["difference"]
    if diff["high"] < 0:
        return CanaryState.ROLLED_BACK, (
            f"clearly worse: acceptable-rate difference {diff['d']:+.3f}, 95 % interval "
            f"[{diff['low']:+.3f}, {diff['high']:+.3f}] lies below 0"
        )
    if diff["low"] > -margin:
        return CanaryState.PROMOTED, (
            f"not worse: acceptable-rate difference {diff['d']:+.3f}, 95 % interval "
            f"[{diff['low']:+.3f}, {diff['high']:+.3f}] lies above −{margin:g}"
        )
    return None, (
        f"undecided: 95 % interval [{diff['low']:+.3f}, {diff['high']:+.3f}] of the difference "
        f"reaches below −{margin:g} and above 0"
    )


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


# --- reads ----------------------------------------------------------------------------------------------


def canary_running(*, project_id: int) -> Canary | None:
    return (
        Canary.objects.select_related("candidate", "baseline")
        .filter(project_id=project_id, state=CanaryState.RUNNING)
        .first()
    )


def ask_route(
    *, project: Project, actor: AbstractBaseUser | None, deployed: ModelVersion
) -> tuple[ModelVersion, str | None, float]:
    """Which version answers this caller, the arm ("canary" | "baseline"; None without a canary) and
    the canary's share (0 without one).
    A canary whose baseline is no longer the deployed version routes nobody (the beat task ends it).
    A caller without an id (none reaches `ask` today) stays on the baseline."""
    canary = canary_running(project_id=project.pk)
    if canary is None or canary.baseline_id != deployed.pk:
        return deployed, None, 0.0
    user_id = getattr(actor, "pk", None)
    if user_id is not None and caller_bucket(canary_id=canary.pk, user_id=user_id) < canary.share:
        canary.candidate.project = project
        return canary.candidate, "canary", canary.share
    return deployed, "baseline", canary.share


def _arm(version: ModelVersion, *, since, until) -> dict:
    window = {"model_version_id": version.pk, "created_at__gte": since, "created_at__lte": until}
    answers = AskAnswer.objects.filter(**window)
    n_answers = answers.count()
    n_handovers = HandoverTicket.objects.filter(**window).count()
    latencies = sorted(
        answers.exclude(latency_ms=None).order_by("-pk").values_list("latency_ms", flat=True)[:LATENCY_SAMPLE]
    )
    # Reviewed (or rated) samples of what the arm answered (tickets are questions it did not answer).
    outcomes = [
        o
        for o in calibration.outcomes_of(version_id=version.pk, since=since, until=until)
        if o.source in ("sampled", "rated")
    ]
    k, n = sum(o.acceptable for o in outcomes), len(outcomes)
    low, high = wilson_interval(k, n)
    asked = n_answers + n_handovers
    return {
        "model_version": version.pk,
        "name": version.name,
        "answers": n_answers,
        "handovers": n_handovers,
        "handover_rate": n_handovers / asked if asked else None,
        "outcomes": n,
        "acceptable": k,
        "acceptable_rate": k / n if n else None,
        "acceptable_interval": [low, high],
        "latency_ms_p50": _percentile(latencies, 0.5),
        "latency_ms_p95": _percentile(latencies, 0.95),
    }


def canary_report(canary: Canary) -> dict:
    """The arms side by side over the canary's window (start to decision, or now), the difference of
    their acceptable rates with its interval, and what the decision rule says now."""
    until = canary.decided_at or timezone.now()
    arms = {
        "baseline": _arm(canary.baseline, since=canary.started_at, until=until),
        "canary": _arm(canary.candidate, since=canary.started_at, until=until),
    }
    c, b = arms["canary"], arms["baseline"]
    interval = difference_interval(c["acceptable"], c["outcomes"], b["acceptable"], b["outcomes"])
    report = {
        "id": canary.pk,
        "project": canary.project_id,
        "state": canary.state,
        "share": canary.share,
        "min_outcomes": canary.min_outcomes,
        "margin": settings.HANDOVER_CANARY_MARGIN,
        "canary_review_rate": CANARY_REVIEW_RATE,
        "started_at": canary.started_at.isoformat(),
        "decided_at": canary.decided_at.isoformat() if canary.decided_at else None,
        "arms": arms,
        "difference": (
            dict(zip(("d", "low", "high"), interval, strict=True)) if interval is not None else None
        ),
    }
    if canary.state == CanaryState.RUNNING:
        report["verdict"], report["reason"] = canary_verdict(report, margin=settings.HANDOVER_CANARY_MARGIN)
    else:
        report["verdict"], report["reason"] = canary.state, canary.result.get("reason", "")
    return report


def canary_view(*, project: Project, actor: AbstractBaseUser) -> dict:
    """Project admins: the running canary's report (or the latest one's, as decided), and the earlier
    canaries in short."""
    check_project_admin(user=actor, project=project)
    canaries = list(Canary.objects.filter(project=project).select_related("candidate", "baseline")[:20])
    current = canaries[0] if canaries else None
    return {
        "project": project.pk,
        "canary": canary_report(current) if current is not None else None,
        "history": [
            {
                "id": c.pk,
                "candidate": c.candidate_id,
                "baseline": c.baseline_id,
                "share": c.share,
                "state": c.state,
                "started_at": c.started_at.isoformat(),
                "decided_at": c.decided_at.isoformat() if c.decided_at else None,
                "reason": c.result.get("reason", ""),
            }
            for c in canaries
        ],
    }


# --- transitions ----------------------------------------------------------------------------------------


def canary_start(
    *, project: Project, version_id, actor: AbstractBaseUser | None, share, min_outcomes=None
) -> Canary:
    """Start a canary of the version (a candidate of this project) against the deployed version
    (project admins). 400 naming the field for a bad share or min_outcomes, a version of another
    project, an already deployed or rejected one, or while a canary runs; the candidate must be
    servable as at deploy (its files; on a server: listed there, a LoRA adapter loaded)."""
    if actor is not None:
        check_project_admin(user=actor, project=project)
    share = share_check(share)
    min_outcomes = min_outcomes_check(
        settings.HANDOVER_CANARY_MIN_OUTCOMES if min_outcomes is None else min_outcomes
    )
    version = None
    if isinstance(version_id, int) and not isinstance(version_id, bool):
        version = ModelVersion.objects.filter(pk=version_id, project=project).first()
    if version is None:
        raise ApplicationError(
            f"version: {version_id!r} is not a model version of this project.",
            details={"version": ["Not a model version of this project."]},
        )
    if version.status in (ModelVersionStatus.DEPLOYED, ModelVersionStatus.REJECTED):
        raise ApplicationError(
            f"version: '{version.name}' is {version.status}; only a candidate can be a canary.",
            details={"version": [f"The version is {version.status}."]},
        )
    baseline = model_version_deployed(project_id=project.pk)
    if baseline is None:
        raise ApplicationError(
            "canary: no version is deployed to compare with; deploy the version instead.",
            code="no_baseline",
            details={"canary": ["No deployed version."]},
        )
    registry.model_version_serve_prepare(version)  # before the lock: a server may be slow
    try:
        with transaction.atomic():
            project = Project.objects.select_for_update(no_key=True).get(pk=project.pk)
            running = canary_running(project_id=project.pk)
            if running is not None:
                raise _running_error(running)
            if model_version_deployed(project_id=project.pk) != baseline:
                raise Conflict("The deployed version changed meanwhile; try again.", code="baseline_changed")
            canary = Canary.objects.create(
                project=project, candidate=version, baseline=baseline, share=share,
                min_outcomes=min_outcomes, started_by=stored_user(actor),
            )  # fmt: skip
            audit_record(
                actor=actor, action="canary.start", target=canary, project=project,
                to_state=CanaryState.RUNNING,
                data={"candidate": version.pk, "baseline": baseline.pk, "share": share,
                      "min_outcomes": min_outcomes, "margin": settings.HANDOVER_CANARY_MARGIN},
            )  # fmt: skip
    except IntegrityError:  # a start in another transaction won the constraint
        raise _running_error(canary_running(project_id=project.pk)) from None
    return canary


def _running_error(running: Canary | None) -> ApplicationError:
    which = f" (canary {running.pk}, version {running.candidate_id})" if running is not None else ""
    return ApplicationError(
        f"canary: one is already running in this project{which}; end it first.",
        code="canary_running",
        details={"canary": ["A canary is already running."]},
    )


def _canary_get(canary_id: int) -> Canary:
    canary = Canary.objects.select_related("candidate", "baseline", "project").filter(pk=canary_id).first()
    if canary is None:
        raise NotFound("Canary not found.")
    return canary


def _finish(
    canary: Canary, *, state: str, actor: AbstractBaseUser | None, reason: str, report: dict | None
) -> Canary:
    """End a running canary in `state` with the evidence; a no-op when it has ended meanwhile."""
    with transaction.atomic():
        locked = Canary.objects.select_for_update().get(pk=canary.pk)
        if locked.state != CanaryState.RUNNING:
            return locked
        locked.state = state
        locked.decided_at = timezone.now()
        locked.result = {**(report or {}), "reason": reason, "by": "admin" if actor is not None else "system"}
        locked.result.update(state=state, verdict=state, decided_at=locked.decided_at.isoformat())
        locked.save(update_fields=["state", "decided_at", "result"])
        action = {
            CanaryState.PROMOTED: "canary.promote",
            CanaryState.ROLLED_BACK: "canary.roll_back",
            CanaryState.CANCELLED: "canary.cancel",
        }[state]
        audit_record(
            actor=actor, action=action, target=locked, project=canary.project,
            from_state=CanaryState.RUNNING, to_state=state,
            data={"candidate": locked.candidate_id, "baseline": locked.baseline_id, "reason": reason,
                  "arms": (report or {}).get("arms"), "difference": (report or {}).get("difference")},
        )  # fmt: skip
        if state != CanaryState.PROMOTED and backends.adapter_to_release(
            canary.candidate, deployed=canary.baseline
        ):
            candidate, baseline = canary.candidate, canary.baseline
            transaction.on_commit(
                lambda: backends.adapter_release(
                    candidate, deployed=baseline, outcome=backends.DeployOutcome()
                )
            )
    return locked


def _promote(canary: Canary, *, actor: AbstractBaseUser | None, reason: str, report: dict) -> Canary:
    """Deploy the candidate (the registry retires the baseline), then end the canary as promoted. A
    deploy that fails (the candidate stopped being servable) leaves the canary running, and says why."""
    registry.model_version_deploy(version_id=canary.candidate_id, actor=actor)
    return _finish(canary, state=CanaryState.PROMOTED, actor=actor, reason=reason, report=report)


def canary_decide(*, canary_id: int) -> str:
    """The beat task's check of one canary: cancelled when its baseline is no longer deployed (someone
    deployed another version) or its candidate was rejected; else promoted / rolled back when
    `canary_verdict` says so. Returns the canary's state."""
    canary = _canary_get(canary_id)
    if canary.state != CanaryState.RUNNING:
        return canary.state
    if canary.baseline.status != ModelVersionStatus.DEPLOYED:
        why = "the baseline is no longer the deployed version"
        return _finish(canary, state=CanaryState.CANCELLED, actor=None, reason=why, report=None).state
    if canary.candidate.status == ModelVersionStatus.REJECTED:
        why = "the candidate was rejected"
        return _finish(canary, state=CanaryState.CANCELLED, actor=None, reason=why, report=None).state
    report = canary_report(canary)
    verdict, reason = report["verdict"], report["reason"]
    if verdict == CanaryState.PROMOTED:
        return _promote(canary, actor=None, reason=reason, report=report).state
    if verdict == CanaryState.ROLLED_BACK:
        return _finish(canary, state=verdict, actor=None, reason=reason, report=report).state
    return canary.state


def canaries_decide_all() -> dict[int, str]:
    """Every running canary checked once (the beat task); one that fails is logged and tried next time."""
    states = {}
    for canary_id in (
        Canary.objects.filter(state=CanaryState.RUNNING).order_by("pk").values_list("pk", flat=True)
    ):
        try:
            states[canary_id] = canary_decide(canary_id=canary_id)
        except ApplicationError as exc:
            logger.warning("canary %s: could not act on the decision: %s", canary_id, exc.message)
            states[canary_id] = "error"
    return states


def canary_end(*, project: Project, actor: AbstractBaseUser, decision: str) -> Canary:
    """An admin ends the project's running canary now: "promote" (deploy the candidate) or "rollback"
    (the baseline stays deployed), whatever the outcomes say so far; the evidence is kept."""
    check_project_admin(user=actor, project=project)
    if decision not in ("promote", "rollback"):
        raise ApplicationError(
            f"decision: must be 'promote' or 'rollback' (got {decision!r}).",
            details={"decision": ["Must be 'promote' or 'rollback'."]},
        )
    canary = canary_running(project_id=project.pk)
    if canary is None:
        raise Conflict("No canary is running in this project.", code="no_canary")
    canary.project = project
    report = canary_report(canary)
    if decision == "promote":
        return _promote(canary, actor=actor, reason="promoted by hand", report=report)
    return _finish(
        canary, state=CanaryState.ROLLED_BACK, actor=actor, reason="rolled back by hand", report=report
    )
