"""Model directories told loadable or not from their files, and the default built once under races."""

import json
import multiprocessing
import shutil
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from tests.model_helpers import save_random_lora_adapter
from training.engine.model_files import (
    adapter_dir_problems,
    build_once,
    looks_like_hub_id,
    model_dir_problems,
)
from training.engine.tiny_model import build_tiny_model


def copy_without(source: Path, dest: Path, *names: str) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*names))
    return dest


def test_a_built_model_has_no_problems(tiny_model_dir):
    assert model_dir_problems(tiny_model_dir) == []


def test_a_missing_directory_does_not_exist(tmp_path):
    assert model_dir_problems(tmp_path / "nowhere") == ["does not exist"]


def test_a_file_is_not_a_directory(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x")
    assert model_dir_problems(tmp_path / "model.bin") == ["is not a directory"]


@pytest.mark.parametrize(
    ("removed", "problem"),
    [
        (("tokenizer.json", "tokenizer_config.json"), "has no tokenizer"),
        (("model.safetensors",), "has no weights"),
        (("config.json",), "has no config.json"),
    ],
    ids=["no-tokenizer", "no-weights", "no-config"],
)
def test_each_missing_part_is_named(tiny_model_dir, tmp_path, removed, problem):
    broken = copy_without(tiny_model_dir, tmp_path / "broken", *removed)

    problems = model_dir_problems(broken)

    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_an_empty_directory_lacks_everything(tmp_path):
    problems = model_dir_problems(tmp_path)
    assert [p.split(" (")[0] for p in problems] == [
        "has no config.json",
        "has no weights",
        "has no tokenizer",
    ]


def test_a_config_that_is_not_json_or_names_no_model_type_is_refused(tiny_model_dir, tmp_path):
    broken = copy_without(tiny_model_dir, tmp_path / "broken")
    (broken / "config.json").write_text("{not json")
    assert model_dir_problems(broken)[0].startswith("config.json cannot be read as JSON")

    (broken / "config.json").write_text(json.dumps({"hidden_size": 8}))
    assert model_dir_problems(broken) == ["config.json names no model_type"]


def test_sharded_weights_need_every_shard_of_their_index(tiny_model_dir, tmp_path):
    sharded = copy_without(tiny_model_dir, tmp_path / "sharded", "model.safetensors")
    index = {
        "weight_map": {
            "a.weight": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        }
    }
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    (sharded / "model-00001-of-00002.safetensors").write_bytes(b"")

    assert model_dir_problems(sharded) == [
        "model.safetensors.index.json lists weight files that are not there: model-00002-of-00002.safetensors"
    ]
    (sharded / "model-00002-of-00002.safetensors").write_bytes(b"")
    assert model_dir_problems(sharded) == []


def test_adapters_are_checked_for_their_config_and_weights(tiny_model_dir, tmp_path):
    adapter = save_random_lora_adapter(tiny_model_dir, tmp_path / "lora", seed=1)
    assert adapter_dir_problems(adapter) == []

    (adapter / "adapter_model.safetensors").unlink()
    assert adapter_dir_problems(adapter)[0].startswith("has no adapter weights")
    assert adapter_dir_problems(tmp_path) == ["has no adapter_config.json", adapter_dir_problems(adapter)[0]]


@pytest.mark.parametrize(
    ("value", "hub"),
    [
        ("Qwen/Qwen2.5-0.5B-Instruct", True),
        ("gpt2", True),
        ("/models/qwen", False),
        ("./models/qwen", False),
        ("~/models/qwen", False),
        ("a/b/c", False),
    ],
)
def test_hub_ids_are_told_from_paths(value, hub):
    assert looks_like_hub_id(value) is hub


def _build_in_child(target: str, queue) -> None:
    built = build_once(Path(target), lambda d: build_tiny_model(d, vocab_size=600, hidden_size=32))
    queue.put(built)


def test_racing_processes_build_the_model_once(tmp_path):
    # given four processes that all find no model at the target
    target = tmp_path / "models" / "tiny"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    children = [ctx.Process(target=_build_in_child, args=(str(target), queue)) for _ in range(4)]

    # when they start at once
    for child in children:
        child.start()
    for child in children:
        child.join(120)
    results = sorted(queue.get(timeout=5) for _ in children)

    # then one built it, the others found it, and what is there loads, with no half-built leftovers
    assert results == [False, False, False, True]
    assert model_dir_problems(target) == []
    AutoModelForCausalLM.from_pretrained(target)
    assert sorted(p.name for p in target.parent.iterdir()) == [".tiny.lock", "tiny"]


def test_an_interrupted_build_is_moved_aside_and_built_again(tmp_path):
    target = tmp_path / "tiny"
    target.mkdir()
    (target / "config.json").write_text(json.dumps({"model_type": "llama"}))  # weights never written

    assert build_once(target, lambda d: build_tiny_model(d, vocab_size=600, hidden_size=32)) is True

    assert model_dir_problems(target) == []
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("tiny.incomplete-")]
    assert len(aside) == 1 and (aside[0] / "config.json").exists()
