"""ASGI entry point: Django's WSGI handler for HTTP (on thread pools), Channels for websockets.

HTTP requests go through Django's WSGI handler run on thread pools (core.wsgi_pool) rather than through
Django's ASGI handler. Django's ASGI handler hops to a thread for every sync middleware and for the
sync view, which on two cores made a trivial view four times slower (docs/PERFORMANCE.md). Our views
are sync, so nothing is lost; websockets (live counts, training progress) still run on the event loop.

Two pools, as bulkheads: requests that wait long (`ask` waits for the model; exports stream a file)
get their own, so they cannot take every thread from the short requests, and the short requests run
on a few threads, since more threads than cores only add contention for the GIL.
"""

import gc
import os
import re

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

django_wsgi_app = get_wsgi_application()  # sets up Django before the routing imports models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from annotation.hot_lane import WorkQueueLane  # noqa: E402
from annotation.routing import websocket_urlpatterns  # noqa: E402
from core.wsgi_pool import OneHopWSGI  # noqa: E402

LONG_WAITS = re.compile(r"^(/api)?/projects/\d+/(ask|export|ratings/export)/?$")


class HttpPools:
    def __init__(self, app):
        self.short = OneHopWSGI(app, workers=settings.HANDOVER_WEB_THREADS, name="web")
        self.long = OneHopWSGI(app, workers=settings.HANDOVER_WEB_LONG_THREADS, name="web-long")

    async def __call__(self, scope, receive, send):
        pool = self.long if LONG_WAITS.match(scope["path"]) else self.short
        await pool(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": WorkQueueLane(HttpPools(django_wsgi_app)),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# Everything loaded so far lives as long as the process: keep it out of the collector's full passes,
# which otherwise walk Django's whole object graph every so often in the middle of a request.
gc.freeze()
