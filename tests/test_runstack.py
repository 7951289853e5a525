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


def new_project_trains_and_answers(base: str) -> None:
    """What a new user does first on a fresh stack: a project of their own, eight approved answers, the
    threshold run; then a version registered with no base model, deployed, answering `ask`."""
    client = httpx.Client(base_url=base, timeout=30)

    def token(username):
        body = {"username": username, "password": f"{username}-demo-pass"}
        return {"Authorization": f"Token {client.post('/api/auth/token/', json=body).json()['token']}"}

    admin, annotator = token("admin"), token("annotator")
    settings = {"name": "Mine", "retrain_threshold": 8, "review_tiers": 1, "confidence_threshold": 0.0}
    project = client.post("/api/projects/", json=settings, headers=admin).json()["id"]
    member = {"username": "annotator", "role": "annotator"}
    assert client.post(f"/api/projects/{project}/members/", json=member, headers=admin).status_code == 201
    rows = "".join(f'{{"input": "Question {i} about my order?"}}\n' for i in range(8)).encode()
    job = client.post(f"/api/projects/{project}/imports/", files={"file": ("q.jsonl", rows)}, headers=admin)
    deadline = time.monotonic() + 60
    while client.get(f"/api/imports/{job.json()['id']}/", headers=admin).json()["status"] != "succeeded":
        assert time.monotonic() < deadline, "the import did not succeed"
        time.sleep(0.3)
    for _ in range(8):
        task = client.post(
            f"/api/projects/{project}/tasks/next/", json={"stage": "annotate"}, headers=annotator
        )
        item = task.json()["item"]
        answer = {"text": "Your parcel arrives tomorrow.", "version": item["version"]}
        assert (
            client.post(f"/api/items/{item['id']}/submit/", json=answer, headers=annotator).status_code == 200
        )
    deadline = time.monotonic() + 240
    while True:
        runs = client.get(f"/api/projects/{project}/training-runs/", headers=admin).json()["results"]
        if runs and runs[0]["status"] not in ("queued", "running", "evaluating"):
            break
        assert time.monotonic() < deadline, f"the threshold run did not finish: {runs}"
        time.sleep(1)
    assert runs[0]["status"] != "failed", runs[0]["status_reason"]

    version = client.post(f"/api/projects/{project}/model-versions/", json={"name": "base"}, headers=admin)
    assert version.status_code == 201, version.text
    promoted = client.post(f"/api/model-versions/{version.json()['id']}/promote/", headers=admin)
    assert promoted.json()["status"] == "deployed"
    asked = client.post(
        f"/api/projects/{project}/ask/", json={"question": "Where is my order?"}, headers=admin
    )
    assert asked.status_code == 200 and asked.json()["handed_over"] is False, asked.text


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
        # and a new user's project trains and answers on the default base model (issue 12)
        assert (tmp_path / "var" / "models" / "tiny" / "config.json").exists()
        new_project_trains_and_answers(base)
    finally:
        # when Ctrl-C
        process.send_signal(signal.SIGINT)
        process.wait(60)
    # then every child is gone
    time.sleep(0.5)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert "Stopped." in log.read_text()
