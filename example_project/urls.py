from django.contrib import admin
from django.urls import include, path

from example_project.demo import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("rt/", include("django_rt_sessions.urls")),
    path("", views.home, name="home"),
]
