"""Importing N three-turn conversations against N single-turn rows through the real import job
(import_job_run: parse -> COPY into the staging table -> one INSERT ... SELECT), the time of each, their
ratio (target <= 1.5x) and the peak RSS of this process (target <= 400 MB).

    scripts/with-test-services.sh .venv/bin/python bench/import_conversations.py [--rows 1000000] [--repeat 1]

A three-turn conversation is a ShareGPT record whose prompt holds three turns (user, assistant, user)
and whose last gpt turn is the reply, with a system prompt, an id and a metadata key; a single-turn row
is the plain Q/A record with the same system prompt, id and metadata key. The item table is emptied
before each import so that neither run pays for the other's rows in its indexes.
"""

# ruff: noqa: E501 - sample text and report lines read better unwrapped

import argparse
import json
import tempfile
import time
from pathlib import Path

from _setup import peak_rss_mb, project, setup

SYSTEM = "Customer support for an online shop."


def single_turn(i: int) -> dict:
    return {
        "id": f"t-{i}",
        "input": f"Ticket {i}: my order has not arrived yet, what should I do? 我的订单还没到，怎么办？",
        "output": "Please wait two more working days, then contact us again.",
        "system": SYSTEM,
        "category": ("shipping", "billing", "returns")[i % 3],
    }


def three_turns(i: int) -> dict:
    return {
        "id": f"t-{i}",
        "system": SYSTEM,
        "category": ("shipping", "billing", "returns")[i % 3],
        "conversations": [
            {
                "from": "human",
                "value": f"Ticket {i}: my order has not arrived yet, what should I do? 我的订单还没到，怎么办？",
            },
            {"from": "gpt", "value": "Sorry to hear that. Could you give me the order number?"},
            {"from": "human", "value": f"It is {100000 + i}, placed last Monday. 上周一下的单。"},
            {"from": "gpt", "value": "Please wait two more working days, then contact us again."},
        ],
    }


def write_file(path: Path, rows: int, make) -> int:
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            out.write(json.dumps(make(i), ensure_ascii=False) + "\n")
    return path.stat().st_size


def empty_items() -> None:
    from django.db import connection

    from annotation.models import Item

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {Item._meta.db_table} CASCADE")
        cursor.execute(f"VACUUM ANALYZE {Item._meta.db_table}")


def run_import(path: Path, size: int, slug: str) -> tuple[float, str]:
    from annotation.importing import import_job_create, import_job_run

    empty_items()
    target = project(slug)
    job = import_job_create(project=target, actor=None, filename=path.name, size=size)
    start = time.perf_counter()
    with path.open("rb") as stream:
        job = import_job_run(job_id=job.pk, stream=stream)
    elapsed = time.perf_counter() - start
    assert job.status == "succeeded", job.message
    return elapsed, job.message


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="alternate the two imports this many times")
    args = parser.parse_args()
    setup()
    from django.conf import settings

    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, make in (("single-turn", single_turn), ("three-turn", three_turns)):
            path = Path(tmp) / f"{name}.jsonl"
            files[name] = (path, write_file(path, args.rows, make))
            print(f"{name}: {args.rows:,} rows, {files[name][1] / 2**20:.0f} MiB")
        settings.IMPORT_MAX_FILE_BYTES = max(size for _, size in files.values())
        times: dict[str, list[float]] = {name: [] for name in files}
        for round_ in range(args.repeat):
            for name, (path, size) in files.items():
                elapsed, message = run_import(path, size, f"bench-{name}")
                times[name].append(elapsed)
                print(
                    f"round {round_ + 1}, {name}: {elapsed:.1f} s = {args.rows / elapsed:,.0f} rows/s; {message}"
                )
    best = {name: min(values) for name, values in times.items()}
    ratio = best["three-turn"] / best["single-turn"]
    print(
        f"best of {args.repeat}: single-turn {best['single-turn']:.1f} s, three-turn {best['three-turn']:.1f} s, ratio {ratio:.2f}x (target <= 1.5x)"
    )
    print(f"peak RSS: {peak_rss_mb():.0f} MB (target <= 400 MB)")


if __name__ == "__main__":
    main()
