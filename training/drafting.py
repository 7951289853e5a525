"""Drafting: the deployed version's candidates for a project's new items, and the prompt they are asked.

Drafting never holds a lock while the model generates: it reads ids, generates, then stores each item's
drafts through `annotation.workflow.item_drafts_store`, which locks the item and re-checks its state.
A version generates in this process or on its OpenAI-compatible server (`backends`); a server that is
down or overloaded leaves the items it could not draft undrafted, and the task comes back later.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from annotation.dataio.conversation import prompt_turns, single_turn
from annotation.models import Item, ItemStatus, Project
from annotation.services import DRAFTS_GENERATE
from annotation.workflow.transitions import DraftCandidate, item_drafts_store, item_lock, item_write
from core.hooks import task_send_on_commit

from . import calibration, metrics
from .engine import remote
from .engine.prompts import Prompt
from .model_cache import ModelSpec
from .models import ModelVersion
from .registry import generation_settings, model_spec
from .selectors import model_version_deployed

logger = logging.getLogger(__name__)


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
    """The version's candidates (best first) for each prompt, in this (worker) process or on its server;
    a server that fails raises its `remote.RemoteError`."""
    outcomes = generate_each(version, prompts)
    for outcome in outcomes:
        if isinstance(outcome, remote.RemoteError):
            raise outcome
    return outcomes  # type: ignore[return-value]


def generate_each(version: ModelVersion, prompts: list[Prompt]) -> list[list[Generated] | remote.RemoteError]:
    """Like `generate`, but a prompt the server failed on gets its error and the others their drafts."""
    gen = generation_settings(version.generation)
    kwargs = gen.draft_kwargs(num_candidates=version.project.draft_candidates)
    drafts = drafts_generate(model_spec(version), prompts, strict=False, **kwargs)
    return [
        d
        if isinstance(d, remote.RemoteError)
        else [Generated(clean_text(c.text), c.confidence) for c in d.candidates]
        for d in drafts
    ]


def drafts_generate(
    spec: ModelSpec,
    prompts: list[Prompt],
    *,
    strict: bool = True,
    deadline: float | None = None,
    **draft_kwargs,
) -> list:
    """The model's drafts for the prompts: on the version's server (bounded concurrent requests), or in
    this (worker) process under the model cache's lock. `strict`: a server's failure raises; otherwise
    it takes the failed prompt's place in the list."""
    if spec.server is not None:
        client = remote.RemoteClient(spec.server)
        drafts = remote.draft(
            client, prompts, system_prompt=spec.system_prompt, deadline=deadline, **draft_kwargs
        )
        failed = next((d for d in drafts if isinstance(d, remote.RemoteError)), None)
        if strict and failed is not None:
            raise failed
        return drafts
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
    # The version's server failed on some items: come back after this many seconds (the items wait).
    retry_after: float | None = None
    error: str = ""


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
        .values_list("pk", "input", "system", "messages", "tools", "metadata")[:limit]
    )
    drafted, failure = 0, None
    if rows:
        prompts = [
            item_prompt(project, messages=messages or single_turn(text), system=system, tools=tools)
            for _, text, system, messages, tools, _ in rows
        ]
        drafts = generate_each(version, prompts)
        for (item_id, *_, metadata), draft in zip(rows, drafts, strict=True):
            if isinstance(draft, remote.RemoteError):
                failure = failure or draft
                continue
            candidates = [DraftCandidate(c.text, c.confidence) for c in draft]
            item = item_drafts_store(
                item_id=item_id,
                model_version_id=version.pk,
                candidates=candidates,
                low_confidence=calibration.below_threshold(
                    project=project,
                    version_id=version.pk,
                    metadata=metadata,
                    confidence=max((c.confidence for c in candidates), default=0.0),
                ),  # fmt: skip
            )
            if item is not None:
                drafted += 1
                if item.low_confidence and project.route_low_confidence_to_expert:
                    item_route_to_expert(item_id=item.pk)
    if drafted:
        metrics.DRAFTS.labels(str(project_id)).inc(drafted)
    remaining = undrafted_items(project_id=project_id).count()
    if failure is not None:
        logger.warning("drafting project %s: the model server failed: %s", project_id, failure)
        retry_after = getattr(failure, "retry_after", None) or remote.DEFAULT_COOLDOWN_S
        return DraftingProgress(drafted, remaining, version.pk, retry_after, str(failure))
    return DraftingProgress(drafted, remaining, version.pk)


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
