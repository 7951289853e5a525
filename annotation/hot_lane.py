"""The work queue's hot lane: plain claims and submissions answered on the event loop.

An annotator's day is claim, submit, claim, submit. annotation.workflow_sql already makes each one
PostgreSQL statement; what was left of a request's cost was the trip through Django and DRF around
it: the thread hop, eleven middlewares, URL resolving, DRF's request, negotiation and serializers'
deep copies, about three quarters of a web process's CPU per claim (docs/PERFORMANCE.md). This ASGI
layer sits in front of Django and answers the plainest requests itself, the way workflow_sql answers
for the services: it handles one case, the plain success, and hands everything else to Django.

What the lane answers, and what it leaves to Django:
- Nothing at all if the two views do more than token authentication and IsAuthenticated (a throttle,
  another permission): the lane checks that when it starts.
- Only `POST /api/projects/{id}/tasks/next/` and `POST /api/items/{id}/submit/`, with an API token this
  process has checked within HANDOVER_TOKEN_CACHE_SECONDS (core.authentication), a JSON body in one
  message, no query string and no header beyond those a plain API client sends. A cookie, a language
  preference, a proxy's headers, an unknown token: Django.
- The body is validated by the serializers the views use; anything they refuse goes to Django,
  which answers the 400 (so errors keep one format).
- The statement is workflow_sql's, run on an async connection of the lane's own pool; when it
  returns nothing (empty queue, a held item, a stale version, any rule it does not decide), nothing
  was written and Django runs the request from the start. A database error does the same.
- The response is the same JSON (DRF's renderer) with the same headers: the lane does not write its
  own header list, it learns it, per route, host and Accept header, from the first 200 that Django
  answers there. A change to the middleware shows up in the lane with the next process.

tests/test_hot_lane.py checks that the lane and Django answer byte for byte alike and write the same
rows, and that every other case reaches Django.
"""

import asyncio
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.serializers import Serializer
from rest_framework.utils.json import strict_constant

from annotation.workflow import sql as workflow_sql
from annotation.workflow.live_counts import counts_window, project_counts_broadcast_schedule
from annotation.workflow.serializers import ClaimSerializer, SubmitSerializer
from core.authentication import CachedTokenAuthentication, cached_user_id
from core.realtime import window_known_open
from core.wsgi_pool import replay

logger = logging.getLogger(__name__)

# Headers a plain API client sends; any other header means the request may need something the
# lane does not do (sessions, languages, proxies), so Django takes it.
PLAIN_HEADERS = frozenset(
    {
        b"host",
        b"authorization",
        b"content-type",
        b"content-length",
        b"accept",
        b"accept-encoding",
        b"user-agent",
        b"connection",
    }
)
JSON_ACCEPTS = frozenset({None, b"*/*", b"application/json"})  # what the lane's JSON answers
JSON_TYPES = frozenset(
    {b"application/json", b"application/json; charset=utf-8", b"application/json;charset=utf-8"}
)
MAX_LEARNED = 64


@dataclass(frozen=True)
class Route:
    name: str
    pattern: re.Pattern  # its group is the id the statement takes as `target`
    target: str
    # One serializer per route, kept: run_validation keeps no state on the instance, the lane runs on
    # one thread, and building a serializer's fields anew for every request was a tenth of its CPU.
    validator: Serializer
    statement: Callable[..., tuple[str, dict] | None]
    result: Callable[[dict], tuple[dict, bool]]


CLAIM = Route(
    "claim",
    re.compile(r"^/api/projects/(\d+)/tasks/next/$"),
    "project_id",
    ClaimSerializer(),
    workflow_sql.claim_statement,
    workflow_sql.claim_result,
)
SUBMIT = Route(
    "submit",
    re.compile(r"^/api/items/(\d+)/submit/$"),
    "item_id",
    SubmitSerializer(),
    workflow_sql.submit_statement,
    workflow_sql.submit_result,
)


class WorkQueueLane:
    def __init__(self, app):
        self.app = app
        self.enabled = (
            settings.HANDOVER_HOT_LANE
            and connection.vendor == "postgresql"
            and settings.HANDOVER_TOKEN_CACHE_SECONDS > 0
            and views_do_only_what_the_lane_does()
        )
        self.learned: dict[tuple, list] = {}  # (route, host, accept) -> Django's response headers
        self._pool: AsyncConnectionPool | None = None
        self._pool_opening = asyncio.Lock()
        self._renderer = JSONRenderer()

    async def __call__(self, scope, receive, send):
        route, found = self._route(scope) if self.enabled else (None, None)
        if route is None:
            return await self.app(scope, receive, send)
        first = await receive()
        replayed = replay(first, receive)
        headers = _plain_headers(scope, first)
        if headers is None:
            return await self.app(scope, replayed, send)
        key = (route.name, headers.get(b"host"), headers.get(b"accept"))
        learned = self.learned.get(key)
        if learned is None:
            return await self.app(scope, replayed, self._learning(key, send))
        body = await self._answer(route, int(found.group(1)), headers, first.get("body", b""))
        if body is None:
            return await self.app(scope, replayed, send)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*learned, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _route(scope):
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["query_string"]
            or scope.get("root_path")
        ):
            return None, None
        for route in (CLAIM, SUBMIT):
            found = route.pattern.match(scope["path"])
            if found:
                return route, found
        return None, None

    def _learning(self, key, send):
        """Django's send, noting the headers of its first plain 200 on `key`."""

        async def noting(message):
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = [(name, value) for name, value in message["headers"] if name != b"content-length"]
                named = dict(headers)
                plain = named.get(b"content-type") == b"application/json" and b"set-cookie" not in named
                if plain and len(self.learned) < MAX_LEARNED:
                    self.learned[key] = headers
            await send(message)

        return noting

    async def _answer(self, route: Route, target: int, headers: dict, body: bytes) -> bytes | None:
        """The response body, once the statement has done the work; None to leave it to Django."""
        keyword, _, token = headers.get(b"authorization", b"").decode("latin1").partition(" ")
        is_token = keyword.lower() == CachedTokenAuthentication.keyword.lower() and token and " " not in token
        user_id = cached_user_id(token) if is_token else None
        if user_id is None:
            return None
        try:
            data = json.loads(body, parse_constant=strict_constant)  # as DRF's parser: no NaN
        except ValueError:
            return None
        try:
            valid = route.validator.run_validation(data)
        except ValidationError:
            return None
        statement = route.statement(**{route.target: target}, user_id=user_id, **valid)
        row = statement and await self._fetch_one(*statement)
        if not row:
            return None
        answer, changed = route.result(row)
        if changed and not window_known_open(counts_window(row["project_id"])):
            # Redis is asked once a second per process at most: off the loop, without waiting.
            asyncio.get_running_loop().run_in_executor(
                None, project_counts_broadcast_schedule, row["project_id"]
            )
        return self._renderer.render(answer)

    async def _fetch_one(self, sql: str, params: dict) -> dict | None:
        try:
            pool = await self._opened_pool()
            async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
                await cursor.execute(sql, params, prepare=True)
                return await cursor.fetchone()
        except Exception:  # one statement, so nothing was written: Django runs it and reports
            logger.warning("The hot lane's statement failed; Django serves the request", exc_info=True)
            return None

    async def _opened_pool(self) -> AsyncConnectionPool:
        if self._pool is not None:
            return self._pool
        async with self._pool_opening:
            if self._pool is None:
                pool = AsyncConnectionPool(
                    kwargs={**self.connection_params(), "autocommit": True},
                    min_size=1,
                    max_size=settings.HANDOVER_HOT_LANE_CONNECTIONS,
                    # Waiting longer for one of the lane's connections than Django would take with its
                    # own is no use: after this the request goes to Django.
                    timeout=2,
                    open=False,
                    name="hot-lane",
                )
                await pool.open()
                self._pool = pool
        return self._pool

    @staticmethod
    def connection_params() -> dict:
        """Django's connection parameters, with its adapters, timezone and options."""
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)  # a sync cursor class; the pool's are async
        return params

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def views_do_only_what_the_lane_does() -> bool:
    """The lane stands in for the claim and submit views: token authentication, IsAuthenticated, no
    throttling. Should a view gain a throttle or a permission, the lane steps aside rather than skip it."""
    from annotation.workflow.api import ItemSubmitApi, TaskNextApi

    for view in (TaskNextApi, ItemSubmitApi):
        if (
            view.throttle_classes
            or list(view.permission_classes) != [IsAuthenticated]
            or CachedTokenAuthentication not in view.authentication_classes
        ):
            logger.warning("%s does more than the hot lane does: the lane is off", view.__name__)
            return False
    return True


def _plain_headers(scope, first) -> dict | None:
    """The request's headers by name, or None when the request is not plain."""
    if first.get("more_body"):
        return None
    headers = {}
    for name, value in scope["headers"]:
        if name not in PLAIN_HEADERS or name in headers:
            return None
        headers[name] = value
    if (
        headers.get(b"content-type", b"").lower() not in JSON_TYPES
        or headers.get(b"accept") not in JSON_ACCEPTS
    ):
        return None
    return headers
