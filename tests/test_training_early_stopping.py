"""Early stopping on eval loss: the trainer measures it every few steps, stops when it no longer improves,
and keeps the best model as the result; a run shows the eval curve and why it stopped."""

import threading
import uuid

import pytest
import torch
from peft import PeftModel
from playwright.sync_api import expect
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.engine.test_trainer import TASK
from tests.test_training_support import TRIGGER_CHECK, approve_all, route_named_task, small_model_path
from training.engine.config import TrainConfig
from training.engine.data import collate, encode_sample
from training.engine.trainer import train
from training.models import TrainingRun
from training.runs import execute
from training.runs.launch import training_run_create
from training.runs.status import _event_send

from .conftest import log_in

# Capitals the training set does not hold: the eval loss first falls (the model learns the answers' form)
# and then rises (it learns the training answers by heart), so it has a best step in the middle.
UNSEEN = [
    {"input": f"What is the capital of {c}?", "output": a}
    for c, a in [("Sweden", "Stockholm"), ("Iran", "Tehran"), ("Ghana", "Accra"), ("Mali", "Bamako")]
]


def config(tmp_path, **overrides) -> TrainConfig:
    values = {"output_dir": str(tmp_path), "learning_rate": 1e-2, "batch_size": 8, "warmup_ratio": 0.0,
              "max_seq_len": 64, "device": "cpu", "eval_every": 5}  # fmt: skip
    return TrainConfig(**(values | overrides))


def eval_loss_of(adapter_dir) -> float:
    """The mean answer-token loss of an adapter on UNSEEN, through transformers' own loss, apart from ours."""
    base = small_model_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter_dir).eval()
    batch = collate([encode_sample(tokenizer, s, max_seq_len=64) for s in UNSEEN], tokenizer.pad_token_id)
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], labels=batch["labels"]).loss.item()


def test_training_stops_once_the_eval_loss_stops_improving_and_keeps_the_best_model(tmp_path):
    # given a long run, evaluated every 5 steps, with a patience of 3 evaluations
    reported = []
    result = train(
        config(tmp_path, max_steps=200, early_stopping_patience=3),
        small_model_path(),
        TASK,
        eval_samples=UNSEEN,
        on_eval=lambda *e: reported.append(e),
    )

    # then it stopped three evaluations after its best one, long before the end
    steps, losses = zip(*result.eval_curve, strict=True)
    best = min(range(len(losses)), key=losses.__getitem__)
    assert result.early_stopped and not result.stopped_early
    assert result.best_step == steps[best] and result.best_eval_loss == losses[best]
    assert result.steps == result.best_step + 3 * 5 < 200 and steps[-1] == result.steps
    assert [r[0] for r in reported] == list(steps) and reported[-1][2:] == (result.best_step, min(losses))
    assert "early stopping" in result.stop_reason and f"step {result.best_step}" in result.stop_reason
    # and the result is the best step's model, the only one kept: measured apart, it has the best loss
    assert result.model_dir == tmp_path / f"best-{result.best_step:06d}"
    assert [p.name for p in tmp_path.glob("best-*")] == [result.model_dir.name]
    assert eval_loss_of(result.model_dir) == pytest.approx(result.best_eval_loss, rel=1e-4)


def test_with_evaluation_the_model_is_the_best_step_s_even_without_early_stopping(tmp_path):
    result = train(config(tmp_path, max_steps=30), small_model_path(), TASK, eval_samples=UNSEEN)

    assert result.steps == 30 and not result.early_stopped
    assert [s for s, _ in result.eval_curve] == [5, 10, 15, 20, 25, 30]
    assert result.best_step < 30 and result.model_dir.name == f"best-{result.best_step:06d}"
    assert not (tmp_path / "model").exists()
    assert result.stop_reason.startswith("trained all 30 steps; the best eval loss")


@pytest.fixture
def quiet_queues(settings, monkeypatch):
    settings.HANDOVER_TRAINING_QUEUE = f"nobody-{uuid.uuid4().hex}"
    route_named_task(monkeypatch, TRIGGER_CHECK, lambda project_id: None)


@pytest.mark.django_db(transaction=True)
def test_a_run_that_stops_early_shows_its_eval_curve_and_why_and_its_candidate_is_the_best(
    quiet_queues, client, api, project, people
):
    # given a run whose every evaluation after the first counts as no improvement (min delta 100)
    project.review_tiers, project.retrain_threshold, project.human_eval_size = 1, 1000, 2
    project.save()
    approve_all(project, 12)
    hyper = {"learning_rate": 0.01, "max_steps": 40, "warmup_ratio": 0, "max_seq_len": 64,
             "eval_every": 5, "early_stopping_patience": 2, "early_stopping_min_delta": 100}  # fmt: skip
    run = training_run_create(
        project=project, actor=None, hyperparameters=hyper, base_model=str(small_model_path()), send=False
    )

    # when a worker executes it
    execute.training_run_execute(run_id=run.pk)

    # then training stopped at step 15, its candidate is step 5's model, and evaluation followed
    run = TrainingRun.objects.select_related("candidate").get(pk=run.pk)
    training = run.metrics["training"]
    assert [s for s, _ in training["eval_loss_curve"]] == [5, 10, 15]
    assert training["best_step"] == 5 and training["early_stopped"]
    assert training["stop_reason"].startswith("early stopping at step 15")
    assert run.step == len(run.loss_curve) == 15 and run.total_steps == 40
    assert run.candidate.adapter_path.endswith("best-000005")
    assert run.metrics["candidate"]["n"] >= 1
    # and the API and the run page say so
    admin = people["admin"]
    body = api(admin).get(f"/api/training-runs/{run.pk}/").json()
    assert body["metrics"]["training"]["stop_reason"] == training["stop_reason"]
    client.force_login(admin)
    page = client.get(f"/projects/{project.pk}/training/{run.pk}/").content.decode()
    assert "Training stopped" in page and "early stopping at step 15" in page
    assert 'id="eval-curve"' in page and "[[5, " in page


@pytest.mark.django_db(transaction=True)
@pytest.mark.browser
def test_the_run_page_draws_eval_losses_as_they_arrive(page, live_asgi, people, project):
    project.review_tiers = 1
    project.save()
    approve_all(project, 4)
    run = training_run_create(project=project, actor=people["admin"], send=False)
    log_in(page, live_asgi, "admin")
    page.goto(f"{live_asgi}/projects/{project.pk}/training/{run.pk}/")
    page.wait_for_function("window.Chart && Object.keys(Chart.instances).length === 1")
    page.wait_for_timeout(500)  # the websocket opens
    evals = "() => Object.values(Chart.instances)[0].data.datasets[1].data"

    # when the worker reports an evaluation (from another thread, as a worker's process would)
    payload = {"run": run.pk, "step": 5, "eval_loss": 2.75, "best_step": 5, "best_eval_loss": 2.75}
    sender = threading.Thread(target=_event_send, args=(project.pk, "training_eval", payload))
    sender.start()
    sender.join()

    # then the eval curve gains that point, at its step
    expect(page.locator("#loss-chart")).to_be_visible()
    page.wait_for_function(f"({evals})().length === 1", timeout=10_000)
    assert page.evaluate(evals) == [{"x": 5, "y": 2.75}]
