"""Health checks of each component the platform needs: the database, Redis and a Celery worker."""

from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app

CHECK_TIMEOUT_S = 1.5


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_redis() -> None:
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=CHECK_TIMEOUT_S, socket_timeout=CHECK_TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()


def check_worker() -> None:
    replies = celery_app.control.ping(timeout=CHECK_TIMEOUT_S)
    if not replies:
        raise RuntimeError(f"no Celery worker answered within {CHECK_TIMEOUT_S} s")


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "redis": check_redis,
    "worker": check_worker,
}


def health_report() -> tuple[bool, dict[str, str]]:
    """Run every check; the worker check is skipped when Redis, which carries it, is down."""
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        if name == "worker" and results.get("redis") != "ok":
            results[name] = "error: not checked, Redis is unavailable"
            continue
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure is the answer we report
            results[name] = f"error: {exc.__class__.__name__}: {exc}"[:300]
    return all(value == "ok" for value in results.values()), results
