"""Shared start-up of the data benchmarks: Django against DATABASE_URL, migrated, and a project."""

import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def setup():
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def project(slug: str):
    from django.contrib.auth import get_user_model

    from annotation.models import Project

    user, _ = get_user_model().objects.get_or_create(username="bench")
    Project.objects.filter(slug=slug).delete()
    return Project.objects.create(name=slug, slug=slug, created_by=user)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(call, repeats: int):
    """(best, median) seconds of `repeats` calls, and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def next_ids(cursor, table: str, count: int) -> int:
    """Reserve `count` ids of `table`'s sequence for rows written by COPY; returns the first."""
    cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [table])
    first = cursor.fetchone()[0] + 1
    cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table, first + count])
    return first
