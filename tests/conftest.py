"""Fixtures: people in every role, API clients, and real processes (a Celery worker, the ASGI server)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection
from playwright.sync_api import sync_playwright
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import Role

from .factories import PASSWORD, MembershipFactory, ProjectFactory, UserFactory

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def project(db):
    return ProjectFactory()


@pytest.fixture
def people(project):
    """One user per role in `project`, an outsider, and a staff user; keyed by what they are."""
    people = {
        "outsider": UserFactory(username="outsider"),
        "staff": UserFactory(username="staff", is_staff=True),
    }
    for role in Role.values:
        user = UserFactory(username=role)
        MembershipFactory(project=project, user=user, role=role)
        people[role] = user
    return people


def api_client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def api():
    return api_client_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_database_env() -> dict[str, str]:
    """The environment a child process needs to use the test database pytest-django created."""
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}


def stop_process(process: subprocess.Popen) -> None:
    """Terminate, then kill if it outlives 20 s (a process that has already exited is left alone)."""
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real `celery worker` process consuming both queues through the test Redis."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with django_db_blocker.unblock():
        env = test_database_env()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "default,gpu",
                "--pool",
                "solo",
                "-n",
                worker_name(),
                "-l",
                "info",
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    from config.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited early:\n{log.read_text()}")
        if app.control.ping(timeout=0.5):
            break
    else:
        stop_process(process)
        pytest.fail(f"the Celery worker did not answer within 60 s:\n{log.read_text()}")
    WORKER["name"] = worker_name()
    yield process
    WORKER.clear()
    stop_process(process)


WORKER: dict[str, str] = {}  # the session's Celery worker's name, once it is started


def worker_name() -> str:
    return f"test-{os.getpid()}@{socket.gethostname()}"


@pytest.fixture(autouse=True)
def worker_idle_before_flush(request):
    """After a transactional test, let the session's worker finish what the test sent it.

    The worker keeps running between tests; a task a test queued on commit (drafts for a deployed
    version, say) would otherwise still hold rows when pytest-django truncates the tables, and the
    flush fails on the lock (or a deadlock), or the task runs on against the next test's data. This
    fixture is set up after pytest-django's own, so its teardown runs before the flush.
    """
    yield
    marker = request.node.get_closest_marker("django_db")
    transactional = marker is not None and marker.kwargs.get("transaction", bool(marker.args[:1] == (True,)))
    if WORKER and (transactional or "transactional_db" in request.fixturenames):
        worker_drain(WORKER["name"])


def worker_drain(name: str, timeout: float = 120) -> None:
    """Drop the tasks still queued, then wait until the worker holds none (running or prefetched)."""
    from config.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.control.purge()
        inspect = app.control.inspect(destination=[name], timeout=1, limit=1)
        active, reserved = inspect.active(), inspect.reserved()  # a solo worker answers between tasks
        if active and reserved and not active.get(name) and not reserved.get(name):
            return
        time.sleep(0.1)
    pytest.fail(f"the Celery worker {name} was still busy {timeout:.0f} s after the test")


@pytest.fixture(scope="session")
def live_asgi(django_db_setup, django_db_blocker, tmp_path_factory):
    """The real ASGI application under uvicorn (HTTP and websockets), on the test database."""
    port = free_port()
    log = tmp_path_factory.mktemp("web") / "web.log"
    with django_db_blocker.unblock():
        env = test_database_env()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited early:\n{log.read_text()}")
        try:
            httpx.get(f"{url}/login/", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        stop_process(process)
        pytest.fail(f"uvicorn did not answer within 60 s:\n{log.read_text()}")
    yield url
    stop_process(process)


# --- browser ----------------------------------------------------------------------------------------

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test itself are
    # still synchronous, so Django's async-safety guard is lifted for this module only.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE")


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    yield page
    context.close()


def log_in(page, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
