import importlib.util

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RtSessionsConfig(AppConfig):
    name = "django_rt_sessions"
    label = "django_rt_sessions"
    verbose_name = _("Realtime transcription sessions")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)

        if importlib.util.find_spec("drf_spectacular") is not None:
            from . import openapi  # noqa: F401  (registers the drf-spectacular extensions)
