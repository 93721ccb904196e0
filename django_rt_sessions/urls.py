from django.db import transaction
from django.urls import path

from . import views

app_name = "rt_sessions"

# non_atomic_requests: on a site with ATOMIC_REQUESTS the audit row of an error response must still be
# committed (DRF marks such a transaction for rollback), and no transaction should stay open while the
# upstream call is in flight.
urlpatterns = [
    path("presets/", views.PresetListView.as_view(), name="presets"),
    path(
        "transcription-sessions/",
        transaction.non_atomic_requests(views.TranscriptionSessionView.as_view()),
        name="transcription-sessions",
    ),
]
