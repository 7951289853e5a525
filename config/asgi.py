"""ASGI entry point: Django's WSGI handler for HTTP (on a thread pool), Channels for websockets.

HTTP requests go through Django's WSGI handler run on a2wsgi's thread pool rather than through
Django's ASGI handler. Django's ASGI handler hops to a thread for every sync middleware and for the
sync view, which on two cores made a trivial view four times slower (docs/PERFORMANCE.md). Our views
are sync, so nothing is lost; websockets (live counts, training progress) still run on the event loop.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

django_wsgi_app = get_wsgi_application()  # sets up Django before the routing imports models

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from core.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": WSGIMiddleware(django_wsgi_app, workers=settings.HANDOVER_WEB_THREADS),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
