"""Seconds to export 1,000,000 approved items to alpaca JSONL (redaction on), against the same rows
written with json.dumps and no database, for scale.

    scripts/with-test-services.sh .venv/bin/python bench/export_alpaca.py [--rows 1000000]
"""

# ruff: noqa: E501 - SQL and sample text read better unwrapped

import argparse
import json
import tempfile
import time
from pathlib import Path

from _setup import peak_rss_mb, project, setup


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    setup()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotation.exporting.services import export_to_dir

    target = project("bench-export")
    author = get_user_model().objects.get(username="bench")
    start = time.perf_counter()
    # Set up approved items straight in SQL: the workflow services are not what is measured here.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO annotation_item (project_id, input, context, reference_output, external_id, content_hash,
                source, status, priority, version, needs_expert, low_confidence, lease_stage, status_before_lease,
                created_at, updated_at)
            SELECT %s, 'Ticket ' || g || ': my order has not arrived, what should I do? 我的订单还没到', '', '',
                'e' || g, md5(g::text), 'import', 'approved', 0, 1, false, false, '', '', now(), now()
            FROM generate_series(1, %s) g
            """,
            [target.pk, args.rows],
        )
        cursor.execute(
            """
            INSERT INTO annotation_revision (item_id, author_id, stage, text, created_at)
            SELECT id, %s, 'annotate', 'Please wait two more working days, then write to us again. 请再等两天。',
                now() FROM annotation_item WHERE project_id = %s
            """,
            [author.pk, target.pk],
        )
        cursor.execute(
            "UPDATE annotation_item i SET current_revision_id = r.id FROM annotation_revision r "
            "WHERE r.item_id = i.id AND i.project_id = %s",
            [target.pk],
        )
        cursor.execute("ANALYZE")
    print(f"set-up of {args.rows:,} approved items: {time.perf_counter() - start:.1f} s")

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = export_to_dir(project=target, fmt="alpaca", out=Path(tmp))
        elapsed = time.perf_counter() - start
        size = result.path.stat().st_size
        print(f"export: {result.records:,} records in {elapsed:.1f} s = {result.records / elapsed:,.0f} rec/s, "
              f"{size / 2**20:.0f} MiB")  # fmt: skip

        start = time.perf_counter()
        with open(Path(tmp) / "plain.jsonl", "wb") as out:
            for i in range(args.rows):
                record = {"instruction": f"Ticket {i}: my order has not arrived", "input": "", "output": "Wait.",
                          "system": ""}  # fmt: skip
                out.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
        plain = time.perf_counter() - start
        print(f"json.dumps alone, no database: {plain:.1f} s (export is {elapsed / plain:.1f}x that)")
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
