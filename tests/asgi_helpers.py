"""One HTTP request through an ASGI application, as an ASGI server would send it."""


async def asgi_request(app, method: str, path: str, *, body: bytes = b"", headers=(), query: bytes = b""):
    """Returns (status, response headers, body); the request's host is `testserver`."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start, *chunks = sent
    return start["status"], start["headers"], b"".join(chunk.get("body", b"") for chunk in chunks)
