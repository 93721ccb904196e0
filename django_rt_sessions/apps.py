import importlib.util

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RtSessionsConfig(AppConfig):
    name = "django_rt_sessions"
    label = "django_rt_sessions"
    verbose_name = _("Realtime transcription sessions")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.models import Group
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from . import checks  # noqa: F401  (registers the system checks)
        from .models import SessionPreset
        from .presets.cache import invalidate

        # Every change to what a preset allows makes all processes reload their cached presets.
        post_save.connect(invalidate, sender=SessionPreset, dispatch_uid="rt_sessions_preset_saved")
        post_delete.connect(invalidate, sender=SessionPreset, dispatch_uid="rt_sessions_preset_deleted")
        m2m_changed.connect(
            invalidate, sender=SessionPreset.groups.through, dispatch_uid="rt_sessions_preset_groups"
        )
        # Deleting a group removes it from presets without an m2m_changed signal.
        post_delete.connect(invalidate, sender=Group, dispatch_uid="rt_sessions_group_deleted")

        if importlib.util.find_spec("drf_spectacular") is not None:
            from .api import openapi  # noqa: F401  (registers the drf-spectacular extensions)
