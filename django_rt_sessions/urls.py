from django.db import transaction
from django.urls import path

from .api import views

app_name = "rt_sessions"

# non_atomic_requests: on a site with ATOMIC_REQUESTS the audit row of an error response must still be
# committed (DRF marks such a transaction for rollback), and no transaction should stay open while the
# upstream call is in flight.
transcription_sessions = transaction.non_atomic_requests(views.TranscriptionSessionView.as_view())

urlpatterns = [
    path("presets/", views.PresetListView.as_view(), name="presets"),
    path("transcription-sessions/", transcription_sessions, name="transcription-sessions"),
    # The same view without the slash: APPEND_SLASH cannot redirect a POST (a 500 under DEBUG, and a 301
    # that drops the body otherwise). Not in the OpenAPI schema (schema=None), which names the URL above.
    # The relay's WebSocket (relay/routing.py serves it under the same prefix on the ASGI side). Over plain
    # HTTP it only says so; its name gives the 201's connect.websocket_url its path.
    path("relay/realtime", views.relay_over_http, name="relay"),
    path(
        "transcription-sessions",
        transaction.non_atomic_requests(views.TranscriptionSessionView.as_view(schema=None)),
    ),
]
