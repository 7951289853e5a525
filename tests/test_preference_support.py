"""Helpers of the preference tests: responses to one conversation, pairs and rank sets of them."""

from review.models import PairSource
from review.preference.services import pair_register, rank_set_create
from review.rating.services import response_create

QUESTION = "How do I reset my password?"


def responses(project, admin, texts, *, models=None, origin="candidate", question=QUESTION, **extra):
    """One response per text to the same question (models: one label per text, or none)."""
    models = models or [""] * len(texts)
    return [
        response_create(
            project=project, actor=admin, input=question, text=text, origin=origin, model=model, **extra
        )
        for text, model in zip(texts, models, strict=True)
    ]


def pair(
    project,
    admin,
    *,
    models=("v1", "v2"),
    texts=("Click 'Forgot password'.", "Ask IT."),
    question=QUESTION,
    source=PairSource.MANUAL,
    metadata=None,
):
    a, b = responses(project, admin, list(texts), models=list(models), question=question)
    return pair_register(project=project, response_a=a, response_b=b, source=source, metadata=metadata)


def rank_set(project, admin, texts=("First.", "Second.", "Third."), models=None):
    return rank_set_create(project=project, responses=responses(project, admin, list(texts), models=models))


def judge(api, user, pair_id, choice, **extra):
    return api(user).post(f"/api/pairs/{pair_id}/judgements/", {"choice": choice, **extra}, format="json")


def next_pair(api, user, project):
    return api(user).post(f"/api/projects/{project.pk}/tasks/next/", {"stage": "compare"}, format="json")


def next_rank(api, user, project):
    return api(user).post(f"/api/projects/{project.pk}/tasks/next/", {"stage": "rank"}, format="json")


def drafted_items(project, admin, rows, *, version_name="v1", candidates=(("Draft answer.", 0.9),)):
    """Items from `rows` (items_create's dicts), each drafted by a model version with `candidates`."""
    from annotation.models import Item
    from annotation.services import items_create
    from annotation.workflow.transitions import DraftCandidate, item_drafts_store
    from training.models import ModelVersion

    version = ModelVersion.objects.create(project=project, name=version_name)
    before = set(Item.objects.filter(project=project).values_list("pk", flat=True))
    items_create(project=project, actor=admin, rows=rows)
    items = list(Item.objects.filter(project=project).exclude(pk__in=before).order_by("pk"))
    for item in items:
        item_drafts_store(
            item_id=item.pk,
            model_version_id=version.pk,
            candidates=[DraftCandidate(text, confidence) for text, confidence in candidates],
        )
    return items


def approve_from_draft(project, people, answers):
    """Take the project's drafted items in order through three tiers: the annotator starts from the
    best draft and submits `answers` (one per item); expert and domain reviewer approve."""
    from annotation.models import Stage
    from annotation.workflow.transitions import item_submit
    from tests.workflow_helpers import claim, review

    for text in answers:
        item = claim(project, people["annotator"], Stage.ANNOTATE)
        best = item.drafts.order_by("rank").first()
        item_submit(
            item_id=item.pk, user=people["annotator"], text=text, version=item.version, draft_id=best.pk
        )
    for _ in answers:
        review(project, people["expert"], "expert")
    for _ in answers:
        review(project, people["domain_reviewer"], "domain")
