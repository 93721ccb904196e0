"""The relay benchmark's session row: what the relay keeps per session, saved every 5 s."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class BenchRelaySession(models.Model):
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True)
    end_reason = models.CharField(max_length=32, blank=True, default="")
    audio_bytes = models.BigIntegerField(default=0)
    last_seen_at = models.DateTimeField(null=True)
    # Staff's "end session": the shared ticker asks for the rows asked to end since its last look.
    end_requested_at = models.DateTimeField(null=True, db_index=True)

    class Meta:
        app_label = "channels_relay"

    def __str__(self) -> str:
        return f"relay session {self.pk}"
