import importlib.util

from django.contrib import admin
from django.urls import include, path

from example_project.demo import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("rt/", include("django_rt_sessions.urls")),
    path("relay-usage/<str:session_id>/", views.relay_usage, name="relay-usage"),
    path("", views.home, name="home"),
]

if importlib.util.find_spec("drf_spectacular"):  # the `openapi` extra
    from drf_spectacular.views import SpectacularAPIView

    urlpatterns.append(path("api/schema/", SpectacularAPIView.as_view(), name="schema"))
