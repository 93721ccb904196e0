"""The test URLs plus the schema view, as a site with the `openapi` extra serves it (tests/test_openapi.py).

The view describes tests.urls, so the schema holds the app's endpoints and not itself.
"""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from tests.urls import urlpatterns as base_urlpatterns

urlpatterns = [
    *base_urlpatterns,
    path("api/schema/", SpectacularAPIView.as_view(urlconf="tests.urls"), name="schema"),
]
