"""Helpers of the model-side tests: the tiny model and a LoRA adapter, each built once per test process.

Cached functions rather than fixtures: a fixture imported into several modules is set up once per
module, and these are the expensive part of the suite.
"""

import functools
import os
from pathlib import Path

from django.conf import settings
from django.core.management import call_command

from tests.model_helpers import save_random_lora_adapter

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@functools.cache
def tiny_model_path() -> Path:
    out = Path(settings.VAR_DIR) / "test-models" / "tiny"
    call_command("build_tiny_model", "--out", str(out))  # the command under test; a no-op when present
    return out


@functools.cache
def lora_adapter_path(seed: int = 1) -> Path:
    """A LoRA over the tiny model with random B matrices (a fresh LoRA is the identity)."""
    out = Path(settings.VAR_DIR) / "test-models" / f"lora-{seed}"
    if (out / "adapter_config.json").exists():
        return out
    return save_random_lora_adapter(tiny_model_path(), out, seed)


def version_deploy(project, *, name="v1", adapter_path="", actor=None, **generation):
    """Register and deploy a version of the tiny model (as the system, so no admin is needed)."""
    from training.registry import model_version_deploy, model_version_register

    version = model_version_register(
        project=project,
        actor=actor,
        name=name,
        base_model=str(tiny_model_path()),
        adapter_path=str(adapter_path),
        generation={"max_new_tokens": 8, **generation},
    )
    return model_version_deploy(version_id=version.pk, actor=actor)
