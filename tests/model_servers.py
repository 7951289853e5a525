"""Model servers for the backend tests: llama.cpp's real OpenAI-compatible server on the tiny model, and
a scripted HTTP stub for what no server here can show (429 with Retry-After, vLLM's LoRA endpoints, a
server without logprobs).

The llama.cpp server is `python -m llama_cpp.server` from the `llama-cpp-python[server]` dev dependency,
on the tiny model converted by `training.engine.gguf_export`: a separate process answering real HTTP,
so drafts, confidences and failures go through the same client code as a vLLM deployment would.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

# What llama.cpp's server needs to sample as transformers does: its chat handler applies a repetition
# penalty of 1.1, top-k 40 and min-p 0.05 unless told otherwise.
LLAMA_CPP_REQUEST_EXTRA = {"repeat_penalty": 1.0, "top_k": 0, "min_p": 0.0}
API_KEY = "test-key-5d1f"  # the servers' key, so tests can check it never shows up in an answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_gguf(model_dir: Path, out: Path) -> Path:
    """The tiny model as GGUF, written once per directory (the converter under test elsewhere)."""
    from training.engine.gguf_export import export_gguf

    if not out.exists():
        tmp = out.with_suffix(".tmp")
        export_gguf(model_dir, tmp)
        tmp.rename(out)
    return out


@dataclass
class LlamaServer:
    """A running `llama_cpp.server` process; `url` is its root (without /v1)."""

    gguf: Path
    port: int = field(default_factory=free_port)
    model: str = "tiny"
    api_key: str = API_KEY
    threads: int = 1  # llama.cpp's compute threads (the tests leave the other core to the client)
    process: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> LlamaServer:
        self.log = self.gguf.parent / f"llama-server-{self.port}.log"
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--model_alias", self.model,
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "2048", "--verbose", "false",
            "--api_key", self.api_key, "--n_threads", str(self.threads),
        ]  # fmt: skip
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy()
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama.cpp's server exited:\n{self.log.read_text()}")
            try:
                headers = {"Authorization": f"Bearer {self.api_key}"}
                if httpx.get(f"{self.url}/v1/models", headers=headers, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama.cpp's server did not answer within {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Until a one-token request goes through: an abandoned long generation has finished."""
        body = {"model": self.model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        headers = {"Authorization": f"Bearer {self.api_key}"}
        httpx.post(f"{self.url}/v1/chat/completions", json=body, headers=headers, timeout=timeout)


@dataclass
class Stub:
    """A scripted HTTP server: `routes[(method, path)]` is a function of the request's JSON body that
    returns (status, headers, body dict); every request is recorded in `requests`."""

    routes: dict
    requests: list = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Stub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                stub.requests.append((self.command, self.path, body, dict(self.headers)))
                route = stub.routes.get((self.command, self.path))
                status, headers, payload = route(body) if route else (404, {}, {"detail": "Not Found"})
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, path: str) -> list:
        return [r for r in self.requests if r[1] == path]


def models_route(*ids: str, parent: dict | None = None, root: dict | None = None):
    data = [
        {"id": i, "object": "model", "parent": (parent or {}).get(i), "root": (root or {}).get(i)}
        for i in ids
    ]
    return lambda body: (200, {}, {"object": "list", "data": data})


def chat_route(text: str = "Your parcel arrives tomorrow.", logprobs: list[float] | None = (-0.1, -0.2)):
    """A chat completion; `logprobs=None` answers without any (as `transformers serve` does)."""

    def route(body):
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        if logprobs is not None:
            choice["logprobs"] = {
                "content": [{"token": "t", "logprob": lp, "top_logprobs": []} for lp in logprobs]
            }
        return 200, {}, {"object": "chat.completion", "choices": [choice]}

    return route
