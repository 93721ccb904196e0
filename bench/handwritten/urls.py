from django.contrib.auth import views as auth_views
from django.urls import path

from bench.handwritten import views

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("token/", views.token, name="token"),
]
