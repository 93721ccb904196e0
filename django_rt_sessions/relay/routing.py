"""The relay's WebSocket route, to mount under the prefix the site includes `django_rt_sessions.urls` at
(docs/deployment.md#the-relay)::

    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import path
    from django_rt_sessions.relay.routing import websocket_urlpatterns

    application = ProtocolTypeRouter({
        "http": get_asgi_application(),
        "websocket": URLRouter([path("rt/", URLRouter(websocket_urlpatterns))]),
    })
"""

from django.urls import path

from .consumer import RelayConsumer

websocket_urlpatterns = [path("relay/realtime", RelayConsumer.as_asgi())]
