"""The fine-tuning loop and the worker with a served version (llama.cpp's real server): a run trains
from the served version's local weights, its evaluation asks the server for the baseline, the
candidate is a LoRA of the same server; a real worker waits out a server that is down; the models
page registers a served version."""

import pytest

from annotation.models import Draft, Item, ItemStatus
from annotation.services import items_create
from core.errors import ApplicationError
from tests.factories import ProjectFactory
from tests.model_servers import LlamaServer, tiny_gguf
from tests.test_backend_support import remote_version_deploy, server_fields, small_server, tiny_server
from tests.test_drafting_support import tiny_model_path
from tests.test_training_support import (
    FAST_TRAINING,
    TRIGGER_CHECK,
    approve_all,
    route_named_task,
    small_model_path,
    wait_until,
)
from training.drafting import project_drafting_request
from training.engine import remote
from training.models import ModelVersion, RunStatus, TrainingRun
from training.registry import model_version_deploy, model_version_register
from training.runs.execute import training_run_execute
from training.runs.launch import training_run_create


@pytest.fixture(autouse=True)
def fresh_circuits():
    remote.BREAKER.reset()
    yield
    remote.BREAKER.reset()


def chat_requests(server: LlamaServer) -> int:
    """How many chat completions the server has answered (its access log)."""
    return server.log.read_text().count('"POST /v1/chat/completions HTTP/1.1" 200')


@pytest.mark.django_db(transaction=True)
def test_a_run_from_a_served_version_evaluates_it_on_its_server_and_its_lora_targets_that_server(
    settings, monkeypatch
):
    # given a project whose deployed version is the small model on llama.cpp's server, with the same
    # weights as a local directory to train from
    settings.HANDOVER_TRAINING_QUEUE = "nobody-consumes-this"
    route_named_task(monkeypatch, TRIGGER_CHECK, lambda project_id: None)
    server = small_server()
    project = ProjectFactory(review_tiers=1, retrain_threshold=1000, human_eval_size=2)
    baseline = model_version_register(
        project=project, actor=None, name="served", base_model=str(small_model_path()),
        generation={"max_new_tokens": 12}, **server_fields(server),
    )  # fmt: skip
    model_version_deploy(version_id=baseline.pk, actor=None)
    approve_all(project, 16)
    before = chat_requests(server)

    # when a LoRA run trains and is evaluated (in this process, as `manage.py train` runs it)
    run = training_run_create(
        project=project, actor=None, method="lora", hyperparameters=FAST_TRAINING, send=False
    )
    training_run_execute(run_id=run.pk)

    # then the baseline answered every held-out prompt on the server; the candidate, which llama.cpp
    # cannot load as an adapter, answered in-process, and the run says so
    run = TrainingRun.objects.select_related("candidate").get(pk=run.pk)
    assert run.status == RunStatus.HUMAN_EVAL, run.status_reason
    evaluated_on = run.metrics["evaluated_on"]
    assert evaluated_on["baseline"] == server.url and evaluated_on["candidate"] == "in-process"
    assert "load_lora_adapter answered 404" in evaluated_on["why"]
    assert chat_requests(server) - before >= run.metrics["baseline"]["n"]
    assert run.metrics["candidate"]["rouge_l"] > run.metrics["baseline"]["rouge_l"]

    # and the candidate is a LoRA on the same server under its own name, trained from the local copy
    candidate = run.candidate
    assert (candidate.backend, candidate.server_url) == ("openai", server.url)
    assert candidate.server_model == f"handover-run-{run.pk}"
    assert candidate.base_model == str(small_model_path()) and candidate.adapter_path

    # when it is promoted, the server is asked first, and the admin learns how to serve it
    with pytest.raises(ApplicationError) as refused:
        model_version_deploy(version_id=candidate.pk, actor=None)
    assert refused.value.code == "adapter_not_loaded"
    assert f"--lora-modules handover-run-{run.pk}={candidate.adapter_path}" in refused.value.message


@pytest.mark.django_db
def test_training_from_a_served_version_without_local_weights_is_refused_naming_why(settings, monkeypatch):
    settings.HANDOVER_TRAINING_QUEUE = "nobody-consumes-this"
    route_named_task(monkeypatch, TRIGGER_CHECK, lambda project_id: None)
    project = ProjectFactory(review_tiers=1, retrain_threshold=1000)
    remote_version_deploy(project)  # no base_model: only the server has the weights
    approve_all(project, 4)

    with pytest.raises(ApplicationError, match="names no local base model directory to train from"):
        training_run_create(project=project, actor=None, method="lora", send=False)


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_real_worker_waits_for_a_down_server_and_drafts_once_it_is_back(celery_worker_process, tmp_path):
    # given a version on a server of its own, deployed while it ran, which then goes down
    server = LlamaServer(tiny_gguf(tiny_model_path(), tiny_model_path().parent / "tiny.gguf")).start()
    try:
        project = ProjectFactory()
        remote_version_deploy(project, server, options={"cooldown_s": 2})
        server.stop()

        # when items arrive and drafting is requested
        items_create(
            project=project, actor=None, rows=[{"input": q} for q in ("Where is my order?", "Hi", "退货")]
        )
        project_drafting_request(project_id=project.pk)

        # then nothing is drafted while it is down, and nothing is lost
        assert not wait_until(lambda: Draft.objects.filter(item__project=project).exists(), timeout=4)
        assert Item.objects.filter(project=project, status=ItemStatus.NEW).count() == 3

        # when the server comes back on the same port, the worker's next attempt drafts every item
        server = LlamaServer(server.gguf, port=server.port).start()
        assert wait_until(
            lambda: Item.objects.filter(project=project, status=ItemStatus.DRAFTED).count() == 3, timeout=60
        )
    finally:
        server.stop()


@pytest.mark.django_db
def test_admins_register_a_served_version_on_the_models_page(project, people, client):
    server = tiny_server()
    client.force_login(people["admin"])
    fields = server_fields(server)
    form = {**fields, "name": "served", "server_options": '{"request_extra": {"repeat_penalty": 1.0}}'}

    response = client.post(f"/projects/{project.pk}/models/", form, follow=True)

    page = response.content.decode()
    assert "Version served is registered." in page
    assert f"<code>tiny</code> @ <code>{server.url}</code>" in page
    version = ModelVersion.objects.get(project=project)
    assert version.server_options["request_extra"] == {"repeat_penalty": 1.0}
    assert fields["server_api_key"] not in page


@pytest.mark.django_db
def test_the_models_page_says_what_the_server_answered_and_keeps_the_key_out(project, people, client):
    client.force_login(people["admin"])
    form = {**server_fields(tiny_server()), "name": "served", "server_model": "nope", "server_options": "{}"}

    response = client.post(f"/projects/{project.pk}/models/", form)

    page = response.content.decode()
    assert "does not list &#x27;nope&#x27;" in page
    assert form["server_api_key"] not in page
    assert 'value="nope"' in page  # the form comes back filled in, except the key
    assert not ModelVersion.objects.exists()
