"""Hand-over (`ask`): the deployed model answers when it is confident, else people get a ticket."""

import logging
import math
import random
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.dataio.conversation import question_key, single_turn
from annotation.models import Item, ItemSource, Project
from annotation.services import audit_record, item_content_hash, items_create, stored_user
from annotation.workflow.transitions import DraftCandidate, item_drafts_store
from core.errors import ApplicationError
from review.models import Response, ResponseOrigin

from . import calibration, canary, metrics, semantic_cache
from .drafting import clean_text, drafts_generate, item_prompt, item_route_to_expert
from .engine import remote
from .engine.metrics import rouge_l
from .models import AskAnswer, Backend, HandoverTicket, ModelVersion
from .registry import generation_settings, model_spec
from .selectors import ANSWERED_STATES, model_version_deployed

logger = logging.getLogger(__name__)

# Sent by name (core.hooks): the tasks module sits above the services it calls.
ASK_GENERATE = "training.tasks.ask_generate"
# Which answered questions are sampled for review (`Project.answered_review_rate`); tests use rates 0 and 1.
_review_sampler = random.Random()


class ModelUnavailable(ApplicationError):
    """No worker produced an answer in the bounded time (none running, all busy, or it failed)."""

    status = 503
    code = "model_unavailable"


@dataclass(frozen=True)
class AskResult:
    answer: str
    confidence: float | None
    model_version: int | None
    handed_over: bool
    ticket: HandoverTicket | None = None
    source: str = "model"  # "model" | "cache" (an approved answer to the same question) | "people"
    item: int | None = None  # the approved item a cached answer comes from
    # With a calibrated version, `confidence` is the calibrated one (what met the threshold) and this the
    # model's own; None when no calibration was applied.
    raw_confidence: float | None = None
    # While a canary runs (training/canary.py): the arm the caller is in, "canary" | "baseline".
    arm: str | None = None
    # Voting (Project.vote_min_agreement): how far the model's sampled answers agreed, when measured.
    agreement: float | None = None
    # A semantic cache answer (training/semantic_cache.py): how close the question is to the approved one.
    similarity: float | None = None


def check_question(question: str) -> str:
    question = (question or "").strip()
    if not question:
        raise ApplicationError(
            "question: must not be empty.", details={"question": ["This field may not be blank."]}
        )
    limit = settings.HANDOVER_ASK_MAX_CHARS
    if len(question) > limit:
        raise ApplicationError(
            f"question: {len(question)} characters; at most {limit} are accepted.",
            code="too_large",
            status=413,
            details={"max_chars": limit, "chars": len(question)},
        )
    return question


def ask_model(*, version: ModelVersion, question: str) -> dict:
    """The version's candidates for the question within HANDOVER_ASK_TIMEOUT, or ModelUnavailable.

    A version on a server is asked from this (web) process: the work is the server's, so a hop through
    the broker and a gpu worker would add latency and hold a worker that only waits on the network.
    The long-request thread pool bounds how many web threads wait, the deadline how long each waits,
    and the circuit breaker answers at once (503, Retry-After) while the server is known to be down.
    An in-process version goes to a gpu worker, which holds the model."""
    if version.backend == Backend.OPENAI:
        return ask_server(version=version, question=question)
    from celery import current_app
    from celery.exceptions import TimeoutError as CeleryTimeout

    timeout = settings.HANDOVER_ASK_TIMEOUT
    try:
        # expires: a worker that comes back later drops the question instead of answering nobody.
        result = current_app.send_task(
            ASK_GENERATE, args=(version.pk, question), queue=settings.HANDOVER_ASK_QUEUE, expires=timeout,
            retry=False,
        )  # fmt: skip
    except Exception as exc:  # the broker is down
        logger.warning("ask: could not reach the broker: %s", exc)
        raise ModelUnavailable("The model service cannot be reached; try again shortly.") from None
    try:
        return result.get(timeout=timeout)
    except CeleryTimeout:
        result.revoke()
        raise ModelUnavailable(
            f"No model worker answered within {timeout:g} s; try again shortly.",
            details={"retry_after": ask_retry_after()},
        ) from None
    except Exception as exc:  # the task failed in the worker
        logger.exception("ask: the worker failed: %s", exc)
        raise ModelUnavailable("The model failed to answer; try again shortly.") from None
    finally:
        result.forget()


def ask_server(*, version: ModelVersion, question: str) -> dict:
    """Ask the version's server directly (see `ask_model`), bounded by HANDOVER_ASK_TIMEOUT in all."""
    prompt = item_prompt(version.project, messages=single_turn(question))
    gen = generation_settings(version.generation)
    kwargs = gen.draft_kwargs(num_candidates=version.project.draft_candidates)
    deadline = time.monotonic() + settings.HANDOVER_ASK_TIMEOUT
    try:
        draft = drafts_generate(model_spec(version), [prompt], deadline=deadline, **kwargs)[0]
    except remote.ServerUnavailable as exc:
        logger.warning("ask: version %s's server is unavailable: %s", version.pk, exc)
        raise ModelUnavailable(
            "The model server is not answering; try again shortly.",
            details={"retry_after": max(1, math.ceil(exc.retry_after))},
        ) from None
    except remote.RemoteError as exc:  # it answered, but refused: say so without its internals
        logger.warning("ask: version %s's server refused the question: %s", version.pk, exc)
        raise ModelUnavailable(
            f"The model server refused the question ({exc.status}); try again shortly.",
            details={"retry_after": ask_retry_after()},
        ) from None
    return {
        "model_version": version.pk,
        "candidates": [{"text": clean_text(c.text), "confidence": c.confidence} for c in draft.candidates],
    }


def ask_retry_after(exc: ApplicationError | None = None) -> int:
    """Seconds a client should wait after a 503: what the failure said, else the ask timeout."""
    if exc is not None and isinstance(exc.details, dict) and exc.details.get("retry_after"):
        return int(exc.details["retry_after"])
    return max(1, math.ceil(settings.HANDOVER_ASK_TIMEOUT))


def ask_answer(
    *, project: Project, actor: AbstractBaseUser | None, question: str, metadata: dict | None = None
) -> AskResult:
    """Answer with the deployed model at or above the project's threshold; otherwise hand over to people.

    The confidence compared is the calibrated one when the version has a fit (training/calibration.py),
    and the threshold the one for the ask's metadata when the project has per-value thresholds.
    Without a deployed version every question is handed over. The caller has checked visibility.
    """
    question = check_question(question)
    started, outcome, arm = time.perf_counter(), "error", "none"
    try:
        result = _ask_answer(project=project, actor=actor, question=question, metadata=metadata or {})
        outcome = {"model": "answered", "cache": "cache", "people": "handed_over"}[result.source]
        arm = result.arm or "none"
        return result
    except ModelUnavailable:
        outcome = "unavailable"
        raise
    finally:
        metrics.ASK.labels(str(project.pk), outcome, arm).inc()
        metrics.ASK_LATENCY.labels(outcome, arm).observe(time.perf_counter() - started)


def _ask_answer(
    *, project: Project, actor: AbstractBaseUser | None, question: str, metadata: dict
) -> AskResult:
    started = time.perf_counter()
    cached = cached_answer(project=project, question=question) if project.answer_cache else None
    if cached is not None:
        item_id, text = cached
        return AskResult(text, None, None, False, source="cache", item=item_id)
    hit = (
        semantic_cache.semantic_answer(project=project, question=question)
        if semantic_cache.semantic_enabled(project)
        else None
    )
    if hit is not None:
        return AskResult(
            hit.answer, None, None, False, source="cache", item=hit.item, similarity=hit.similarity
        )
    version = model_version_deployed(project_id=project.pk)
    if version is None:
        ticket = ticket_open(
            project=project, actor=actor, question=question, version=None, candidates=[], metadata=metadata
        )
        return AskResult(project.fallback_message, None, None, True, ticket, source="people")
    version, arm, share = canary.ask_route(project=project, actor=actor, deployed=version)
    out = ask_model(version=version, question=question)
    best = out["candidates"][0]
    raw = best["confidence"]
    calibrated = calibration.confidence_calibrated(version_id=version.pk, confidence=raw)
    confidence = raw if calibrated is None else calibrated
    candidates = [DraftCandidate(c["text"], c["confidence"]) for c in out["candidates"]]
    agreement = answers_agreement([c.text for c in candidates]) if project.vote_min_agreement > 0 else None
    agreed = agreement is None or agreement >= project.vote_min_agreement
    if agreed and confidence >= calibration.threshold_for(project=project, metadata=metadata):
        ask_answer_log(
            project=project, actor=actor, question=question, version=version, candidates=candidates,
            metadata=metadata, latency_ms=(time.perf_counter() - started) * 1000,
            review_rate=canary.review_rate(rate=project.answered_review_rate, arm=arm, share=share),
        )  # fmt: skip
        return AskResult(
            best["text"], confidence, version.pk, False, raw_confidence=_raw_if(calibrated, raw), arm=arm,
            agreement=agreement,
        )  # fmt: skip
    ticket = ticket_open(
        project=project, actor=actor, question=question, version=version, candidates=candidates,
        metadata=metadata,
    )  # fmt: skip
    return AskResult(
        project.fallback_message, confidence, version.pk, True, ticket, source="people",
        raw_confidence=_raw_if(calibrated, raw), arm=arm, agreement=agreement,
    )  # fmt: skip


def answers_agreement(texts: list[str]) -> float | None:
    """Voting among the model's sampled answers: the mean ROUGE-L F1 of the best answer against each
    other one (the text metric evaluation uses), in [0, 1]; None with fewer than two answers (a greedy
    version, or one candidate), where there is nothing to vote."""
    if len(texts) < 2:
        return None
    best, others = texts[0], texts[1:]
    return sum(rouge_l(other, best) for other in others) / len(others)


def _raw_if(calibrated: float | None, raw: float) -> float | None:
    return raw if calibrated is not None else None


def ask_answer_log(
    *,
    project: Project,
    actor: AbstractBaseUser | None,
    question: str,
    version: ModelVersion,
    candidates: list[DraftCandidate],
    metadata: dict,
    latency_ms: float | None = None,
    review_rate: float | None = None,
) -> AskAnswer:
    """Log an answer the model gave; a sampled share (`answered_review_rate`, or `review_rate` for a
    canary's arms) also becomes a production item (or joins the identical one) whose drafts are the
    model's candidates, so people review the answer through the normal workflow and their approved
    answer judges it (an outcome). With `answered_review_ratings`, the sampled answer is also a response
    in the rating queue, whose rubric scores judge it until the item is approved."""
    best = candidates[0]
    rate = project.answered_review_rate if review_rate is None else review_rate
    sampled = _review_sampler.random() < rate
    with transaction.atomic():
        item = response = None
        if sampled:
            items_create(
                project=project, actor=actor, source=ItemSource.PRODUCTION,
                rows=[{"input": question, "metadata": metadata}],
            )  # fmt: skip
            item = _item_of(project=project, question=question)
            if project.answered_review_ratings:
                response = _response_for_raters(
                    project=project, version=version, question=question, item=item, text=best.text
                )
        logged = AskAnswer.objects.create(
            project=project, model_version=version, question=question, answer=best.text,
            confidence=best.confidence, item=item, response=response, latency_ms=latency_ms,
        )  # fmt: skip
    if item is not None:  # answered: the confidence met the threshold, so the draft is not low-confidence
        item_drafts_store(
            item_id=item.pk, model_version_id=version.pk, candidates=candidates, low_confidence=False
        )
    return logged


def _response_for_raters(*, project: Project, version: ModelVersion, question: str, item: Item, text: str):
    """The answer as a draft response to rate (blind as the project's rubric says), audited."""
    response = Response.objects.create(
        project=project, input=question, messages=single_turn(question), text=text,
        origin=ResponseOrigin.DRAFT, model=version.name, model_version=version, item=item,
    )  # fmt: skip
    audit_record(
        actor=None, action="response.created", target=response, project=project,
        to_state=ResponseOrigin.DRAFT, data={"ask_answer_of_version": version.pk},
    )  # fmt: skip
    return response


def _item_of(*, project: Project, question: str) -> Item:
    return (
        Item.objects.filter(project=project, content_hash=item_content_hash(input=question))
        .order_by("-pk")
        .first()
    )


def cached_answer(*, project: Project, question: str) -> tuple[int, str] | None:
    """(item id, answer) of the latest approved single-question item asking the same question
    (`conversation.question_normalise`), or None. Nothing is copied, so nothing goes stale: the lookup
    reads the item's state and current revision as they are now, and an answer sent back to rework, or
    edited in a re-review, stops or changes at once. One indexed query (item_question_key)."""
    key = question_key(system="", messages=single_turn(question))
    if not key:
        return None
    return (
        Item.objects.filter(
            project=project, question_key=key, status__in=ANSWERED_STATES, current_revision__isnull=False
        )
        .order_by("-approved_at", "-pk")
        .values_list("pk", "current_revision__text")
        .first()
    )


def ticket_open(
    *,
    project: Project,
    actor: AbstractBaseUser | None,
    question: str,
    version: ModelVersion | None,
    candidates: list[DraftCandidate],
    metadata: dict | None = None,
) -> HandoverTicket:
    """The question becomes a high-priority production item (or joins the identical one) and a ticket.

    The model's candidates become the item's drafts, so people start from them, marked low-confidence
    (the model was not trusted with the answer: its confidence, calibrated, was under the threshold for
    the metadata, or its sampled answers disagreed); the ask's metadata is the item's (a joined item
    keeps its own).
    """
    with transaction.atomic():
        items_create(
            project=project,
            actor=actor,
            source=ItemSource.PRODUCTION,
            rows=[
                {"input": question, "priority": settings.HANDOVER_ASK_PRIORITY, "metadata": metadata or {}}
            ],
        )
        item = _item_of(project=project, question=question)
        best = candidates[0] if candidates else None
        ticket = HandoverTicket.objects.create(
            project=project,
            item=item,
            question=question,
            model_version=version,
            model_answer=best.text if best else "",
            confidence=best.confidence if best else None,
            requested_by=stored_user(actor),
        )
        audit_record(
            actor=actor,
            action="ticket.open",
            target=ticket,
            project=project,
            to_state="open",
            data={
                "item": item.pk,
                "confidence": ticket.confidence,
                "model_version": version.pk if version else None,
            },
        )
    if candidates:
        stored = item_drafts_store(
            item_id=item.pk, model_version_id=version.pk, candidates=candidates, low_confidence=True
        )
        if stored is not None and stored.low_confidence and project.route_low_confidence_to_expert:
            item_route_to_expert(item_id=item.pk)
    return ticket
