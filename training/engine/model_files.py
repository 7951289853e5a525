"""What a local model or adapter directory must hold to load, told from its files alone (no torch).

Web processes check a directory when a version is registered or deployed, and never import torch, so
the checks read file names and JSON only. They catch what a person gets wrong (a path that is not there,
a hub id, a directory without weights or tokenizer); a corrupt weights file is still found at load time.
"""

import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

WEIGHTS = ("model.safetensors", "pytorch_model.bin")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
# A fast tokenizer's one file, or a slow tokenizer's vocabulary (SentencePiece, BPE, WordPiece, tiktoken).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "vocab.json",
    "vocab.txt",
    "tokenizer.tiktoken",
    "qwen.tiktoken",
)
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")

# A Hub id is "name" or "namespace/name" of letters, digits, '-', '_' and '.'.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class ModelFilesError(Exception):
    """A model directory that cannot be loaded; the message says which path and what is missing."""

    def __init__(self, message: str, *, path: str):
        super().__init__(message)
        self.path = path


def looks_like_hub_id(value: str) -> bool:
    return bool(_HUB_ID.match(value)) and not value.startswith(".")


def _json_object(path: Path) -> tuple[dict | None, str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{path.name} cannot be read as JSON ({exc})"
    if not isinstance(data, dict):
        return None, f"{path.name} is not a JSON object"
    return data, None


def _weights_problem(directory: Path) -> str | None:
    if any((directory / name).is_file() for name in WEIGHTS):
        return None
    for index_name in SHARD_INDEXES:
        index = directory / index_name
        if not index.is_file():
            continue
        data, problem = _json_object(index)
        if problem:
            return problem
        shards = sorted(set((data.get("weight_map") or {}).values()))
        if not shards:
            return f"{index_name} lists no weight files"
        missing = [s for s in shards if not (directory / s).is_file()]
        if missing:
            return f"{index_name} lists weight files that are not there: {', '.join(missing[:3])}"
        return None
    return f"has no weights ({' or '.join(WEIGHTS)}, or a sharded index)"


def model_dir_problems(directory: Path) -> list[str]:
    """What keeps `directory` from loading as a Hugging Face causal LM; empty when it looks loadable."""
    if not directory.exists():
        return ["does not exist"]
    if not directory.is_dir():
        return ["is not a directory"]
    problems = []
    config = directory / "config.json"
    if not config.is_file():
        problems.append("has no config.json")
    else:
        data, problem = _json_object(config)
        if problem:
            problems.append(problem)
        elif not data.get("model_type"):
            problems.append("config.json names no model_type")
    weights = _weights_problem(directory)
    if weights:
        problems.append(weights)
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        problems.append("has no tokenizer (tokenizer.json, or a vocabulary file such as tokenizer.model)")
    return problems


def adapter_dir_problems(directory: Path) -> list[str]:
    """What keeps `directory` from loading as a PEFT adapter; empty when it looks loadable."""
    if not directory.exists():
        return ["does not exist"]
    if not directory.is_dir():
        return ["is not a directory"]
    problems = []
    config = directory / "adapter_config.json"
    if not config.is_file():
        problems.append("has no adapter_config.json")
    else:
        data, problem = _json_object(config)
        if problem:
            problems.append(problem)
        elif not data.get("peft_type"):
            problems.append("adapter_config.json names no peft_type")
    if not any((directory / name).is_file() for name in ADAPTER_WEIGHTS):
        problems.append(f"has no adapter weights ({' or '.join(ADAPTER_WEIGHTS)})")
    return problems


def build_once(target: Path, build: Callable[[Path], object]) -> bool:
    """Make sure a loadable model is at `target`, calling `build(directory)` only when none is there.

    Safe when several processes race: they take an exclusive lock on a file beside `target`, the first
    builds into a temporary directory next to it and renames it into place, and the others then find it
    built. A rename is atomic, so `target` is never seen half written. An incomplete directory already
    at `target` (an older, interrupted build) is moved aside, not deleted. True when this call built it.
    """
    if not model_dir_problems(target):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not model_dir_problems(target):
            return False
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-building-") as work:
            built = Path(work) / target.name
            build(built)
            if target.exists():
                os.rename(target, target.with_name(f"{target.name}.incomplete-{int(time.time())}"))
            os.rename(built, target)
    return True
