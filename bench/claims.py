"""Claim throughput and latency: N concurrent HTTP clients claiming and submitting on a big project.

Run with the throwaway services:  scripts/with-test-services.sh .venv/bin/python bench/claims.py
Options: --items 1000000 --clients 32 --seconds 20 --workers 2
Prints p50/p95/p99 claim latency and claims/s for one client (the baseline) and for N clients.
"""

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import django
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from annotation.models import Membership, Project  # noqa: E402


def seed(n_items: int, n_users: int) -> tuple[Project, list[str]]:
    call_command("migrate", verbosity=0)
    User = get_user_model()
    admin, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_staff": True})
    project, created = Project.objects.get_or_create(
        slug="bench-claims", defaults={"name": "Bench", "created_by": admin}
    )
    tokens = []
    for n in range(n_users):
        user, _ = User.objects.get_or_create(username=f"bench-annotator-{n}")
        Membership.objects.get_or_create(project=project, user=user, role="annotator")
        tokens.append(Token.objects.get_or_create(user=user)[0].key)
    existing = project.items.count()
    if existing < n_items:
        started = time.perf_counter()
        with (
            connection.cursor() as cursor,
            cursor.copy(
                "COPY annotation_item (project_id, input, context, reference_output, external_id,"
                " content_hash, source, status, priority, version, needs_expert, low_confidence, lease_stage,"
                " status_before_lease, created_at, updated_at) FROM STDIN"
            ) as copy,
        ):
            for i in range(existing, n_items):
                copy.write_row(
                    (
                        project.pk,
                        f"Bench question {i}?",
                        "",
                        "",
                        "",
                        f"{i:064x}",
                        "import",
                        "new",
                        0,
                        1,
                        False,
                        False,
                        "",
                        "",
                        "now",
                        "now",
                    )
                )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE annotation_item")
        print(f"seeded {n_items - existing:,} items in {time.perf_counter() - started:.1f} s")
    return project, tokens


def run_clients(base: str, project: Project, tokens: list[str], seconds: float) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    errors: list[str] = []

    def client(token: str):
        mine = []
        with httpx.Client(base_url=base, headers={"Authorization": f"Token {token}"}, timeout=30) as http:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                response = http.post(f"/api/projects/{project.pk}/tasks/next/", json={"stage": "annotate"})
                mine.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    errors.append(f"claim {response.status_code}: {response.text[:200]}")
                    return
                item = response.json()["item"]
                done = http.post(
                    f"/api/items/{item['id']}/submit/", json={"text": "ok", "version": item["version"]}
                )
                if done.status_code != 200:
                    errors.append(f"submit {done.status_code}: {done.text[:200]}")
                    return
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} errors, first: {errors[0]}")
    return latencies, elapsed


def report(label: str, latencies: list[float], elapsed: float) -> float:
    q = statistics.quantiles(sorted(latencies), n=100)
    rate = len(latencies) / elapsed
    print(
        f"{label:<12} claims={len(latencies):>6}  p50={q[49] * 1000:6.1f} ms  p95={q[94] * 1000:6.1f} ms  "
        f"p99={q[98] * 1000:6.1f} ms  throughput={rate:7.1f} claims/s"
    )
    return rate


def main():
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    project, tokens = seed(args.items, args.clients)
    env = {**os.environ, "DEBUG": "false", "LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(args.port),
            "--workers",
            str(args.workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{base}/login/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        run_clients(base, project, tokens[:4], 2)  # warm-up: connections, caches, plans
        print(
            f"items={project.items.count():,}  server: uvicorn --workers {args.workers}  "
            f"machine: {os.cpu_count()} cores"
        )
        single = report("1 client", *run_clients(base, project, tokens[:1], args.seconds / 2))
        many = report(f"{args.clients} clients", *run_clients(base, project, tokens, args.seconds))
        print(f"throughput ratio {args.clients} clients / 1 client: {many / single:.2f}x")
    finally:
        server.terminate()
        server.wait(20)


if __name__ == "__main__":
    main()
