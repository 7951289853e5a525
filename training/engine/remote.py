"""Drafting on an OpenAI-compatible server (vLLM, SGLang, llama.cpp's server, a hosted API): bounded
concurrent chat requests with timeouts, retries with backoff on 429 / 5xx (Retry-After honoured), a
circuit breaker per server, and the same confidence as the local Drafter, from the server's logprobs.

No torch here: the web process answers `ask` through this module without loading a model.

Confidence is `exp(mean log p)` over the generated tokens, each token's log-probability as the server
reports it in `choices[].logprobs.content[].logprob` (`engine.inference.sequence_confidence` computes
the same from the raw logits). How that relates to the raw distribution depends on the server, which
is why Handover asks for `logprobs` with greedy and sampled requests alike and reads nothing else:
- llama.cpp's server computes them as the log-softmax of the raw logits (before temperature, top-k,
  top-p, repetition penalty), as the local path does;
- vLLM returns the raw log-probabilities by default (`--logprobs-mode raw_logprobs`); a server started
  with `processed_logprobs` reports them after temperature and penalties, so confidence would then
  move with the sampling settings;
- servers report the tokens they return, which usually leaves out the stop token (llama.cpp does),
  while the local path counts it; for a draft of n tokens the two differ by the stop token's share,
  exp((n·m + log p_stop) / (n + 1)) against exp(m). `tests/test_backend_remote.py` measures this.
A server that returns no logprobs (`transformers serve` ignores the parameter) is refused when a
version is registered or deployed (`training.backends`); should one stop sending them later, the draft
keeps confidence 0 (None from `confidence_from_logprobs`): shown as unsure, and `ask` hands it over.

Failures: `RemoteError` is an answer the server gave (a 4xx: bad request, unknown model) and carries
the URL, the status and an excerpt of the body; `ServerUnavailable` is a server that is down, slow,
overloaded or behind an open circuit, with how long to wait (`retry_after`). Messages never hold the
API key: it travels only in the Authorization header, and is cut from any body excerpt.
"""

from __future__ import annotations

import email.utils
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from .prompts import Prompt

DEFAULT_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 5.0
DEFAULT_CONCURRENCY = 8
DEFAULT_RETRIES = 3
DEFAULT_COOLDOWN_S = 30.0
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 8.0
EXCERPT_CHARS = 300
TOP_LOGPROBS = 20  # OpenAI's maximum; vLLM and llama.cpp's server take it
# The keys of a turn an OpenAI-compatible server reads; a file's own keys (a weight, a note) stay home.
TURN_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")


def base_url_normalize(url: str) -> str:
    """The server's root as Handover stores it: scheme and host (and any path prefix), without a
    trailing `/v1`, so `http://gpu:8000`, `http://gpu:8000/` and `http://gpu:8000/v1` are one server."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL with a host (e.g. http://gpu-1:8000/v1)")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r}: a server URL takes no query string or fragment")
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return f"{parts.scheme}://{parts.netloc}{path}"


@dataclass(frozen=True)
class ServerConfig:
    """Where a version's model is served and how Handover talks to it. `model` is the name requests
    ask for (for a LoRA version, the adapter's name on the server). The key is left out of repr."""

    base_url: str
    model: str
    api_key: str = field(default="", repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_concurrency: int = DEFAULT_CONCURRENCY
    max_retries: int = DEFAULT_RETRIES
    cooldown_s: float = DEFAULT_COOLDOWN_S  # how long an open circuit leaves the server alone
    # Merged into every chat request body: server-specific sampling switches, e.g. llama.cpp's
    # {"repeat_penalty": 1.0, "top_k": 0, "min_p": 0.0} so it samples as the local path does.
    request_extra: Mapping[str, Any] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.base_url}/v1/{path}"


class RemoteError(Exception):
    """The server answered with an error, or could not be asked; says which URL and what it said."""

    def __init__(self, message: str, *, url: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.message, self.url, self.status, self.body = message, url, status, body

    def __str__(self) -> str:
        return self.message


class ServerUnavailable(RemoteError):
    """Down, too slow, overloaded (429 / 5xx after the retries) or behind an open circuit: try later."""

    def __init__(
        self, message: str, *, url: str, retry_after: float, status: int | None = None, body: str = ""
    ) -> None:
        super().__init__(message, url=url, status=status, body=body)
        self.retry_after = max(1.0, float(retry_after))


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date (RFC 9110); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def excerpt(text: str, *, secret: str = "") -> str:
    """The start of a response body for an error message: whitespace folded, the API key cut out."""
    text = " ".join((text or "").split())
    if secret:
        text = text.replace(secret, "***")
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


class CircuitBreaker:
    """Per server (base URL), in this process: after `threshold` failures in a row the circuit opens
    and calls fail at once for `cooldown_s`; then one trial request goes through (half-open), and its
    outcome closes the circuit or opens it again. So a down server costs one timeout per cooldown, not
    one per draft, and `ask` answers 503 immediately instead of holding a web thread."""

    def __init__(
        self,
        *,
        threshold: int = 5,
        cooldown_s: float = DEFAULT_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.threshold, self.cooldown_s, self.clock = threshold, cooldown_s, clock
        self._lock = threading.Lock()
        self._state: dict[str, dict] = {}

    def before(self, key: str) -> float | None:
        """None when a request may go; else the seconds until the circuit lets one through."""
        with self._lock:
            state = self._state.get(key)
            if state is None or state["open_until"] is None:
                return None
            left = state["open_until"] - self.clock()
            if left > 0:
                return left
            if state["trial"]:
                return state["cooldown_s"] / 4  # another request is the trial; wait for its outcome
            state["trial"] = True
            return None

    def success(self, key: str) -> None:
        with self._lock:
            self._state.pop(key, None)

    def failure(self, key: str, *, cooldown_s: float | None = None, reason: str = "") -> None:
        with self._lock:
            state = self._state.setdefault(key, {"failures": 0, "open_until": None, "trial": False})
            state["failures"] += 1
            state["reason"] = reason
            state["cooldown_s"] = self.cooldown_s if cooldown_s is None else cooldown_s
            if state["trial"] or state["failures"] >= self.threshold:
                state["open_until"] = self.clock() + state["cooldown_s"]
                state["trial"] = False

    def last_reason(self, key: str) -> str:
        with self._lock:
            return (self._state.get(key) or {}).get("reason", "")

    def is_open(self, key: str) -> bool:
        with self._lock:
            state = self._state.get(key)
            return bool(state and state["open_until"] and state["open_until"] > self.clock())

    def reset(self) -> None:
        with self._lock:
            self._state.clear()


BREAKER = CircuitBreaker()

_clients: dict[tuple, httpx.Client] = {}
_clients_lock = threading.Lock()


def _http(config: ServerConfig) -> httpx.Client:
    """One pooled client per server, key and concurrency in this process (reused across drafts)."""
    key = (config.base_url, config.api_key, config.max_concurrency)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
            limits = httpx.Limits(
                max_connections=config.max_concurrency, max_keepalive_connections=config.max_concurrency
            )
            client = _clients[key] = httpx.Client(headers=headers, limits=limits, trust_env=False)
        return client


def backoff_s(attempt: int) -> float:
    """Exponential backoff with jitter for retry `attempt` (1, 2, ...): half to all of base·2^(n-1)."""
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


class RemoteClient:
    """Requests to one server. `deadline` (a monotonic time) bounds a call with all its retries."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        breaker: CircuitBreaker = BREAKER,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config, self.breaker, self.sleep = config, breaker, sleep

    def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        deadline: float | None = None,
        retries: int | None = None,
    ) -> httpx.Response:
        config, url = self.config, self.config.url(path)
        retries = config.max_retries if retries is None else retries
        deadline = deadline if deadline is not None else time.monotonic() + config.timeout_s * (retries + 1)
        attempt = 0
        while True:
            wait = self.breaker.before(config.base_url)
            if wait is not None:
                last = self.breaker.last_reason(config.base_url)
                raise ServerUnavailable(
                    f"{url}: not asked again for {math.ceil(wait)} s, the server failed repeatedly"
                    + (f" (last: {last})" if last else "")
                    + ".",
                    url=url,
                    retry_after=wait,
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServerUnavailable(
                    f"{url}: no answer in the time allowed.", url=url, retry_after=config.cooldown_s
                )
            timeout = httpx.Timeout(min(config.timeout_s, left), connect=min(CONNECT_TIMEOUT_S, left))
            server_wait = None
            try:
                response = _http(config).request(method, url, json=body, timeout=timeout)
            except httpx.TimeoutException:
                failure = ServerUnavailable(
                    f"{url}: no answer within {timeout.read:.3g} s.",
                    url=url,
                    retry_after=config.cooldown_s,
                )
            except httpx.TransportError as exc:
                failure = ServerUnavailable(
                    f"{url}: cannot connect ({type(exc).__name__}: {exc}).",
                    url=url,
                    retry_after=config.cooldown_s,
                )
            else:
                status = response.status_code
                if status < 400:
                    self.breaker.success(config.base_url)
                    return response
                body_text = excerpt(response.text, secret=config.api_key)
                if status != 429 and status < 500:
                    self.breaker.success(config.base_url)  # it is up and answering; the request was wrong
                    raise RemoteError(
                        f"{url} answered {status}: {body_text}", url=url, status=status, body=body_text
                    )
                server_wait = retry_after_seconds(response.headers.get("Retry-After"))
                failure = ServerUnavailable(
                    f"{url} answered {status}: {body_text}",
                    url=url,
                    status=status,
                    body=body_text,
                    retry_after=server_wait if server_wait is not None else config.cooldown_s,
                )
            self.breaker.failure(config.base_url, cooldown_s=config.cooldown_s, reason=str(failure))
            attempt += 1
            if attempt > retries:
                raise failure
            wait = server_wait if server_wait is not None else backoff_s(attempt)
            if time.monotonic() + wait >= deadline:
                raise failure  # the server asks for longer than this call may wait: say when to come back
            self.sleep(wait)

    # --- what Handover asks a server -------------------------------------------------------------

    def models(self, *, deadline: float | None = None) -> list[dict]:
        """`GET /v1/models`: the served models (ids, and on vLLM the adapters with their `parent`)."""
        response = self.request("GET", "models", deadline=deadline, retries=0)
        try:
            data = response.json()["data"]
            if not isinstance(data, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            url = self.config.url("models")
            body = excerpt(response.text, secret=self.config.api_key)
            raise RemoteError(
                f"{url} answered no model list: {body}", url=url, status=response.status_code, body=body
            ) from None
        return [m for m in data if isinstance(m, dict)]

    def chat(
        self,
        prompt: Prompt,
        *,
        system_prompt: str | None = None,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        deadline: float | None = None,
        model: str | None = None,
    ) -> RemoteCandidate:
        """One candidate for one prompt, with its confidence from the logprobs of its tokens."""
        body = {
            **dict(self.config.request_extra),
            "model": model or self.config.model,
            "messages": chat_messages(prompt, system_prompt),
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p if temperature > 0 else 1.0,
            "logprobs": True,
            "top_logprobs": 1,  # some servers (llama.cpp) compute none without it
            "stream": False,
        }
        if prompt.tools:
            body["tools"] = list(prompt.tools)
        if seed is not None:
            body["seed"] = seed
        response = self.request("POST", "chat/completions", body, deadline=deadline)
        try:
            choice = response.json()["choices"][0]
            text = choice["message"].get("content") or ""
            content = (choice.get("logprobs") or {}).get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            url = self.config.url("chat/completions")
            body_text = excerpt(response.text, secret=self.config.api_key)
            raise RemoteError(
                f"{url} answered no completion: {body_text}",
                url=url,
                status=response.status_code,
                body=body_text,
            ) from None
        confidence = confidence_from_logprobs(content)
        return RemoteCandidate(
            text=text,
            confidence=0.0 if confidence is None else confidence,
            num_tokens=len(content) if content else 0,
            has_logprobs=confidence is not None,
        )

    def next_token_top_logprobs(
        self, prompt: Prompt, *, system_prompt: str | None = None, deadline: float | None = None
    ) -> list[dict]:
        """The server's most likely first tokens of the reply with their log-probabilities (a one-token
        greedy request with `top_logprobs` TOP_LOGPROBS, the most OpenAI's API allows): what a model judge
        reads. An answer without them is a RemoteError saying so."""
        body = {
            **dict(self.config.request_extra),
            "model": self.config.model,
            "messages": chat_messages(prompt, system_prompt),
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": TOP_LOGPROBS,
            "stream": False,
        }
        response = self.request("POST", "chat/completions", body, deadline=deadline)
        try:
            first = response.json()["choices"][0]["logprobs"]["content"][0]
            top = first.get("top_logprobs") or [first]
            return [t for t in top if isinstance(t, dict)]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            url = self.config.url("chat/completions")
            body_text = excerpt(response.text, secret=self.config.api_key)
            raise RemoteError(
                f"{url} answered no top logprobs: {body_text}",
                url=url,
                status=response.status_code,
                body=body_text,
            ) from None

    def load_lora_adapter(self, name: str, path: str, *, deadline: float | None = None) -> None:
        """vLLM's `POST /v1/load_lora_adapter`; RemoteError (404 when the server has no such endpoint)."""
        self.request(
            "POST", "load_lora_adapter", {"lora_name": name, "lora_path": path}, deadline=deadline, retries=0
        )

    def unload_lora_adapter(self, name: str, *, deadline: float | None = None) -> None:
        self.request("POST", "unload_lora_adapter", {"lora_name": name}, deadline=deadline, retries=0)


def confidence_from_logprobs(content: Sequence[Mapping] | None) -> float | None:
    """exp(mean log p) of the returned tokens, in [0, 1]; None when the server sent no logprobs."""
    if not content:
        return None
    values = [c.get("logprob") for c in content if isinstance(c, Mapping)]
    if not values or any(not isinstance(v, (int, float)) for v in values):
        return None
    return min(1.0, max(0.0, math.exp(sum(values) / len(values))))


def chat_messages(prompt: Prompt, system_prompt: str | None = None) -> list[dict]:
    """The chat request's messages for a prompt: its system prompt (else the version's), then its turns
    in OpenAI's shape. The server applies the model's chat template, as `render_prompt` does locally."""
    system = prompt.system or system_prompt
    turns = [{"role": "system", "content": system}] if system else []
    for turn in prompt.messages:
        kept = {k: turn[k] for k in TURN_KEYS if k in turn}
        kept.setdefault("content", "")
        turns.append(kept)
    return turns


@dataclass(frozen=True)
class RemoteCandidate:
    text: str
    confidence: float
    num_tokens: int
    has_logprobs: bool = True


@dataclass(frozen=True)
class RemoteDraft:
    """The candidates for one prompt, best first (the shape of `engine.inference.Draft`)."""

    candidates: tuple[RemoteCandidate, ...]

    @property
    def text(self) -> str:
        return self.candidates[0].text

    @property
    def confidence(self) -> float:
        return self.candidates[0].confidence


def draft(
    client: RemoteClient,
    prompts: Sequence[Prompt],
    *,
    system_prompt: str | None = None,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
    num_candidates: int = 1,
    seed: int | None = None,
    deadline: float | None = None,
    **_ignored,  # batch_size: the server batches concurrent requests itself
) -> list[RemoteDraft | RemoteError]:
    """For each prompt its draft, or the error that stopped it: one request per candidate, at most
    `max_concurrency` in flight. A failure stops only its own prompt (the rest are kept); once the
    circuit opens the remaining requests fail at once instead of waiting out their timeouts."""
    if not 1 <= num_candidates <= 5:
        raise ValueError("num_candidates must be between 1 and 5")
    if num_candidates > 1 and temperature <= 0:
        raise ValueError("num_candidates > 1 needs temperature > 0 (greedy gives one answer)")
    jobs = [(i, j) for i in range(len(prompts)) for j in range(num_candidates)]

    def one(job: tuple[int, int]) -> RemoteCandidate | RemoteError:
        i, j = job
        try:
            return client.chat(
                prompts[i],
                system_prompt=system_prompt,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=None if seed is None else seed + j,
                deadline=deadline,
            )
        except RemoteError as exc:
            return exc

    workers = max(1, min(client.config.max_concurrency, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="remote-draft") as pool:
        outcomes = list(pool.map(one, jobs))
    results: list[RemoteDraft | RemoteError] = []
    for i in range(len(prompts)):
        mine = outcomes[i * num_candidates : (i + 1) * num_candidates]
        error = next((o for o in mine if isinstance(o, RemoteError)), None)
        if error is not None:
            results.append(error)
        else:
            ranked = sorted(mine, key=lambda c: c.confidence, reverse=True)  # type: ignore[union-attr]
            results.append(RemoteDraft(candidates=tuple(ranked)))  # type: ignore[arg-type]
    return results


def label_log_probs(top: Sequence[Mapping], labels: Sequence[str]) -> list[float]:
    """log p of each label among a server's top tokens: the log-sum of the tokens that read as the
    label once whitespace is stripped ("4", " 4"), as `Drafter.label_token_ids` groups them locally;
    -inf for a label none of the listed tokens spells (a token outside the list counts as 0)."""
    out = []
    for label in labels:
        values = [
            t["logprob"]
            for t in top
            if str(t.get("token", "")).strip() == label and isinstance(t.get("logprob"), (int, float))
        ]
        if not values:
            out.append(float("-inf"))
            continue
        peak = max(values)
        out.append(peak + math.log(math.fsum(math.exp(v - peak) for v in values)))
    return out


def next_token_label_log_probs(
    client: RemoteClient,
    prompts: Sequence[Prompt],
    labels: Sequence[str],
    *,
    system_prompt: str | None = None,
    deadline: float | None = None,
) -> list[list[float] | RemoteError]:
    """For each prompt, `label_log_probs` of the server's first token, or the error that stopped it;
    at most `max_concurrency` requests in flight, as `draft` sends them."""

    def one(prompt: Prompt) -> list[float] | RemoteError:
        try:
            top = client.next_token_top_logprobs(prompt, system_prompt=system_prompt, deadline=deadline)
        except RemoteError as exc:
            return exc
        return label_log_probs(top, labels)

    workers = max(1, min(client.config.max_concurrency, len(prompts)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="remote-judge") as pool:
        return list(pool.map(one, prompts))
