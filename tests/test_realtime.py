"""Browsers watching a project get its events from Celery tasks, through the real Redis channel layer."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async as db_sync
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client

from annotation.tasks import project_state_counts_broadcast
from config.asgi import application

from .factories import ItemFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
async def close_executor_connections():
    """The consumer queries from asgiref's executor thread; close that thread's connections after
    each test so that the test database can be dropped at the end of the session."""
    yield
    await sync_to_async(connections.close_all, thread_sensitive=True)()


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect_as(user, project_id: int) -> tuple[WebsocketCommunicator, bool, int | None]:
    """Open the project's websocket with the user's real session cookie, as a browser would."""
    cookie = await db_sync(session_cookie)(user) if user else b""
    communicator = WebsocketCommunicator(
        application,
        f"/ws/projects/{project_id}/",
        headers=[(b"origin", b"http://testserver"), (b"cookie", cookie)],
    )
    connected, code = await communicator.connect()
    return communicator, connected, code


@pytest.mark.worker
async def test_member_receives_counts_sent_by_a_celery_task(celery_worker_process, people, project):
    communicator, connected, _ = await connect_as(people["annotator"], project.pk)
    assert connected
    # when a task in the worker broadcasts the project's counts
    await db_sync(ItemFactory.create_batch)(3, project=project)
    await db_sync(project_state_counts_broadcast.delay)(project.pk)
    # then the browser gets the htmx fragment with them
    html = await communicator.receive_from(timeout=30)
    assert 'id="state-counts"' in html
    assert '<div class="state" data-state="new"><span class="n">3</span>' in html
    await communicator.disconnect()


async def test_non_member_is_refused(people, project):
    outsider = await db_sync(UserFactory)(username="nosy")
    _, connected, code = await connect_as(outsider, project.pk)
    assert not connected and code == 4403


async def test_anonymous_is_refused(project):
    _, connected, code = await connect_as(None, project.pk)
    assert not connected and code == 4403


@pytest.mark.worker
async def test_drafting_progress_reaches_watchers_live(celery_worker_process, people, project):
    from annotation.services import items_create
    from tests.test_drafting_support import version_deploy

    # given a member watching a project whose deployed model drafts new items in the worker
    await db_sync(version_deploy)(project)
    communicator, connected, _ = await connect_as(people["annotator"], project.pk)
    assert connected
    # when items arrive (drafting is requested on commit)
    await db_sync(items_create)(
        project=project, actor=None, rows=[{"input": f"Question {n}?"} for n in range(3)]
    )
    # then a drafting event says how many were drafted and how many remain
    for _ in range(10):
        message = await communicator.receive_from(timeout=90)
        if message.startswith("{") and '"drafting"' in message:
            break
    event = json.loads(message)
    assert event["event"] == "drafting"
    assert event["payload"]["drafted"] == 3 and event["payload"]["remaining"] == 0
    await communicator.disconnect()
