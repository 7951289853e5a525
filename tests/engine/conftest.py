"""One tiny model per test session, built offline, shared by the engine tests."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from training.engine.tiny_model import build_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def drafter(tiny_model_dir):
    from training.engine.inference import Drafter

    return Drafter(tiny_model_dir, device=torch.device("cpu"))


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory):
    """A smaller tiny model (hidden 64, vocabulary 1000) for training tests: a step takes milliseconds."""
    return build_tiny_model(
        tmp_path_factory.mktemp("small-model"), hidden_size=64, num_layers=2, vocab_size=1000
    )
