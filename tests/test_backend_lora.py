"""Promoting a LoRA version on a served backend: the adapter is loaded into the running server (vLLM's
dynamic LoRA endpoints), or the admin is told the exact serve command; rolling back unloads it.

vLLM cannot run on these machines, so its endpoints are played by a scripted HTTP server that keeps the
adapters it was asked to load (tests/model_servers.py): it checks the requests Handover sends and what
Handover does with the answers, not vLLM. The refusal path runs against llama.cpp's real server, which
has no such endpoint."""

import json

import pytest

from annotation.models import Draft
from annotation.services import items_create
from tests.model_servers import Stub, chat_route
from tests.test_backend_support import server_fields, tiny_server
from tests.test_drafting_support import lora_adapter_path, tiny_model_path
from training import backends, drafting
from training.engine import remote
from training.models import ModelVersion, ModelVersionStatus
from training.registry import model_version_deploy, model_version_register


@pytest.fixture(autouse=True)
def fresh_circuits():
    remote.BREAKER.reset()
    yield
    remote.BREAKER.reset()


class VllmLike:
    """vLLM's model list (adapters with their `parent`, the base with its `root`) and its LoRA endpoints,
    with VLLM_ALLOW_RUNTIME_LORA_UPDATING on."""

    def __init__(self):
        self.loaded: dict[str, str] = {}

    def routes(self):
        return {
            ("GET", "/v1/models"): self.models,
            ("POST", "/v1/chat/completions"): chat_route(),
            ("POST", "/v1/load_lora_adapter"): self.load,
            ("POST", "/v1/unload_lora_adapter"): self.unload,
        }

    def models(self, body):
        data = [{"id": "base", "root": "/srv/models/base", "parent": None}]
        data += [{"id": name, "root": path, "parent": "base"} for name, path in self.loaded.items()]
        return 200, {}, {"object": "list", "data": data}

    def load(self, body):
        if body["lora_name"] in self.loaded:
            return 400, {}, {"message": f"The lora adapter '{body['lora_name']}' has already been loaded."}
        self.loaded[body["lora_name"]] = body["lora_path"]
        return 200, {}, f"Success: LoRA adapter '{body['lora_name']}' added successfully."

    def unload(self, body):
        self.loaded.pop(body["lora_name"], None)
        return 200, {}, f"Success: LoRA adapter '{body['lora_name']}' removed successfully."


def served(project, stub, name, model, adapter_path=""):
    return model_version_register(
        project=project, actor=None, name=name, backend="openai", server_url=f"{stub.url}/v1",
        server_model=model, adapter_path=str(adapter_path),
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)  # the unload runs once the deploy has committed
def test_promoting_a_lora_loads_it_into_the_server_drafts_use_it_and_rollback_unloads_it(
    project, people, api
):
    # given a served base model deployed, and a LoRA version of it the server does not serve yet
    vllm = VllmLike()
    with Stub(vllm.routes()) as stub:
        base = served(project, stub, "base", "base")
        model_version_deploy(version_id=base.pk, actor=None)
        lora = served(project, stub, "lora", "support-lora", lora_adapter_path())
        admin = api(people["admin"])

        # when the admin promotes the LoRA version
        response = admin.post(f"/api/model-versions/{lora.pk}/promote/")

        # then its adapter was loaded into the running server under its name, and the answer says so
        assert response.status_code == 200, response.json()
        assert response.json()["backend_outcome"]["adapter"] == "loaded"
        (load,) = stub.calls("/v1/load_lora_adapter")
        assert load[2] == {"lora_name": "support-lora", "lora_path": str(lora_adapter_path())}
        assert ModelVersion.objects.get(pk=lora.pk).status == ModelVersionStatus.DEPLOYED

        # and drafts now ask the server for the adapter by name
        items_create(project=project, actor=None, rows=[{"input": "Where is my order?"}])
        drafting.drafts_generate_next(project_id=project.pk)
        assert Draft.objects.get(item__project=project).model_version_id == lora.pk
        assert stub.calls("/v1/chat/completions")[-1][2]["model"] == "support-lora"

        # when the admin rolls back to the base version
        response = admin.post(f"/api/model-versions/{base.pk}/rollback/")

        # then the adapter is unloaded from the server
        assert response.status_code == 200
        assert response.json()["backend_outcome"]["unloaded"] == ["support-lora"]
        assert stub.calls("/v1/unload_lora_adapter")[0][2] == {"lora_name": "support-lora"}
        assert vllm.loaded == {}


@pytest.mark.django_db
def test_an_adapter_the_server_already_serves_is_not_loaded_again(project):
    vllm = VllmLike()
    vllm.loaded["support-lora"] = str(lora_adapter_path())  # started with --lora-modules
    with Stub(vllm.routes()) as stub:
        lora = served(project, stub, "lora", "support-lora", lora_adapter_path())

        version = model_version_deploy(version_id=lora.pk, actor=None)

        assert version.backend_outcome.adapter == "served"
        assert not stub.calls("/v1/load_lora_adapter")


@pytest.mark.django_db
def test_a_server_that_cannot_load_adapters_gets_the_admin_the_exact_serve_command(project, people, api):
    # given a LoRA version on llama.cpp's server, which has no /v1/load_lora_adapter
    server = tiny_server()
    lora = model_version_register(
        project=project, actor=None, name="lora", base_model=str(tiny_model_path()),
        adapter_path=str(lora_adapter_path()), **{**server_fields(server), "server_model": "support-lora"},
    )  # fmt: skip

    # when the admin promotes it
    response = api(people["admin"]).post(f"/api/model-versions/{lora.pk}/promote/")

    # then it is refused with the command that serves the adapter beside the model it serves now
    assert response.status_code == 400
    error = response.json()["error"]
    command = (
        f"vllm serve {tiny_model_path()} --served-model-name tiny --enable-lora "
        f"--lora-modules support-lora={lora_adapter_path()}"
    )
    assert error["code"] == "adapter_not_loaded"
    assert error["details"]["serve_command"] == command
    assert command in error["message"] and f"{server.url} cannot load adapters" in error["message"]
    assert ModelVersion.objects.get(pk=lora.pk).status == ModelVersionStatus.CANDIDATE


@pytest.mark.django_db
def test_the_models_page_shows_the_outcome_of_a_promotion(project, people, client):
    vllm = VllmLike()
    with Stub(vllm.routes()) as stub:
        lora = served(project, stub, "lora", "support-lora", lora_adapter_path())
        client.force_login(people["admin"])

        response = client.post(f"/projects/{project.pk}/models/{lora.pk}/deploy/", follow=True)

    assert response.status_code == 200
    page = response.content.decode()
    assert "Deployed. Drafting of new items has started." in page
    assert f"Adapter &#x27;support-lora&#x27; loaded into {stub.url}." in page


def test_the_serve_command_raises_vllms_lora_rank_limit_for_a_large_adapter(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 64}))
    version = ModelVersion(base_model="/m/base", server_model="big", adapter_path=str(tmp_path))

    command = backends.serve_command(version, [{"id": "base", "root": "/srv/base"}])

    assert command == (
        f"vllm serve /srv/base --served-model-name base --enable-lora --lora-modules big={tmp_path} "
        "--max-lora-rank 64"
    )
