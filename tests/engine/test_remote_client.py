"""The OpenAI-compatible client's failure handling over real HTTP: 429 with Retry-After, 5xx, a closed
port, the circuit breaker, and an API key that never appears in what it reports.

The servers here are tiny scripted HTTP servers (tests/model_servers.py): they test the client's
retries, not a model; drafts and confidences on a real server are in tests/test_backend_remote.py."""

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from tests.model_servers import API_KEY, Stub, chat_route, free_port
from training.engine.prompts import Prompt
from training.engine.remote import (
    CircuitBreaker,
    RemoteClient,
    RemoteError,
    ServerConfig,
    ServerUnavailable,
    base_url_normalize,
    confidence_from_logprobs,
    draft,
    retry_after_seconds,
)

PROMPT = Prompt(messages=[{"role": "user", "content": "Where is my order?"}])


def client(url, *, breaker=None, **config):
    return RemoteClient(
        ServerConfig(url, "m", api_key=API_KEY, **config), breaker=breaker or CircuitBreaker()
    )


def scripted(*answers):
    """A route answering each request with the next (status, headers, body), the last one forever."""
    answers = list(answers)

    def route(body):
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return route


@pytest.mark.parametrize(
    "given, stored",
    [
        ("http://gpu-1:8000/v1", "http://gpu-1:8000"),
        ("http://gpu-1:8000/", "http://gpu-1:8000"),
        (" https://api.example.com/openai/v1/ ", "https://api.example.com/openai"),
    ],
)
def test_base_urls_are_stored_without_v1(given, stored):
    assert base_url_normalize(given) == stored


@pytest.mark.parametrize("bad", ["gpu-1:8000", "ftp://x", "http://", "http://x/v1?key=1"])
def test_a_url_that_is_no_server_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match="URL|query"):
        base_url_normalize(bad)


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert (
        retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now.timestamp())
        == 30
    )
    assert retry_after_seconds("soon") is None


def test_confidence_is_exp_of_the_mean_logprob():
    assert confidence_from_logprobs([{"logprob": -0.1}, {"logprob": -0.3}]) == pytest.approx(0.8187, abs=1e-4)
    assert confidence_from_logprobs([]) is None
    assert confidence_from_logprobs(None) is None


def test_429_is_retried_after_the_servers_retry_after():
    # given a server that is overloaded once and asks for a 1 s pause
    routes = {
        ("POST", "/v1/chat/completions"): scripted(
            (429, {"Retry-After": "1"}, {"error": "busy"}), chat_route()(None)
        )
    }
    with Stub(routes) as stub:
        started = time.monotonic()

        # when a candidate is asked for
        candidate = client(stub.url).chat(PROMPT)

        # then the client waited as told and the second try answered, with its confidence
        assert time.monotonic() - started >= 1.0
        assert len(stub.calls("/v1/chat/completions")) == 2
        assert candidate.text == "Your parcel arrives tomorrow."
        assert candidate.confidence == pytest.approx(0.8607, abs=1e-4)


def test_a_retry_after_longer_than_the_call_may_wait_fails_at_once_with_it():
    routes = {("POST", "/v1/chat/completions"): scripted((429, {"Retry-After": "120"}, {"error": "busy"}))}
    with Stub(routes) as stub, pytest.raises(ServerUnavailable) as failed:
        client(stub.url).chat(PROMPT, deadline=time.monotonic() + 5)

    assert failed.value.retry_after == 120
    assert failed.value.status == 429
    assert len(stub.calls("/v1/chat/completions")) == 1


def test_5xx_is_retried_with_backoff_then_reported_with_the_body():
    routes = {("POST", "/v1/chat/completions"): scripted((503, {}, {"error": "warming up"}))}
    with Stub(routes) as stub, pytest.raises(ServerUnavailable, match="answered 503.*warming up"):
        client(stub.url, max_retries=2).chat(PROMPT)

    assert len(stub.calls("/v1/chat/completions")) == 3


def test_a_4xx_is_not_retried_and_says_what_the_server_said():
    routes = {("POST", "/v1/chat/completions"): scripted((404, {}, {"error": "model 'm' does not exist"}))}
    with Stub(routes) as stub, pytest.raises(RemoteError) as failed:
        client(stub.url).chat(PROMPT)

    assert not isinstance(failed.value, ServerUnavailable)
    assert failed.value.status == 404
    assert f"{stub.url}/v1/chat/completions answered 404" in str(failed.value)
    assert "does not exist" in str(failed.value)


def test_the_api_key_goes_in_the_header_and_never_into_a_message():
    # given a server that echoes the key in its error body
    routes = {("GET", "/v1/models"): lambda body: (401, {}, {"detail": f"bad key {API_KEY}"})}
    with Stub(routes) as stub, pytest.raises(RemoteError) as failed:
        client(stub.url).models()

    assert stub.requests[0][3]["Authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in str(failed.value) and API_KEY not in failed.value.body
    assert API_KEY not in repr(ServerConfig("http://x", "m", api_key=API_KEY))


def test_a_closed_port_is_unavailable_at_once():
    started = time.monotonic()
    with pytest.raises(ServerUnavailable, match="cannot connect"):
        client(f"http://127.0.0.1:{free_port()}").models()
    assert time.monotonic() - started < 2


def test_the_circuit_opens_after_repeated_failures_and_a_trial_closes_it():
    # given a breaker that opens after 2 failures for 1 s, and a server failing twice then recovering
    breaker = CircuitBreaker(threshold=2, cooldown_s=1.0)
    routes = {
        ("POST", "/v1/chat/completions"): scripted(
            (500, {}, {"error": "x"}), (500, {}, {"error": "x"}), chat_route()(None)
        )
    }
    with Stub(routes) as stub:
        c = client(stub.url, breaker=breaker, max_retries=0, cooldown_s=1.0)
        for _ in range(2):
            with pytest.raises(ServerUnavailable):
                c.chat(PROMPT)

        # when asked again at once: refused without a request, with the time left
        with pytest.raises(ServerUnavailable, match="failed repeatedly .last: .*answered 500") as refused:
            c.chat(PROMPT)
        assert refused.value.retry_after <= 1.0
        assert len(stub.calls("/v1/chat/completions")) == 2

        # then after the cooldown one trial goes through, succeeds, and closes the circuit
        time.sleep(1.05)
        assert c.chat(PROMPT).text == "Your parcel arrives tomorrow."
        assert not breaker.is_open(stub.url)


def test_draft_keeps_the_prompts_that_succeeded_and_runs_requests_concurrently():
    # given a server that takes 0.3 s per answer and fails for one question
    def route(body):
        time.sleep(0.3)
        if body["messages"][-1]["content"] == "fail":
            return 400, {}, {"error": "bad question"}
        return chat_route(text=body["messages"][-1]["content"])(body)

    with Stub({("POST", "/v1/chat/completions"): route}) as stub:
        prompts = [Prompt(messages=[{"role": "user", "content": q}]) for q in ["a", "b", "fail", "c"] * 2]
        started = time.monotonic()

        # when eight prompts are drafted with four requests in flight
        results = draft(client(stub.url, max_concurrency=4), prompts)

        # then they took about two rounds, not eight, and only the failing ones carry an error
        assert time.monotonic() - started < 1.5
        assert [r.text if not isinstance(r, RemoteError) else "error" for r in results] == [
            "a", "b", "error", "c", "a", "b", "error", "c"
        ]  # fmt: skip
