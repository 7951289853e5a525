"""Where a model version generates, and what an OpenAI-compatible server needs from the registry.

`local`: the worker's in-process Drafter (`model_cache`). `openai`: a server (vLLM, SGLang, llama.cpp's
server, a hosted API) reached through `engine.remote`: drafts and evaluation from the worker, `ask`
straight from the web process (see `handover`). This module turns a version's fields into the engine's
`ServerConfig`, checks a server when a version is registered or deployed (it must list the model and
return logprobs; else 400 with what it said), loads a LoRA version's adapter into a running server at
deploy (vLLM's `/v1/load_lora_adapter`) or says the exact serve command when the server cannot, and
unloads the adapter of the version a deploy retires.

The API key is write-only: it leaves this module only inside `ServerConfig` (which keeps it out of its
repr) and goes to the server in the Authorization header; messages, audit data and logs never hold it.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from core.errors import ApplicationError

from .engine.prompts import Prompt
from .engine.remote import (
    DEFAULT_CONCURRENCY,
    DEFAULT_COOLDOWN_S,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    RemoteClient,
    RemoteError,
    ServerConfig,
    base_url_normalize,
)
from .models import Backend, ModelVersion

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 10.0  # registration and deploy wait at most this long for the server
VLLM_DEFAULT_MAX_LORA_RANK = 16  # `vllm serve --max-lora-rank` default; a larger adapter needs the flag


@dataclass(frozen=True)
class BackendOptions:
    """How Handover talks to a version's server; stored as ModelVersion.server_options."""

    timeout_s: float = DEFAULT_TIMEOUT_S  # per request
    max_concurrency: int = DEFAULT_CONCURRENCY  # requests in flight per worker (and per web process)
    max_retries: int = DEFAULT_RETRIES  # on 429 / 5xx / no answer, with backoff
    cooldown_s: float = DEFAULT_COOLDOWN_S  # a server failing 5 times in a row is left alone this long
    request_extra: dict = field(default_factory=dict)  # merged into every chat request body


def backend_options(raw: dict | None) -> BackendOptions:
    """Validate server options, filling defaults; errors name the key (400)."""
    raw = dict(raw or {})
    known = {f.name for f in fields(BackendOptions)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ApplicationError(
            f"server_options: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.",
            details={"server_options": unknown},
        )
    try:
        options = BackendOptions(**raw)
        checks = {
            "timeout_s": 0 < float(options.timeout_s) <= 3600,
            "max_concurrency": 1 <= int(options.max_concurrency) <= 256,
            "max_retries": 0 <= int(options.max_retries) <= 10,
            "cooldown_s": 0 < float(options.cooldown_s) <= 3600,
            "request_extra": isinstance(options.request_extra, dict),
        }
    except (TypeError, ValueError) as exc:
        raise ApplicationError(f"server_options: {exc}", details={"server_options": [str(exc)]}) from None
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise ApplicationError(
            f"server_options.{bad[0]}: out of range ({getattr(options, bad[0])!r}).",
            details={"server_options": bad},
        )
    reserved = sorted(
        {"model", "messages", "logprobs", "top_logprobs", "stream"} & set(options.request_extra)
    )
    if reserved:
        raise ApplicationError(
            f"server_options.request_extra: {', '.join(reserved)} is set by Handover itself.",
            details={"server_options": reserved},
        )
    return options


@dataclass(frozen=True)
class BackendFields:
    """A version's backend fields, checked and normalised, ready to store."""

    backend: str = Backend.LOCAL
    server_url: str = ""
    server_model: str = ""
    server_api_key: str = ""
    server_options: dict = field(default_factory=dict)


def backend_fields(
    *,
    backend: str = Backend.LOCAL,
    server_url: str = "",
    server_model: str = "",
    server_api_key: str = "",
    server_options: dict | None = None,
) -> BackendFields:
    """The fields of a new version's backend (400 naming the field when they do not fit together)."""
    if backend not in Backend.values:
        raise ApplicationError(
            f"backend: {backend!r} is not one of {', '.join(Backend.values)}.", details={"backend": [backend]}
        )
    if backend == Backend.LOCAL:
        given = [
            name
            for name, value in (("server_url", server_url), ("server_model", server_model),
                                ("server_api_key", server_api_key), ("server_options", server_options))
            if value
        ]  # fmt: skip
        if given:
            raise ApplicationError(
                f"{given[0]}: only an 'openai' backend takes a server; this version generates in-process.",
                details={name: ["needs backend 'openai'"] for name in given},
            )
        return BackendFields()
    if not server_url:
        raise ApplicationError(
            "server_url: an 'openai' backend needs the server's URL.", details={"server_url": []}
        )
    if not server_model:
        raise ApplicationError(
            "server_model: an 'openai' backend needs the model name the server serves.",
            details={"server_model": []},
        )
    try:
        url = base_url_normalize(server_url)
    except ValueError as exc:
        raise ApplicationError(f"server_url: {exc}.", details={"server_url": [str(exc)]}) from None
    options = backend_options(server_options)
    return BackendFields(Backend.OPENAI, url, server_model.strip(), server_api_key.strip(), asdict(options))


def server_config(version: ModelVersion) -> ServerConfig | None:
    """The engine's view of a version's server; None for a version that generates in-process."""
    if version.backend != Backend.OPENAI:
        return None
    options = backend_options(version.server_options)
    return ServerConfig(
        base_url=version.server_url,
        model=version.server_model,
        api_key=version.server_api_key,
        timeout_s=float(options.timeout_s),
        max_concurrency=int(options.max_concurrency),
        max_retries=int(options.max_retries),
        cooldown_s=float(options.cooldown_s),
        request_extra=dict(options.request_extra),
    )


def _server_error(exc: RemoteError, *, code: str = "model_server") -> ApplicationError:
    return ApplicationError(
        f"server_url: {exc.message}",
        code=code,
        details={"url": exc.url, "status": exc.status, "body": exc.body},
    )


def _base_entry(listing: list[dict]) -> dict | None:
    """The served base model: the first entry that is no adapter (vLLM gives adapters a `parent`)."""
    return next((m for m in listing if not m.get("parent")), listing[0] if listing else None)


def server_check(config: ServerConfig, *, adapter: bool = False) -> list[dict]:
    """The server answers `/v1/models` listing the model (an adapter version: listing anything, as its
    adapter is loaded at deploy) and returns logprobs for it; otherwise 400 with what it said."""
    client = RemoteClient(config)
    deadline = time.monotonic() + CHECK_TIMEOUT_S
    try:
        listing = client.models(deadline=deadline)
    except RemoteError as exc:
        raise _server_error(exc) from None
    ids = [str(m.get("id")) for m in listing]
    listed = config.model in ids
    if not listed and not adapter:
        raise ApplicationError(
            f"server_model: {config.url('models')} does not list '{config.model}'; it lists "
            f"{', '.join(repr(i) for i in ids) or 'nothing'}.",
            code="model_server",
            details={"url": config.url("models"), "listed": ids},
        )
    probe = config.model if listed else (_base_entry(listing) or {}).get("id")
    if probe is None:
        raise ApplicationError(f"server_url: {config.url('models')} lists no model.", code="model_server")
    try:
        candidate = client.chat(
            Prompt(messages=[{"role": "user", "content": "Hello"}]),
            max_new_tokens=1,
            deadline=deadline,
            model=str(probe),
        )
    except RemoteError as exc:
        raise _server_error(exc) from None
    if not candidate.has_logprobs:
        raise ApplicationError(
            f"server_url: {config.url('chat/completions')} returned no logprobs for '{probe}'. Handover's "
            "confidence (which decides hand-over and routing) is computed from them, so this server cannot "
            "serve a version (`transformers serve` ignores logprobs; vLLM, SGLang and llama.cpp's server "
            "return them).",
            code="no_logprobs",
            details={"url": config.url("chat/completions")},
        )
    return listing


def adapter_rank(adapter_path: str) -> int | None:
    try:
        return int(json.loads((Path(adapter_path) / "adapter_config.json").read_text())["r"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def serve_command(version: ModelVersion, listing: list[dict]) -> str:
    """The vLLM command that serves the version's adapter beside its base model from the start."""
    base = _base_entry(listing) or {}
    base_id = str(base.get("id") or version.base_model)
    root = str(base.get("root") or version.base_model or base_id)
    parts = ["vllm", "serve", shlex.quote(root)]
    if base_id != root:
        parts += ["--served-model-name", shlex.quote(base_id)]
    parts += [
        "--enable-lora",
        "--lora-modules",
        shlex.quote(f"{version.server_model}={version.adapter_path}"),
    ]
    rank = adapter_rank(version.adapter_path)
    if rank and rank > VLLM_DEFAULT_MAX_LORA_RANK:
        parts += ["--max-lora-rank", str(rank)]
    return " ".join(parts)


@dataclass
class DeployOutcome:
    """What a deploy did on the version's server, for the admin (API answer, page message)."""

    adapter: str | None = None  # "served" (already listed) | "loaded" (through /v1/load_lora_adapter)
    unloaded: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"adapter": self.adapter, "unloaded": self.unloaded, "messages": self.messages}


def deploy_prepare(version: ModelVersion) -> DeployOutcome:
    """Before a deploy takes its lock: the server must serve the version. A LoRA version that is not
    listed yet is loaded into the running server (vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True);
    a server that cannot load adapters is a 400 whose message is the exact serve command."""
    outcome = DeployOutcome()
    config = server_config(version)
    if config is None:
        return outcome
    adapter = bool(version.adapter_path)
    listing = server_check(config, adapter=adapter)
    if not adapter:
        return outcome
    if config.model in {str(m.get("id")) for m in listing}:
        outcome.adapter = "served"
        return outcome
    try:
        RemoteClient(config).load_lora_adapter(
            config.model, version.adapter_path, deadline=time.monotonic() + CHECK_TIMEOUT_S * 6
        )
    except RemoteError as exc:
        command = serve_command(version, listing)
        if exc.status in (404, 405):
            why = (
                f"{config.base_url} cannot load adapters while it runs "
                f"(/v1/load_lora_adapter answered {exc.status})"
            )
        else:
            why = f"{config.base_url} did not load the adapter ({exc.message})"
        raise ApplicationError(
            f"{why}. Start the server with the adapter instead, then deploy again: {command}",
            code="adapter_not_loaded",
            details={"url": exc.url, "status": exc.status, "body": exc.body, "serve_command": command},
        ) from None
    outcome.adapter = "loaded"
    outcome.messages.append(f"Adapter '{config.model}' loaded into {config.base_url}.")
    return outcome


def adapter_to_release(retired: ModelVersion | None, *, deployed: ModelVersion) -> bool:
    """Whether retiring `retired` for `deployed` frees an adapter on a server."""
    if retired is None or retired.backend != Backend.OPENAI or not retired.adapter_path:
        return False
    same = (deployed.backend, deployed.server_url, deployed.server_model)
    return same != (Backend.OPENAI, retired.server_url, retired.server_model)


def adapter_release(retired: ModelVersion | None, *, deployed: ModelVersion, outcome: DeployOutcome) -> None:
    """After a deploy commits: unload the retired version's adapter from its server, unless the new
    version asks for the same name there. Best effort: a server that cannot unload keeps serving it."""
    if not adapter_to_release(retired, deployed=deployed):
        return
    config = server_config(retired)
    problem = adapter_unload(retired)
    if problem:
        outcome.messages.append(f"Adapter '{config.model}' is still served by {config.base_url} ({problem}).")
    else:
        outcome.unloaded.append(config.model)
        outcome.messages.append(f"Adapter '{config.model}' unloaded from {config.base_url}.")


def adapter_unload(version: ModelVersion) -> str | None:
    """`POST /v1/unload_lora_adapter` for the version's adapter; None when done, else what went wrong."""
    config = server_config(version)
    try:
        RemoteClient(config).unload_lora_adapter(config.model, deadline=time.monotonic() + CHECK_TIMEOUT_S)
    except RemoteError as exc:
        logger.warning("unloading adapter %s from %s failed: %s", config.model, config.base_url, exc)
        return exc.message
    return None


def candidate_backend(baseline: ModelVersion | None, *, run_id: int, lora: bool) -> dict:
    """The backend fields of a run's candidate: a LoRA trained from a served version is served by the
    same server, under its own adapter name (loaded at deploy); anything else generates in-process."""
    if baseline is None or baseline.backend != Backend.OPENAI or not lora:
        return {}
    return {
        "backend": Backend.OPENAI,
        "server_url": baseline.server_url,
        "server_model": f"handover-run-{run_id}",
        "server_api_key": baseline.server_api_key,
        "server_options": dict(baseline.server_options),
    }
