"""Claim throughput and latency: N concurrent HTTP clients claiming and submitting on a big project.

Run with the throwaway services:  scripts/with-test-services.sh .venv/bin/python bench/claims.py
Options: --items 1000000 --clients 32 --seconds 20 --rate 300 --workers 2
(HANDOVER_HOT_LANE=false in the environment runs the server without annotation.hot_lane, to compare.)
Prints p50/p95/p99 claim latency and claims/s for one client (the baseline), for N clients offering
--rate claims/s between them (latency from each claim's scheduled start), and for N clients flat out.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import django

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


def run_clients(
    base: str, project: Project, tokens: list[str], seconds: float, rate: float | None = None
) -> tuple[list[float], float]:
    """Each token is one client on its own connection: claim, submit, repeat. With `rate` (claims/s over
    all clients) each client starts a claim on a fixed schedule and a claim's latency counts from its
    scheduled start, so a server that falls behind is charged for the wait (no coordinated omission).
    Without `rate` the clients go flat out (closed loop): that measures the most the server does."""
    return asyncio.run(_run_clients(base, project, tokens, seconds, rate))


async def _run_clients(base, project, tokens, seconds, rate):
    latencies: list[float] = []
    errors: list[str] = []
    interval = len(tokens) / rate if rate else 0.0

    async def client(n: int, token: str):
        headers = {"Authorization": f"Token {token}"}
        async with aiohttp.ClientSession(
            base, headers=headers, connector=aiohttp.TCPConnector(limit=1)
        ) as http:
            started = time.perf_counter()
            next_at = started + interval * n / len(tokens)  # spread the clients over one interval
            while next_at < started + seconds:
                if rate:
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                t0 = next_at if rate else time.perf_counter()
                next_at += interval if rate else 0.0
                async with http.post(
                    f"/api/projects/{project.pk}/tasks/next/", json={"stage": "annotate"}
                ) as r:
                    body = await r.json() if r.status == 200 else await r.text()
                latencies.append(time.perf_counter() - t0)
                if r.status != 200:
                    errors.append(f"claim {r.status}: {str(body)[:200]}")
                    return
                item = body["item"]
                submit = {"text": "ok", "version": item["version"]}
                async with http.post(f"/api/items/{item['id']}/submit/", json=submit) as done:
                    if done.status != 200:
                        errors.append(f"submit {done.status}: {(await done.text())[:200]}")
                        return
                    await done.read()
                if not rate:
                    next_at = time.perf_counter()

    started = time.perf_counter()
    await asyncio.gather(*(client(n, t) for n, t in enumerate(tokens)))
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} errors, first: {errors[0]}")
    return latencies, elapsed


def report(label: str, latencies: list[float], elapsed: float) -> float:
    q = statistics.quantiles(sorted(latencies), n=100)
    rate = len(latencies) / elapsed
    print(
        f"{label:<24} claims={len(latencies):>6}  p50={q[49] * 1000:6.1f} ms  p95={q[94] * 1000:6.1f} ms  "
        f"p99={q[98] * 1000:6.1f} ms  throughput={rate:7.1f} claims/s",
        flush=True,
    )
    return rate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=300, help="claims/s offered in the paced run")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
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
        wait_until_up(f"{base}/login/")
        run_clients(base, project, tokens, 3)  # warm-up: connections, pools, query plans
        print(
            f"items={project.items.count():,}  server: uvicorn --workers {args.workers}  "
            f"machine: {os.cpu_count()} cores"
        )
        single = report("1 client (baseline)", *run_clients(base, project, tokens[:1], args.seconds / 2))
        paced = report(
            f"{args.clients} clients, {args.rate:g}/s offered",
            *run_clients(base, project, tokens, args.seconds, rate=args.rate),
        )
        most = report(f"{args.clients} clients, flat out", *run_clients(base, project, tokens, args.seconds))
        print(
            f"throughput ratio {args.clients} clients / 1 client: paced {paced / single:.2f}x, "
            f"flat out {most / single:.2f}x"
        )
    finally:
        server.terminate()
        server.wait(20)


def wait_until_up(url: str) -> None:
    for _ in range(150):
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server did not answer {url}")


if __name__ == "__main__":
    main()
