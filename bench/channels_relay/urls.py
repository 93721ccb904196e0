urlpatterns: list[object] = []  # WebSocket only (asgi.py); Django wants a URLconf
