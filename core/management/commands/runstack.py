"""Run the whole stack in the foreground: Redis (embedded), web (ASGI), Celery worker and beat.

Migrates and seeds the demo first. Ctrl-C (or SIGTERM) stops every child cleanly; if any child
dies, the rest are stopped too, so a half-running stack never lingers.
"""

import io
import os
import shutil
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from core.embedded import redis_answers, redis_start

STOP_GRACE_S = 15


class Command(BaseCommand):
    help = "Start Redis (embedded when REDIS_URL is unset), the web server, a worker and beat."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-demo", action="store_true", help="do not create the demo project")
        parser.add_argument("--concurrency", type=int, default=2, help="worker processes")

    def handle(self, *args, host, port, no_demo, concurrency, **options):
        children: list[tuple[str, subprocess.Popen]] = []
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            if settings.REDIS_EMBEDDED and not redis_answers(settings.REDIS_URL):
                self.stdout.write(f"Starting the embedded Redis on {settings.REDIS_URL}")
                children.append(("redis", redis_start(settings.REDIS_URL, settings.VAR_DIR / "redis")))
            elif not redis_answers(settings.REDIS_URL, timeout=3):
                raise CommandError(f"Redis does not answer at REDIS_URL={settings.REDIS_URL}")

            call_command("migrate", interactive=False, verbosity=0)
            self.stdout.write("Database migrated.")
            if not settings.HANDOVER_BASE_MODEL:
                # New projects draft and train from the tiny default; a worker would build it on first
                # use anyway, this only spares the first draft that second.
                call_command("build_tiny_model", verbosity=0)
            if not no_demo:
                call_command("seed_demo")

            python = sys.executable
            var = settings.VAR_DIR
            commands = {
                "web": [
                    python,
                    "-m",
                    "uvicorn",
                    "config.asgi:application",
                    "--host",
                    host,
                    "--port",
                    str(port),
                    "--no-access-log",
                ],
                "worker": [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "-Q",
                    "default,gpu",
                    "--concurrency",
                    str(concurrency),
                    "-n",
                    "worker@%h",
                    "-l",
                    "info",
                ],
                "beat": [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "beat",
                    "-l",
                    "info",
                    "-s",
                    str(var / "celerybeat-schedule"),
                    "--pidfile",
                    str(var / "celerybeat.pid"),
                ],
            }
            env = os.environ.copy()
            if "PROMETHEUS_MULTIPROC_DIR" not in env:
                # /metrics sums the counters every process writes here (core/metrics.py); empty at start.
                multiproc = var / "prometheus"
                shutil.rmtree(multiproc, ignore_errors=True)
                multiproc.mkdir(parents=True)
                env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc)
            for name, command in commands.items():
                children.append((name, subprocess.Popen(command, env=env)))

            self._print_banner(host, port, no_demo)
            while not stopping:
                for name, child in children:
                    if child.poll() is not None:
                        self.stderr.write(f"{name} exited with code {child.returncode}; stopping the stack.")
                        stopping = True
                time.sleep(0.5)
        finally:
            self._stop(children)

    def _print_banner(self, host: str, port: int, no_demo: bool) -> None:
        lines = ["", f"Handover is running at http://{host}:{port}/  (health: /healthz, API: /api/docs/)"]
        if not no_demo:
            lines.append("Demo logins (username / password / role):")
            logins = io.StringIO()
            call_command("seed_demo", logins=True, stdout=logins)  # by name: the demo is a higher layer
            lines.append(logins.getvalue().rstrip("\n"))
        lines.append("Press Ctrl-C to stop everything.\n")
        self.stdout.write("\n".join(lines))

    def _stop(self, children: list[tuple[str, subprocess.Popen]]) -> None:
        """Stop the app processes first and Redis last, so that they can finish talking to it."""
        for name, child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    self.stderr.write(f"{name} did not stop within {STOP_GRACE_S} s; killing it.")
                    child.kill()
                    child.wait()
        if children:
            self.stdout.write("Stopped.")
