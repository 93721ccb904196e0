"""Test helpers for django-rt-sessions: a local stand-in for OpenAI's Realtime token endpoints and its
realtime WebSocket (docs/testing.md).

``OpenAIStandIn`` needs the ``testing`` extra (aiohttp, jsonschema), its speech engine the ``standin-speech``
extra; they are imported lazily so that merely importing this package (as the pytest plugin does in every
test run) stays stdlib-only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .behaviours import (
    Behaviour,
    Delay,
    DropSocket,
    Error,
    Expired,
    Garbage,
    Hang,
    RateLimit,
    Reset,
    SlowEvents,
)

if TYPE_CHECKING:
    from .server import OpenAIStandIn, RealtimeConnection, RecordedRequest

__all__ = [
    "Behaviour",
    "Delay",
    "DropSocket",
    "Error",
    "Expired",
    "Garbage",
    "Hang",
    "OpenAIStandIn",
    "RateLimit",
    "RealtimeConnection",
    "RecordedRequest",
    "Reset",
    "SlowEvents",
]

_LAZY = {"OpenAIStandIn", "RealtimeConnection", "RecordedRequest"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
