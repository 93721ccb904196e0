"""ASGI entry point of the example project: the site and the relay's WebSocket from one process.

    uvicorn example_project.asgi:application                 # the recommended server (docs/deployment.md)
    daphne example_project.asgi:application
    python manage.py runserver                               # Channels' daphne runserver (DEBUG)

`/rt/relay/realtime` is the relay (relay presets, docs/relay.md); everything else is the Django site.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

# Django first: the relay's consumer imports models.
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from django_rt_sessions.relay.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        # Under the prefix the site includes django_rt_sessions.urls at (urls.py: "rt/").
        "websocket": URLRouter([path("rt/", URLRouter(websocket_urlpatterns))]),
    }
)
