from __future__ import annotations

from rest_framework import serializers

from ..models import SessionPreset


class PresetSerializer(serializers.ModelSerializer):
    """A preset as the requesting user sees it (docs/http-api.md, `GET presets/`): no groups, no rate."""

    class Meta:
        model = SessionPreset
        fields = [
            "name",
            "title",
            "description",
            "default",
            "overridable",
            "expires_after_seconds",
            "session",
            # The relay options: a client learns a relay session's limits (docs/presets.md#relay-presets).
            "relay",
            "max_session_seconds",
            "max_concurrent_sessions",
            "daily_audio_minutes",
            "idle_timeout_seconds",
        ]
        read_only_fields = fields
