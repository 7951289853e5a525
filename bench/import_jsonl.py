"""Rows/s of importing a 1,000,000-row JSONL (COPY + one INSERT ... ON CONFLICT) against a per-row
Model.objects.create loop on a 10,000-row sample, and the peak RSS of this process.

    scripts/with-test-services.sh .venv/bin/python bench/import_jsonl.py [--rows 1000000] [--sample 10000]
"""

# ruff: noqa: E501 - SQL and sample text read better unwrapped

import argparse
import json
import tempfile
import time
from pathlib import Path

from _setup import peak_rss_mb, project, setup


def write_file(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            record = {
                "external_id": f"t-{i}",
                "input": f"Ticket {i}: my order has not arrived yet, what should I do? 我的订单还没到，怎么办？",
                "context": "Customer support for an online shop.",
                "reference_output": "Please wait two more working days, then contact us again.",
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=10_000)
    args = parser.parse_args()
    setup()
    from django.conf import settings

    from annotation.dataio.parsers import ParsedRow, read_records
    from annotation.importing import import_job_create, import_job_run
    from annotation.models import Item
    from annotation.services import item_content_hash

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "items.jsonl"
        write_file(path, args.rows)
        size = path.stat().st_size
        settings.IMPORT_MAX_FILE_BYTES = max(settings.IMPORT_MAX_FILE_BYTES, size)
        print(f"file: {args.rows:,} rows, {size / 2**20:.0f} MiB")

        # baseline: the same parser, then one Model.objects.create per row
        target = project("bench-baseline")
        start = time.perf_counter()
        with path.open("rb") as stream:
            for n, row in enumerate(read_records(stream, filename=path.name), 1):
                assert isinstance(row, ParsedRow)
                Item.objects.create(
                    project=target, input=row.input, system=row.system, messages=row.messages,
                    reference_output=row.reference_output, metadata=row.metadata, external_id=row.external_id,
                    content_hash=item_content_hash(messages=row.messages, system=row.system),
                )  # fmt: skip
                if n >= args.sample:
                    break
        baseline_rate = args.sample / (time.perf_counter() - start)
        print(f"baseline per-row create: {args.sample:,} rows at {baseline_rate:,.0f} rows/s")

        target = project("bench-import")
        job = import_job_create(project=target, actor=None, filename=path.name, size=size)
        start = time.perf_counter()
        with path.open("rb") as stream:
            job = import_job_run(job_id=job.pk, stream=stream)
        elapsed = time.perf_counter() - start
        assert job.status == "succeeded", job.message
        rate = job.rows_imported / elapsed
        print(f"import: {job.rows_imported:,} rows in {elapsed:.1f} s = {rate:,.0f} rows/s "
              f"({rate / baseline_rate:.0f}x the per-row loop); {job.message}")  # fmt: skip

        start = time.perf_counter()
        job = import_job_create(project=target, actor=None, filename=path.name, size=size)
        with path.open("rb") as stream:
            job = import_job_run(job_id=job.pk, stream=stream)
        print(f"re-import of the same file: {time.perf_counter() - start:.1f} s; {job.message}")
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
