"""Writes of the model side: the registry (register, deploy, rollback), drafting, and hand-over (`ask`).

Locking: a deploy locks the project row (FOR NO KEY UPDATE) so two deploys of one project serialise;
the partial unique constraint `one_deployed_version_per_project` is the last line of defence.
Drafting never holds a lock while the model generates: it reads ids, generates, then stores each item's
drafts through `annotation.workflow.item_drafts_store`, which locks the item and re-checks its state.
"""

import logging
import math
from dataclasses import asdict, dataclass, fields

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.dataio.conversation import prompt_turns, single_turn
from annotation.models import Item, ItemSource, ItemStatus, Project
from annotation.permissions import check_project_admin
from annotation.services import DRAFTS_GENERATE, audit_record, item_content_hash, items_create, stored_user
from annotation.workflow import DraftCandidate, item_drafts_store, item_lock, item_write
from core.errors import ApplicationError, Conflict, NotFound
from core.hooks import task_send_on_commit

from .base_model import default_base_model, model_files_check
from .engine.prompts import Prompt
from .model_cache import ModelSpec
from .models import HandoverTicket, ModelVersion, ModelVersionStatus
from .selectors import model_version_deployed

logger = logging.getLogger(__name__)


class ModelUnavailable(ApplicationError):
    """No worker produced an answer in the bounded time (none running, all busy, or it failed)."""

    status = 503
    code = "model_unavailable"


# --- generation settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationSettings:
    """How a version generates; stored as ModelVersion.generation (unknown keys are refused)."""

    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    batch_size: int = 16
    seed: int | None = None
    system_prompt: str = ""

    def draft_kwargs(self, *, num_candidates: int = 1) -> dict:
        """Arguments for Drafter.draft. Several candidates need sampling: a greedy version samples its
        extra candidates at CANDIDATE_TEMPERATURE."""
        temperature = self.temperature
        if num_candidates > 1 and temperature <= 0:
            temperature = CANDIDATE_TEMPERATURE
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": temperature,
            "top_p": self.top_p,
            "num_candidates": num_candidates,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }


CANDIDATE_TEMPERATURE = 0.7


def generation_settings(raw: dict | None) -> GenerationSettings:
    """Validate a generation dict, filling defaults; errors name the key (400)."""
    raw = dict(raw or {})
    known = {f.name for f in fields(GenerationSettings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ApplicationError(
            f"generation: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.",
            details={"generation": unknown},
        )
    try:
        gen = GenerationSettings(**raw)
        checks = {
            "max_new_tokens": 1 <= int(gen.max_new_tokens) <= 4096,
            "temperature": 0.0 <= float(gen.temperature) <= 5.0,
            "top_p": 0.0 < float(gen.top_p) <= 1.0,
            "batch_size": 1 <= int(gen.batch_size) <= 256,
        }
    except (TypeError, ValueError) as exc:
        raise ApplicationError(f"generation: {exc}", details={"generation": [str(exc)]}) from None
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise ApplicationError(
            f"generation.{bad[0]}: out of range ({getattr(gen, bad[0])!r}).", details={"generation": bad}
        )
    return gen


def model_spec(version: ModelVersion) -> ModelSpec:
    gen = generation_settings(version.generation)
    return ModelSpec(
        version_id=version.pk,
        base_model=version.base_model,
        adapter_path=version.adapter_path,
        prompt_template=version.prompt_template,
        system_prompt=gen.system_prompt or None,
    )


# --- the registry -------------------------------------------------------------------------------------


def model_version_write(
    version: ModelVersion,
    *,
    to_status: str,
    actor: AbstractBaseUser | None,
    action: str,
    data: dict | None = None,
    **fields,
) -> ModelVersion:
    """Move a version to `to_status` (plus `fields`) and audit it; the caller holds the project's lock."""
    from_state = version.status
    version.status = to_status
    for name, value in fields.items():
        setattr(version, name, value)
    version.save(update_fields=["status", *fields])
    audit_record(
        actor=actor,
        action=action,
        target=version,
        project=version.project,
        from_state=from_state,
        to_state=to_status,
        data=data,
    )
    return version


@transaction.atomic
def model_version_register(
    *,
    project: Project,
    actor: AbstractBaseUser | None,
    name: str,
    base_model: str = "",
    adapter_path: str = "",
    prompt_template: str = "{input}",
    generation: dict | None = None,
) -> ModelVersion:
    """A new candidate version (project admins; actor None is the system, e.g. training or seed_demo).

    No base model means the default one. The directories must look loadable (400 naming the path and
    what is missing), except the tiny default, which the worker builds when it first needs it."""
    if actor is not None:
        check_project_admin(user=actor, project=project)
    gen = generation_settings(generation)
    if "{input}" not in prompt_template:
        raise ApplicationError("prompt_template: must contain {input}.", details={"prompt_template": []})
    base_model = base_model or default_base_model()
    model_files_check(base_model=base_model, adapter_path=adapter_path)
    version = ModelVersion.objects.create(
        project=project,
        name=name,
        base_model=base_model,
        adapter_path=adapter_path,
        prompt_template=prompt_template,
        generation=asdict(gen),
        created_by=stored_user(actor),
    )
    audit_record(
        actor=actor,
        action="model_version.register",
        target=version,
        project=project,
        to_state=version.status,
        data={"base_model": version.base_model, "adapter_path": adapter_path},
    )
    return version


def model_version_deploy(
    *, version_id: int, actor: AbstractBaseUser | None, action: str = "model_version.deploy"
) -> ModelVersion:
    """Make the version the project's deployed one; the previous one is retired. Idempotent.

    Locks the project row, so concurrent deploys of one project happen one after the other. On commit,
    drafting of the project's undrafted items starts with the new version. A version whose directories
    cannot load is refused (400), as at registration.
    """
    with transaction.atomic():
        version = ModelVersion.objects.filter(pk=version_id).select_related("project").first()
        if version is None:
            raise NotFound("Model version not found.")
        if actor is not None:
            check_project_admin(user=actor, project=version.project)
        project = Project.objects.select_for_update(no_key=True).get(pk=version.project_id)
        version = ModelVersion.objects.get(pk=version_id)  # re-read under the lock
        if version.status == ModelVersionStatus.DEPLOYED:
            return version
        if version.status == ModelVersionStatus.REJECTED:
            raise Conflict(f"Version '{version.name}' was rejected; it cannot be deployed.", code="rejected")
        # Its files may have gone since registration (a moved directory, a cleaned-up run).
        model_files_check(base_model=version.base_model, adapter_path=version.adapter_path)
        current = model_version_deployed(project_id=project.pk)
        if current is not None:
            current.project = project
            model_version_write(
                current,
                to_status=ModelVersionStatus.RETIRED,
                actor=actor,
                action="model_version.retire",
                data={"replaced_by": version.pk},
            )
        version.project = project
        model_version_write(
            version,
            to_status=ModelVersionStatus.DEPLOYED,
            actor=actor,
            action=action,
            data={"previous": current.pk if current else None},
            deployed_at=timezone.now(),
        )
        from .runs import runs_mark_promoted

        runs_mark_promoted(version=version, actor=actor)
        project_drafting_request(project_id=project.pk)
        return version


def model_version_rollback(
    *, project: Project, actor: AbstractBaseUser | None, to_version_id: int | None = None
) -> ModelVersion:
    """Deploy an earlier version again: `to_version_id`, or by default the one deployed before the current."""
    current = model_version_deployed(project_id=project.pk)
    earlier = ModelVersion.objects.filter(project=project).exclude(status=ModelVersionStatus.REJECTED)
    if current is not None:
        earlier = earlier.exclude(pk=current.pk).filter(created_at__lte=current.created_at)
    if to_version_id is not None:
        target = earlier.filter(pk=to_version_id).first()
        if target is None:
            raise Conflict("Roll back only to an earlier version of this project.", code="not_earlier")
    else:
        target = earlier.filter(deployed_at__isnull=False).order_by("-deployed_at", "-pk").first()
        if target is None:
            raise Conflict("No earlier deployed version to roll back to.", code="nothing_to_roll_back")
    return model_version_deploy(version_id=target.pk, actor=actor, action="model_version.rollback")


# --- drafting -----------------------------------------------------------------------------------------


def project_drafting_request(*, project_id: int) -> None:
    """Draft the project's new items once the current transaction commits (after imports, deploys)."""

    task_send_on_commit(DRAFTS_GENERATE, project_id)


def item_prompt(project: Project, *, messages: list, system: str = "", tools: list | None = None) -> Prompt:
    """What the model is asked about a conversation (an item's, a snapshot sample's, a question as one
    user turn): every turn before the reply, the project's prompt template around the last user turn
    (`prompt_turns`), the conversation's system prompt unless the template places it itself, its tools.

    Drafting, evaluation and training all ask through here, and the engine renders the result one way
    (`engine.prompts.render_prompt`), so a model is trained on exactly the prompts it drafts from. A
    conversation without a system prompt of its own gets the model version's (the Drafter's or the
    trainer's `system_prompt`)."""
    system_turn, turns = prompt_turns(template=project.prompt_template, system=system, messages=messages)
    return Prompt(messages=turns, system=system_turn, tools=list(tools or []))


# C0 control characters other than tab and newlines: a model can emit them (byte-level tokens), and
# PostgreSQL text cannot hold NUL.
_CONTROL = dict.fromkeys(c for c in range(32) if chr(c) not in "\t\n\r")


@dataclass(frozen=True)
class Generated:
    text: str
    confidence: float


def generate(version: ModelVersion, prompts: list[Prompt]) -> list[list[Generated]]:
    """The version's candidates (best first) for each prompt, generated in this (worker) process."""
    gen = generation_settings(version.generation)
    drafts = drafts_generate(
        model_spec(version), prompts, **gen.draft_kwargs(num_candidates=version.project.draft_candidates)
    )
    return [[Generated(clean_text(c.text), c.confidence) for c in draft.candidates] for draft in drafts]


def drafts_generate(spec: ModelSpec, prompts: list[Prompt], **draft_kwargs) -> list:
    """The model's drafts for the prompts, generated in this (worker) process under the model cache's lock."""
    from . import model_cache

    with model_cache.lock:
        return model_cache.drafter_for(spec).draft(prompts, **draft_kwargs)


def clean_text(text: str) -> str:
    return text.translate(_CONTROL).strip()


def undrafted_items(*, project_id: int):
    return Item.objects.filter(project_id=project_id, status=ItemStatus.NEW, drafts__isnull=True)


@dataclass(frozen=True)
class DraftingProgress:
    drafted: int
    remaining: int
    model_version: int | None


def drafts_generate_next(*, project_id: int, limit: int | None = None) -> DraftingProgress:
    """Draft the next `limit` undrafted new items (highest priority first) with the deployed version.

    Safe to run twice at once or again after a crash: storing goes through item_drafts_store, which
    skips an item that already has drafts or has been claimed meanwhile.
    """
    version = model_version_deployed(project_id=project_id)
    if version is None:
        return DraftingProgress(0, undrafted_items(project_id=project_id).count(), None)
    project = version.project
    limit = limit or settings.HANDOVER_DRAFT_CHUNK
    rows = list(
        undrafted_items(project_id=project_id)
        .order_by("-priority", "pk")
        .values_list("pk", "input", "system", "messages", "tools")[:limit]
    )
    drafted = 0
    if rows:
        prompts = [
            item_prompt(project, messages=messages or single_turn(text), system=system, tools=tools)
            for _, text, system, messages, tools in rows
        ]
        drafts = generate(version, prompts)
        for (item_id, *_), draft in zip(rows, drafts, strict=True):
            item = item_drafts_store(
                item_id=item_id,
                model_version_id=version.pk,
                candidates=[DraftCandidate(c.text, c.confidence) for c in draft],
            )
            if item is not None:
                drafted += 1
                if item.low_confidence and project.route_low_confidence_to_expert:
                    item_route_to_expert(item_id=item.pk)
    return DraftingProgress(drafted, undrafted_items(project_id=project_id).count(), version.pk)


def item_route_to_expert(*, item_id: int) -> Item | None:
    """A low-confidence drafted item skips annotation: drafted → submitted, flagged for the expert.

    Only in projects with an expert tier (three tiers) and only while nobody holds the item; returns None
    when it does not apply. The expert writes the answer (the draft is there to start from).
    """
    with transaction.atomic():
        item = item_lock(item_id)
        if (
            item.status != ItemStatus.DRAFTED
            or not item.low_confidence
            or item.leased_by_id
            or item.project.review_tiers < 3
        ):
            return None
        return item_write(
            item,
            actor=None,
            action="item.route_to_expert",
            to_status=ItemStatus.SUBMITTED,
            data={"reason": "low_confidence"},
            needs_expert=True,
        )


# --- hand-over (`ask`) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AskResult:
    answer: str
    confidence: float | None
    model_version: int | None
    handed_over: bool
    ticket: HandoverTicket | None = None


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
    """Send the question to a gpu worker and wait a bounded time for its candidates, or ModelUnavailable."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    from .tasks import ask_generate

    timeout = settings.HANDOVER_ASK_TIMEOUT
    try:
        # expires: a worker that comes back later drops the question instead of answering nobody.
        result = ask_generate.apply_async(
            (version.pk, question), queue=settings.HANDOVER_ASK_QUEUE, expires=timeout, retry=False
        )
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


def ask_retry_after() -> int:
    return max(1, math.ceil(settings.HANDOVER_ASK_TIMEOUT))


def ask_answer(*, project: Project, actor: AbstractBaseUser | None, question: str) -> AskResult:
    """Answer with the deployed model at or above the project's threshold; otherwise hand over to people.

    Without a deployed version every question is handed over. The caller has checked visibility.
    """
    question = check_question(question)
    version = model_version_deployed(project_id=project.pk)
    if version is None:
        ticket = ticket_open(project=project, actor=actor, question=question, version=None, candidates=[])
        return AskResult(project.fallback_message, None, None, True, ticket)
    out = ask_model(version=version, question=question)
    best = out["candidates"][0]
    if best["confidence"] >= project.confidence_threshold:
        return AskResult(best["text"], best["confidence"], version.pk, False)
    candidates = [DraftCandidate(c["text"], c["confidence"]) for c in out["candidates"]]
    ticket = ticket_open(
        project=project, actor=actor, question=question, version=version, candidates=candidates
    )
    return AskResult(project.fallback_message, best["confidence"], version.pk, True, ticket)


def ticket_open(
    *,
    project: Project,
    actor: AbstractBaseUser | None,
    question: str,
    version: ModelVersion | None,
    candidates: list[DraftCandidate],
) -> HandoverTicket:
    """The question becomes a high-priority production item (or joins the identical one) and a ticket.

    The model's candidates become the item's drafts, so people start from them.
    """
    with transaction.atomic():
        items_create(
            project=project,
            actor=actor,
            source=ItemSource.PRODUCTION,
            rows=[{"input": question, "priority": settings.HANDOVER_ASK_PRIORITY}],
        )
        item = (
            Item.objects.filter(project=project, content_hash=item_content_hash(input=question))
            .order_by("-pk")
            .first()
        )
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
        stored = item_drafts_store(item_id=item.pk, model_version_id=version.pk, candidates=candidates)
        if stored is not None and stored.low_confidence and project.route_low_confidence_to_expert:
            item_route_to_expert(item_id=item.pk)
    return ticket
