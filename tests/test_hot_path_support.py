"""What the work queue's hot path leans on: remembered API tokens and the once-per-window gate."""

import time

import pytest
from rest_framework.authtoken.models import Token

from annotation.tasks import project_state_counts_broadcast
from annotation.workflow.live_counts import (
    counts_window,
    counts_window_length,
    project_counts_broadcast_schedule,
)
from core import authentication
from core.realtime import _window_open_until, first_in_window, window_length_get, window_length_set

from .conftest import api_client_for


@pytest.fixture(autouse=True)
def forget_tokens():
    authentication._known.clear()
    yield
    authentication._known.clear()


def test_a_deleted_token_works_only_until_the_process_forgets_it(settings, people, project):
    # given a token this process has just seen, remembered for one second
    settings.HANDOVER_TOKEN_CACHE_SECONDS = 1
    client = api_client_for(people["annotator"])
    assert client.get(f"/api/projects/{project.pk}/").status_code == 200

    # when the token is deleted
    Token.objects.filter(user=people["annotator"]).delete()

    # then it still works within the second, and is refused after it
    assert client.get(f"/api/projects/{project.pk}/").status_code == 200
    time.sleep(1.1)
    assert client.get(f"/api/projects/{project.pk}/").status_code == 401


def test_with_no_memory_a_deleted_token_is_refused_at_once(settings, people, project):
    settings.HANDOVER_TOKEN_CACHE_SECONDS = 0
    client = api_client_for(people["annotator"])
    assert client.get(f"/api/projects/{project.pk}/").status_code == 200
    Token.objects.filter(user=people["annotator"]).delete()
    assert client.get(f"/api/projects/{project.pk}/").status_code == 401


def test_roles_are_not_remembered_with_the_token(people, project):
    # given a remembered token
    client = api_client_for(people["annotator"])
    assert client.get(f"/api/projects/{project.pk}/").status_code == 200

    # when the user leaves the project, the next request is refused at once
    project.memberships.filter(user=people["annotator"]).delete()
    assert client.get(f"/api/projects/{project.pk}/").status_code == 404


def test_first_in_window_opens_one_window_across_processes():
    key = f"test-window-{time.time_ns()}"
    # the first caller opens the window; the same process is answered from memory after that
    assert first_in_window(key, 0.5) is True
    assert first_in_window(key, 0.5) is False
    # another process (no memory of the window) is told by Redis that it is open
    _window_open_until.pop(key)
    assert first_in_window(key, 0.5) is False
    # once the window is over, the next caller opens a new one
    time.sleep(0.6)
    assert first_in_window(key, 0.5) is True


def test_a_claim_stands_when_redis_cannot_take_the_live_update(monkeypatch, api, people, project):
    # given Redis unreachable for the live-counts gate
    import redis

    from core import realtime

    from .factories import ItemFactory

    ItemFactory(project=project)
    monkeypatch.setattr(realtime, "_redis_client", redis.Redis(port=1, socket_connect_timeout=0.2))
    monkeypatch.setattr(realtime, "_window_open_until", {})

    # when the annotator claims, the claim is answered and kept
    response = api(people["annotator"]).post(
        f"/api/projects/{project.pk}/tasks/next/", {"stage": "annotate"}, format="json"
    )
    assert response.status_code == 200
    assert project.items.get().leased_by == people["annotator"]


def test_counts_windows_grow_with_the_time_counting_takes():
    # a quick count keeps the one-second window; a slow one spreads broadcasts out, within bounds
    assert counts_window_length(0.001) == 1.0
    assert counts_window_length(0.12) == pytest.approx(2.4)
    assert counts_window_length(10) == 30.0


def test_the_counts_broadcast_sets_the_projects_next_windows(project):
    # given a project whose windows were once long
    window = counts_window(project.pk)
    window_length_set(window, 7.0)

    # when its counts are broadcast (a handful of items count in well under 50 ms)
    project_state_counts_broadcast(project.pk)

    # then its windows are back to one second
    assert window_length_get(window, default=-1) == 1.0


def test_a_transition_opens_a_window_as_long_as_the_last_count_asked(monkeypatch, project):
    # given a project whose last count asked for three-second windows, and no window open
    from core import realtime

    window = counts_window(project.pk)
    window_length_set(window, 3.0)
    monkeypatch.setattr(realtime, "_window_open_until", {})
    realtime.redis_client().delete(f"handover:window:{window}")

    # when a transition schedules the broadcast
    project_counts_broadcast_schedule(project.pk)

    # then the window it opened in Redis lasts three seconds
    assert 2000 < realtime.redis_client().pttl(f"handover:window:{window}") <= 3000
