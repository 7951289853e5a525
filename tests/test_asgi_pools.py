"""HTTP runs on two thread pools: requests that wait long cannot take the threads of the short ones."""

import asyncio
import threading

from config.asgi import HttpPools

from .asgi_helpers import asgi_request


def blocking_wsgi_app(release: threading.Event):
    """`ask` waits until released, as it waits for the model; anything else answers at once."""

    def app(environ, start_response):
        if environ["PATH_INFO"].endswith("/ask/"):
            release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    return app


async def get(app, path: str) -> bytes:
    _, _, body = await asgi_request(app, "GET", path)
    return body


async def test_short_requests_are_served_while_every_long_thread_waits(settings):
    # given one thread for short requests and two for long ones, both long threads taken by asks
    settings.HANDOVER_WEB_THREADS = 1
    settings.HANDOVER_WEB_LONG_THREADS = 2
    release = threading.Event()
    app = HttpPools(blocking_wsgi_app(release))
    asks = [asyncio.create_task(get(app, f"/api/projects/{n}/ask/")) for n in (1, 2)]
    await asyncio.sleep(0.2)

    # when a claim comes in
    claim = await asyncio.wait_for(get(app, "/api/projects/1/tasks/next/"), timeout=5)

    # then it is answered while both asks still wait; they finish once the model answers
    assert claim == b"/api/projects/1/tasks/next/"
    assert not any(ask.done() for ask in asks)
    release.set()
    assert sorted(await asyncio.gather(*asks)) == [b"/api/projects/1/ask/", b"/api/projects/2/ask/"]


async def test_exports_count_as_long_waits(settings):
    # given a single long thread held by an ask
    settings.HANDOVER_WEB_THREADS = 2
    settings.HANDOVER_WEB_LONG_THREADS = 1
    release = threading.Event()
    app = HttpPools(blocking_wsgi_app(release))
    ask = asyncio.create_task(get(app, "/api/projects/1/ask/"))
    await asyncio.sleep(0.2)

    # when an export comes in, it queues behind the ask, not on the short threads
    export = asyncio.create_task(get(app, "/api/projects/1/export/"))
    await asyncio.sleep(0.3)
    assert not export.done()
    release.set()
    assert await asyncio.wait_for(export, timeout=5) == b"/api/projects/1/export/"
    await ask
