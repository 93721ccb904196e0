"""The real relay's ASGI application in the benchmark: its consumer at /relay/realtime, WebSocket only."""

import gc
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.real_relay.settings")
django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from django_rt_sessions.relay.routing import websocket_urlpatterns  # noqa: E402

if os.environ.get("RT_BENCH_RELAY_GC") == "tuned":  # as example_project/gunicorn.conf.py does
    gc.freeze()
    gc.set_threshold(50000, 20, 100)

# Mounted at the root: the benchmark clients open /relay/realtime.
application = ProtocolTypeRouter({"websocket": URLRouter(websocket_urlpatterns)})
