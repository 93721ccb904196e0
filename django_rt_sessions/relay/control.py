"""Ending relayed sessions from anywhere: staff's "End session" (docs/relay.md#staff).

The rows are marked (every relay process polls for that each second) and, where the site has a channel
layer (channels-redis on the site's Redis), each session's process is told on its own channel at once.
Importable without Channels: without it, or without CHANNEL_LAYERS, the poll alone ends the sessions.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable

from django.conf import settings

from ..models import RelaySession
from . import sessions

logger = logging.getLogger("django_rt_sessions.relay")


def end_sessions(pks: Iterable[str]) -> list[RelaySession]:
    """Ask the open sessions among `pks` to end (`session_ended`, close 1000); returns those asked."""
    rows = sessions.request_end(pks)
    by_channel: dict[str, list[str]] = {}
    for row in rows:
        if row.channel_name:
            by_channel.setdefault(row.channel_name, []).append(row.pk)
    if by_channel and getattr(settings, "CHANNEL_LAYERS", None) and importlib.util.find_spec("channels"):
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        from .metering import END_MESSAGE

        layer = get_channel_layer()
        for channel, ids in by_channel.items():
            try:
                async_to_sync(layer.send)(channel, {"type": END_MESSAGE, "sessions": ids})
            except Exception as exc:  # Redis down: the relay processes' poll still ends them
                logger.warning("Could not reach a relay process on the channel layer (%s).", exc)
    return rows
