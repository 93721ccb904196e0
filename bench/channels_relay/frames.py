"""The minimal relay's frame handling is the app's own (django_rt_sessions/relay/rules.py, where the why is):
an append recognised and counted without parsing, everything else parsed with duplicate keys refused. Kept
as this module so the benchmark's pieces (relay_pieces.py, relay_bare.py's parsing variant) measure exactly
what the relay runs."""

from __future__ import annotations

from typing import Any

from django_rt_sessions.relay.rules import APPEND, append_audio_bytes, parse_event
from django_rt_sessions.relay.rules import audio_bytes_of as _audio_bytes_of

__all__ = ["APPEND", "append_audio_bytes", "audio_bytes_of", "parse_event"]


def audio_bytes_of(event: dict[str, Any]) -> int:
    """Bytes of audio in a parsed append (0 when its audio is not base64 text)."""
    return _audio_bytes_of(event) or 0
