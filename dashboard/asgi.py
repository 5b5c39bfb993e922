"""ASGI entry point: `daphne dashboard.asgi:application` (and `manage.py runserver`)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

# Set Django up before importing anything that may touch models or settings.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.sessions import SessionMiddlewareStack  # noqa: E402
from django.conf import settings  # noqa: E402

from dashboard.live.deflate import DeflateWebSockets  # noqa: E402
from dashboard.routing import websocket_urlpatterns  # noqa: E402
from dashboard.security import NoSniff, SameOriginWebSocket  # noqa: E402
from dashboard.static_serving import StaticFiles  # noqa: E402

# Daphne on its own does not serve /static/; runserver does, and wrapping twice is harmless.
# Static files skip Django's middleware: NoSniff gives them X-Content-Type-Options. StaticFiles
# answers 404 (not 500) to a path that leaves the static folders (/static/../settings.py).
http_app = NoSniff(StaticFiles(django_asgi_app)) if settings.SERVE_STATIC else django_asgi_app

# DeflateWebSockets: the first request tells Daphne to accept per-message deflate on the
# WebSockets that follow (Daphne has no option for it: dashboard/live/deflate.py).
application = DeflateWebSockets(
    ProtocolTypeRouter(
        {
            "http": http_app,
            # Only the lab's own pages may open a WebSocket (same scheme, host and port: see
            # dashboard/security.py), and the session cookie tells a presenter from an attendee.
            "websocket": SameOriginWebSocket(
                SessionMiddlewareStack(URLRouter(websocket_urlpatterns))
            ),
        }
    )
)
