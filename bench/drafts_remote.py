"""Drafts per second and latency per draft: the `openai` backend (llama.cpp's OpenAI-compatible server on
the tiny model) against the local batched Drafter, same model weights, prompts and machine.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/drafts_remote.py [--n 64] [--max-new-tokens 32]
        [--concurrency 8] [--threads 2] [--batch-size 32] [--repeat 3]

Both sides draft the same prompts greedily to the same number of new tokens. The local side is what a
gpu worker does for an in-process version (`Drafter.draft`, batches of --batch-size sorted by length);
its latency per draft is the wall time of the batch the draft is in. The remote side is what the worker
does for a served version (`engine.remote.draft`: one chat request per draft, --concurrency in flight);
its latency per draft is the request's round trip. The two run one after the other, each with
--threads compute threads (torch's, llama.cpp's), so neither takes cores from the other.
Needs the `test-server` extra (`make test` installs it): `pip install -e ".[test-server]"`.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.model_servers import LLAMA_CPP_REQUEST_EXTRA, LlamaServer, tiny_gguf  # noqa: E402
from training.engine import remote  # noqa: E402
from training.engine.inference import Drafter  # noqa: E402
from training.engine.prompts import Prompt  # noqa: E402
from training.engine.tiny_model import build_tiny_model, default_corpus  # noqa: E402


def make_prompts(n: int) -> list[Prompt]:
    corpus = default_corpus()
    # Joining 1-3 sentences varies the prompt lengths, as real support tickets do.
    return [
        Prompt(
            messages=[
                {
                    "role": "user",
                    "content": " ".join(corpus[(i + k * 7) % len(corpus)] for k in range(1 + i % 3)),
                }
            ]
        )
        for i in range(n)
    ]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def run_local(drafter: Drafter, prompts: list[Prompt], args) -> tuple[float, list[float]]:
    """Wall time of drafting all prompts, and each draft's latency (its batch's wall time)."""
    latencies: list[float] = []
    start = time.perf_counter()
    for i in range(0, len(prompts), args.batch_size):
        chunk = prompts[i : i + args.batch_size]
        t0 = time.perf_counter()
        drafter.draft(chunk, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, temperature=0.0)
        latencies += [time.perf_counter() - t0] * len(chunk)
    return time.perf_counter() - start, latencies


class TimedClient(remote.RemoteClient):
    """The real client, recording each chat request's round trip."""

    def __init__(self, config):
        super().__init__(config)
        self.latencies: list[float] = []

    def chat(self, *a, **kw):
        t0 = time.perf_counter()
        try:
            return super().chat(*a, **kw)
        finally:
            self.latencies.append(time.perf_counter() - t0)


def run_remote(config: remote.ServerConfig, prompts: list[Prompt], args) -> tuple[float, list[float]]:
    client = TimedClient(config)
    start = time.perf_counter()
    drafts = remote.draft(client, prompts, max_new_tokens=args.max_new_tokens, temperature=0.0)
    wall = time.perf_counter() - start
    failed = [d for d in drafts if isinstance(d, remote.RemoteError)]
    if failed:
        raise SystemExit(f"{len(failed)} drafts failed on the server, e.g. {failed[0]}")
    return wall, client.latencies


def best_of(repeat: int, run):
    """The run with the shortest wall time (the least disturbed by other load)."""
    return min((run() for _ in range(repeat)), key=lambda r: r[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (remote side)")
    parser.add_argument("--threads", type=int, default=2, help="compute threads of each side")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side; the fastest counts")
    args = parser.parse_args()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny")
        prompts = make_prompts(args.n)
        drafter = Drafter(model_dir)
        drafter.draft(prompts[: args.batch_size], batch_size=args.batch_size, max_new_tokens=4)  # warm up
        local_s, local_lat = best_of(args.repeat, lambda: run_local(drafter, prompts, args))

        server = LlamaServer(tiny_gguf(model_dir, Path(tmp) / "tiny.gguf"), threads=args.threads).start()
        try:
            config = remote.ServerConfig(
                base_url=server.url,
                model=server.model,
                api_key=server.api_key,
                max_concurrency=args.concurrency,
                request_extra=LLAMA_CPP_REQUEST_EXTRA,
            )
            run_remote(config, prompts[:4], args)  # warm up
            remote_s, remote_lat = best_of(args.repeat, lambda: run_remote(config, prompts, args))
        finally:
            server.stop()

    print(f"prompts: {args.n}  max_new_tokens: {args.max_new_tokens}  threads per side: {args.threads}")
    print(
        f"  best of {args.repeat}; local batch_size {args.batch_size}; remote concurrency {args.concurrency}"
    )
    print(
        f"local batched Drafter:   {args.n / local_s:8.2f} drafts/s  ({local_s:.2f} s)"
        f"  p95 latency {p95(local_lat) * 1000:.0f} ms"
    )
    print(
        f"openai backend (llama.cpp): {args.n / remote_s:8.2f} drafts/s  ({remote_s:.2f} s)"
        f"  p95 latency {p95(remote_lat) * 1000:.0f} ms"
    )
    print(f"throughput ratio remote/local: {local_s / remote_s:.2f}x")


if __name__ == "__main__":
    main()
