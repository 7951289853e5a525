"""`make run`'s command: the whole stack starts on embedded defaults, serves, and stops cleanly."""

import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from .conftest import ROOT, free_port

pytestmark = pytest.mark.worker


def wait_for(url: str, process: subprocess.Popen, log, seconds: float = 120) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"runstack exited early:\n{log.read_text()}"
        try:
            response = httpx.get(url, timeout=3)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer 200 within {seconds} s:\n{log.read_text()}")


def test_runstack_serves_the_demo_and_stops_every_child(tmp_path):
    # given a fresh checkout's environment: no DATABASE_URL, no REDIS_URL (SQLite and embedded Redis)
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "HANDOVER_ENV"}}
    env.update(HANDOVER_VAR_DIR=str(tmp_path / "var"), HANDOVER_EMBEDDED_REDIS_PORT=str(free_port()))
    port = free_port()
    log = tmp_path / "runstack.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runstack", "--port", str(port), "--concurrency", "1"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        # when it has started, then health is green, the login page is served, the demo users work
        health = wait_for(f"{base}/healthz", process, log)
        assert health.json()["checks"] == {"database": "ok", "redis": "ok", "worker": "ok"}
        assert 'name="password"' in httpx.get(f"{base}/login/").text
        token = httpx.post(
            f"{base}/api/auth/token/", json={"username": "annotator", "password": "annotator-demo-pass"}
        )
        projects = httpx.get(
            f"{base}/api/projects/", headers={"Authorization": f"Token {token.json()['token']}"}
        )
        assert [p["slug"] for p in projects.json()["results"]] == ["customer-service"]
        printed = log.read_text()
        assert f"http://127.0.0.1:{port}/" in printed and "annotator-demo-pass" in printed
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 4  # redis, web, worker, beat
    finally:
        # when Ctrl-C
        process.send_signal(signal.SIGINT)
        process.wait(60)
    # then every child is gone
    time.sleep(0.5)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert "Stopped." in log.read_text()
