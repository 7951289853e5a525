"""The hot lane (annotation.hot_lane) answers plain claims and submissions exactly as Django does, and
hands every other request to Django untouched."""

import asyncio
import json
import socket
import time

import pytest
from django.core.wsgi import get_wsgi_application
from django.db import connections
from rest_framework.authtoken.models import Token
from rest_framework.renderers import JSONRenderer
from rest_framework.throttling import UserRateThrottle

from annotation.hot_lane import WorkQueueLane
from annotation.models import AuditEvent, Item, Revision
from annotation.workflow.api import ItemSubmitApi
from annotation.workflow.live_counts import counts_window
from annotation.workflow.serializers import ItemSerializer
from config.asgi import HttpPools
from core import realtime

from .asgi_helpers import asgi_request
from .factories import ItemFactory, MembershipFactory, UserFactory
from .test_workflow_sql import as_json, rendered_task

pytestmark = pytest.mark.django_db(transaction=True)


class CountingApp:
    """Django behind the lane, counting the requests that reach it."""

    def __init__(self):
        self.app = HttpPools(get_wsgi_application())
        self.calls = 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        await self.app(scope, receive, send)


async def post(app, path, body, *, token=None, headers=(), query=b""):
    """POST through the ASGI app; returns (status, headers without content-length, body)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if token:
        request_headers.append((b"authorization", f"Token {token}".encode()))
    status, response_headers, body = await asgi_request(
        app, "POST", path, body=data, headers=[*request_headers, *headers], query=query
    )
    assert dict(response_headers).get(b"content-length", str(len(body)).encode()) == str(len(body)).encode()
    return status, [(name, value) for name, value in response_headers if name != b"content-length"], body


def run(scenario, lane_class=WorkQueueLane):
    """Run `scenario(lane, django)` on a fresh lane in front of the real Django stack."""

    async def main():
        django = CountingApp()
        lane = lane_class(django)
        try:
            return await scenario(lane, django)
        finally:
            await lane.aclose()

    return asyncio.run(main())


def rendered_task_then_close(item_id, user):
    try:
        return rendered_task(item_id, user)
    finally:
        connections.close_all()


def claim_path(project):
    return f"/api/projects/{project.pk}/tasks/next/"


def submit_path(item_id):
    return f"/api/items/{item_id}/submit/"


@pytest.fixture
def annotator(project):
    user = UserFactory()
    MembershipFactory(project=project, user=user, role="annotator")
    return user


@pytest.fixture
def token(annotator):
    return Token.objects.create(user=annotator).key


def test_plain_claims_and_submissions_are_answered_as_django_answers_them(project, annotator, token):
    # given three items in the queue
    first, second, third = (ItemFactory(project=project, priority=p) for p in (3, 2, 1))

    async def scenario(lane, django):
        # when the annotator claims and submits twice: once through Django, which the lane learns
        # from, then through the lane
        answers = []
        for _ in range(2):
            claimed = await post(lane, claim_path(project), {"stage": "annotate"}, token=token)
            task = json.loads(claimed[2])
            expected = await asyncio.to_thread(rendered_task_then_close, task["item"]["id"], annotator)
            submitted = await post(
                lane,
                submit_path(task["item"]["id"]),
                {"text": "An answer", "version": task["item"]["version"]},
                token=token,
            )
            answers.append((claimed, expected, submitted, django.calls))
        return answers

    (
        (django_claim, _, django_submit, calls_after_first),
        (lane_claim, expected, lane_submit, calls_after_second),
    ) = run(scenario)

    # then Django answered the first pair and the lane the second, with the same status and headers
    assert calls_after_first == 2
    assert calls_after_second == 2
    assert django_claim[0] == lane_claim[0] == 200
    assert django_submit[0] == lane_submit[0] == 200
    assert lane_claim[1] == django_claim[1]
    assert lane_submit[1] == django_submit[1]

    # and the lane's claim is the task Django would render for that item, written and audited alike
    task = json.loads(lane_claim[2])
    assert task["item"]["id"] == second.pk
    assert task == expected
    claim_events = AuditEvent.objects.filter(action="item.claim").order_by("id")
    assert [(e.target_id, e.actor_id, e.from_state, e.to_state) for e in claim_events] == [
        (str(first.pk), annotator.pk, "new", "annotating"),
        (str(second.pk), annotator.pk, "new", "annotating"),
    ]

    # and the lane's submission stored the revision and answers the item as ItemSerializer renders it
    second.refresh_from_db()
    assert second.status == "submitted" and second.leased_by is None
    assert Revision.objects.get(pk=second.current_revision_id).text == "An answer"
    assert json.loads(lane_submit[2]) == as_json(ItemSerializer(second).data)
    assert AuditEvent.objects.filter(action="item.submit", target_id=str(second.pk)).count() == 1
    assert Item.objects.get(pk=third.pk).status == "new"


def learn_then(project, token, request, lane_class=WorkQueueLane):
    """Warm the lane (token known, headers learned) with one claim and submission, then send
    `request(lane)`; returns (its response, whether it reached Django)."""

    async def scenario(lane, django):
        claimed = json.loads((await post(lane, claim_path(project), {"stage": "annotate"}, token=token))[2])
        await post(
            lane,
            submit_path(claimed["item"]["id"]),
            {"text": "x", "version": claimed["item"]["version"]},
            token=token,
        )
        before = django.calls
        response = await request(lane)
        return response, django.calls > before

    return run(scenario, lane_class)


@pytest.mark.parametrize(
    ("situation", "kwargs", "status"),
    [
        ("a session cookie", {"headers": [(b"cookie", b"sessionid=abc")]}, 200),
        ("a language preference", {"headers": [(b"accept-language", b"zh-hans")]}, 200),
        ("a query string", {"query": b"format=json"}, 200),
        ("a token this process has not checked", {"token": "not-a-known-token"}, 401),
        ("a body that is not JSON", {"body": b"{stage: annotate"}, 400),
        ("NaN in the body", {"body": b'{"stage": NaN}'}, 400),
        ("an unknown field", {"body": {"stage": "annotate", "extra": 1}}, 400),
        ("the rating stage, which annotators may not claim", {"body": {"stage": "rate"}}, 403),
        ("a stage the user has no role for", {"body": {"stage": "expert"}}, 403),
    ],
)
def test_claims_other_than_plain_ones_reach_django(project, token, situation, kwargs, status):
    # given a warm lane and an item left in the queue
    ItemFactory.create_batch(2, project=project)
    kwargs = {"token": token, "body": {"stage": "annotate"}} | kwargs
    body = kwargs.pop("body")

    # when a claim comes with `situation`
    (answered, headers, _), reached_django = learn_then(
        project, token, lambda lane: post(lane, claim_path(project), body, **kwargs)
    )

    # then Django answers it
    assert reached_django, situation
    assert answered == status, situation


def test_an_empty_queue_is_answered_by_django(project, annotator, token):
    # given one item, which the warm-up claims and submits
    ItemFactory(project=project)

    (status, _, body), reached_django = learn_then(
        project, token, lambda lane: post(lane, claim_path(project), {"stage": "annotate"}, token=token)
    )

    # then the claim on the empty queue reached Django, which answered 204
    assert reached_django
    assert (status, body) == (204, b"")


def test_a_stale_submission_reaches_django_and_gets_409(project, annotator, token):
    # given a warm lane and a claimed item
    ItemFactory.create_batch(2, project=project)

    async def request(lane):
        claimed = json.loads((await post(lane, claim_path(project), {"stage": "annotate"}, token=token))[2])
        stale = claimed["item"]["version"] - 1
        return await post(
            lane, submit_path(claimed["item"]["id"]), {"text": "late", "version": stale}, token=token
        )

    (status, _, body), reached_django = learn_then(project, token, request)

    # then Django refused it with the conflict, and nothing was submitted
    assert reached_django
    assert status == 409
    assert json.loads(body)["error"]["code"] == "stale_version"
    assert Item.objects.filter(project=project, status="annotating").count() == 1


def test_when_the_lane_cannot_reach_the_database_django_answers(project, annotator, token):
    # given a lane whose own connections go to a port nobody listens on
    ItemFactory.create_batch(3, project=project)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]

    class CutOffLane(WorkQueueLane):
        @staticmethod
        def connection_params():
            return {**WorkQueueLane.connection_params(), "port": closed_port, "connect_timeout": 1}

    # when a plain claim comes in
    started = time.monotonic()
    (status, _, body), reached_django = learn_then(
        project,
        token,
        lambda lane: post(lane, claim_path(project), {"stage": "annotate"}, token=token),
        CutOffLane,
    )

    # then Django served it after the lane gave up waiting, and the item is leased once
    assert reached_django
    assert status == 200
    claimed = json.loads(body)["item"]["id"]
    assert Item.objects.get(pk=claimed).leased_by == annotator
    assert AuditEvent.objects.filter(action="item.claim", target_id=str(claimed)).count() == 1
    assert time.monotonic() - started < 15


def test_a_client_asking_for_html_is_always_answered_by_django(project, token):
    # given items, and a client that asks for HTML (DRF's browsable API)
    ItemFactory.create_batch(3, project=project)
    html = [(b"accept", b"text/html")]

    async def scenario(lane, django):
        first = await post(lane, claim_path(project), {"stage": "annotate"}, token=token, headers=html)
        again = await post(lane, claim_path(project), {"stage": "annotate"}, token=token, headers=html)
        return first, again, django.calls

    # when it claims twice
    first, again, calls = run(scenario)

    # then Django answered both, in HTML, and the lane learned nothing from them
    assert calls == 2
    for status, headers, _ in (first, again):
        assert status == 200
        assert dict(headers)[b"content-type"].startswith(b"text/html")


def test_the_lane_stays_off_when_a_view_gains_a_throttle(monkeypatch):
    # given the submit view throttled (something the lane does not do)
    monkeypatch.setattr(ItemSubmitApi, "throttle_classes", [UserRateThrottle])

    # when the lane starts, then it is off, so every request goes through the view
    assert WorkQueueLane(CountingApp()).enabled is False


def test_headers_are_learned_only_from_a_success(project, token):
    # given an item, and a first request that Django refuses
    ItemFactory.create_batch(2, project=project)

    async def scenario(lane, django):
        refused = await post(lane, claim_path(project), {"stage": "nonsense"}, token=token)
        after_refusal = django.calls
        await post(lane, claim_path(project), {"stage": "annotate"}, token=token)
        return refused[0], after_refusal, django.calls, dict(lane.learned)

    refused, after_refusal, after_success, learned = run(scenario)

    # then the refusal taught the lane nothing, so the next claim went to Django too, and was learned
    assert refused == 400
    assert (after_refusal, after_success) == (1, 2)
    assert list(learned) == [("claim", b"testserver", None)]


def test_a_claim_through_the_lane_schedules_the_live_counts(project, token):
    # given a warm lane, and no counts window open for the project, neither in Redis nor as far as
    # this process knows
    ItemFactory.create_batch(2, project=project)
    window = counts_window(project.pk)

    async def request(lane):
        realtime.redis_client().delete(f"handover:window:{window}")
        realtime._window_open_until.pop(window, None)
        return await post(lane, claim_path(project), {"stage": "annotate"}, token=token)

    # when the lane answers a claim
    (status, _, _), reached_django = learn_then(project, token, request)

    # then it asked Redis to open the counts window (off the loop), which the process now knows
    assert (status, reached_django) == (200, False)
    deadline = time.monotonic() + 5
    while realtime._window_open_until.get(window) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert realtime._window_open_until.get(window) is not None


def test_concurrent_claims_through_the_lane_take_every_item_exactly_once(project):
    # given 200 items and 20 annotators
    ItemFactory.create_batch(200, project=project)
    tokens = []
    for _ in range(20):
        user = UserFactory()
        MembershipFactory(project=project, user=user, role="annotator")
        tokens.append(Token.objects.create(user=user).key)

    async def scenario(lane, django):
        claimed = []

        async def work(token):
            while True:
                status, _, body = await post(lane, claim_path(project), {"stage": "annotate"}, token=token)
                if status == 204:
                    return
                item = json.loads(body)["item"]
                claimed.append(item["id"])
                done = await post(
                    lane, submit_path(item["id"]), {"text": "done", "version": item["version"]}, token=token
                )
                assert done[0] == 200, done

        # when they all claim and submit at once until the queue is empty
        await asyncio.gather(*(work(token) for token in tokens))
        return claimed, django.calls

    claimed, django_calls = run(scenario)

    # then every item was claimed exactly once, and the lane served nearly all of it
    assert sorted(claimed) == sorted(Item.objects.filter(project=project).values_list("id", flat=True))
    assert AuditEvent.objects.filter(action="item.claim").count() == 200
    assert Item.objects.filter(project=project, status="submitted").count() == 200
    assert django_calls < 100  # the first claims and submissions of each token, and the empty queue


def test_a_conversation_with_metadata_is_answered_by_the_lane_as_django_answers_it(project, annotator, token):
    # given two multi-turn conversations with tool calls, extra keys and metadata
    from .test_workflow_sql import conversation_item

    first = conversation_item(project, external_id="conv-1", priority=2)
    second = conversation_item(project, external_id="conv-2", metadata={"category": "账单", "n": 2})

    async def scenario(lane, django):
        answers = []
        for _ in range(2):
            claimed = await post(lane, claim_path(project), {"stage": "annotate"}, token=token)
            task = json.loads(claimed[2])
            expected = await asyncio.to_thread(rendered_task_then_close, task["item"]["id"], annotator)
            submitted = await post(
                lane,
                submit_path(task["item"]["id"]),
                {"text": "Within two hours.", "version": task["item"]["version"]},
                token=token,
            )
            answers.append((claimed, expected, submitted, django.calls))
        return answers

    # when the first is claimed and submitted through Django and the second through the lane
    (django_claim, _, _, calls), (lane_claim, expected, lane_submit, calls_after) = run(scenario)

    # then the lane answered the second pair, as Django renders that item
    assert (calls, calls_after) == (2, 2)
    assert json.loads(django_claim[2])["item"]["id"] == first.pk
    assert json.loads(lane_claim[2])["item"]["id"] == second.pk
    assert json.loads(lane_claim[2]) == expected
    second.refresh_from_db()
    assert lane_submit[2] == JSONRenderer().render(ItemSerializer(second).data)
    assert json.loads(lane_submit[2])["messages"] == second.messages
    assert json.loads(lane_submit[2])["metadata"] == {"category": "账单", "n": 2}


def test_a_submission_that_edits_turns_reaches_django(project, annotator, token):
    # given a warm lane, a project that lets people edit earlier turns, and a held conversation
    from .test_workflow_sql import CONVERSATION, conversation_item

    project.edit_all_assistant_turns = True
    project.save()
    ItemFactory(project=project, priority=5)  # for the warm-up
    conversation_item(project)

    async def request(lane):
        claimed = json.loads((await post(lane, claim_path(project), {"stage": "annotate"}, token=token))[2])
        body = {"text": "Soon.", "version": claimed["item"]["version"], "turns": {"3": "It is down."}}
        return await post(lane, submit_path(claimed["item"]["id"]), body, token=token)

    # when the submission carries turn edits
    (status, _, body), reached_django = learn_then(project, token, request)

    # then Django's service stored them
    assert reached_django and status == 200
    item = Item.objects.get(external_id=CONVERSATION["external_id"])
    assert item.current_revision.turn_edits == {"3": "It is down."}
