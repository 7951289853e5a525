"""Pairs from two model versions: both answer the same prompts, and each prompt's two answers become a
review Pair (source `model_versions`) for the compare queue and the leaderboard.

An admin asks (`versions_compare_request`: checked, then sent to the gpu queue on commit); the worker
generates with each version where it generates (in-process or on its server, `drafting.drafts_generate`)
and registers the pairs (`versions_compare`). No lock is held while a model generates.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.dataio.conversation import last_user_text, single_turn, turns_edited
from annotation.models import AuditEvent, Item, ItemStatus, Project
from annotation.permissions import check_project_admin
from annotation.services import audit_record
from core.errors import ApplicationError
from core.hooks import task_send_on_commit

from .drafting import clean_text, drafts_generate, item_prompt
from .engine import remote
from .models import DatasetSnapshot, ModelVersion, SnapshotSplit
from .registry import generation_settings, model_spec

VERSIONS_COMPARE = "training.tasks.versions_compare_run"
PROMPT_SOURCES = ("approved", "eval")  # approved items' conversations, newest first; the eval split
MAX_PROMPTS = 500
DONE = "versions_compare.done"


@dataclass(frozen=True)
class ComparePrompt:
    item: Item | None
    system: str
    messages: list
    tools: list


def versions_check(*, project: Project, version_a, version_b) -> tuple[ModelVersion, ModelVersion]:
    """Two different versions of this project, by id; else 400 naming the field."""
    found = []
    for field, pk in (("version_a", version_a), ("version_b", version_b)):
        version = (
            ModelVersion.objects.filter(pk=pk, project=project).first()
            if isinstance(pk, int) and not isinstance(pk, bool)
            else None
        )
        if version is None:
            raise ApplicationError(
                f"{field}: no model version {pk!r} in this project.", details={field: ["Unknown version."]}
            )
        found.append(version)
    if found[0].pk == found[1].pk:
        raise ApplicationError(
            "version_b: the same version as version_a; a pair compares two versions.",
            code="same_version",
            details={"version_b": ["Same as version_a."]},
        )
    if found[0].name == found[1].name:
        raise ApplicationError(
            f"version_b: named {found[1].name!r} as version_a is; the leaderboard tells versions apart by"
            " name, so rename one first.",
            code="same_name",
            details={"version_b": ["Same name as version_a."]},
        )
    return found[0], found[1]


def _arguments_check(*, n, prompts: str) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_PROMPTS:
        raise ApplicationError(f"n: a number of prompts from 1 to {MAX_PROMPTS}.", details={"n": [str(n)]})
    if prompts not in PROMPT_SOURCES:
        raise ApplicationError(
            f"prompts: {prompts!r} is not one of {', '.join(PROMPT_SOURCES)}.", details={"prompts": [prompts]}
        )


def versions_compare_request(
    *,
    project: Project,
    version_a: int,
    version_b: int,
    n: int,
    actor: AbstractBaseUser,
    prompts: str = "approved",
) -> str:
    """Check and send the comparison to the gpu queue once the request commits; returns the task id."""
    check_project_admin(user=actor, project=project)
    a, b = versions_check(project=project, version_a=version_a, version_b=version_b)
    _arguments_check(n=n, prompts=prompts)
    if not compare_prompts(project=project, n=1, prompts=prompts):
        missing = {
            "approved": "no item of this project is approved yet",
            "eval": "the project has no snapshot with an evaluation split yet",
        }[prompts]
        raise ApplicationError(f"prompts: {missing}.", code="no_prompts", details={"prompts": [prompts]})
    task_id = str(uuid.uuid4())
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="versions_compare.requested",
            target=project,
            project=project,
            data={"task_id": task_id, "version_a": a.pk, "version_b": b.pk, "n": n, "prompts": prompts},
        )
        task_send_on_commit(
            VERSIONS_COMPARE,
            project.pk,
            a.pk,
            b.pk,
            n,
            actor.pk,
            prompts,
            task_id,
            queue=settings.HANDOVER_TRAINING_QUEUE,
            task_id=task_id,
        )
    return task_id


def compare_prompts(*, project: Project, n: int, prompts: str = "approved") -> list[ComparePrompt]:
    """The conversations both versions answer: the `n` most recently approved items' (as approved:
    earlier-turn edits applied), or the latest snapshot's eval and golden samples (frozen, redacted)."""
    if prompts == "eval":
        snapshot = DatasetSnapshot.objects.filter(project=project).order_by("-created_at", "-pk").first()
        if snapshot is None:
            return []
        rows = (
            snapshot.samples.filter(split__in=[SnapshotSplit.EVAL, SnapshotSplit.GOLDEN])
            .select_related("item")
            .order_by("-item_id")[:n]
        )
        return [
            ComparePrompt(r.item, r.system, r.messages or single_turn(r.input), list(r.tools or []))
            for r in rows
        ]
    items = (
        Item.objects.filter(project=project, status=ItemStatus.APPROVED)
        .select_related("current_revision")
        .order_by("-approved_at", "-pk")[:n]
    )
    return [
        ComparePrompt(
            item,
            item.system,
            turns_edited(
                item.messages or single_turn(item.input),
                item.current_revision.turn_edits if item.current_revision else None,
            ),
            list(item.tools or []),
        )
        for item in items
    ]


def _answers(version: ModelVersion, prompts: list) -> list[str | None]:
    """The version's best answer to each prompt, generated as it drafts (its own generation settings,
    one candidate); None where its server failed on that prompt."""
    kwargs = generation_settings(version.generation).draft_kwargs(num_candidates=1)
    drafts = drafts_generate(model_spec(version), prompts, strict=False, **kwargs)
    return [None if isinstance(d, remote.RemoteError) else clean_text(d.text) for d in drafts]


def _done(project: Project, task_id: str) -> dict | None:
    if not task_id:
        return None
    event = AuditEvent.objects.filter(project=project, action=DONE, data__task_id=task_id).first()
    return event.data if event is not None else None


def versions_compare(
    *,
    project: Project,
    version_a: int,
    version_b: int,
    n: int,
    actor: AbstractBaseUser | None = None,
    prompts: str = "approved",
    task_id: str = "",
) -> dict:
    """Both versions answer the same `n` prompts; each prompt's two answers become Responses (their
    versions' names as `model`, so the leaderboard counts them) and a Pair, source `model_versions`.
    Prompts a server failed on make no pair and are counted. Runs in the worker; a redelivered task
    (same `task_id`) finds its result and does nothing again."""
    from review.models import PairSource, Response, ResponseOrigin
    from review.preference.services import pair_register

    if actor is not None:
        check_project_admin(user=actor, project=project)
    a, b = versions_check(project=project, version_a=version_a, version_b=version_b)
    _arguments_check(n=n, prompts=prompts)
    if (done := _done(project, task_id)) is not None:
        return done
    chosen = compare_prompts(project=project, n=n, prompts=prompts)
    asked = [item_prompt(project, messages=p.messages, system=p.system, tools=p.tools) for p in chosen]
    answers = {v.pk: _answers(v, asked) if asked else [] for v in (a, b)}
    with transaction.atomic():
        Project.objects.select_for_update(no_key=True).get(pk=project.pk)  # one finisher per task id
        if (done := _done(project, task_id)) is not None:
            return done
        pair_ids, failed = [], 0
        for i, prompt in enumerate(chosen):
            texts = (answers[a.pk][i], answers[b.pk][i])
            if None in texts:
                failed += 1
                continue
            responses = [
                Response.objects.create(
                    project=project,
                    input=last_user_text(prompt.messages) or (prompt.item.input if prompt.item else ""),
                    system=prompt.system,
                    messages=prompt.messages,
                    text=text,
                    origin=ResponseOrigin.DRAFT,
                    model=version.name,
                    model_version=version,
                    item=prompt.item,
                    created_by=actor,
                )
                for version, text in zip((a, b), texts, strict=True)
            ]
            pair = pair_register(
                project=project,
                response_a=responses[0],
                response_b=responses[1],
                source=PairSource.MODEL_VERSIONS,
                item=prompt.item,
                actor=actor,
            )
            pair_ids.append(pair.pk)
        result = {
            "task_id": task_id,
            "version_a": a.pk,
            "version_b": b.pk,
            "prompts": prompts,
            "asked": len(chosen),
            "pairs_created": len(pair_ids),
            "failed": failed,
            "pairs": pair_ids,
        }
        audit_record(actor=actor, action=DONE, target=project, project=project, data=result)
    return result
