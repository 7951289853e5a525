"""The fine-tuning loop end to end through a real Celery worker and the tiny model (CPU)."""

from pathlib import Path

import pytest

from annotation.models import Draft, Item, ItemStatus, Role
from annotation.services import items_create
from review.models import Response, ResponseOrigin
from review.rating.services import rating_claim_next, rating_submit
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.test_training_support import FAST_TRAINING, approve_all, small_model_path, wait_until
from training.models import ModelVersionStatus, RunStatus, TrainingRun
from training.registry import model_version_deploy, model_version_register
from training.trigger import human_eval_check


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_approvals_train_evaluate_rate_promote_and_the_new_version_drafts(celery_worker_process):
    # given a project whose deployed model is the untrained small model, threshold 16, two raters
    project = ProjectFactory(
        review_tiers=1,
        retrain_threshold=16,
        ratings_per_response=2,
        human_eval_size=3,
        human_eval_min_alpha=0.5,
        training_hyperparameters=FAST_TRAINING,
    )
    base = model_version_register(
        project=project,
        actor=None,
        name="base",
        base_model=str(small_model_path()),
        generation={"max_new_tokens": 12},
    )
    model_version_deploy(version_id=base.pk, actor=None)
    raters = []
    for name in ("rater-a", "rater-b"):
        user = UserFactory(username=f"{name}-{project.pk}")
        MembershipFactory(project=project, user=user, role=Role.EXPERT)
        raters.append(user)

    # when threshold-many items are approved through the real workflow
    approve_all(project, 16)

    # then exactly one run starts, trains an adapter, evaluates and opens a human round
    assert wait_until(lambda: TrainingRun.objects.filter(project=project).exists(), timeout=30)
    assert wait_until(
        lambda: (
            TrainingRun.objects.get(project=project).status
            not in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.EVALUATING)
        ),
        timeout=240,
    ), TrainingRun.objects.get(project=project).status
    assert TrainingRun.objects.filter(project=project).count() == 1
    run = TrainingRun.objects.get(project=project)
    assert run.status == RunStatus.HUMAN_EVAL, run.status_reason
    assert (Path(run.candidate.adapter_path) / "adapter_model.safetensors").exists()
    assert run.step == run.total_steps == FAST_TRAINING["max_steps"] and len(run.loss_curve) == run.step
    assert run.loss_curve[-1] < run.loss_curve[0]
    # the model measurably learned: on held-out questions it beats the deployed (untrained) model
    metrics = run.metrics
    assert metrics["candidate"]["rouge_l"] >= metrics["baseline"]["rouge_l"] + 0.3, metrics
    assert len(run.sample_outputs) == metrics["candidate"]["n"] >= 1
    assert run.candidate.status == ModelVersionStatus.EVALUATED

    # when two raters score the blind pairs on the rubric (the candidate better), through the rate queue
    responses = Response.objects.filter(project=project)
    assert responses.count() == 2 * run.human_eval.size
    for rater in raters:
        while (response := rating_claim_next(project=project, user=rater)) is not None:
            good = response.origin == ResponseOrigin.CANDIDATE
            score = 5 if good else 2
            rating_submit(
                response_id=response.pk,
                rater=rater,
                scores={"accuracy": score, "politeness": score, "usefulness": score},
            )

    # and beat concludes the round
    assert human_eval_check() == [run.pk]

    # then the candidate is promoted (alpha 1, better), the run says so, and the result is recorded
    run.refresh_from_db()
    assert run.status == RunStatus.PROMOTED
    result = run.human_eval.result
    assert result["win_rate"] == 1.0 and result["alpha"] == pytest.approx(1.0) and result["auto_promote"]
    run.candidate.refresh_from_db()
    assert run.candidate.status == ModelVersionStatus.DEPLOYED

    # and new items are drafted by the new version
    question = "Question 99 about my refund?"
    items_create(project=project, actor=None, rows=[{"input": question}])
    new_drafts = Draft.objects.filter(item__project=project, item__input=question)
    assert wait_until(new_drafts.exists, timeout=60)
    draft = new_drafts.get()
    assert draft.model_version_id == run.candidate_id
    assert Item.objects.get(pk=draft.item_id).status == ItemStatus.DRAFTED
