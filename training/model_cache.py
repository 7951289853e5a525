"""The worker's loaded models: one Drafter per base model per process; adapters switched, never reloaded.

A gpu worker runs with concurrency 1, but a lock still guards the cache and each generation, so a
threaded pool (or a test calling in) can never interleave two generations on one model.
"""

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .base_model import adapter_ready, base_model_ready
from .engine.remote import ServerConfig

if TYPE_CHECKING:
    from .engine.inference import Drafter


@dataclass(frozen=True)
class ModelSpec:
    """What a model version needs from the worker: a base model, an optional adapter, a template; or,
    for a version on an OpenAI-compatible server, that server (`server`; nothing is loaded here then)."""

    version_id: int
    base_model: str
    adapter_path: str = ""
    prompt_template: str = "{input}"
    system_prompt: str | None = None
    server: ServerConfig | None = None

    @property
    def adapter_name(self) -> str | None:
        # One name per version: two versions may share an adapter directory that was retrained in place.
        return f"mv{self.version_id}" if self.adapter_path else None


_drafters: dict[str, "Drafter"] = {}
lock = threading.RLock()


def drafter_for(spec: ModelSpec) -> "Drafter":
    """The Drafter for `spec`, with its adapter loaded (once) and made active. Call with `lock` held.

    The files are checked at every call (a few stat calls, nothing next to a generation): the tiny
    default is built here when it is missing, and a directory that cannot load (or has gone since it was
    loaded) raises ModelFilesError naming it, before transformers would fail with a less helpful one."""
    key = base_model_ready(spec.base_model)
    drafter = _drafters.get(key)
    if drafter is None:
        from .engine.inference import Drafter  # torch loads in the worker, not in web processes

        drafter = Drafter(key)
        _drafters[key] = drafter
    name = spec.adapter_name
    if name is not None and name not in drafter.adapters:
        drafter.load_adapter(name, adapter_ready(spec.adapter_path))
    if drafter.active_adapter != name:
        drafter.use_adapter(name)
    drafter.prompt_template = spec.prompt_template
    drafter.system_prompt = spec.system_prompt
    return drafter


def cache_info() -> dict:
    """What this process holds: per base model, the identity of its weights and its adapters."""
    with lock:
        return {
            key: {
                "base_model_id": id(d.base_model),
                "adapters": sorted(d.adapters),
                "active_adapter": d.active_adapter,
                "device": str(d.device),
            }
            for key, d in _drafters.items()
        }
