"""Importing a raw chat log of N sessions (five messages each, lines shuffled) against the same N
conversations as OpenAI chat records, through the real import job (import_job_run: parse -> COPY into
the staging table -> one INSERT ... SELECT): the time of each, their ratio and the peak RSS of this
process (the chat log reader holds the file's messages in memory while it groups them).

    scripts/with-test-services.sh .venv/bin/python bench/import_chat_log.py [--sessions 100000]

Each session: user, bot, user, bot, user with a channel and a message id per line, one in ten asking
for a person (转人工). The item table is emptied before each import.
"""

# ruff: noqa: E501 - sample text and report lines read better unwrapped

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from _setup import peak_rss_mb, project, setup

START = 1_796_115_600  # 2026-12-01T09:00:00Z


def texts(i: int) -> list[str]:
    return [
        f"Ticket {i}: my order has not arrived yet 我的订单还没到",
        "Sorry to hear that. Could you give me the order number?",
        f"It is {100000 + i}. " + ("转人工" if i % 10 == 0 else "上周一下的单。"),
        "Thank you; it is out for delivery today.",
        "OK, thanks",
    ]


def write_log(path: Path, sessions: int) -> int:
    lines = []
    for i in range(sessions):
        for k, text in enumerate(texts(i)):
            role = "user" if k % 2 == 0 else "bot"
            record = {"session_id": f"s-{i}", "ts": START + i * 3 + k * 20, "role": role, "content": text,
                      "channel": "app", "msg_id": f"{i}-{k}"}  # fmt: skip
            lines.append(json.dumps(record, ensure_ascii=False))
    random.Random(1).shuffle(lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path.stat().st_size


def write_openai(path: Path, sessions: int) -> int:
    with path.open("w", encoding="utf-8") as out:
        for i in range(sessions):
            turns = [
                {"role": "user" if k % 2 == 0 else "assistant", "content": t} for k, t in enumerate(texts(i))
            ]
            out.write(
                json.dumps({"session_id": f"s-{i}", "channel": "app", "messages": turns}, ensure_ascii=False)
                + "\n"
            )
    return path.stat().st_size


def run_import(path: Path, size: int, slug: str, fmt: str) -> tuple[float, str]:
    from django.db import connection

    from annotation.importing import import_job_create, import_job_run
    from annotation.models import Item

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {Item._meta.db_table} CASCADE")
    target = project(slug)
    job = import_job_create(project=target, actor=None, filename=path.name, size=size, fmt=fmt)
    start = time.perf_counter()
    with path.open("rb") as stream:
        job = import_job_run(job_id=job.pk, stream=stream)
    elapsed = time.perf_counter() - start
    assert job.status == "succeeded", job.message
    return elapsed, job.message


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=100_000)
    args = parser.parse_args()
    setup()
    from django.conf import settings

    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for name, write, fmt in (("openai", write_openai, "openai"), ("chat_log", write_log, "chat_log")):
            path = Path(tmp) / f"{name}.jsonl"
            size = write(path, args.sessions)
            settings.IMPORT_MAX_FILE_BYTES = max(settings.IMPORT_MAX_FILE_BYTES, size)
            elapsed, message = run_import(path, size, f"bench-{name}", fmt)
            runs[name] = elapsed
            print(
                f"{name}: {size / 2**20:.0f} MiB, {elapsed:.1f} s = {args.sessions / elapsed:,.0f} conversations/s; {message}"
            )
            print(f"  peak RSS so far: {peak_rss_mb():.0f} MB")
    print(f"chat_log / openai: {runs['chat_log'] / runs['openai']:.2f}x ({args.sessions * 5:,} messages)")


if __name__ == "__main__":
    main()
