"""Test helpers for django-rt-sessions: a local stand-in for OpenAI's Realtime token endpoints (SPEC §7).

``OpenAIStandIn`` needs the ``testing`` extra (werkzeug, jsonschema); it is imported lazily so that merely
importing this package (as the pytest plugin does in every test run) stays stdlib-only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .behaviours import Behaviour, Delay, Error, Garbage, Hang, RateLimit, Reset

if TYPE_CHECKING:
    from .server import OpenAIStandIn, RecordedRequest

__all__ = [
    "Behaviour",
    "Delay",
    "Error",
    "Garbage",
    "Hang",
    "OpenAIStandIn",
    "RateLimit",
    "RecordedRequest",
    "Reset",
]

_LAZY = {"OpenAIStandIn", "RecordedRequest"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
