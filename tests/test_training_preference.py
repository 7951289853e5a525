"""Preference training through the run loop: a project whose objective is preference (or SFT then
preference) launches over REST on its judged pairs, trains DPO on the tiny model, registers a candidate,
is evaluated, rated by people and promoted; no pairs and a bad beta are 400s naming why."""

import json
import uuid
from pathlib import Path

import pytest
from django.utils import timezone

from review.models import Response, ResponseOrigin
from review.preference.judging import judgement_submit
from review.preference.services import pair_register
from review.rating.services import rating_claim_next, rating_submit, response_create
from tests.factories import MembershipFactory, UserFactory
from tests.test_training_support import TOPICS, TRIGGER_CHECK, approve_all, route_named_task, small_model_path
from training.engine.preference import REFERENCE_FILE
from training.models import ModelVersionStatus, RunStatus, TrainingRun
from training.registry import model_version_deploy, model_version_register
from training.runs import watchdog
from training.runs.execute import training_run_execute
from training.runs.pairs import PAIRS_FILE
from training.trigger import human_eval_check, training_trigger_evaluate

pytestmark = pytest.mark.django_db

DPO = {
    "learning_rate": 1e-2,
    "warmup_ratio": 0.0,
    "max_steps": 10,
    "batch_size": 4,
    "max_seq_len": 64,
    "beta": 0.1,
}


@pytest.fixture
def quiet_queues(settings, monkeypatch):
    settings.HANDOVER_TRAINING_QUEUE = f"nobody-{uuid.uuid4().hex}"
    route_named_task(monkeypatch, TRIGGER_CHECK, lambda project_id: None)


@pytest.fixture
def loop_project(project, settings, tmp_path):
    """One tier, a gate any trained model passes, the untrained small model deployed, three judges."""
    settings.HANDOVER_TRAINING_DIR = str(tmp_path / "runs")
    project.review_tiers, project.retrain_threshold, project.human_eval_size = 1, 1000, 3
    project.eval_rouge_l_floor, project.eval_rouge_l_tolerance = 0.0, 1.0
    project.ratings_per_response, project.human_eval_min_alpha = 2, 0.5
    project.save()
    base = model_version_register(
        project=project,
        actor=None,
        name="base",
        base_model=str(small_model_path()),
        generation={"max_new_tokens": 8},
    )
    model_version_deploy(version_id=base.pk, actor=None)
    return project


@pytest.fixture
def judges(project):
    users = []
    for i in range(2):
        user = UserFactory(username=f"judge{i}")
        MembershipFactory(project=project, user=user, role="expert")
        users.append(user)
    return users


def judged_pairs(project, admin, judge, n: int, start: int = 0, *, about_the_task: bool = True) -> list:
    """n questions, each with the preferred reply judged better than a refusal: the task's answer, or
    (about_the_task False) a friendly reply to a question outside the task."""
    made = []
    for i in range(start, start + n):
        topic, answer = TOPICS[i % 2]
        question, preferred = (
            (f"Question {i} about my {topic}?", answer)
            if about_the_task
            else (f"Tell me about country {i}.", f"Gladly: country {i} is lovely.")
        )
        good, bad = (
            response_create(
                project=project, actor=admin, input=question, text=text, origin="candidate", model=m
            )
            for text, m in ((preferred, "v2"), ("No.", "v1"))
        )
        pair = pair_register(project=project, response_a=good, response_b=bad)
        # with no lease the rater is shown the stored order, which pair_register decides
        judgement_submit(pair_id=pair.pk, rater=judge, choice="A" if pair.response_a_id == good.pk else "B")
        made.append(pair)
    return made


def launch(api, people, project, **body):
    return api(people["admin"]).post(
        f"/api/projects/{project.pk}/training-runs/",
        {"method": "lora", "hyperparameters": DPO, **body},
        format="json",
    )


def test_a_preference_run_trains_on_judged_pairs_and_is_promoted_through_the_loop(
    loop_project, people, judges, api, quiet_queues
):
    # given a preference project with approved items (its held-out prompts) and 16 judged pairs
    project = loop_project
    project.training_objective = "preference"
    project.save()
    approve_all(project, 8)
    judged_pairs(project, people["admin"], judges[0], 16)

    # when an admin launches a run over REST
    answer = launch(api, people, project)

    # then it is queued with the pairs frozen beside it: a later judgement does not change them
    assert answer.status_code == 201, answer.json()
    run = TrainingRun.objects.get(pk=answer.json()["id"])
    frozen = json.loads((Path(run.output_dir) / PAIRS_FILE).read_text())
    n_train, n_eval = len(frozen["train"]), len(frozen["eval"])
    assert n_train + n_eval == 16 and n_eval >= 1
    assert run.metrics["objective"] == "preference" and run.metrics["preference"]["train"] == n_train
    assert all(p["chosen"] != "No." and p["rejected"] == "No." for p in frozen["train"] + frozen["eval"])
    judged_pairs(project, people["admin"], judges[0], 2, start=100)

    # when the worker executes it
    status = training_run_execute(run_id=run.pk)

    # then DPO trained all its steps from the deployed model, a candidate adapter was registered and
    # evaluated against the deployed model, and the human round is open
    run.refresh_from_db()
    assert status == RunStatus.HUMAN_EVAL, run.status_reason
    assert run.step == run.total_steps == DPO["max_steps"] and len(run.loss_curve) == run.step
    assert run.loss_curve[-1] < run.loss_curve[0]
    assert run.metrics["training"]["stage"] == "preference"
    assert run.metrics["objective"] == "preference" and "candidate" in run.metrics
    assert (Path(run.output_dir) / "preference" / REFERENCE_FILE).exists()
    assert (Path(run.candidate.adapter_path) / "adapter_model.safetensors").exists()
    assert run.candidate.status == ModelVersionStatus.EVALUATED
    assert run.candidate.name == f"run {run.pk} (lora, preference)"

    # when two raters score the blind responses, the candidate's higher, and the round is concluded
    raters = judges
    assert Response.objects.filter(project=project, model_version=run.candidate).exists()
    for rater in raters:
        while (response := rating_claim_next(project=project, user=rater)) is not None:
            score = 5 if response.origin == ResponseOrigin.CANDIDATE else 2
            rating_submit(
                response_id=response.pk,
                rater=rater,
                scores={"accuracy": score, "politeness": score, "usefulness": score},
            )
    assert human_eval_check() == [run.pk]

    # then the preference-trained candidate is promoted and deployed, as an SFT one would be
    run.refresh_from_db()
    assert run.status == RunStatus.PROMOTED, run.status_reason
    run.candidate.refresh_from_db()
    assert run.candidate.status == ModelVersionStatus.DEPLOYED


def test_sft_then_preference_trains_both_stages_as_one_run(loop_project, people, judges, api, quiet_queues):
    # given a project that trains SFT then preference, with approved items and judged pairs on other
    # questions (so only the SFT stage can teach the task's answers)
    project = loop_project
    project.training_objective = "sft_then_preference"
    project.save()
    approve_all(project, 16)
    judged_pairs(project, people["admin"], judges[0], 12, about_the_task=False)

    # when a run is launched and executed
    answer = launch(
        api,
        people,
        project,
        hyperparameters={**DPO, "max_steps": 40, "batch_size": 8, "preference_learning_rate": 1e-3},
    )
    assert answer.status_code == 201, answer.json()
    run_id = answer.json()["id"]
    assert answer.json()["progress"]["total_steps"] == 80
    status = training_run_execute(run_id=run_id)

    # then both stages ran, one after the other, and the candidate keeps what SFT taught it (DPO started
    # from the SFT result): it answers the held-out questions far better than the deployed model
    run = TrainingRun.objects.get(pk=run_id)
    assert status in (RunStatus.HUMAN_EVAL, RunStatus.REJECTED), run.status_reason
    assert run.step == run.total_steps == 80 and len(run.loss_curve) == 80
    stages = run.metrics["training"]["stages"]
    assert [s["stage"] for s in stages] == ["sft", "preference"] and [s["steps"] for s in stages] == [40, 40]
    assert (Path(run.output_dir) / "train" / "stage-result.json").exists()
    assert run.loss_curve[-1] < run.loss_curve[40]  # the DPO stage learned too
    assert (Path(run.output_dir) / "preference" / REFERENCE_FILE).exists()
    outputs = [(o["candidate"], o["reference"]) for o in run.sample_outputs]
    assert run.metrics["candidate"]["rouge_l"] >= run.metrics["baseline"]["rouge_l"] + 0.3, outputs


def test_a_preference_launch_without_decided_pairs_is_a_400_no_pairs(
    loop_project, people, judges, api, quiet_queues
):
    # given a preference project whose only pair was called a tie
    project = loop_project
    project.training_objective = "preference"
    project.save()
    approve_all(project, 4)
    a, b = (
        response_create(project=project, actor=people["admin"], input="Q?", text=t, origin="candidate")
        for t in ("One.", "Two.")
    )
    pair = pair_register(project=project, response_a=a, response_b=b)
    judgement_submit(pair_id=pair.pk, rater=judges[0], choice="tie")

    # when an admin launches, then it is refused by name, and no run is left behind
    answer = launch(api, people, project)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "no_pairs" and "1 ties" in error["message"], error
    assert not TrainingRun.objects.filter(project=project).exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [("beta", 0), ("beta", "much"), ("label_smoothing", 0.5), ("preference_learning_rate", 5.0)],
)
def test_a_bad_preference_hyperparameter_is_a_400_naming_it(
    loop_project, people, judges, api, quiet_queues, name, value
):
    project = loop_project
    project.training_objective = "preference"
    project.save()
    judged_pairs(project, people["admin"], judges[0], 2)

    answer = launch(api, people, project, hyperparameters={**DPO, name: value})

    assert answer.status_code == 400
    assert f"hyperparameters.{name}" in answer.json()["error"]["message"]
    assert not TrainingRun.objects.filter(project=project).exists()


class WorkerLost(BaseException):
    """What a killed worker looks like to the run: it stops mid-step, writing nothing more."""


def test_a_run_lost_in_its_preference_stage_resumes_there_and_ends_as_planned(
    loop_project, people, judges, api, quiet_queues
):
    # given an SFT-then-preference run whose worker is lost at overall step 14, in the DPO stage
    project = loop_project
    project.training_objective = "sft_then_preference"
    project.save()
    approve_all(project, 8)
    judged_pairs(project, people["admin"], judges[0], 8)
    answer = launch(api, people, project, hyperparameters={**DPO, "max_steps": 8, "checkpoint_every": 4})
    run_id = answer.json()["id"]

    def lose_at_14(step, total, loss):
        if step == 14:
            raise WorkerLost

    with pytest.raises(WorkerLost):
        training_run_execute(run_id=run_id, on_step=lose_at_14)
    assert TrainingRun.objects.get(pk=run_id).status == RunStatus.RUNNING

    # when the watchdog finds it silent and a worker executes it again
    later = timezone.now() + timezone.timedelta(hours=1)
    assert watchdog.training_runs_watchdog(now=later)["requeued"] == [run_id]
    run = TrainingRun.objects.get(pk=run_id)
    assert "resuming from checkpoint-000004" in run.status_reason
    steps = []
    training_run_execute(run_id=run_id, on_step=lambda step, total, loss: steps.append(step))

    # then the SFT stage is not trained again, DPO goes on after its checkpoint, and the run ends whole
    run.refresh_from_db()
    assert steps == [13, 14, 15, 16]
    assert run.step == run.total_steps == 16 and len(run.loss_curve) == 16
    assert run.candidate is not None and run.resumed_from[-1].endswith("preference/checkpoint-000004")


def test_the_threshold_trigger_waits_while_a_preference_project_has_no_pairs(loop_project, quiet_queues):
    # given a preference project past its retrain threshold, with no judged pair
    project = loop_project
    project.training_objective, project.retrain_threshold = "preference", 4
    project.save()
    approve_all(project, 4)

    # when the trigger counts, then it starts nothing and raises nothing
    assert training_trigger_evaluate(project_id=project.pk) is None
    assert not TrainingRun.objects.filter(project=project).exists()
