"""Helpers of the backend tests: llama.cpp's server on the tiny (and the small) model, started once per
test process, and versions registered on it."""

import atexit
import functools
from pathlib import Path

from tests.model_servers import API_KEY, LLAMA_CPP_REQUEST_EXTRA, LlamaServer, tiny_gguf
from tests.test_drafting_support import tiny_model_path
from tests.test_training_support import small_model_path


def _serve(model_dir: Path) -> LlamaServer:
    server = LlamaServer(tiny_gguf(model_dir, model_dir.parent / f"{model_dir.name}.gguf")).start()
    atexit.register(server.stop)
    return server


@functools.cache
def tiny_server() -> LlamaServer:
    """llama.cpp's OpenAI-compatible server on the tiny model, as model `tiny`."""
    return _serve(tiny_model_path())


@functools.cache
def small_server() -> LlamaServer:
    """The same on the small model that the training tests train."""
    return _serve(small_model_path())


def server_fields(server: LlamaServer, **options) -> dict:
    """A version's backend fields for `server` (its URL given with /v1, as people copy it)."""
    return {
        "backend": "openai",
        "server_url": f"{server.url}/v1",
        "server_model": server.model,
        "server_api_key": API_KEY,
        "server_options": {"request_extra": LLAMA_CPP_REQUEST_EXTRA, **options},
    }


def remote_version_deploy(project, server=None, *, name="served", options=None, **generation):
    """Register and deploy a version served by `server` (default: the tiny model's), as the system."""
    from training.registry import model_version_deploy, model_version_register

    version = model_version_register(
        project=project,
        actor=None,
        name=name,
        generation={"max_new_tokens": 8, **generation},
        **server_fields(server or tiny_server(), **(options or {})),
    )
    return model_version_deploy(version_id=version.pk, actor=None)
