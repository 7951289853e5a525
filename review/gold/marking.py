"""Marking gold tasks: items (annotation and review checks), responses (rating), pairs (compare), and
the gold keys of imported records. Every mark is a project admin's, and audited."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from annotation.models import Item, ItemStatus, Project, Stage
from annotation.permissions import check_project_admin
from annotation.services import audit_record
from annotation.workflow.transitions import item_lock, item_write, revision_create
from core.errors import ApplicationError, Conflict, NotFound
from review.math import gold as gold_math
from review.models import Choice, Decision, GoldKind, GoldTask, Pair, Response
from review.rating.services import rubric_current, rubric_dimensions

REVIEW_STAGE_STATUS = {Stage.EXPERT: ItemStatus.SUBMITTED, Stage.DOMAIN: ItemStatus.DOMAIN_REVIEW}
# Keys of an imported record that make its item a gold task (and are taken out of its metadata).
IMPORT_KEYS = ("gold", "gold_answer", "gold_decision", "gold_stage", "gold_min_similarity")


def gold_mark_item(
    *,
    project: Project,
    actor: AbstractBaseUser | None,
    item_id: int,
    expected_text: str = "",
    min_similarity: float | None = None,
    expected_decision: str = "",
    stage: str = Stage.EXPERT,
    check: bool = True,
) -> GoldTask:
    """Make an item a gold task. With `expected_decision` (approve | reject) it is a review check: its
    current answer (or, for an item not yet answered, its reference output as a revision by `actor`)
    waits in the `stage` queue (expert | domain). Otherwise an annotation check against `expected_text`
    (default: the reference output), for an item still waiting for annotation. The item leaves the
    normal queues for good: its answer is never approved into the data."""
    if check:
        check_project_admin(user=actor, project=project)
    with transaction.atomic():
        item = item_lock(item_id)
        if item.project_id != project.pk:
            raise NotFound("Item not found.")
        if item.is_gold:
            raise Conflict(f"Item #{item.pk} is already a gold task.", code="already_gold")
        if item.leased_by_id is not None:
            raise Conflict(f"Item #{item.pk} is held by someone; mark it when it is free.", code="item_held")
        if min_similarity is not None and not 0 <= min_similarity <= 1:
            raise ApplicationError(
                "min_similarity: a number from 0 to 1.", details={"min_similarity": ["0–1"]}
            )
        if expected_decision:
            task = _review_gold(item=item, actor=actor, expected_decision=expected_decision, stage=stage)
        else:
            expected_text = (expected_text or item.reference_output).strip()
            if not expected_text:
                raise ApplicationError(
                    "expected_text: an annotation check needs the gold answer (or a reference output).",
                    details={"expected_text": ["This field is required."]},
                )
            if item.status not in (ItemStatus.NEW, ItemStatus.DRAFTED):
                raise Conflict(
                    f"Item #{item.pk} is {item.status}; an annotation check must still wait for annotation.",
                    code="not_markable",
                )
            task = GoldTask(
                kind=GoldKind.ANNOTATE, expected_text=expected_text, min_similarity=min_similarity
            )
        task.project, task.item, task.created_by = project, item, actor
        task.save()
        Item.objects.filter(pk=item.pk).update(is_gold=True)
        audit_record(actor=actor, action="gold.mark", target=task, project=project, to_state=task.kind)
        return task


def _review_gold(*, item: Item, actor, expected_decision: str, stage: str) -> GoldTask:
    if expected_decision not in (Decision.APPROVE, Decision.REJECT):
        raise ApplicationError(
            "expected_decision: approve or reject.", details={"expected_decision": [expected_decision]}
        )
    if stage not in REVIEW_STAGE_STATUS:
        raise ApplicationError("stage: expert or domain.", details={"stage": [stage]})
    resting = REVIEW_STAGE_STATUS[stage]
    if item.status in (ItemStatus.NEW, ItemStatus.DRAFTED):
        if not item.reference_output.strip():
            raise Conflict(f"Item #{item.pk} has no answer to review.", code="nothing_to_review")
        revision = revision_create(
            item=item, author=actor, stage=Stage.ANNOTATE, text=item.reference_output, draft=None
        )
        item_write(
            item,
            actor=actor,
            action="gold.answer_placed",
            to_status=resting,
            data={"revision": revision.pk},
            current_revision=revision,
        )
    elif item.status != resting or item.current_revision_id is None:
        raise Conflict(
            f"Item #{item.pk} is {item.status}; a review check must wait in the {stage} queue.",
            code="not_markable",
        )
    return GoldTask(kind=GoldKind.REVIEW, expected_decision=expected_decision)


def gold_mark_response(
    *,
    project: Project,
    actor: AbstractBaseUser,
    response_id: int,
    expected_scores: dict | None = None,
    expected_weighted: list | None = None,
) -> GoldTask:
    """Make a response a gold rating task: right when scored within `expected_scores` ({dimension:
    [low, high]}) and, if given, a weighted score within `expected_weighted`."""
    check_project_admin(user=actor, project=project)
    response = Response.objects.filter(pk=response_id, project=project).first()
    if response is None:
        raise NotFound("Response not found.")
    dimensions = rubric_dimensions(rubric_current(project=project))
    problems = gold_math.ranges_check(
        expected_scores or {}, {d.key: (d.scale_min, d.scale_max) for d in dimensions}
    )
    weighted_problem = gold_math.weighted_range_check(expected_weighted)
    if weighted_problem:
        problems["expected_weighted"] = weighted_problem
    if not problems and not expected_scores and expected_weighted is None:
        problems["expected_scores"] = "give the expected ranges, or expected_weighted"
    if problems:
        message = "; ".join(f"expected_scores.{key}: {p}" for key, p in problems.items())
        raise ApplicationError(message, code="invalid_gold", details={"expected_scores": problems})
    if response.ratings.exists():
        raise Conflict(
            "This response has ratings already; a gold response must be fresh.", code="not_markable"
        )
    return _gold_task_create(
        project=project,
        actor=actor,
        kind=GoldKind.RATE,
        response=response,
        expected_scores=expected_scores or {},
        expected_weighted=list(expected_weighted) if expected_weighted is not None else None,
    )


def gold_mark_pair(
    *, project: Project, actor: AbstractBaseUser, pair_id: int, expected_choice: str
) -> GoldTask:
    """Make a compare pair a gold task: right when judged `expected_choice` (a | b | tie, the pair's
    stored order, whatever order a person is shown)."""
    check_project_admin(user=actor, project=project)
    pair = Pair.objects.filter(pk=pair_id, project=project, rank_set__isnull=True).first()
    if pair is None:
        raise NotFound("Pair not found.")
    if expected_choice not in Choice.values:
        raise ApplicationError(
            "expected_choice: a, b or tie (the pair's stored order).",
            details={"expected_choice": [expected_choice]},
        )
    if pair.judgements.exists():
        raise Conflict("This pair has judgements already; a gold pair must be fresh.", code="not_markable")
    return _gold_task_create(
        project=project, actor=actor, kind=GoldKind.COMPARE, pair=pair, expected_choice=expected_choice
    )


def _gold_task_create(*, project, actor, **fields) -> GoldTask:
    try:
        with transaction.atomic():
            task = GoldTask.objects.create(project=project, created_by=actor, **fields)
            audit_record(actor=actor, action="gold.mark", target=task, project=project, to_state=task.kind)
            return task
    except IntegrityError:
        raise Conflict("This is already a gold task.", code="already_gold") from None


def gold_retire(*, project: Project, actor: AbstractBaseUser, gold_task_id: int) -> GoldTask:
    """Serve a gold task no more; its attempts still count. Its item stays out of the data."""
    check_project_admin(user=actor, project=project)
    with transaction.atomic():
        task = GoldTask.objects.select_for_update().filter(pk=gold_task_id, project=project).first()
        if task is None:
            raise NotFound("Gold task not found.")
        if task.active:
            task.active = False
            task.save(update_fields=["active"])
            audit_record(actor=actor, action="gold.retire", target=task, project=project, to_state="retired")
        return task


def gold_items_from_import(project_id: int, actor_id: int | None) -> None:
    """An import's records with a truthy `gold` key (CSV: true, yes, 1) become gold tasks: an
    annotation check against `gold_answer` (else the record's reply), or with `gold_decision` a review
    check of the record's reply in the `gold_stage` queue (expert, the default, or domain), with an
    optional `gold_min_similarity`. The gold keys leave the item's metadata, so nothing tells the item
    apart. Runs in the import's transaction: a bad gold key fails the import, naming the item."""
    project = Project.objects.get(pk=project_id)
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    items = Item.objects.filter(
        project=project, is_gold=False, status=ItemStatus.NEW, metadata__has_key="gold"
    )
    for item in items.order_by("pk"):
        meta = dict(item.metadata)
        spec = {key: meta.pop(key, None) for key in IMPORT_KEYS}
        Item.objects.filter(pk=item.pk).update(metadata=meta)
        if not _truthy(spec["gold"]):
            continue
        name = item.external_id or f"#{item.pk}"
        try:
            similarity = spec["gold_min_similarity"]
            gold_mark_item(
                project=project,
                actor=actor,
                item_id=item.pk,
                expected_text=str(spec["gold_answer"] or ""),
                min_similarity=float(similarity) if similarity not in (None, "") else None,
                expected_decision=str(spec["gold_decision"] or "").strip().lower(),
                stage=str(spec["gold_stage"] or Stage.EXPERT).strip().lower(),
                check=False,
            )
        except (ApplicationError, ValueError) as exc:
            message = exc.message if isinstance(exc, ApplicationError) else str(exc)
            raise ApplicationError(f"item {name}: gold: {message}", code="invalid_gold") from None


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y")
    return bool(value)
