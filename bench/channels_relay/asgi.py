"""The relay benchmark's ASGI application: the consumer at /relay/realtime, WebSocket only."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.channels_relay.settings")
django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from bench.channels_relay.consumer import RelayConsumer  # noqa: E402

application = ProtocolTypeRouter({"websocket": URLRouter([path("relay/realtime", RelayConsumer.as_asgi())])})
