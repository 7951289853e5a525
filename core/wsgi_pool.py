"""Django's WSGI handler served from the ASGI event loop on thread pools, one thread hop per request.

a2wsgi's adapter passes every message between the loop and the request's thread as its own blocking
round trip: reading the body, starting the response, each body chunk, the end. On the claim path
that bookkeeping was a quarter of a web process's CPU (docs/PERFORMANCE.md). Most requests are small:
their body arrives in one message and their response is one string. For those, this adapter builds
the environ on the loop (with a2wsgi's builder), runs the whole request in a worker thread and sends
the response from the loop: one hop. A body in several messages goes to a2wsgi, which streams it; a
streaming response (exports, files) is sent chunk by chunk from the thread as a2wsgi does.
"""

import asyncio
import contextvars
import io
from concurrent.futures import ThreadPoolExecutor

from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi import build_environ


class OneHopWSGI:
    def __init__(self, app, *, workers: int, name: str):
        self.app = app
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self.streaming = WSGIMiddleware(app, workers=workers)  # for bodies that arrive in parts

    async def __call__(self, scope, receive, send):
        first = await receive()
        if first.get("more_body"):
            return await self.streaming(scope, replay(first, receive), send)
        environ = build_environ(scope, io.BytesIO(first.get("body", b"")))
        loop = asyncio.get_running_loop()
        run = contextvars.copy_context().run
        start, body = await loop.run_in_executor(self.executor, run, self._respond, environ, send, loop)
        if start is not None:  # not streamed from the thread
            await send(start)
            await send({"type": "http.response.body", "body": body})

    def _respond(self, environ, send, loop):
        """In a worker thread: run the request. Returns the response to send, or (None, None) once a
        streaming response has been sent from here."""
        started = []

        def start_response(status, headers, exc_info=None):
            started[:] = [_start_message(status, headers)]
            return lambda chunk: None  # the legacy write() callable; Django never uses it

        iterable = self.app(environ, start_response)
        try:
            if not getattr(iterable, "streaming", False):
                return started[0], b"".join(iterable)

            def send_now(message):
                asyncio.run_coroutine_threadsafe(send(message), loop).result()

            send_now(started[0])
            for chunk in iterable:
                send_now({"type": "http.response.body", "body": chunk, "more_body": True})
            send_now({"type": "http.response.body", "body": b""})
            return None, None
        finally:
            getattr(iterable, "close", lambda: None)()


def _start_message(status: str, headers) -> dict:
    return {
        "type": "http.response.start",
        "status": int(status.split(" ", 1)[0]),
        "headers": [(name.lower().encode("latin1"), value.encode("latin1")) for name, value in headers],
    }


def replay(first: dict, receive):
    """A receive() that gives `first` back before going on with the real one."""
    pending = [first]

    async def replayed():
        return pending.pop() if pending else await receive()

    return replayed
